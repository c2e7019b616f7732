//! The async command model (docs/api/README.md §7): a command is persisted before it is
//! acknowledged, executed by a worker, and ends exactly once, succeeded or failed.

use crate::device::DeviceId;
use crate::governance::Strategy;
use crate::ids::{PolicyId, VotingConfigurationId};
use crate::password::PasswordHash;
use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Reason, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What a command asks the engine to do. Secrets never appear here in clear: passwords
/// arrive already hashed (or already verified), tokens as digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandPayload {
    RegisterProfile {
        username: String,
        password_hash: PasswordHash,
    },
    ChangePassword {
        /// Verified when the command was accepted, so the current password is never stored.
        current_password_ok: bool,
        /// Absent when the current password was wrong: a guess never costs a hash.
        #[serde(default)]
        new_password_hash: Option<PasswordHash>,
        revoke_tokens: bool,
        keep_token: TokenHash,
    },
    RegisterPublicKey {
        public_key: String,
    },
    RequestDevice {
        device_id: DeviceId,
        name: String,
        description: Option<String>,
        public_key: Option<String>,
    },
    ApproveDevice {
        device_id: DeviceId,
    },
    RejectDevice {
        device_id: DeviceId,
    },
    ConfigureDevice {
        device_id: DeviceId,
        name: Option<String>,
        /// `Some(None)` clears the description.
        description: Option<Option<String>>,
        meta: Option<serde_json::Map<String, Value>>,
    },
    RemoveDevice {
        device_id: DeviceId,
        force: bool,
    },
    RegisterStorage {
        device_id: DeviceId,
    },
    RemoveStorage {
        device_id: DeviceId,
        force: bool,
    },
    SyncDevice {
        device_id: DeviceId,
        verify: bool,
    },
    ReserveTokenSpace {
        token: String,
        context: String,
        ttl_minutes: i64,
        meta_data: Option<Value>,
    },
    /// The sealed payload and its header were stored with the command (spooled chunk by
    /// chunk while it arrived, for an upload to the upstream listener).
    ExchangeData {
        token: String,
        version: u32,
        /// Uploaded to the upstream listener (gateable event 102) rather than inline (101).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        streamed: bool,
    },
    RequestData {
        token: String,
        request_id: CommandId,
    },
    DeleteData {
        token: String,
    },
    ConfigureRisk {
        token: String,
        risk: Value,
    },
    /// Update data token: metadata changes (shape A merges file meta; shape B replaces groups).
    UpdateTokenMeta {
        token: String,
        file: Option<Option<Value>>,
        risk: Option<Option<Value>>,
        data: Option<Option<Value>>,
        context: Option<String>,
    },
    RegisterAuthenticator {
        device_id: DeviceId,
    },
    RemoveAuthenticator {
        device_id: DeviceId,
        force: bool,
    },
    /// One of the four Set … endpoints (docs/api/voting-and-policy.md §4.4–4.7).
    SetVotingDefault {
        change: VotingDefaultChange,
    },
    RegisterVotingConfiguration {
        name: String,
        strategy: Strategy,
        percentage_required: Option<u8>,
        time_limit: u32,
        device_ids: Vec<DeviceId>,
        quorum_size: Option<u32>,
        number_of_attempts: Option<u32>,
    },
    UpdateVotingConfiguration {
        configuration_id: VotingConfigurationId,
        change: ConfigurationChange,
    },
    RegisterPolicy {
        /// `None`: the default name, chosen when the command runs.
        name: Option<String>,
        description: Option<String>,
        template_id: String,
        event_ids: Vec<String>,
        configuration: serde_json::Map<String, Value>,
        /// The id or name as sent; resolved when the command runs.
        voting_configuration: Option<String>,
    },
    ActivatePolicy {
        policy_id: PolicyId,
    },
    DeactivatePolicy {
        policy_id: PolicyId,
    },
    DeletePolicy {
        policy_id: PolicyId,
    },
    /// Create voting (docs/api/voting-and-policy.md §6.1.1): a manual pool whose id is the
    /// command id; the command ends when the pool does.
    CreateVoting {
        configuration: VotingConfigurationId,
        title: String,
        question: String,
        skip: Vec<DeviceId>,
        nonce: Option<String>,
    },
    /// Register OAuth application (docs/api/oauth.md §3.1); the application id is the
    /// command id.
    RegisterOauthApplication {
        client_id: String,
        name: String,
        description: Option<String>,
        redirect_uri: String,
        scopes: Vec<String>,
    },
    /// Request OAuth app authorization code (docs/api/oauth.md §3.3); the request id is
    /// the command id, the caller's profile the consenting one.
    RequestOauthCode {
        application_id: Uuid,
        client_id: String,
        nonce: String,
        scopes: Vec<String>,
    },
    /// Register Directory (docs/api/directory.md §3.1); the directory id is the command id.
    RegisterDirectory {
        name: String,
        description: Option<String>,
        meta: serde_json::Map<String, Value>,
    },
    /// Store directory meta information (§3.18).
    StoreDirectoryMeta {
        directory_id: Uuid,
        meta: serde_json::Map<String, Value>,
        replace: bool,
    },
    /// Create Directory User (§3.5); the new profile's id is the command id.
    CreateDirectoryUser {
        directory_id: Uuid,
        username: String,
        #[serde(default)]
        password_hash: Option<PasswordHash>,
        display_name: Option<String>,
        email: Option<String>,
        role: crate::directory::Role,
        attributes: serde_json::Map<String, Value>,
        /// The new profile's public key (hex), registered at creation.
        #[serde(default)]
        public_key: Option<String>,
    },
    /// Set profile password (§3.8).
    SetDirectoryUserPassword {
        directory_id: Uuid,
        target: ProfileId,
        password_hash: PasswordHash,
        revoke_tokens: bool,
    },
    /// Update user information (§3.6); `Some(None)` clears a field.
    UpdateDirectoryUser {
        directory_id: Uuid,
        target: ProfileId,
        display_name: Option<Option<String>>,
        email: Option<Option<String>>,
        role: Option<crate::directory::Role>,
        status: Option<crate::directory::MemberStatus>,
        attributes: Option<serde_json::Map<String, Value>>,
    },
    /// Invite Profile (§3.7); the invitation id is the command id. The invitee is named by
    /// username or id and resolved when the command runs.
    InviteToDirectory {
        directory_id: Uuid,
        username: Option<String>,
        invited: Option<ProfileId>,
        role: crate::directory::Role,
        message: Option<String>,
    },
    /// Process Invitation (§3.10).
    ProcessDirectoryInvitation {
        invitation_id: Uuid,
        accept: bool,
    },
    /// Create profile device (docs/api/directory.md §3.14): a device of a managed user.
    CreateProfileDevice {
        directory_id: Uuid,
        target: ProfileId,
        device_id: DeviceId,
        name: String,
        description: Option<String>,
        public_key: Option<String>,
        approve: bool,
    },
    /// Add storage device to profile (docs/api/directory.md §3.15).
    AddDirectoryStorage {
        directory_id: Uuid,
        target: ProfileId,
        device_id: DeviceId,
    },
    /// Create directory voting pool (docs/api/directory.md §3.17): a pool whose id is the
    /// command id, voted by the members' authenticators; the command ends when it does.
    CreateDirectoryVoting {
        directory_id: Uuid,
        title: String,
        question: String,
        /// The voter profiles as listed; empty = every active member.
        voters: Vec<ProfileId>,
        rules: crate::governance::VotingRules,
        nonce: Option<String>,
    },
    /// Update data token shape B with new data, sealed as `version`: inline, or streamed
    /// to the upstream listener before `upload_by`.
    ReplaceData {
        token: String,
        version: u32,
        file: Option<Option<Value>>,
        risk: Option<Option<Value>>,
        data: Option<Option<Value>>,
        /// Set for a streamed replacement: the upload must start before this time. Its
        /// record is pending from acceptance; it runs once the upload wrote the version.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_by: Option<Timestamp>,
    },
}

