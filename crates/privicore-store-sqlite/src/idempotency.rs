//! Idempotency-Key slots: claimed, settled with the reply, freed, purged.

use crate::db;
use privicore_domain::Timestamp;
use privicore_domain::idempotency::{IdempotencyRecord, IdempotencySlot};
use privicore_domain::ports::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

const KEY: &str = "scope = ?1 AND path = ?2 AND key = ?3";

pub fn claim(
    c: &Connection,
    slot: &IdempotencySlot,
    body_hash: &[u8],
    now: Timestamp,
    stale_before: Timestamp,
    abandoned_before: Timestamp,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    db::exec(
        c,
        &format!(
            "DELETE FROM idempotency_slots WHERE {KEY} \
             AND (created_at < ?4 OR (reply IS NULL AND created_at < ?5))"
        ),
        params![
            slot.scope,
            slot.path,
            slot.key,
            stale_before.unix(),
            abandoned_before.unix()
        ],
    )?;
    let claimed = db::exec(
        c,
        "INSERT INTO idempotency_slots (scope, path, key, body_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        params![slot.scope, slot.path, slot.key, body_hash, now.unix()],
    )?;
    if claimed == 1 {
        return Ok(None);
    }
    c.prepare_cached(&format!(
        "SELECT body_hash, reply, created_at FROM idempotency_slots WHERE {KEY}"
    ))
    .and_then(|mut s| {
        s.query_row(params![slot.scope, slot.path, slot.key], |r| {
            Ok(IdempotencyRecord {
                body_hash: r.get(0)?,
                reply: r.get(1)?,
                created_at: Timestamp::from_unix(r.get(2)?),
            })
        })
        .optional()
    })
    .map_err(db::unavailable)?
    .map(Some)
    .ok_or_else(|| StoreError::Corrupt("an idempotency slot vanished while claimed".into()))
}

pub fn settle(
    c: &Connection,
    slot: &IdempotencySlot,
    reply: Option<&str>,
) -> Result<(), StoreError> {
    match reply {
        Some(reply) => db::exec(
            c,
            &format!("UPDATE idempotency_slots SET reply = ?4 WHERE {KEY}"),
            params![slot.scope, slot.path, slot.key, reply],
        ),
        None => db::exec(
            c,
            &format!("DELETE FROM idempotency_slots WHERE {KEY} AND reply IS NULL"),
            params![slot.scope, slot.path, slot.key],
        ),
    }
    .map(drop)
}

pub fn purge(c: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        c,
        "DELETE FROM idempotency_slots WHERE created_at < ?",
        [before.unix()],
    )
}
