//! The audit log of governance decisions: an append-only chain of records, each keyed-MAC'd
//! (BLAKE2b-256 with a key derived from the root key) over its own fields and the MAC of
//! the record before it, plus a sealed head (the last seq and MAC, MAC'd again) that is
//! rewritten with every append. Whoever lacks the key cannot edit, delete, reorder or
//! insert a record, or cut off the tail, without [`ChainVerifier`] naming the first bad
//! seq. docs/audit.md explains the design and what it does not protect against.
//!
//! Nothing here knows where records are kept: the [`crate::ports::AuditLog`] port stores
//! them, the engine appends them one at a time (a single writer, so the chain cannot fork).

use crate::{ProfileId, Timestamp};
use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use serde_json::Value;
use std::fmt;
use zeroize::Zeroizing;

/// A record's MAC, and the link to the record before it.
pub type Digest = [u8; 32];

/// What the first record links to.
pub const GENESIS: Digest = [0; 32];

/// Domain tags: a record's MAC input can never be taken for a head's, or a later format's.
const RECORD_TAG: &[u8] = b"privicore/audit/record/v1";
const HEAD_TAG: &[u8] = b"privicore/audit/head/v1";

macro_rules! audit_kinds {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// What was decided. Stored and MAC'd as its dotted code.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum AuditKind {
            $(#[doc = $doc] $variant,)*
            /// A code this build does not know (written by a newer one); verified as stored.
            Other(String),
        }

        impl AuditKind {
            /// Every kind this build writes.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant),*];

            pub fn code(&self) -> &str {
                match self {
                    $(AuditKind::$variant => $code,)*
                    AuditKind::Other(code) => code,
                }
            }

            /// Never fails: an unknown code is kept as `Other`.
            pub fn from_code(code: &str) -> Self {
                match code {
                    $($code => AuditKind::$variant,)*
                    other => AuditKind::Other(other.to_owned()),
                }
            }
        }
    };
}

audit_kinds! {
    VoteCast => "vote.cast", "An authenticator's vote was recorded (ballot, device, decision, channel).";
    PoolOpened => "pool.opened", "A voting pool opened for a held command or a manual question.";
    PoolDecided => "pool.decided", "A pool ended: approved, rejected, expired or cancelled.";
    PolicyRegistered => "policy.registered", "A policy was registered.";
    PolicyActivated => "policy.activated", "A policy was activated.";
    PolicyDeactivated => "policy.deactivated", "A policy was deactivated.";
    PolicyDeleted => "policy.deleted", "A policy was deleted.";
    VotingDefaultsChanged => "voting.defaults_changed", "A profile's voting defaults changed (strategy, quorum, time limit, attempts).";
    VotingConfigurationRegistered => "voting.configuration_registered", "A voting configuration was registered.";
    VotingConfigurationUpdated => "voting.configuration_updated", "A voting configuration was updated.";
    AuthenticatorRegistered => "authenticator.registered", "A device was given the authenticator role.";
    AuthenticatorRemoved => "authenticator.removed", "A device lost the authenticator role.";
    CommandHeld => "command.held", "A gated command was held for a vote.";
    CommandHeldOutcome => "command.held_outcome", "A held command was released and ran, or failed for its vote.";
    DeviceApproved => "device.approved", "A pending device was approved.";
    DeviceRejected => "device.rejected", "A pending device was rejected.";
    DeviceRemoved => "device.removed", "A device was removed.";
    StorageRegistered => "storage.registered", "A device was given the storage role.";
    StorageRemoved => "storage.removed", "A device lost the storage role.";
    PublicKeyRegistered => "public_key.registered", "A profile's public key was registered or replaced.";
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What a caller asks to have recorded; the engine adds seq, time and the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The profile the decision belongs to; `None` for engine-wide decisions.
    pub profile_id: Option<ProfileId>,
    pub kind: AuditKind,
    /// Who decided: `profile:<id>`, `application:<id>`, `device:<id>`, `operator`,
    /// `engine` (see [`actor`]).
    pub actor: String,
    /// What it was about: `device:<id>`, `policy:<id>`, `pool:<id>`, `command:<id>`, …
    pub subject: String,
    /// The decision itself, one word or a dotted reason: `approved`, `yes`, `rejected`,
    /// `voting.expired`, …
    pub outcome: String,
    /// Anything else worth keeping (kept as canonical JSON: keys sorted, no whitespace).
    pub details: Value,
}

