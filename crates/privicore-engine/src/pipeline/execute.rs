//! What each command does: a plan of effects and the outcome to record with them.
//! Synchronous checks are re-made here, because state may have changed since acceptance.

use super::{devices, governance, sync, tokens};
use crate::engine::Core;
use privicore_domain::command::{CommandPayload, CommandRecord, Outcome};
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::Effect;
use privicore_domain::event::BusEvent;
use privicore_domain::ports::StoreError;
use privicore_domain::profile::{Profile, ProfileKind, ProfileStatus};
use privicore_domain::{Reason, Timestamp};
use privicore_wire::bus::Versions;
use serde_json::json;

/// Work done after the commit (device notifications, hosting).
pub(crate) enum After {
    SendDeletes {
        token: String,
        devices: Vec<DeviceId>,
        versions: Versions,
    },
    Host(Device),
    Unhost(DeviceId),
    SendRoles(Device),
    Revoke(DeviceId, &'static str),
    /// The profile's key or tokens changed: cached authorizations must be re-read.
    ForgetProfile(privicore_domain::ProfileId),
    /// Another profile's devices changed (directory authority, docs/api/directory.md §1.4):
    /// its cached storage targets must be re-read.
    ForgetTargets(privicore_domain::ProfileId),
    /// A version just committed: its header (which never changes) and the devices that
    /// confirmed it, kept for retrieval.
    NoteCommitted(privicore_domain::data_token::TokenVersion, Vec<DeviceId>),
    /// An exchange run at acceptance is recorded (`Some`: the devices its record confirmed)
    /// or failed (`None`): device answers it still absorbed are written or dropped, and
    /// `object` is held for the targets that still owe their copy.
    RecordLate {
        token: String,
        version: u32,
        recorded: Option<Vec<DeviceId>>,
        object: Option<crate::replication::Sealed>,
    },
}

pub(crate) struct Plan {
    pub effects: Vec<Effect>,
    pub outcome: Outcome,
    /// Published before the commit (delivery that precedes the final status).
    pub before: Vec<BusEvent>,
    /// Published after the commit.
    pub notices: Vec<BusEvent>,
    pub after: Vec<After>,
}

impl Plan {
    pub fn succeed(effects: Vec<Effect>, result: serde_json::Value) -> Self {
        Self {
            effects,
            outcome: Outcome::Succeeded(result),
            before: Vec::new(),
            notices: Vec::new(),
            after: Vec::new(),
        }
    }

    pub fn fail(reason: Reason) -> Self {
        Self::fail_with(reason, Vec::new())
    }

