//! Throttle counters: one row per key, a fixed window each.

use crate::db;
use crate::rows::Col;
use privicore_domain::Timestamp;
use privicore_domain::counter::Counter;
use privicore_domain::ports::StoreError;
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

fn counter(r: &PgRow) -> Result<Counter, StoreError> {
    let count: i64 = r.col("count")?;
    Ok(Counter {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        window_end: Timestamp::from_unix(r.col("window_end")?),
        last_at: Timestamp::from_unix(r.col("last_at")?),
    })
}

/// One statement: concurrent hits from any engine serialize on the row lock that
/// `ON CONFLICT DO UPDATE` takes, and each sees the count the previous one left.
pub async fn hit(
    c: &mut PgConnection,
    key: &str,
    now: Timestamp,
    window_seconds: i64,
) -> Result<Counter, StoreError> {
    db::one(
        c,
        sqlx::query(
            "INSERT INTO throttle_counters AS t (key, count, window_end, last_at) VALUES ($1, 1, $3, $2) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN t.window_end <= $2 THEN 1 ELSE t.count + 1 END, \
               window_end = CASE WHEN t.window_end <= $2 THEN $3 ELSE t.window_end END, \
               last_at = $2 \
             RETURNING count, window_end, last_at",
        )
        .bind(key)
        .bind(now.unix())
        .bind(now.plus_seconds(window_seconds).unix()),
        counter,
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt("a counter hit returned no row".into()))
}

pub async fn read(
    c: &mut PgConnection,
    key: &str,
    now: Timestamp,
) -> Result<Option<Counter>, StoreError> {
    db::one(
        c,
        sqlx::query(
            "SELECT count, window_end, last_at FROM throttle_counters WHERE key = $1 AND window_end > $2",
        )
        .bind(key)
        .bind(now.unix()),
        counter,
    )
    .await
}

pub async fn clear(c: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    db::exec(
        c,
        sqlx::query("DELETE FROM throttle_counters WHERE key = $1").bind(key),
    )
    .await
    .map(drop)
}

pub async fn purge(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        c,
        sqlx::query("DELETE FROM throttle_counters WHERE window_end < $1").bind(before.unix()),
    )
    .await
}