impl AuditEntry {
    pub fn new(
        kind: AuditKind,
        actor: impl Into<String>,
        subject: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Self {
        Self {
            profile_id: None,
            kind,
            actor: actor.into(),
            subject: subject.into(),
            outcome: outcome.into(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn for_profile(mut self, profile_id: ProfileId) -> Self {
        self.profile_id = Some(profile_id);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The record that follows `head` (or starts the chain), sealed with `key`.
    pub fn seal(self, key: &AuditKey, at: Timestamp, head: Option<&SealedHead>) -> AuditRecord {
        let (seq, prev_hash) = match head {
            Some(head) => (head.seq + 1, head.hash),
            None => (1, GENESIS),
        };
        let mut record = AuditRecord {
            seq,
            at,
            profile_id: self.profile_id.map(|p| p.to_string()),
            kind: self.kind,
            actor: self.actor,
            subject: self.subject,
            outcome: self.outcome,
            details: canonical_json(&self.details),
            prev_hash,
            hash: GENESIS,
        };
        record.hash = key.record_mac(&record);
        record
    }
}

/// Conventional actor names.
pub mod actor {
    use crate::ProfileId;
    use uuid::Uuid;

    /// The caller of a command: its application if it used an application token.
    pub fn caller(profile: ProfileId, application: Option<Uuid>) -> String {
        match application {
            Some(app) => format!("application:{app}"),
            None => format!("profile:{profile}"),
        }
    }

    pub fn device(device: impl std::fmt::Display) -> String {
        format!("device:{device}")
    }

    pub const OPERATOR: &str = "operator";
    pub const ENGINE: &str = "engine";
}

/// A record as stored. Text fields are kept exactly as stored, so that a record whose
/// stored bytes were edited is still read, and fails its MAC, rather than failing to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    pub at: Timestamp,
    pub profile_id: Option<String>,
    pub kind: AuditKind,
    pub actor: String,
    pub subject: String,
    pub outcome: String,
    /// Canonical JSON text, MAC'd as these bytes.
    pub details: String,
    pub prev_hash: Digest,
    pub hash: Digest,
}

impl AuditRecord {
    /// The bytes the MAC covers: a tag, then every field but `hash`, each fixed-width or
    /// length-prefixed, so no two different records share an encoding.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.details.len());
        put_bytes(&mut out, RECORD_TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.at.unix().to_be_bytes());
        match &self.profile_id {
            None => out.push(0),
            Some(p) => {
                out.push(1);
                put_bytes(&mut out, p.as_bytes());
            }
        }
        put_bytes(&mut out, self.kind.code().as_bytes());
        put_bytes(&mut out, self.actor.as_bytes());
        put_bytes(&mut out, self.subject.as_bytes());
        put_bytes(&mut out, self.outcome.as_bytes());
        put_bytes(&mut out, self.details.as_bytes());
        out.extend_from_slice(&self.prev_hash);
        out
    }

    /// The head an append of this record leaves.
    pub fn head(&self, key: &AuditKey) -> SealedHead {
        SealedHead::seal(key, self.seq, self.hash)
    }

    /// One line for people: seq, time, kind, actor, subject, outcome, profile, details.
    pub fn line(&self) -> String {
        let mut line = format!(
            "#{} {} {} actor={} subject={} outcome={}",
            self.seq,
            self.at.rfc3339(),
            self.kind,
            self.actor,
            self.subject,
            self.outcome
        );
        if let Some(p) = &self.profile_id {
            line.push_str(&format!(" profile={p}"));
        }
        if self.details != "{}" {
            line.push(' ');
            line.push_str(&self.details);
        }
        line
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// JSON with object keys sorted at every level and no whitespace: one text per value.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k.clone(), sorted(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map is ordered by key unless `preserve_order` is on; sorting first keeps
    // the text the same either way.
    serde_json::to_string(&sorted(value)).expect("a JSON value serializes")
}

/// The MAC key of the chain (32 bytes derived from the root key). `Debug` shows nothing.
#[derive(Clone)]
pub struct AuditKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }

    fn mac(&self, parts: &[&[u8]]) -> Digest {
        let mut mac = <Blake2bMac<U32> as KeyInit>::new_from_slice(self.0.as_ref())
            .expect("a 32-byte BLAKE2b key");
        for part in parts {
            Mac::update(&mut mac, part);
        }
        mac.finalize().into_bytes().into()
    }

    pub fn record_mac(&self, record: &AuditRecord) -> Digest {
        self.mac(&[&record.canonical_bytes()])
    }

    fn head_mac(&self, seq: u64, hash: &Digest) -> Digest {
        let mut input = Vec::with_capacity(HEAD_TAG.len() + 48);
        put_bytes(&mut input, HEAD_TAG);
        input.extend_from_slice(&seq.to_be_bytes());
        input.extend_from_slice(hash);
        self.mac(&[&input])
    }
}

/// Constant-time comparison of two digests.
fn same(a: &Digest, b: &Digest) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_slice(), b.as_slice()).into()
}

