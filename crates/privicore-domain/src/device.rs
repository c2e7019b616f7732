//! Devices (docs/api/devices-and-storage.md §1): software registered under a profile that can hold
//! the storage and authenticator roles.

use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub const ROLE_STORAGE: &str = "storage";
pub const ROLE_AUTHENTICATOR: &str = "authenticator";
/// Default of non-removed devices per profile (configurable).
pub const DEVICE_LIMIT: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(pub Uuid);

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for DeviceId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 36 {
            return Err(());
        }
        Uuid::parse_str(s).map(Self).map_err(|_| ())
    }
}

impl DeviceId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for DeviceId {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    Pending,
    Approved,
    Rejected,
    Removed,
}

impl DeviceStatus {
    pub const ALL: [DeviceStatus; 4] =
        [Self::Pending, Self::Approved, Self::Rejected, Self::Removed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// The last Synchronize device run of a storage device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRecord {
    pub sync_id: CommandId,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// Engine-issued device secrets, stored as digests only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredentials {
    pub client_id: String,
    pub client_secret: TokenHash,
    pub bus_password: TokenHash,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub profile_id: ProfileId,
    pub request_command_id: CommandId,
    pub name: String,
    pub description: Option<String>,
    pub status: DeviceStatus,
    pub roles: Vec<String>,
    pub public_key: Option<String>,
    pub meta: Map<String, Value>,
    pub credentials: Option<DeviceCredentials>,
    pub created_at: Timestamp,
    pub approved_at: Option<Timestamp>,
    pub removed_at: Option<Timestamp>,
    pub configuration_issued_at: Option<Timestamp>,
    pub storage_registered_at: Option<Timestamp>,
    /// When the device last gained the authenticator role.
    pub authenticator_registered_at: Option<Timestamp>,
    pub last_sync: Option<SyncRecord>,
}

impl Device {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn is_storage(&self) -> bool {
        self.status == DeviceStatus::Approved && self.has_role(ROLE_STORAGE)
    }

    /// An eligible voter: approved and holding the authenticator role
    /// (docs/api/voting-and-policy.md §1.1).
    pub fn is_authenticator(&self) -> bool {
        self.status == DeviceStatus::Approved && self.has_role(ROLE_AUTHENTICATOR)
    }

    pub fn bus_user(&self) -> String {
        format!("device-{}", self.id)
    }
}

/// Name rules: 1..100 characters, no control characters.
pub fn valid_name(name: &str) -> bool {
    (1..=100).contains(&name.chars().count()) && !name.chars().any(char::is_control)
}

/// Filters of Retrieve profile devices.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub statuses: Vec<DeviceStatus>,
    /// `Some("none")` = no role.
    pub role: Option<String>,
    pub name: Option<String>,
    pub name_prefix: bool,
}
