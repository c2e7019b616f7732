//! Connections: pragmas, embedded migrations, the pool of read connections and the
//! statement helpers every module uses.

use privicore_domain::ports::StoreError;
use rusqlite::{Connection, OpenFlags, Params, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Migrations in order; `PRAGMA user_version` records how many have run.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_foundation.sql"),
    include_str!("../migrations/0002_devices_and_tokens.sql"),
    include_str!("../migrations/0003_device_sync.sql"),
    include_str!("../migrations/0004_token_events_by_time.sql"),
    include_str!("../migrations/0005_rows_keyed_by_token_seq.sql"),
    include_str!("../migrations/0006_spool_time.sql"),
    include_str!("../migrations/0007_commands_by_id.sql"),
    include_str!("../migrations/0008_idempotency.sql"),
    include_str!("../migrations/0009_throttle_counters.sql"),
    include_str!("../migrations/0010_governance.sql"),
    include_str!("../migrations/0011_audit.sql"),
    include_str!("../migrations/0012_voting.sql"),
    include_str!("../migrations/0013_ballots_by_seq.sql"),
    include_str!("../migrations/0014_oauth.sql"),
    include_str!("../migrations/0015_directories.sql"),
    include_str!("../migrations/0016_directory_purge_and_event_application.sql"),
];

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_CACHE: usize = 64;
/// Read connections kept open between reads.
const IDLE_READERS: usize = 8;

pub fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The connection that writes: WAL, and `synchronous=FULL` so an acknowledged command
/// survives power loss, not only a crash.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 33554432;
         PRAGMA cache_size = -8192;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(unavailable)?;
    migrate(&conn)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unavailable)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Runs the migrations not yet applied, each in its own transaction. A database created
/// by an earlier build (migrated by sqlx) starts from what `_sqlx_migrations` recorded.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let mut applied: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(unavailable)?;
    if applied == 0 {
        let sqlx_table: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                [],
                |r| r.get(0),
            )
            .map_err(unavailable)?;
        if sqlx_table {
            applied = conn
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
                    [],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
        }
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Unavailable(format!("migration {} failed: {e}", i + 1))
        })?;
    }
    Ok(())
}

/// How often the checkpointer copies committed WAL frames into the database file.
/// Frequent small passes keep each one's database flush short; long ones held up the WAL
/// flushes of commits behind them (p99 ack at 1,500 store flows/s: ~12 ms at 100 ms, ~8 ms
/// at 25 ms).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);
/// WAL frames after which the log is restarted from its beginning.
const RESTART_AFTER_FRAMES: i64 = 4096;

/// Checkpoints run on their own thread and connection (the writer's automatic checkpoint
/// is off), so copying pages into the database file does not hold up group commits.
/// PASSIVE copies never wait for, or block, the writer or a reader. Under steady writes a
/// passive checkpoint never reaches the end of the log, so the log would grow for ever:
/// once it holds more than `RESTART_AFTER_FRAMES`, the checkpointer raises `restart`, and
/// the writer, between two commits, copies the few frames left itself, after which its
/// next commit starts the log from the beginning. (A RESTART checkpoint from this thread
/// would do the same, but the writer would wait for it in SQLite's sleeping busy handler.)
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Runs a checkpoint; the number of frames in the log.
pub fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        r.get::<_, i64>(1)
    })
}

/// A passive checkpoint that reports whether it ran: `false` when another checkpoint held
/// the lock and nothing was copied (the only way a passive one is blocked).
pub fn try_checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        r.get::<_, i64>(0).map(|busy| busy == 0)
    })
}

impl Checkpointer {
    pub fn start(path: &Path, restart: Arc<AtomicBool>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    match checkpoint(&conn, "PASSIVE") {
                        Ok(frames) if frames >= RESTART_AFTER_FRAMES => {
                            restart.store(true, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Read connections, used on the calling thread: a point read in WAL mode takes
/// microseconds and never waits for the writer.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().expect("reader pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = self.idle.lock().expect("reader pool lock");
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    pub fn close(&self) {
        self.idle.lock().expect("reader pool lock").clear();
    }
}

/// The first row, converted.
pub fn one<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    convert: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    match rows.next().map_err(unavailable)? {
        Some(row) => convert(row).map(Some),
        None => Ok(None),
    }
}

/// Every row, converted.
pub fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    convert: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = stmt.query(params).map_err(unavailable)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(unavailable)? {
        out.push(convert(row)?);
    }
    Ok(out)
}

/// A single number (`COUNT(*)` and the like).
pub fn count(conn: &Connection, sql: &str, params: impl Params) -> Result<u64, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.query_row(params, |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .map_err(unavailable)
}

/// Runs a statement; the number of rows it changed.
pub fn exec(conn: &Connection, sql: &str, params: impl Params) -> Result<u64, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params))
        .map(|n| n as u64)
        .map_err(unavailable)
}
