//! Throwaway schemas, so tests (and the integration harness) each get an empty database
//! of their own on one server and can run in parallel.

use crate::db;
use privicore_domain::ports::StoreError;
use sqlx::Connection;

/// The variable that names the server tests run against; tests that need PostgreSQL are
/// skipped (and say so) when it is unset.
pub const TEST_URL_VARIABLE: &str = "PRIVICORE_TEST_POSTGRES_URL";

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

impl TestSchema {
    pub async fn create(server_url: &str) -> Result<Self, StoreError> {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        create_schema(server_url, &name).await?;
        Ok(Self {
            server_url: server_url.to_owned(),
            name,
        })
    }

    /// The server URL with this schema as the only one on the search path: what an
    /// engine's `--database-url` takes.
    pub fn url(&self) -> String {
        let separator = if self.server_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options[search_path]={}",
            self.server_url, self.name
        )
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
