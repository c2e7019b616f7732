//! Events carried by the bus: what WebSocket channels deliver, and notices that end
//! channels. They cross process boundaries as JSON.

use crate::secret::TokenHash;
use crate::{CommandId, ProfileId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BusEvent {
    /// An event for every socket joined on the profile's channel.
    Profile(ProfileEvent),
    /// Sockets joined with this token must be told and leave (docs/api/README.md §8.7).
    TokenEnded { token: TokenHash, code: String },
    /// Every token of the profile but `keep` ended (password change with revocation).
    ProfileTokensEnded {
        profile_id: ProfileId,
        keep: Option<TokenHash>,
        code: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileEvent {
    pub profile_id: ProfileId,
    /// The application that caused it; app-token sockets only see their own (docs/api/README.md §8.5).
    pub application_id: Option<Uuid>,
    /// The command it reports on, if any: its events wait for the command's 202.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<CommandId>,
    /// The `data` member of the frame sent to the client.
    pub data: Value,
    /// Also for app-token sockets of other applications whose grant holds this scope (the
    /// invitation notice and `directory:manage`, docs/api/directory.md §1.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_scope: Option<String>,
}

impl ProfileEvent {
    /// `{"type":"X-DPT-CAB-ID","id":…,"command_status":…,"body":…}`.
    pub fn command_status(
        profile_id: ProfileId,
        application_id: Option<Uuid>,
        command_id: CommandId,
        status: u8,
        body: Value,
    ) -> Self {
        Self {
            profile_id,
            application_id,
            command_id: Some(command_id),
            app_scope: None,
            data: json!({
                "type": "X-DPT-CAB-ID",
                "id": command_id.to_string(),
                "command_status": status,
                "body": body,
            }),
        }
    }
}
