//! Sealing inside the store's transaction: the adapter reads the head it holds, this checks
//! it and seals the entries after it, and the adapter writes records, head and the effects
//! they describe together. No engine-side lock on the head: the store's own write order is
//! the chain's order.

use super::{AuditEntry, AuditKey, AuditRecord, SealedHead};
use crate::Timestamp;
use std::sync::Arc;

/// What a store needs to continue the chain: the key, the time of the records, and the
/// highest seq the engine has seen at the head (a stored head below it was cut back while
/// the engine ran, and is not built on).
#[derive(Clone)]
pub struct Sealer {
    pub key: Arc<AuditKey>,
    pub at: Timestamp,
    pub seen: u64,
}

/// Why a stored head cannot be continued; the message tells the operator what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRefused(pub String);

impl std::fmt::Display for SealRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Sealer {
    /// Seals `entries` after `stored` (the head as the store holds it in this transaction;
    /// `has_records`: whether any record is stored, needed only when there is no head).
    /// Returns the records and the new head.
    pub fn seal(
        &self,
        stored: Option<&SealedHead>,
        has_records: bool,
        entries: &[AuditEntry],
    ) -> Result<(Vec<AuditRecord>, SealedHead), SealRefused> {
        let at = stored.map_or(0, |h| h.seq);
        if at < self.seen {
            return Err(SealRefused(format!(
                "the audit head went back from record {} to {at} while this engine ran: run `privicore audit verify`",
                self.seen
            )));
        }
        match stored {
            Some(head) if !head.verifies(&self.key) => {
                return Err(SealRefused(
                    "the sealed audit head does not verify under this engine's key: run `privicore audit verify`".into(),
                ));
            }
            None if has_records => {
                return Err(SealRefused(
                    "the audit log holds records but no sealed head: run `privicore audit verify`"
                        .into(),
                ));
            }
            _ => {}
        }
        let mut head = stored.cloned();
        let records: Vec<AuditRecord> = entries
            .iter()
            .map(|entry| {
                let record = entry.clone().seal(&self.key, self.at, head.as_ref());
                head = Some(record.head(&self.key));
                record
            })
            .collect();
        head.map(|h| (records, h))
            .ok_or_else(|| SealRefused("an audit append holds no record".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditKind, verify_chain};

    fn sealer(seen: u64) -> Sealer {
        Sealer {
            key: Arc::new(AuditKey::new([9; 32])),
            at: Timestamp::from_unix(1_700_000_000),
            seen,
        }
    }

    fn entry(n: u32) -> AuditEntry {
        AuditEntry::new(AuditKind::VoteCast, "device:d", format!("pool:{n}"), "yes")
    }

    #[test]
    fn entries_continue_the_stored_head_and_verify_as_a_chain() {
        let s = sealer(0);
        let (first, head) = s.seal(None, false, &[entry(1), entry(2)]).unwrap();
        let (second, head) = s.seal(Some(&head), true, &[entry(3)]).unwrap();
        assert_eq!(head.seq, 3);
        let chain: Vec<AuditRecord> = first.into_iter().chain(second).collect();
        verify_chain(&s.key, &chain, Some(&head)).expect("one chain");
    }

    #[test]
    fn a_head_that_is_cut_back_forged_or_missing_is_not_built_on() {
        let (_, head) = sealer(0).seal(None, false, &[entry(1)]).unwrap();
        assert!(sealer(2).seal(Some(&head), true, &[entry(2)]).is_err());
        let mut forged = head.clone();
        forged.seq += 1;
        assert!(sealer(0).seal(Some(&forged), true, &[entry(2)]).is_err());
        assert!(sealer(0).seal(None, true, &[entry(2)]).is_err());
    }
}
