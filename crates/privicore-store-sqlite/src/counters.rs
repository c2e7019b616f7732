//! Throttle counters: one row per key, a fixed window each.

use crate::db;
use privicore_domain::Timestamp;
use privicore_domain::counter::Counter;
use privicore_domain::ports::StoreError;
use rusqlite::{Connection, Row, params};

fn counter(r: &Row<'_>) -> Result<Counter, StoreError> {
    let count: i64 = r.get(0).map_err(db::unavailable)?;
    Ok(Counter {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        window_end: Timestamp::from_unix(r.get(1).map_err(db::unavailable)?),
        last_at: Timestamp::from_unix(r.get(2).map_err(db::unavailable)?),
    })
}

/// One statement, so concurrent hits never lose a count.
pub fn hit(
    c: &Connection,
    key: &str,
    now: Timestamp,
    window_seconds: i64,
) -> Result<Counter, StoreError> {
    db::one(
        c,
        "INSERT INTO throttle_counters (key, count, window_end, last_at) VALUES (?1, 1, ?3, ?2) \
         ON CONFLICT (key) DO UPDATE SET \
           count = CASE WHEN window_end <= ?2 THEN 1 ELSE count + 1 END, \
           window_end = CASE WHEN window_end <= ?2 THEN ?3 ELSE window_end END, \
           last_at = ?2 \
         RETURNING count, window_end, last_at",
        params![key, now.unix(), now.plus_seconds(window_seconds).unix()],
        counter,
    )?
    .ok_or_else(|| StoreError::Corrupt("a counter hit returned no row".into()))
}

pub fn read(c: &Connection, key: &str, now: Timestamp) -> Result<Option<Counter>, StoreError> {
    db::one(
        c,
        "SELECT count, window_end, last_at FROM throttle_counters WHERE key = ? AND window_end > ?",
        params![key, now.unix()],
        counter,
    )
}

pub fn clear(c: &Connection, key: &str) -> Result<(), StoreError> {
    db::exec(c, "DELETE FROM throttle_counters WHERE key = ?", [key]).map(drop)
}

pub fn purge(c: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        c,
        "DELETE FROM throttle_counters WHERE window_end < ?",
        [before.unix()],
    )
}
