//! Idempotency-Key slots: claimed, settled with the reply, freed, purged.

use crate::db;
use privicore_domain::Timestamp;
use privicore_domain::idempotency::{IdempotencyRecord, IdempotencySlot};
use privicore_domain::ports::StoreError;
use sqlx::{PgConnection, Row};

const KEY: &str = "scope = $1 AND path = $2 AND key = $3";

/// How often a claim looks again when the record it lost to vanished before it could read
/// it (freed or replaced by another engine in between).
const CLAIM_ROUNDS: usize = 8;

/// Claims the slot, atomically across engines: `INSERT ... ON CONFLICT DO NOTHING` waits
/// for a concurrent claim of the same key to commit or roll back, so exactly one claim
/// inserts; the others read the winner's record. Each statement runs on its own (no
/// transaction), so every read sees what other engines committed just before it.
pub async fn claim(
    c: &mut PgConnection,
    slot: &IdempotencySlot,
    body_hash: &[u8],
    now: Timestamp,
    stale_before: Timestamp,
    abandoned_before: Timestamp,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    for _ in 0..CLAIM_ROUNDS {
        db::exec(
            c,
            sqlx::query(&format!(
                "DELETE FROM idempotency_slots WHERE {KEY} \
                 AND (created_at < $4 OR (reply IS NULL AND created_at < $5))"
            ))
            .bind(&slot.scope)
            .bind(&slot.path)
            .bind(&slot.key)
            .bind(stale_before.unix())
            .bind(abandoned_before.unix()),
        )
        .await?;
        let claimed = db::exec(
            c,
            sqlx::query(
                "INSERT INTO idempotency_slots (scope, path, key, body_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&slot.scope)
            .bind(&slot.path)
            .bind(&slot.key)
            .bind(body_hash)
            .bind(now.unix()),
        )
        .await?;
        if claimed == 1 {
            return Ok(None);
        }
        let held = sqlx::query(&format!(
            "SELECT body_hash, reply, created_at FROM idempotency_slots WHERE {KEY}"
        ))
        .bind(&slot.scope)
        .bind(&slot.path)
        .bind(&slot.key)
        .fetch_optional(&mut *c)
        .await
        .map_err(db::unavailable)?;
        if let Some(r) = held {
            return Ok(Some(IdempotencyRecord {
                body_hash: r.try_get(0).map_err(db::unavailable)?,
                reply: r.try_get(1).map_err(db::unavailable)?,
                created_at: Timestamp::from_unix(r.try_get(2).map_err(db::unavailable)?),
            }));
        }
    }
    Err(StoreError::Unavailable(
        "an idempotency slot kept changing hands while claimed".into(),
    ))
}

pub async fn settle(
    c: &mut PgConnection,
    slot: &IdempotencySlot,
    reply: Option<&str>,
) -> Result<(), StoreError> {
    let (update, free) = (
        format!("UPDATE idempotency_slots SET reply = $4 WHERE {KEY}"),
        format!("DELETE FROM idempotency_slots WHERE {KEY} AND reply IS NULL"),
    );
    let query = match reply {
        Some(reply) => sqlx::query(&update)
            .bind(&slot.scope)
            .bind(&slot.path)
            .bind(&slot.key)
            .bind(reply),
        None => sqlx::query(&free)
            .bind(&slot.scope)
            .bind(&slot.path)
            .bind(&slot.key),
    };
    db::exec(c, query).await.map(drop)
}

pub async fn purge(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        c,
        sqlx::query("DELETE FROM idempotency_slots WHERE created_at < $1").bind(before.unix()),
    )
    .await
}
