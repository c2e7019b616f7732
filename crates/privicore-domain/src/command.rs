//! The async command model (README §7): a command is persisted before it is
//! acknowledged, executed by a worker, and ends exactly once, succeeded or failed.

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
        new_password_hash: PasswordHash,
        revoke_tokens: bool,
        keep_token: TokenHash,
    },
    RegisterPublicKey {
        public_key: String,
    },
}

impl CommandPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RegisterProfile { .. } => "register_profile",
            Self::ChangePassword { .. } => "change_password",
            Self::RegisterPublicKey { .. } => "register_public_key",
        }
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

    /// Commands that address the same resource run in acceptance order (README §7.5);
    /// this is the key they are serialized on.
    pub fn ordering_key(&self) -> Uuid {
        self.profile_id.0
    }
}

/// Recorded together with a command's effects, in one transaction.
#[derive(Debug, Clone)]
pub struct Completion {
    pub command_id: CommandId,
    pub outcome: Outcome,
    pub finished_at: Timestamp,
}

/// Command records are kept this long after they finish (README §7.6).
pub const RETENTION_SECONDS: i64 = 24 * 3600;

#[cfg(test)]
mod tests {
    use super::*;

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
