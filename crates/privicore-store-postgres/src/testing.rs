//! Throwaway schemas, so tests (and the integration harness) each get an empty database
//! of their own on one server and can run in parallel.

use crate::db;
use privicore_domain::ports::StoreError;
use sqlx::Connection;

/// The variable that names the server tests run against; tests that need PostgreSQL are
/// skipped (and say so) when it is unset.
pub const TEST_URL_VARIABLE: &str = "PRIVICORE_TEST_POSTGRES_URL";

/// `PRIVICORE_TEST_STORE=postgres` runs the integration suite's engines on PostgreSQL
/// (at `PRIVICORE_TEST_POSTGRES_URL`) instead of the embedded store.
pub const STORE_SWITCH: &str = "PRIVICORE_TEST_STORE";

/// The server the integration harness puts its engines on, when the switch says so.
pub fn harness_url() -> Option<String> {
    if std::env::var(STORE_SWITCH).as_deref() != Ok("postgres") {
        return None;
    }
    match std::env::var(TEST_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!("{STORE_SWITCH}=postgres needs {TEST_URL_VARIABLE}"),
    }
}

/// The test server's URL, or `None` after printing that `test` was skipped.
pub fn test_url(test: &str) -> Option<String> {
    match std::env::var(TEST_URL_VARIABLE) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: skipped, {TEST_URL_VARIABLE} is not set");
            None
        }
    }
}

fn check_name(schema: &str) -> Result<(), StoreError> {
    let plain = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "schema name {schema:?}: lower-case letters, digits and _ only"
        )))
    }
}

async fn run_once(url: &str, sql: &str) -> Result<(), StoreError> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(db::unavailable)?;
    sqlx::Executor::execute(&mut conn, sql)
        .await
        .map_err(db::unavailable)?;
    let _ = conn.close().await;
    Ok(())
}

/// Creates `schema` unless it exists.
pub async fn create_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_name(schema)?;
    run_once(url, &format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await
}

/// Drops `schema` and everything in it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
    check_name(schema)?;
    run_once(url, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await
}

/// A fresh, empty schema on the server at `url`, dropped with the value.
pub struct TestSchema {
    server_url: String,
    pub name: String,
}

/// `server_url` with `schema` as the only schema on the search path: what an engine's
/// `--database-url` takes.
pub fn url_in_schema(server_url: &str, schema: &str) -> String {
    let separator = if server_url.contains('?') { '&' } else { '?' };
    format!("{server_url}{separator}options[search_path]={schema}")
}

/// Test schemas are named `test_<pid>_<id>`; the ones whose process is gone (killed before
/// it could drop them, or kept on purpose for the life of the process) are dropped by the
/// next test process that creates one.
fn schema_name(id: &str) -> String {
    format!("test_{}_{id}", std::process::id())
}

fn left_behind(name: &str) -> bool {
    let pid = name
        .strip_prefix("test_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        None => false,
    }
}

async fn sweep(server_url: &str) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Ok(mut conn) = sqlx::PgConnection::connect(server_url).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, 'test_')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let _ = conn.close().await;
    for name in names.iter().filter(|n| left_behind(n)) {
        let _ = drop_schema(server_url, name).await;
    }
}

/// A schema for the engine processes of one test data directory, created on first use
/// and kept while this process runs (an engine restarted on the directory finds its
/// data again); blocking, for harness code outside a runtime.
pub fn schema_url_for_dir(server_url: &str, dir: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    let name = schema_name(&format!("{:016x}", hasher.finish()));
    let (url, schema) = (server_url.to_owned(), name.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            sweep(&url).await;
            create_schema(&url, &schema).await
        })
    })
    .join()
    .expect("schema thread")
    .expect("test schema");
    url_in_schema(server_url, &name)
}

impl TestSchema {
    pub async fn create(server_url: &str) -> Result<Self, StoreError> {
        sweep(server_url).await;
        let name = schema_name(&uuid::Uuid::new_v4().simple().to_string()[..16]);
        create_schema(server_url, &name).await?;
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
        })
    }

    /// The server URL with this schema alone on the search path.
    pub fn url(&self) -> String {
        url_in_schema(&self.server_url, &self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.server_url.clone(), self.name.clone());
        // Drop runs inside and outside runtimes alike: a thread of its own with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(drop_schema(&url, &name)).ok()
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}
