//! The engine's side of the audit log (docs/audit.md): one writer that seals each record
//! onto the chain and appends it durably before the decision it records is carried out, or
//! in the same transaction as the decision's effects ([`AuditTrail::record`]).
//! A decision whose record cannot be written is not carried out: the caller gets
//! `audit.unavailable`.

use crate::engine::Engine;
use privicore_domain::audit::{AuditEntry, AuditKey, AuditRecord, SealedHead};
use privicore_domain::effect::Effect;
use privicore_domain::ports::{AuditLog, StoreError};
use privicore_domain::time::Clock;
use privicore_domain::{Error, Reason};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Appends that met another writer's record (a second engine on the same store) start
/// again from the new head this many times before giving up.
const CONFLICT_RETRIES: usize = 3;

fn unavailable(detail: impl std::fmt::Display) -> Error {
    tracing::error!(%detail, "audit record not written; the decision is not carried out");
    Error::new(Reason::AuditUnavailable)
}

/// Entries waiting to be written with the effects they record, and who waits for them.
struct Queued {
    entries: Vec<AuditEntry>,
    effects: Vec<Effect>,
    done: oneshot::Sender<Result<Vec<AuditRecord>, Error>>,
}

pub(crate) struct AuditTrail {
    log: Arc<dyn AuditLog>,
    key: AuditKey,
    clock: Arc<dyn Clock>,
    /// The head the next record follows, once read and checked; `None` until then, and
    /// again after any failed append (its outcome is unknown, so the store is asked).
    /// Held across an append: one batch is sealed and written at a time.
    head: tokio::sync::Mutex<Option<Option<SealedHead>>>,
    /// Entries waiting for the next append.
    queue: std::sync::Mutex<Vec<Queued>>,
    /// The highest seq this engine has seen at the head: a stored head below it means
    /// records were taken away while the engine ran, which it will not build on.
    seen: std::sync::atomic::AtomicU64,
}

