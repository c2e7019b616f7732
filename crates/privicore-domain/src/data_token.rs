//! Data tokens (docs/api/data-tokens.md §1): one identity for life, a lifecycle from reservation to
//! deletion, versions of stored data, and the replicas of each version.

use crate::device::DeviceId;
use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Timestamp};
use serde_json::Value;
use uuid::Uuid;

pub const TTL_DEFAULT_MINUTES: i64 = 5;
pub const TTL_MAX_MINUTES: i64 = 60;
pub const OUTSTANDING_LIMIT: u64 = 1000;
pub const INLINE_EXCHANGE_MAX: usize = 1024 * 1024;
pub const INLINE_DELIVERY_MAX: u64 = 64 * 1024;
pub const MIN_PAYLOAD: usize = 28;
pub const META_MAX_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    Reserved,
    Exchanging,
    Active,
    Expired,
    Deleted,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Exchanging => "exchanging",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Reserved,
            Self::Exchanging,
            Self::Active,
            Self::Expired,
            Self::Deleted,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

pub fn new_token() -> String {
    format!("dtk-{}", Uuid::new_v4())
}

/// `dtk-` + a UUID v4 (compared case-insensitively, emitted lower-case).
pub fn normalize_token(text: &str) -> Option<String> {
    let rest = text
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("dtk-"))
        .map(|_| &text[4..])?;
    let uuid = Uuid::parse_str(rest).ok().filter(|_| rest.len() == 36)?;
    Some(format!("dtk-{uuid}"))
}

/// Context rules: 1..512 characters, no control characters.
pub fn valid_context(context: &str) -> bool {
    (1..=512).contains(&context.chars().count()) && !context.chars().any(char::is_control)
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataToken {
    pub token: String,
    pub profile_id: ProfileId,
    pub application_id: Option<Uuid>,
    pub reserve_command_id: CommandId,
    pub status: TokenStatus,
    pub context: String,
    pub expires_at: Option<Timestamp>,
    /// Salt of the current upload value (the value is derived from it with an engine
    /// secret, so it can be shown again without being stored).
    pub upload_salt: Option<TokenHash>,
    pub version: Option<u32>,
    pub stored_size: Option<u64>,
    pub meta_file: Option<Value>,
    pub meta_risk: Option<Value>,
    pub meta_data: Option<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One stored version: the engine's authoritative layer-2 header and digest.
#[derive(Debug, Clone)]
pub struct TokenVersion {
    pub token: String,
    pub version: u32,
    pub header: Vec<u8>,
    pub digest: String,
    pub total_size: u64,
    pub chunk_count: u32,
    pub committed: bool,
}

/// Where a version stands in the store's own order; KEK rotation walks headers by it.
pub type HeaderCursor = (i64, u32);

/// One stored version header, with its place in the store's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHeader {
    pub cursor: HeaderCursor,
    pub token: String,
    pub version: u32,
    pub header: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    Pending,
    Confirmed,
    Missing,
    Deleting,
    Detached,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Missing => "missing",
            Self::Deleting => "deleting",
            Self::Detached => "detached",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Confirmed,
            Self::Missing,
            Self::Deleting,
            Self::Detached,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub token: String,
    pub version: u32,
    pub device_id: DeviceId,
    pub state: ReplicaState,
}

/// Replica counts of a token's current version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaCounts {
    pub confirmed: u64,
    pub pending: u64,
    pub missing: u64,
}

/// A string filter: exact, or prefix when given with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    Prefix(String),
    /// Exact, ignoring ASCII case.
    ExactNoCase(String),
}

impl Match {
    pub fn exact_or_prefix(value: &str) -> Self {
        match value.strip_suffix('*') {
            Some(p) => Self::Prefix(p.to_owned()),
            None => Self::Exact(value.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub token: Option<String>,
    pub context: Option<Match>,
    pub file_name: Option<Match>,
    pub extension: Option<Match>,
    pub data_type: Option<Match>,
    pub classification: Option<Match>,
    pub statuses: Vec<TokenStatus>,
}

/// Statistics event kinds.
pub const EVENT_EXCHANGED: &str = "exchanged";
pub const EVENT_REQUESTED: &str = "requested";
pub const EVENT_DELETED: &str = "deleted";
pub const EVENT_UPDATED: &str = "updated";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u64,
    pub per_page: u64,
}

impl Page {
    pub fn offset(&self) -> u64 {
        (self.page - 1) * self.per_page
    }
}

/// A device that must hear about a deletion, for `storage.delete` retries.
#[derive(Debug, Clone)]
pub struct PendingDelete {
    pub token: String,
    pub device_id: DeviceId,
}

#[derive(Debug, Clone)]
pub struct SpoolObject {
    pub version: TokenVersion,
    pub chunks: Vec<Vec<u8>>,
}