impl CommandPayload {
    /// Whether the command can change which devices of the profile store data.
    pub fn changes_devices(&self) -> bool {
        matches!(
            self,
            Self::RequestDevice { .. }
                | Self::ApproveDevice { .. }
                | Self::RejectDevice { .. }
                | Self::ConfigureDevice { .. }
                | Self::RemoveDevice { .. }
                | Self::RegisterStorage { .. }
                | Self::RemoveStorage { .. }
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::RegisterProfile { .. } => "register_profile",
            Self::ChangePassword { .. } => "change_password",
            Self::RegisterPublicKey { .. } => "register_public_key",
            Self::RequestDevice { .. } => "request_device",
            Self::ApproveDevice { .. } => "approve_device",
            Self::RejectDevice { .. } => "reject_device",
            Self::ConfigureDevice { .. } => "configure_device",
            Self::RemoveDevice { .. } => "remove_device",
            Self::RegisterStorage { .. } => "register_storage",
            Self::RemoveStorage { .. } => "remove_storage",
            Self::SyncDevice { .. } => "sync_device",
            Self::ReserveTokenSpace { .. } => "reserve_token_space",
            Self::ExchangeData { .. } => "exchange_data",
            Self::RequestData { .. } => "request_data",
            Self::DeleteData { .. } => "delete_data",
            Self::ConfigureRisk { .. } => "configure_risk",
            Self::UpdateTokenMeta { .. } => "update_token_meta",
            Self::ReplaceData { .. } => "replace_data",
            Self::RegisterAuthenticator { .. } => "register_authenticator",
            Self::RemoveAuthenticator { .. } => "remove_authenticator",
            Self::SetVotingDefault { .. } => "set_voting_default",
            Self::RegisterVotingConfiguration { .. } => "register_voting_configuration",
            Self::UpdateVotingConfiguration { .. } => "update_voting_configuration",
            Self::RegisterPolicy { .. } => "register_policy",
            Self::ActivatePolicy { .. } => "activate_policy",
            Self::DeactivatePolicy { .. } => "deactivate_policy",
            Self::DeletePolicy { .. } => "delete_policy",
            Self::CreateVoting { .. } => "create_voting",
            Self::RegisterOauthApplication { .. } => "register_oauth_application",
            Self::RequestOauthCode { .. } => "request_oauth_code",
            Self::RegisterDirectory { .. } => "register_directory",
            Self::StoreDirectoryMeta { .. } => "store_directory_meta",
            Self::CreateDirectoryUser { .. } => "create_directory_user",
            Self::SetDirectoryUserPassword { .. } => "set_directory_user_password",
            Self::UpdateDirectoryUser { .. } => "update_directory_user",
            Self::InviteToDirectory { .. } => "invite_to_directory",
            Self::ProcessDirectoryInvitation { .. } => "process_directory_invitation",
            Self::CreateProfileDevice { .. } => "create_profile_device",
            Self::AddDirectoryStorage { .. } => "add_directory_storage",
            Self::CreateDirectoryVoting { .. } => "create_directory_voting",
        }
    }

