//! The engine's side of the audit log (docs/audit.md): each record is sealed onto the chain
//! and written durably before the decision it records is carried out, or in the same
//! transaction as the decision's effects ([`AuditTrail::record`]).
//! A decision whose record cannot be written is not carried out: the caller gets
//! `audit.unavailable`.

use crate::engine::Engine;
use privicore_domain::audit::{AuditEntry, AuditKey, AuditRecord, Sealer};
use privicore_domain::command::Completion;
use privicore_domain::effect::Effect;
use privicore_domain::ports::{AuditLog, StoreError};
use privicore_domain::time::Clock;
use privicore_domain::{Error, Reason};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn unavailable(detail: impl std::fmt::Display) -> Error {
    tracing::error!(%detail, "audit record not written; the decision is not carried out");
    Error::new(Reason::AuditUnavailable)
}

pub(crate) struct AuditTrail {
    log: Arc<dyn AuditLog>,
    key: Arc<AuditKey>,
    clock: Arc<dyn Clock>,
    /// The highest seq this engine has seen at the head: a stored head below it means
    /// records were taken away while the engine ran, which it will not build on.
    seen: AtomicU64,
}

impl AuditTrail {
    pub fn new(log: Arc<dyn AuditLog>, key: AuditKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            log,
            key: Arc::new(key),
            clock,
            seen: AtomicU64::new(0),
        }
    }

    /// Reads and checks the head at start, so a broken chain is reported early. A head
    /// ahead of the last record (the tail was cut off) is continued from, so the gap stays
    /// visible to `privicore audit verify`; it is logged here.
    pub async fn check(&self) {
        let (head, last) = match (self.log.audit_head().await, self.log.audit_tail(1).await) {
            (Ok(head), Ok(last)) => (head, last.into_iter().next()),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "could not read the audit log");
                return;
            }
        };
        match (&head, &last) {
            (None, Some(last)) => tracing::error!(
                last = last.seq,
                "the audit log holds records but no sealed head: run `privicore audit verify`"
            ),
            (Some(head), _) if !head.verifies(&self.key) => tracing::error!(
                "the sealed audit head does not verify under this engine's key: run `privicore audit verify`"
            ),
            (Some(head), last) => {
                let last_seq = last.as_ref().map_or(0, |r| r.seq);
                if last_seq != head.seq {
                    tracing::error!(
                        head = head.seq,
                        last = last_seq,
                        "the audit log does not end at its sealed head; records continue after the head, run `privicore audit verify`"
                    );
                }
                self.seen.fetch_max(head.seq, Ordering::SeqCst);
            }
            (None, None) => {}
        }
    }

    /// Seals `entry` onto the chain and returns once it is durable.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, Error> {
        let mut records = self
            .record(vec![entry], Vec::new(), None)
            .await
            .map_err(unavailable)?;
        records
            .pop()
            .ok_or_else(|| unavailable("the audit log returned no record"))
    }

    /// Seals `entries` onto the chain and, in the same transaction, applies `effects` (the
    /// decisions they describe) and records `completion`: the decisions take effect exactly
    /// when their records are durable, in one commit. The store seals in its own write
    /// order, so concurrent decisions share its group commit and never wait for each other.
    pub async fn record(
        &self,
        entries: Vec<AuditEntry>,
        effects: Vec<Effect>,
        completion: Option<&Completion>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sealer = Sealer {
            key: self.key.clone(),
            at: self.clock.now(),
            seen: self.seen.load(Ordering::SeqCst),
        };
        let records = self
            .log
            .append_audit(&sealer, &entries, &effects, completion)
            .await
            .inspect_err(|e| {
                tracing::error!(error = %e, records = entries.len(), "audit records not written; their decisions are not carried out");
            })?;
        if let Some(last) = records.last() {
            self.seen.fetch_max(last.seq, Ordering::SeqCst);
            tracing::debug!(
                last = last.seq,
                records = records.len(),
                "audit records written"
            );
        }
        Ok(records)
    }

    pub fn log(&self) -> &Arc<dyn AuditLog> {
        &self.log
    }
}

impl Engine {
    /// Appends a governance decision to the audit log and returns the sealed record once
    /// it is durable. Call it **before** carrying the decision out, and do not carry it out
    /// when it fails: the error is `audit.unavailable`.
    pub async fn audit_append(&self, entry: AuditEntry) -> Result<AuditRecord, Error> {
        self.audit.append(entry).await
    }

    /// The last `n` records, oldest first.
    pub async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, Error> {
        Ok(self.audit.log().audit_tail(n).await?)
    }

    /// Records after seq `after`, in seq order, at most `limit`.
    pub async fn audit_records(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, Error> {
        Ok(self.audit.log().audit_records(after, limit).await?)
    }
}
