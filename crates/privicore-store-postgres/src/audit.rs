//! The audit chain: records keyed by seq, and the sealed head in a one-row table written
//! in the same transaction as each record. Reads are lenient on purpose: a value someone
//! edited into something else is read as a value that fails its MAC, so verification
//! names the record instead of failing to load it.

use crate::db;
use privicore_domain::audit::{AuditEntry, AuditKind, AuditRecord, Digest, SealedHead, Sealer};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

const COLUMNS: &str =
    "seq, at, profile_id, kind, actor, subject, outcome, details, prev_hash, hash";

fn text(r: &PgRow, i: usize) -> String {
    r.try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// 32 bytes, or a value no MAC is (almost surely) equal to.
fn digest(r: &PgRow, i: usize) -> Digest {
    r.try_get::<Vec<u8>, _>(i)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or([0; 32])
}

fn integer(r: &PgRow, i: usize) -> i64 {
    r.try_get::<i64, _>(i).unwrap_or(i64::MIN)
}

fn record(r: &PgRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: integer(r, 0) as u64,
        at: Timestamp::from_unix(integer(r, 1)),
        profile_id: r.try_get::<Option<String>, _>(2).ok().flatten(),
        kind: AuditKind::from_code(&text(r, 3)),
        actor: text(r, 4),
        subject: text(r, 5),
        outcome: text(r, 6),
        details: text(r, 7),
        prev_hash: digest(r, 8),
        hash: digest(r, 9),
    })
}

fn head_row(r: &PgRow) -> Result<SealedHead, StoreError> {
    Ok(SealedHead {
        seq: integer(r, 0) as u64,
        hash: digest(r, 1),
        mac: digest(r, 2),
    })
}

pub async fn head(c: &mut PgConnection) -> Result<Option<SealedHead>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT seq, hash, mac FROM audit_head WHERE id = 1"),
        head_row,
    )
    .await
}

pub async fn records(
    c: &mut PgConnection,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
    db::all(
        c,
        sqlx::query(&sql).bind(after as i64).bind(limit as i64),
        record,
    )
    .await
}

pub async fn tail(c: &mut PgConnection, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT $1) t \
         ORDER BY seq"
    );
    db::all(c, sqlx::query(&sql).bind(n as i64), record).await
}

/// Seals `entries` after the stored head and appends them with the new head. The SQLite
/// adapter's single writer ran one append at a time; here every engine's append first
/// takes a transaction-scoped advisory lock, so the head read below is the one the records
/// follow and the chain never forks.
pub async fn seal_and_append(
    c: &mut PgConnection,
    sealer: &Sealer,
    entries: &[AuditEntry],
) -> Result<Vec<AuditRecord>, StoreError> {
    db::exec(
        &mut *c,
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('privicore.audit:' || current_schema()))",
        ),
    )
    .await?;
    let stored = head(&mut *c).await?;
    let has_records = stored.is_none()
        && db::count(
            &mut *c,
            sqlx::query("SELECT COUNT(*) FROM (SELECT 1 FROM audit_log LIMIT 1) t"),
        )
        .await?
            > 0;
    let (records, next) = sealer
        .seal(stored.as_ref(), has_records, entries)
        .map_err(|refused| StoreError::Unavailable(refused.0))?;
    append(c, &records, &next).await?;
    Ok(records)
}

/// Stores `records` and makes `next` the head.
async fn append(
    c: &mut PgConnection,
    records: &[AuditRecord],
    next: &SealedHead,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    for record in records {
        let inserted = sqlx::query(&sql)
            .bind(record.seq as i64)
            .bind(record.at.unix())
            .bind(&record.profile_id)
            .bind(record.kind.code())
            .bind(&record.actor)
            .bind(&record.subject)
            .bind(&record.outcome)
            .bind(&record.details)
            .bind(&record.prev_hash[..])
            .bind(&record.hash[..])
            .execute(&mut *c)
            .await;
        match inserted {
            Ok(_) => {}
            // A record at that seq with no head over it: the chain was tampered with.
            Err(e) if db::is_unique_violation(&e) => {
                return Err(StoreError::Conflict(Reason::AuditUnavailable));
            }
            Err(e) => return Err(db::unavailable(e)),
        }
    }
    db::exec(
        c,
        sqlx::query(
            "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET seq = $1, hash = $2, mac = $3",
        )
        .bind(next.seq as i64)
        .bind(&next.hash[..])
        .bind(&next.mac[..]),
    )
    .await
    .map(drop)
}