    /// The resource whose commands must run in acceptance order (docs/api/README.md §7.5).
    pub fn resource(&self) -> Option<String> {
        match self {
            Self::RequestDevice { device_id, .. }
            | Self::ApproveDevice { device_id }
            | Self::RejectDevice { device_id }
            | Self::ConfigureDevice { device_id, .. }
            | Self::RemoveDevice { device_id, .. }
            | Self::RegisterStorage { device_id }
            | Self::RemoveStorage { device_id, .. }
            | Self::SyncDevice { device_id, .. }
            | Self::RegisterAuthenticator { device_id }
            | Self::RemoveAuthenticator { device_id, .. } => Some(device_id.to_string()),
            Self::ReserveTokenSpace { token, .. }
            | Self::ExchangeData { token, .. }
            | Self::RequestData { token, .. }
            | Self::DeleteData { token }
            | Self::ConfigureRisk { token, .. }
            | Self::UpdateTokenMeta { token, .. }
            | Self::ReplaceData { token, .. } => Some(token.clone()),
            _ => None,
        }
    }
}

/// What one of the Set … endpoints changes in the profile's voting defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "setting", rename_all = "snake_case")]
pub enum VotingDefaultChange {
    QuorumSize {
        quorum_size: u32,
    },
    Strategy {
        strategy: Strategy,
        strategy_params: u8,
    },
    TimeLimit {
        time_limit: u32,
    },
    Attempts {
        number_of_attempts: u32,
    },
}