    /// A failure that still changes state (for example a reservation handed back).
    pub fn fail_with(reason: Reason, effects: Vec<Effect>) -> Self {
        Self {
            effects,
            outcome: Outcome::failed(reason),
            before: Vec::new(),
            notices: Vec::new(),
            after: Vec::new(),
        }
    }
}

/// How long the registration of a hosted storage device waits for it to connect.
const HOSTED_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) async fn after_commit(core: &Core, action: After) {
    match action {
        After::SendDeletes {
            token,
            devices,
            versions,
        } => {
            for device in devices {
                core.send_delete(device, &token, versions.clone()).await;
            }
        }
        After::Host(device) => {
            if let Some(host) = &core.host {
                host.host(&device);
                // The ack follows this: a client that stores or synchronizes right after it
                // finds the device connected.
                let deadline = tokio::time::Instant::now() + HOSTED_CONNECT_WAIT;
                while !core.online(device.id) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        }
        After::Unhost(device) => {
            if let Some(host) = &core.host {
                host.unhost(device);
            }
        }
        After::SendRoles(device) => core.send_roles(&device).await,
        After::Revoke(device, reason) => core.revoke_device(device, reason).await,
        After::ForgetProfile(profile) => core.auth_cache.forget_profile(profile),
        After::ForgetTargets(profile) => core.targets.forget(profile),
        After::NoteCommitted(version, devices) => {
            core.holders.note(&version.token, version.version, devices);
            core.committed.note(&version);
        }
        After::RecordLate {
            token,
            version,
            recorded,
            object,
        } => crate::replication::record_late(core, &token, version, recorded.as_deref(), object),
    }
}

pub(crate) async fn plan(core: &Core, command: &CommandRecord) -> Result<Plan, StoreError> {
    let now = Timestamp::now();
    let store = core.store.as_ref();
    if !matches!(command.payload, CommandPayload::RegisterProfile { .. }) {
        let active = match core.auth_cache.profile_active(command.profile_id) {
            Some(active) => active,
            None => {
                let active = store
                    .profile(command.profile_id)
                    .await?
                    .is_some_and(|p| p.status == ProfileStatus::Active);
                core.auth_cache.note_profile(command.profile_id, active);
                active
            }
        };
        if !active {
            return Ok(Plan::fail(Reason::ProfileInactive));
        }
    }
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
            let (true, Some(new_password_hash)) = (current_password_ok, new_password_hash) else {
                return Ok(Plan::fail(Reason::ProfileInvalidCurrentPassword));
            };
            let profile_id = command.profile_id;
            let mut effects = vec![Effect::SetPassword {
                profile_id,
                hash: new_password_hash.clone(),
            }];
            let mut revoked = 0;
            let mut revoked_grants = 0;
            let mut notices = Vec::new();
            if *revoke_tokens {
                revoked = store
                    .count_live_tokens(profile_id, Some(keep_token), now)
                    .await?;
                revoked_grants = store.oauth_live_grants(profile_id).await?;
                effects.push(Effect::Oauth(Box::new(
                    privicore_domain::oauth::OauthEffect::RevokeProfileGrants {
                        profile_id,
                        at: now,
                    },
                )));
                effects.push(Effect::RevokeProfileTokens {
                    profile_id,
                    keep: Some(*keep_token),
                    at: now,
                });
                notices.push(BusEvent::ProfileTokensEnded {
                    profile_id,
                    keep: Some(*keep_token),
                    code: Reason::AuthTokenRevoked.code().into(),
                });
            }
            let mut plan = Plan::succeed(
                effects,
                json!({ "profileId": profile_id.to_string(), "revokedTokens": revoked, "revokedGrants": revoked_grants }),
            );
            plan.notices = notices;
            plan.after.push(After::ForgetProfile(profile_id));
            Ok(plan)
        }
        CommandPayload::RegisterPublicKey { public_key } => {
            let replaced = store
                .profile(command.profile_id)
                .await?
                .is_some_and(|p| p.public_key.is_some());
            let mut plan = Plan::succeed(
                vec![Effect::SetPublicKey {
                    profile_id: command.profile_id,
                    public_key: public_key.clone(),
                    at: now,
                }],
                json!({ "publicKey": public_key, "registeredAt": now.rfc3339(), "replaced": replaced }),
            );
            plan.after.push(After::ForgetProfile(command.profile_id));
            Ok(plan)
        }
        CommandPayload::RequestDevice { .. }
        | CommandPayload::ApproveDevice { .. }
        | CommandPayload::RejectDevice { .. }
        | CommandPayload::ConfigureDevice { .. }
        | CommandPayload::RemoveDevice { .. }
        | CommandPayload::RegisterStorage { .. }
        | CommandPayload::RemoveStorage { .. } => devices::plan(core, command, now).await,
        CommandPayload::RegisterAuthenticator { .. }
        | CommandPayload::RemoveAuthenticator { .. }
        | CommandPayload::SetVotingDefault { .. }
        | CommandPayload::RegisterVotingConfiguration { .. }
        | CommandPayload::UpdateVotingConfiguration { .. }
        | CommandPayload::RegisterPolicy { .. }
        | CommandPayload::ActivatePolicy { .. }
        | CommandPayload::DeactivatePolicy { .. }
        | CommandPayload::DeletePolicy { .. } => governance::plan(core, command, now).await,
        CommandPayload::RegisterOauthApplication { .. }
        | CommandPayload::RequestOauthCode { .. } => crate::oauth::plan(core, command).await,
        CommandPayload::RegisterDirectory { .. }
        | CommandPayload::StoreDirectoryMeta { .. }
        | CommandPayload::CreateDirectoryUser { .. }
        | CommandPayload::SetDirectoryUserPassword { .. }
        | CommandPayload::UpdateDirectoryUser { .. }
        | CommandPayload::InviteToDirectory { .. }
        | CommandPayload::ProcessDirectoryInvitation { .. }
        | CommandPayload::CreateProfileDevice { .. }
        | CommandPayload::AddDirectoryStorage { .. } => crate::directory::plan(core, command).await,
        CommandPayload::SyncDevice { device_id, verify } => {
            sync::plan(core, command, *device_id, *verify).await
        }
        _ => tokens::plan(core, command, now).await,
    }
}