/// The last seq and MAC of the chain, MAC'd under the key: stored beside the records and
/// rewritten with each append, so cutting records off the tail is seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHead {
    pub seq: u64,
    pub hash: Digest,
    pub mac: Digest,
}

impl SealedHead {
    pub fn seal(key: &AuditKey, seq: u64, hash: Digest) -> Self {
        Self {
            seq,
            hash,
            mac: key.head_mac(seq, &hash),
        }
    }

    pub fn verifies(&self, key: &AuditKey) -> bool {
        same(&key.head_mac(self.seq, &self.hash), &self.mac)
    }
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first seq that is not as it should be.
    pub seq: u64,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No record has this seq, but a later one exists (deleted, or renumbered).
    Missing { next_found: u64 },
    /// A record's seq is lower than the one expected (duplicated or out of order).
    OutOfOrder,
    /// The record's fields do not match its MAC: edited, or not written with this key.
    Altered,
    /// The record does not link to the MAC of the record before it.
    Unlinked,
    /// The sealed head is missing while records exist.
    HeadMissing,
    /// The sealed head does not verify under the key.
    HeadAltered,
    /// The head names a later seq than the last record: the tail was cut off.
    Truncated { head_seq: u64 },
    /// Records exist beyond the sealed head.
    BeyondHead { head_seq: u64 },
    /// The head's seq is the last record's, but its MAC is another record's.
    HeadMismatch,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.problem {
            Problem::Missing { next_found } => write!(
                f,
                "record {seq} is missing (the next stored record is {next_found}): records were deleted or renumbered"
            ),
            Problem::OutOfOrder => write!(f, "record {seq} is out of order or duplicated"),
            Problem::Altered => write!(
                f,
                "record {seq} was altered: its MAC does not verify with this key"
            ),
            Problem::Unlinked => write!(
                f,
                "record {seq} does not link to record {}: a record was replaced or inserted",
                seq.saturating_sub(1)
            ),
            Problem::HeadMissing => write!(
                f,
                "the sealed head is missing, so the log cannot be shown complete after record {}",
                seq.saturating_sub(1)
            ),
            Problem::HeadAltered => write!(f, "the sealed head (record {seq}) was altered"),
            Problem::Truncated { head_seq } => write!(
                f,
                "record {seq} is missing: the sealed head names record {head_seq}, so records {seq}..={head_seq} were cut off the tail"
            ),
            Problem::BeyondHead { head_seq } => write!(
                f,
                "record {seq} lies beyond the sealed head (record {head_seq}): records were added without the key"
            ),
            Problem::HeadMismatch => write!(
                f,
                "record {seq} is not the record the sealed head names: the tail was replaced"
            ),
        }
    }
}

