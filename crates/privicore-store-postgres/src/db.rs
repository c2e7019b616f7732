//! The pool, the embedded migrations, transactions that retry, and the statement helpers
//! every module uses.

use privicore_domain::ports::StoreError;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres, Row};
use std::str::FromStr;
use std::time::Duration;

/// Migrations in order, each run once in its own transaction and recorded in
/// `privicore_migrations`.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_schema.sql")),
    (
        2,
        include_str!("../migrations/0002_directory_purge_and_event_application.sql"),
    ),
];

/// Connections one engine keeps at most. The engine's lanes, inbox and edge run many
/// statements at once; PostgreSQL's default allows 100 connections for every engine.
const MAX_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLSTATEs after which a transaction is run again from the start: serialization
/// failure and deadlock (PostgreSQL aborted one of two transactions that locked rows in
/// opposite orders).
const TRANSIENT: &[&str] = &["40001", "40P01"];
/// Marks the message of an error a transaction may retry.
const TRANSIENT_MARK: &str = "transient: ";

pub fn unavailable(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.code().is_some_and(|c| TRANSIENT.contains(&c.as_ref()))
    {
        return StoreError::Unavailable(format!("{TRANSIENT_MARK}{e}"));
    }
    StoreError::Unavailable(e.to_string())
}

pub fn is_transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(TRANSIENT_MARK))
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Opens a pool on `url`; `schema`, when given, is the only schema on the search path.
pub async fn connect(
    url: &str,
    schema: Option<&str>,
    max_connections: Option<u32>,
) -> Result<PgPool, StoreError> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
    if let Some(schema) = schema {
        options = options.options([("search_path", schema)]);
    }
    PgPoolOptions::new()
        .max_connections(max_connections.unwrap_or(MAX_CONNECTIONS))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .idle_timeout(Some(Duration::from_secs(60)))
        .connect_with(options)
        .await
        .map_err(unavailable)
}

/// Runs the migrations not yet applied. Several engines may start at once on one
/// database: a session advisory lock keyed by the schema lets one of them migrate while
/// the others wait, then find nothing left to do.
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    sqlx::query("SELECT pg_advisory_lock(hashtext('privicore.migrate:' || current_schema()))")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let result = migrate_locked(&mut conn).await;
    let unlocked = sqlx::query(
        "SELECT pg_advisory_unlock(hashtext('privicore.migrate:' || current_schema()))",
    )
    .execute(&mut *conn)
    .await;
    if unlocked.is_err() {
        // A connection whose unlock failed must not go back to the pool holding the lock.
        conn.detach();
    }
    result
}

async fn migrate_locked(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS privicore_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    let applied: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM privicore_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        let failed = |e: sqlx::Error| {
            StoreError::Unavailable(format!("PostgreSQL migration {version} failed: {e}"))
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(failed)?;
        // A string without arguments goes as a simple query: several statements at once.
        sqlx::Executor::execute(&mut *tx, *sql)
            .await
            .map_err(failed)?;
        sqlx::query("INSERT INTO privicore_migrations (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
    }
    Ok(())
}

/// Runs `$body` (an expression using `$c: &mut PgConnection`) in a transaction and
/// commits it; a deadlock or serialization failure runs it again from the start.
macro_rules! transaction {
    ($pool:expr, |$c:ident| $body:expr) => {{
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut tx = $pool.begin().await.map_err($crate::db::unavailable)?;
            let result = {
                let $c: &mut sqlx::PgConnection = &mut *tx;
                $body
            };
            let result = match result {
                Ok(value) => tx
                    .commit()
                    .await
                    .map(|()| value)
                    .map_err($crate::db::unavailable),
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            };
            match result {
                Err(e) if $crate::db::is_transient(&e) && attempt < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(
                        (5 * u64::from(attempt)) + u64::from($crate::db::rand_jitter()),
                    ))
                    .await;
                }
                other => break other,
            }
        }
    }};
}

/// A few milliseconds of jitter, so two retried transactions do not collide again.
pub fn rand_jitter() -> u8 {
    (uuid::Uuid::new_v4().as_bytes()[0]) % 8
}

/// A bound value of a statement built piece by piece.
#[derive(Clone, Debug)]
pub enum Value {
    Text(String),
    Int(i64),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

/// SQL text with its bound values, built piece by piece for filtered lists.
#[derive(Default, Clone)]
pub struct Sql {
    pub text: String,
    pub values: Vec<Value>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self.text.push_str(&format!("${}", self.values.len()));
        self
    }

    pub fn bind_list<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.push("(");
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(v);
        }
        self.push(")")
    }

    pub fn query(&self) -> Query<'_, Postgres, PgArguments> {
        self.values
            .iter()
            .fold(sqlx::query(&self.text), |q, v| match v {
                Value::Text(t) => q.bind(t.as_str()),
                Value::Int(n) => q.bind(*n),
            })
    }
}

/// The first row, converted.
pub async fn one<T>(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
    convert: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    match query.fetch_optional(conn).await.map_err(unavailable)? {
        Some(row) => convert(&row).map(Some),
        None => Ok(None),
    }
}

/// Every row, converted.
pub async fn all<T>(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
    convert: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    query
        .fetch_all(conn)
        .await
        .map_err(unavailable)?
        .iter()
        .map(convert)
        .collect()
}

/// A single number (`COUNT(*)` and the like).
pub async fn count(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<u64, StoreError> {
    let row = query.fetch_one(conn).await.map_err(unavailable)?;
    row.try_get::<i64, _>(0)
        .map(|n| n as u64)
        .map_err(unavailable)
}

/// Runs a statement; the number of rows it changed.
pub async fn exec(
    conn: &mut PgConnection,
    query: Query<'_, Postgres, PgArguments>,
) -> Result<u64, StoreError> {
    query
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(unavailable)
}
