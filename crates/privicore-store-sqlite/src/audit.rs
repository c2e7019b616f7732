//! The audit chain (migration 0011): records keyed by seq, and the sealed head in a
//! one-row table written in the same transaction as each record. Reads are lenient on
//! purpose: a column someone edited into another type is read as a value that fails its
//! MAC, so verification names the record instead of failing to load it.

use crate::db;
use privicore_domain::audit::{AuditEntry, AuditKind, AuditRecord, Digest, SealedHead, Sealer};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row, params};
use std::path::Path;

const COLUMNS: &str =
    "seq, at, profile_id, kind, actor, subject, outcome, details, prev_hash, hash";

fn text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => String::new(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// 32 bytes, or a value no MAC is (almost surely) equal to.
fn digest(value: ValueRef<'_>) -> Digest {
    match value {
        ValueRef::Blob(b) if b.len() == 32 => b.try_into().expect("32 bytes"),
        _ => [0; 32],
    }
}

fn integer(value: ValueRef<'_>) -> i64 {
    match value {
        ValueRef::Integer(n) => n,
        _ => i64::MIN,
    }
}

fn record(r: &Row<'_>) -> Result<AuditRecord, StoreError> {
    let col = |i: usize| r.get_ref(i).map_err(db::unavailable);
    Ok(AuditRecord {
        seq: integer(col(0)?) as u64,
        at: Timestamp::from_unix(integer(col(1)?)),
        profile_id: match col(2)? {
            ValueRef::Null => None,
            other => Some(text(other)),
        },
        kind: AuditKind::from_code(&text(col(3)?)),
        actor: text(col(4)?),
        subject: text(col(5)?),
        outcome: text(col(6)?),
        details: text(col(7)?),
        prev_hash: digest(col(8)?),
        hash: digest(col(9)?),
    })
}

fn head_row(r: &Row<'_>) -> Result<SealedHead, StoreError> {
    let col = |i: usize| r.get_ref(i).map_err(db::unavailable);
    Ok(SealedHead {
        seq: integer(col(0)?) as u64,
        hash: digest(col(1)?),
        mac: digest(col(2)?),
    })
}

pub fn head(c: &Connection) -> Result<Option<SealedHead>, StoreError> {
    db::one(
        c,
        "SELECT seq, hash, mac FROM audit_head WHERE id = 1",
        [],
        head_row,
    )
}

pub fn records(c: &Connection, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    db::all(
        c,
        &format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"),
        params![after as i64, limit as i64],
        record,
    )
}

pub fn tail(c: &Connection, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
    db::all(
        c,
        &format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT ?) \
             ORDER BY seq"
        ),
        [n as i64],
        record,
    )
}

fn conflict() -> StoreError {
    StoreError::Conflict(Reason::AuditUnavailable)
}

/// Seals `entries` after the head stored in this transaction and appends them with the
/// new head. The writer runs one request at a time, so the head read here is the one the
/// records follow.
pub fn seal_and_append(
    c: &Connection,
    sealer: &Sealer,
    entries: &[AuditEntry],
) -> Result<Vec<AuditRecord>, StoreError> {
    let stored = head(c)?;
    let has_records = stored.is_none()
        && db::count(
            c,
            "SELECT COUNT(*) FROM (SELECT 1 FROM audit_log LIMIT 1)",
            [],
        )? > 0;
    let (records, next) = sealer
        .seal(stored.as_ref(), has_records, entries)
        .map_err(|refused| StoreError::Unavailable(refused.0))?;
    append(c, &records, &next)?;
    Ok(records)
}

/// Stores `records` and makes `next` the head.
fn append(c: &Connection, records: &[AuditRecord], next: &SealedHead) -> Result<(), StoreError> {
    let mut insert = c
        .prepare_cached(&format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .map_err(db::unavailable)?;
    for record in records {
        let inserted = insert.execute(params![
            record.seq as i64,
            record.at.unix(),
            record.profile_id,
            record.kind.code(),
            record.actor,
            record.subject,
            record.outcome,
            record.details,
            &record.prev_hash[..],
            &record.hash[..],
        ]);
        match inserted {
            Ok(_) => {}
            // A record at that seq with no head over it: the chain was tampered with.
            Err(e) if db::is_unique_violation(&e) => return Err(conflict()),
            Err(e) => return Err(db::unavailable(e)),
        }
    }
    db::exec(
        c,
        "INSERT INTO audit_head (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET seq = ?1, hash = ?2, mac = ?3",
        params![next.seq as i64, &next.hash[..], &next.mac[..]],
    )
    .map(drop)
}

/// Reads the audit chain of a database file without opening it for writing: for
/// `privicore audit`, beside a running engine or without one.
pub struct AuditReader {
    conn: Connection,
}

impl AuditReader {
    /// `Ok(None)` when the database has no audit tables (created by a build before them).
    pub fn open(path: &Path) -> Result<Option<Self>, StoreError> {
        if !path.exists() {
            return Err(StoreError::Unavailable(format!(
                "no database at {}",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(db::unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db::unavailable)?;
        let tables = db::count(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('audit_log', 'audit_head')",
            [],
        )?;
        Ok((tables == 2).then_some(Self { conn }))
    }

    /// Runs `read` in one read transaction: records and head from the same snapshot, even
    /// while an engine appends.
    pub fn snapshot<T>(
        &self,
        read: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN").map_err(db::unavailable)?;
        let result = read(self);
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    pub fn head(&self) -> Result<Option<SealedHead>, StoreError> {
        head(&self.conn)
    }

    pub fn records(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        records(&self.conn, after, limit)
    }

    pub fn tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        tail(&self.conn, n)
    }
}