impl std::error::Error for ChainBreak {}

/// What an intact chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub records: u64,
    pub first_at: Option<Timestamp>,
    pub last_at: Option<Timestamp>,
    /// The head: last seq and its MAC (`None` for an empty log).
    pub head: Option<(u64, Digest)>,
}

impl fmt::Display for ChainSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.head, self.first_at, self.last_at) {
            (Some((seq, hash)), Some(first), Some(last)) => write!(
                f,
                "audit log intact: {} records, seq 1..={seq}, {first} .. {last}, head {}",
                self.records,
                hex::encode(&hash[..8])
            ),
            _ => write!(f, "audit log intact: no records yet"),
        }
    }
}

/// Checks a chain record by record, in seq order, without holding it all in memory.
pub struct ChainVerifier<'k> {
    key: &'k AuditKey,
    next: u64,
    prev: Digest,
    records: u64,
    first_at: Option<Timestamp>,
    last_at: Option<Timestamp>,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(key: &'k AuditKey) -> Self {
        Self {
            key,
            next: 1,
            prev: GENESIS,
            records: 0,
            first_at: None,
            last_at: None,
        }
    }

    /// The next record in seq order; the first break found, if this record shows one.
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let broken = |seq, problem| Err(ChainBreak { seq, problem });
        if record.seq > self.next {
            return broken(
                self.next,
                Problem::Missing {
                    next_found: record.seq,
                },
            );
        }
        if record.seq < self.next {
            return broken(record.seq, Problem::OutOfOrder);
        }
        if !same(&self.key.record_mac(record), &record.hash) {
            return broken(record.seq, Problem::Altered);
        }
        if !same(&record.prev_hash, &self.prev) {
            return broken(record.seq, Problem::Unlinked);
        }
        self.next += 1;
        self.prev = record.hash;
        self.records += 1;
        self.first_at.get_or_insert(record.at);
        self.last_at = Some(record.at);
        Ok(())
    }

    /// After the last record: checks the sealed head against it.
    pub fn finish(self, head: Option<&SealedHead>) -> Result<ChainSummary, ChainBreak> {
        let last = self.next - 1;
        let broken = |seq, problem| Err(ChainBreak { seq, problem });
        match head {
            None if last == 0 => {}
            None => return broken(last + 1, Problem::HeadMissing),
            Some(head) if !head.verifies(self.key) => {
                return broken(head.seq, Problem::HeadAltered);
            }
            Some(head) if head.seq > last => {
                return broken(last + 1, Problem::Truncated { head_seq: head.seq });
            }
            Some(head) if head.seq < last => {
                return broken(head.seq + 1, Problem::BeyondHead { head_seq: head.seq });
            }
            Some(head) if !same(&head.hash, &self.prev) => {
                return broken(last, Problem::HeadMismatch);
            }
            Some(_) => {}
        }
        Ok(ChainSummary {
            records: self.records,
            first_at: self.first_at,
            last_at: self.last_at,
            head: (last > 0).then_some((last, self.prev)),
        })
    }
}

/// Verifies a whole chain held in memory (tests, small logs).
pub fn verify_chain(
    key: &AuditKey,
    records: &[AuditRecord],
    head: Option<&SealedHead>,
) -> Result<ChainSummary, ChainBreak> {
    let mut verifier = ChainVerifier::new(key);
    for record in records {
        verifier.push(record)?;
    }
    verifier.finish(head)
}

mod sealer;
pub use sealer::{SealRefused, Sealer};

#[cfg(test)]
mod tests;
