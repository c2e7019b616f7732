use crate::audit::{AuditRecord, SealedHead};
use crate::effect::Effect;
use crate::ports::StoreError;
use async_trait::async_trait;

/// Durable storage of the audit chain. The engine is the only writer; it appends the
/// records of concurrent decisions together (one commit); the adapter keeps records and the
/// sealed head together. It lives in the metadata store's database, so a decision's
/// effects can commit with its record.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Stores `records` (consecutive, in seq order) and makes `head` the sealed head,
    /// atomically, provided the stored head is still `expected` (`None`: no head stored
    /// yet); otherwise nothing is written and the answer is `StoreError::Conflict` (another
    /// writer appended first, so the chain cannot fork). `effects` (the decisions the
    /// records describe) are applied in the same transaction: all of it or none. Returns
    /// `Ok` only once all of it is durable.
    async fn append_audit(
        &self,
        records: &[AuditRecord],
        head: &SealedHead,
        expected: Option<&SealedHead>,
        effects: &[Effect],
    ) -> Result<(), StoreError>;

    /// The sealed head as stored.
    async fn audit_head(&self) -> Result<Option<SealedHead>, StoreError>;

    /// Records with a seq above `after`, in seq order, at most `limit`.
    async fn audit_records(&self, after: u64, limit: usize)
    -> Result<Vec<AuditRecord>, StoreError>;

    /// The last `n` records, in seq order.
    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError>;
}