/// The fields an Update voting configuration changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationChange {
    pub name: Option<String>,
    pub strategy: Option<Strategy>,
    /// Validated against the strategy in force after the update, when the command runs.
    pub percentage_required: Option<u8>,
    pub time_limit: Option<u32>,
    pub device_ids: Option<Vec<DeviceId>>,
    /// `Some(None)` resets to "profile default".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reset_or_value"
    )]
    pub quorum_size: Option<Option<u32>>,
    /// `Some(None)` resets to "profile default".
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "reset_or_value"
    )]
    pub number_of_attempts: Option<Option<u32>>,
}

/// A field that is present is `Some`: `null` becomes `Some(None)` (a reset), so a change
/// read back from the command log after a restart still resets.
fn reset_or_value<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl ConfigurationChange {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The final outcome of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `command_status: 2`; the value is the documented result object.
    Succeeded(Value),
    /// `command_status: 3`; the dotted error key.
    Failed(String),
}

impl Outcome {
    pub fn failed(reason: Reason) -> Self {
        Self::Failed(reason.code().to_owned())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CommandState {
    /// Accepted, queued or running.
    Pending,
    Finished {
        outcome: Outcome,
        finished_at: Timestamp,
    },
}

#[derive(Debug, Clone)]
pub struct CommandRecord {
    pub id: CommandId,
    /// For register-profile, the future profile (its id equals the command id).
    pub profile_id: ProfileId,
    /// Set when an OAuth application issued the command.
    pub application_id: Option<Uuid>,
    pub payload: CommandPayload,
    pub state: CommandState,
    pub created_at: Timestamp,
}

impl CommandRecord {
    pub fn new(
        id: CommandId,
        profile_id: ProfileId,
        application_id: Option<Uuid>,
        payload: CommandPayload,
    ) -> Self {
        Self {
            id,
            profile_id,
            application_id,
            payload,
            state: CommandState::Pending,
            created_at: Timestamp::now(),
        }
    }

    /// Commands that address the same resource run in acceptance order (docs/api/README.md §7.5);
    /// this is the key they are serialized on.
    pub fn ordering_key(&self) -> String {
        self.payload
            .resource()
            .unwrap_or_else(|| self.profile_id.to_string())
    }
}

/// Recorded together with a command's effects, in one transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    pub command_id: CommandId,
    pub outcome: Outcome,
    pub finished_at: Timestamp,
}

/// Command records are kept this long after they finish (docs/api/README.md §7.6).
pub const RETENTION_SECONDS: i64 = 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_survives_the_command_log() {
        let p = CommandPayload::UpdateVotingConfiguration {
            configuration_id: VotingConfigurationId(Uuid::now_v7()),
            change: ConfigurationChange {
                quorum_size: Some(None),
                number_of_attempts: Some(Some(3)),
                ..ConfigurationChange::default()
            },
        };
        let text = serde_json::to_string(&p).unwrap();
        let CommandPayload::UpdateVotingConfiguration { change, .. } =
            serde_json::from_str(&text).unwrap()
        else {
            panic!("{text}");
        };
        assert_eq!(change.quorum_size, Some(None));
        assert_eq!(change.number_of_attempts, Some(Some(3)));
        assert_eq!(change.time_limit, None);
        assert!(!change.is_empty());
    }

    #[test]
    fn payload_round_trips_through_json() {
        let p = CommandPayload::RegisterPublicKey {
            public_key: "31420500".into(),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains("\"kind\":\"register_public_key\""));
        let back: CommandPayload = serde_json::from_str(&text).unwrap();
        assert_eq!(back.kind(), "register_public_key");
    }
}
