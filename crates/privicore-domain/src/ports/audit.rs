use crate::audit::{AuditEntry, AuditRecord, SealedHead, Sealer};
use crate::command::Completion;
use crate::effect::Effect;
use crate::ports::StoreError;
use async_trait::async_trait;

/// Durable storage of the audit chain. The engine is the only writer; it appends the
/// records of concurrent decisions together (one commit); the adapter keeps records and the
/// sealed head together. It lives in the metadata store's database, so a decision's
/// effects can commit with its record.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Seals `entries` onto the chain after the head it holds (checked by `sealer`),
    /// stores the records and the new head, applies `effects` (the decisions the records
    /// describe) and records `completion`, all in one transaction: all of it or none.
    /// Appends are sealed in the store's write order, so concurrent appends never fork the
    /// chain. A head the sealer refuses fails the append with `StoreError::Unavailable`.
    /// Returns the sealed records once all of it is durable.
    async fn append_audit(
        &self,
        sealer: &Sealer,
        entries: &[AuditEntry],
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// The sealed head as stored.
    async fn audit_head(&self) -> Result<Option<SealedHead>, StoreError>;

    /// Records with a seq above `after`, in seq order, at most `limit`.
    async fn audit_records(&self, after: u64, limit: usize)
    -> Result<Vec<AuditRecord>, StoreError>;

    /// The last `n` records, in seq order.
    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError>;
}