impl AuditTrail {
    pub fn new(log: Arc<dyn AuditLog>, key: AuditKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            log,
            key,
            clock,
            head: tokio::sync::Mutex::new(None),
            queue: std::sync::Mutex::new(Vec::new()),
            seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The stored head, if the chain can be continued from it: the head verifies under the
    /// key (so it was written by this engine's key), or there is no head and no record.
    /// A head ahead of the last record (the tail was cut off) is continued from, so the gap
    /// stays visible to `privicore audit verify`; it is logged here.
    async fn read_head(&self) -> Result<Option<SealedHead>, Error> {
        let head = self.log.audit_head().await.map_err(unavailable)?;
        let last = self
            .log
            .audit_tail(1)
            .await
            .map_err(unavailable)?
            .into_iter()
            .next();
        let seen = self.seen.load(std::sync::atomic::Ordering::SeqCst);
        let stored = head.as_ref().map_or(0, |h| h.seq);
        if stored < seen {
            return Err(unavailable(format!(
                "the audit head went back from record {seen} to {stored} while this engine ran: run `privicore audit verify`"
            )));
        }
        match (&head, &last) {
            (None, None) => Ok(None),
            (None, Some(last)) => Err(unavailable(format!(
                "the audit log holds records up to {} but no sealed head: run `privicore audit verify`",
                last.seq
            ))),
            (Some(head), _) if !head.verifies(&self.key) => Err(unavailable(
                "the sealed audit head does not verify under this engine's key: run `privicore audit verify`",
            )),
            (Some(head), last) => {
                let last_seq = last.as_ref().map_or(0, |r| r.seq);
                if last_seq != head.seq {
                    tracing::error!(
                        head = head.seq,
                        last = last_seq,
                        "the audit log does not end at its sealed head; records continue after the head, run `privicore audit verify`"
                    );
                }
                self.seen
                    .fetch_max(head.seq, std::sync::atomic::Ordering::SeqCst);
                Ok(Some(head.clone()))
            }
        }
    }

    /// Reads and checks the head (at start, so a broken chain is reported early).
    pub async fn check(&self) {
        let mut head = self.head.lock().await;
        if let Ok(read) = self.read_head().await {
            *head = Some(read);
        }
    }

    /// Seals `entry` onto the chain and returns once it is durable.
    pub async fn append(&self, entry: AuditEntry) -> Result<AuditRecord, Error> {
        let mut records = self.record(vec![entry], Vec::new()).await?;
        records
            .pop()
            .ok_or_else(|| unavailable("the audit writer returned no record"))
    }

    /// Seals `entries` onto the chain and applies `effects` (the decisions they describe) in
    /// the same transaction: the decisions take effect exactly when their records are
    /// durable, in one commit instead of two. Entries recorded while another append is being
    /// written go to the store together in the next one, so concurrent decisions share a
    /// commit instead of queueing for one each. The effects must not fail for business
    /// reasons (a batch fails or commits as a whole).
    pub async fn record(
        &self,
        entries: Vec<AuditEntry>,
        effects: Vec<Effect>,
    ) -> Result<Vec<AuditRecord>, Error> {
        let (done, written) = oneshot::channel();
        self.queue.lock().expect("audit queue lock").push(Queued {
            entries,
            effects,
            done,
        });
        {
            let mut cached = self.head.lock().await;
            let batch = std::mem::take(&mut *self.queue.lock().expect("audit queue lock"));
            if !batch.is_empty() {
                self.write(&mut cached, batch).await;
            }
        }
        // Written by this call or by an earlier holder of the head that took it along.
        written
            .await
            .unwrap_or_else(|_| Err(unavailable("the audit writer went away")))
    }

    /// Seals `batch` onto the chain in order and writes it, with its effects, in one append.
    async fn write(&self, cached: &mut Option<Option<SealedHead>>, batch: Vec<Queued>) {
        let outcome = self.append_all(cached, &batch).await;
        match outcome {
            Ok(mut records) => {
                for queued in batch {
                    let rest = records.split_off(queued.entries.len());
                    let _ = queued.done.send(Ok(std::mem::replace(&mut records, rest)));
                }
            }
            Err(detail) => {
                tracing::error!(%detail, requests = batch.len(), "audit records not written; their decisions are not carried out");
                for queued in batch {
                    let _ = queued.done.send(Err(Error::new(Reason::AuditUnavailable)));
                }
            }
        }
    }

    async fn append_all(
        &self,
        cached: &mut Option<Option<SealedHead>>,
        batch: &[Queued],
    ) -> Result<Vec<AuditRecord>, String> {
        for _ in 0..CONFLICT_RETRIES {
            let start = match cached.take() {
                Some(head) => head,
                None => self.read_head().await.map_err(|e| e.to_string())?,
            };
            let at = self.clock.now();
            let mut head = start.clone();
            let records: Vec<AuditRecord> = batch
                .iter()
                .flat_map(|queued| &queued.entries)
                .map(|entry| {
                    let record = entry.clone().seal(&self.key, at, head.as_ref());
                    head = Some(record.head(&self.key));
                    record
                })
                .collect();
            let effects: Vec<Effect> = batch
                .iter()
                .flat_map(|queued| queued.effects.iter().cloned())
                .collect();
            let Some(next) = head else {
                return Err("an audit append holds no record".into());
            };
            match self
                .log
                .append_audit(&records, &next, start.as_ref(), &effects)
                .await
            {
                Ok(()) => {
                    let last = records.last().map_or(0, |r| r.seq);
                    self.seen
                        .fetch_max(last, std::sync::atomic::Ordering::SeqCst);
                    *cached = Some(Some(next));
                    tracing::debug!(last, records = records.len(), "audit records written");
                    return Ok(records);
                }
                Err(StoreError::Conflict(_)) => {
                    tracing::warn!(
                        "another writer extended the audit chain; continuing from its head"
                    );
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err("the audit chain kept moving under this engine's appends".into())
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
