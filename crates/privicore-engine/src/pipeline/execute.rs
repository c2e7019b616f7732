//! What each command does: a plan of effects and the outcome to record with them.
//! Synchronous checks are re-made here, because state may have changed since acceptance.

use privicore_domain::command::{CommandPayload, CommandRecord, Outcome};
use privicore_domain::effect::Effect;
use privicore_domain::event::BusEvent;
use privicore_domain::ports::{MetadataStore, StoreError};
use privicore_domain::profile::{Profile, ProfileKind, ProfileStatus};
use privicore_domain::{Reason, Timestamp};
use serde_json::json;

pub(crate) struct Plan {
    pub effects: Vec<Effect>,
    pub outcome: Outcome,
    /// Published after the commit.
    pub notices: Vec<BusEvent>,
}

impl Plan {
    fn succeed(effects: Vec<Effect>, result: serde_json::Value) -> Self {
        Self {
            effects,
            outcome: Outcome::Succeeded(result),
            notices: Vec::new(),
        }
    }

    fn fail(reason: Reason) -> Self {
        Self {
            effects: Vec::new(),
            outcome: Outcome::failed(reason),
            notices: Vec::new(),
        }
    }
}

pub(crate) async fn plan(
    store: &dyn MetadataStore,
    command: &CommandRecord,
) -> Result<Plan, StoreError> {
    let now = Timestamp::now();
    match &command.payload {
        CommandPayload::RegisterProfile {
            username,
            password_hash,
        } => {
            let profile = Profile {
                id: command.profile_id,
                username: username.clone(),
                kind: ProfileKind::User,
                status: ProfileStatus::Active,
                password_hash: Some(password_hash.clone()),
                public_key: None,
                created_at: now,
            };
            Ok(Plan::succeed(
                vec![Effect::CreateProfile(profile)],
                json!({ "profileId": command.profile_id.to_string(), "username": username }),
            ))
        }
        CommandPayload::ChangePassword {
            current_password_ok,
            new_password_hash,
            revoke_tokens,
            keep_token,
        } => {
            let Some(profile) = active_profile(store, command).await? else {
                return Ok(Plan::fail(Reason::ProfileInactive));
            };
            if !current_password_ok {
                return Ok(Plan::fail(Reason::ProfileInvalidCurrentPassword));
            }
            let mut effects = vec![Effect::SetPassword {
                profile_id: profile.id,
                hash: new_password_hash.clone(),
            }];
            let mut revoked = 0;
            let mut notices = Vec::new();
            if *revoke_tokens {
                revoked = store
                    .count_live_tokens(profile.id, Some(keep_token), now)
                    .await?;
                effects.push(Effect::RevokeProfileTokens {
                    profile_id: profile.id,
                    keep: Some(*keep_token),
                    at: now,
                });
                notices.push(BusEvent::ProfileTokensEnded {
                    profile_id: profile.id,
                    keep: Some(*keep_token),
                    code: Reason::AuthTokenRevoked.code().into(),
                });
            }
            Ok(Plan {
                effects,
                outcome: Outcome::Succeeded(json!({
                    "profileId": profile.id.to_string(),
                    "revokedTokens": revoked,
                    "revokedGrants": 0,
                })),
                notices,
            })
        }
        CommandPayload::RegisterPublicKey { public_key } => {
            let Some(profile) = active_profile(store, command).await? else {
                return Ok(Plan::fail(Reason::ProfileInactive));
            };
            Ok(Plan::succeed(
                vec![Effect::SetPublicKey {
                    profile_id: profile.id,
                    public_key: public_key.clone(),
                    at: now,
                }],
                json!({
                    "publicKey": public_key,
                    "registeredAt": now.rfc3339(),
                    "replaced": profile.public_key.is_some(),
                }),
            ))
        }
    }
}

async fn active_profile(
    store: &dyn MetadataStore,
    command: &CommandRecord,
) -> Result<Option<Profile>, StoreError> {
    Ok(store
        .profile(command.profile_id)
        .await?
        .filter(|p| p.status == ProfileStatus::Active))
}
