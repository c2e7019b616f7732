//! Directories (docs/api/directory.md): registration, meta, managed users, invitations and
//! the member reads. Every call is checked against the caller's standing in the directory
//! through the one permission table of `privicore_domain::directory` (§1.3), at acceptance
//! and again when the command runs.

use crate::engine::{Core, Engine};
use crate::pipeline::execute::{After, Plan};
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::device::{Device, DeviceFilter, DeviceId, DeviceStatus};
use privicore_domain::directory::{
    self as dir, Action, Directory, DirectoryEffect, Invitation, InvitationScope, InvitationStatus,
    Kind, MemberFilter, MemberStatus, Membership, Role, Standing,
};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::oauth::OauthEffect;
use privicore_domain::password;
use privicore_domain::ports::{MetadataStore, StoreError};
use privicore_domain::profile::{Profile, ProfileKind, ProfileStatus, check_username};
use privicore_domain::{CommandId, Error, ProfileId, Reason, Timestamp};
use serde_json::{Map, Value, json};
use uuid::Uuid;

mod pools;

pub use pools::DirectoryPoolInput;

fn effect(e: DirectoryEffect) -> Effect {
    Effect::Directory(Box::new(e))
}

/// The directory and what the profile is to it; `directory.not_found` when unknown.
pub(crate) async fn standing(
    store: &dyn MetadataStore,
    directory_id: Uuid,
    profile: ProfileId,
    now: Timestamp,
) -> Result<Result<(Directory, Standing, Option<Membership>), Reason>, StoreError> {
    let Some(directory) = store.directory(directory_id).await? else {
        return Ok(Err(Reason::DirectoryNotFound));
    };
    let membership = store.membership(directory_id, profile).await?;
    let invited = membership.is_none()
        && store
            .invitations(
                InvitationScope::Invitee(profile),
                Some(InvitationStatus::Pending),
                now,
                Page {
                    page: 1,
                    per_page: 1000,
                },
            )
            .await?
            .0
            .iter()
            .any(|i| i.directory_id == directory_id);
    let standing = Standing::of(membership.as_ref(), invited);
    Ok(Ok((directory, standing, membership)))
}

/// What the rules of §1.3 and §3.6 say about one member update.
#[derive(Debug, Clone, Default)]
pub struct MemberUpdate {
    pub display_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub role: Option<Role>,
    pub status: Option<MemberStatus>,
    pub attributes: Option<Map<String, Value>>,
}

impl MemberUpdate {
    fn is_empty(&self) -> bool {
        self.display_name.is_none()
            && self.email.is_none()
            && self.role.is_none()
            && self.status.is_none()
            && self.attributes.is_none()
    }

    /// Only `status: removed` on the caller's own membership.
    fn is_leave(&self) -> bool {
        self.status == Some(MemberStatus::Removed)
            && self.display_name.is_none()
            && self.email.is_none()
            && self.role.is_none()
            && self.attributes.is_none()
    }
}

/// Whether `caller` (standing `standing`) may apply `update` to `target`; §1.3 and §3.6.
fn may_update(
    caller: ProfileId,
    standing: Standing,
    target: &Membership,
    update: &MemberUpdate,
) -> Result<(), Reason> {
    if target.role == Role::Owner {
        // Checked after the caller's right to touch members at all.
        if standing == Standing::Owner || standing == Standing::Admin {
            return Err(Reason::DirectoryCannotModifyOwner);
        }
        return Err(Reason::DirectoryForbidden);
    }
    let ok = |a| dir::allowed(a, standing);
    if target.profile_id == caller && update.is_leave() {
        return if ok(Action::Leave) {
            Ok(())
        } else {
            Err(Reason::DirectoryForbidden)
        };
    }
    if !ok(Action::UpdateOtherUser) {
        return Err(Reason::DirectoryForbidden);
    }
    if update.role.is_some() && !ok(Action::ChangeRole) {
        return Err(Reason::DirectoryForbidden);
    }
    // Admins may not change other admins.
    if standing == Standing::Admin && target.role == Role::Admin && target.profile_id != caller {
        return Err(Reason::DirectoryForbidden);
    }
    Ok(())
}

fn status_change_ok(from: MemberStatus, to: MemberStatus) -> bool {
    from == to || from != MemberStatus::Removed
}

/// The directory record (§1.6).
async fn directory_json(
    core: &Core,
    d: &Directory,
    mine: Option<&Membership>,
) -> Result<Value, StoreError> {
    let counts = core
        .store
        .directory_counts(d.id, core.config.clock.now())
        .await?;
    let owner = core.store.profile(d.owner).await?.map(|p| p.username);
    Ok(json!({
        "directoryId": d.id.to_string(),
        "name": d.name,
        "description": d.description,
        "ownerProfileId": d.owner.to_string(),
        "ownerUsername": owner,
        "meta": d.meta,
        "myRole": mine.map(|m| m.role.as_str()),
        "myStatus": mine.map(|m| m.status.as_str()),
        "counts": {
            "users": counts.users,
            "managedUsers": counts.managed_users,
            "invitedUsers": counts.invited_users,
            "pendingInvitations": counts.pending_invitations,
            "devices": counts.devices,
        },
        "createdAt": d.created_at.rfc3339(),
        "updatedAt": d.updated_at.rfc3339(),
    }))
}

/// The member record (§1.6); `limited` for callers with the `member` role.
async fn member_json(core: &Core, m: &Membership, limited: bool) -> Result<Value, StoreError> {
    let profile = core.store.profile(m.profile_id).await?;
    let managed = m.kind == Kind::Managed;
    let mut v = json!({
        "directoryId": m.directory_id.to_string(),
        "profileId": m.profile_id.to_string(),
        "username": profile.as_ref().map(|p| p.username.clone()),
        "displayName": m.display_name,
        "email": Value::Null,
        "role": m.role.as_str(),
        "kind": m.kind.as_str(),
        "status": m.status.as_str(),
        "attributes": Value::Null,
        "joinedAt": m.joined_at.rfc3339(),
        "updatedAt": m.updated_at.rfc3339(),
        "publicKeyRegistered": profile.as_ref().is_some_and(|p| p.public_key.is_some()),
        "passwordSet": if managed { json!(profile.as_ref().is_some_and(|p| p.password_hash.is_some())) } else { Value::Null },
        "devices": Value::Null,
        "lastAuthenticatedAt": Value::Null,
    });
    if !limited {
        let a = core.store.profile_activity(m.profile_id).await?;
        v["email"] = json!(m.email);
        v["attributes"] = json!(m.attributes);
        v["devices"] =
            json!({ "total": a.devices, "storage": a.storage, "authenticators": a.authenticators });
        v["lastAuthenticatedAt"] = json!(a.last_authenticated_at.map(|t| t.rfc3339()));
    }
    Ok(v)
}

/// The invitation record (§1.6).
async fn invitation_json(core: &Core, i: &Invitation) -> Result<Value, StoreError> {
    let directory = core.store.directory(i.directory_id).await?;
    let invited = core.store.profile(i.invited).await?;
    let by = core.store.profile(i.invited_by).await?;
    Ok(json!({
        "invitationId": i.id.to_string(),
        "directoryId": i.directory_id.to_string(),
        "directoryName": directory.map(|d| d.name),
        "invitedProfileId": i.invited.to_string(),
        "invitedUsername": invited.map(|p| p.username),
        "invitedBy": { "profileId": i.invited_by.to_string(), "username": by.map(|p| p.username) },
        "role": i.role.as_str(),
        "message": i.message,
        "status": i.status_at(core.config.clock.now()).as_str(),
        "createdAt": i.created_at.rfc3339(),
        "expiresAt": i.expires_at.rfc3339(),
        "processedAt": i.processed_at.map(|t| t.rfc3339()),
    }))
}

/// Effects that block a managed user's profile (§1.2): status, tokens, grants, sockets.
fn block_profile(plan: &mut Plan, profile_id: ProfileId, status: ProfileStatus, now: Timestamp) {
    plan.effects.push(effect(DirectoryEffect::SetProfileStatus {
        profile_id,
        status,
    }));
    if status != ProfileStatus::Active {
        plan.effects
            .push(Effect::Oauth(Box::new(OauthEffect::RevokeProfileGrants {
                profile_id,
                at: now,
            })));
        plan.effects.push(Effect::RevokeProfileTokens {
            profile_id,
            keep: None,
            at: now,
        });
        plan.notices.push(BusEvent::ProfileTokensEnded {
            profile_id,
            keep: None,
            code: Reason::ProfileInactive.code().into(),
        });
    }
    plan.after.push(After::ForgetProfile(profile_id));
}

/// §1.4: whether `caller` holds directory authority over `owner`'s devices: `owner` is a
/// managed user (not removed) of a directory where `caller` is an active owner or admin.
pub(crate) async fn device_authority(
    core: &Core,
    caller: ProfileId,
    owner: ProfileId,
) -> Result<bool, StoreError> {
    let Some(managed) = core.store.managed_membership(owner).await? else {
        return Ok(false);
    };
    if managed.status == MemberStatus::Removed {
        return Ok(false);
    }
    let mine = core.store.membership(managed.directory_id, caller).await?;
    Ok(dir::allowed(
        Action::ManageDevices,
        Standing::of(mine.as_ref(), false),
    ))
}

/// The managed user `target` of the directory, or the failure to report.
async fn managed_target(
    store: &dyn MetadataStore,
    directory_id: Uuid,
    target: ProfileId,
) -> Result<Result<Membership, Reason>, StoreError> {
    Ok(match store.membership(directory_id, target).await? {
        None => Err(Reason::DirectoryUserNotFound),
        Some(m) if m.kind != Kind::Managed || m.status == MemberStatus::Removed => {
            Err(Reason::DirectoryUserNotManaged)
        }
        Some(m) => Ok(m),
    })
}

pub(crate) async fn plan(core: &Core, command: &CommandRecord) -> Result<Plan, StoreError> {
    let now = core.config.clock.now();
    let store = core.store.as_ref();
    let caller = command.profile_id;
    let limits = core.config.directories;
    macro_rules! standing_or_fail {
        ($id:expr, $action:expr) => {
            match standing(store, $id, caller, now).await? {
                Err(reason) => return Ok(Plan::fail(reason)),
                Ok((d, s, m)) => {
                    if !dir::allowed($action, s) {
                        return Ok(Plan::fail(Reason::DirectoryForbidden));
                    }
                    (d, s, m)
                }
            }
        };
    }
    match &command.payload {
        CommandPayload::RegisterDirectory {
            name,
            description,
            meta,
        } => {
            let owned = store
                .owned_directories(
                    caller,
                    None,
                    Page {
                        page: 1,
                        per_page: 1,
                    },
                )
                .await?
                .1;
            if owned >= limits.owned_per_profile {
                return Ok(Plan::fail(Reason::DirectoryLimitReached));
            }
            let directory = Directory {
                id: command.id.0,
                name: name.clone(),
                description: description.clone(),
                owner: caller,
                meta: meta.clone(),
                created_at: now,
                updated_at: now,
            };
            let owner = Membership {
                directory_id: command.id.0,
                profile_id: caller,
                role: Role::Owner,
                kind: Kind::Owner,
                status: MemberStatus::Active,
                display_name: None,
                email: None,
                attributes: Map::new(),
                joined_at: now,
                updated_at: now,
            };
            Ok(Plan::succeed(
                vec![effect(DirectoryEffect::Create(directory, owner))],
                json!({ "directoryId": command.id.to_string(), "name": name }),
            ))
        }
        CommandPayload::StoreDirectoryMeta {
            directory_id,
            meta,
            replace,
        } => {
            let (d, _, _) = standing_or_fail!(*directory_id, Action::StoreMeta);
            let Ok(merged) = dir::merge_meta(&d.meta, meta.clone(), *replace) else {
                return Ok(Plan::fail(Reason::DirectoryInvalidMeta));
            };
            Ok(Plan::succeed(
                vec![effect(DirectoryEffect::SetMeta {
                    directory_id: *directory_id,
                    meta: merged.clone(),
                    at: now,
                })],
                json!({ "directoryId": directory_id.to_string(), "meta": merged }),
            ))
        }
        CommandPayload::CreateDirectoryUser {
            directory_id,
            username,
            password_hash,
            display_name,
            email,
            role,
            attributes,
            public_key,
        } => {
            let (_, s, _) = standing_or_fail!(*directory_id, Action::ManageUsers);
            if *role == Role::Admin && !dir::allowed(Action::ChangeRole, s) {
                return Ok(Plan::fail(Reason::DirectoryForbidden));
            }
            if store.directory_counts(*directory_id, now).await?.users
                >= limits.members_per_directory
            {
                return Ok(Plan::fail(Reason::DirectoryUserLimitReached));
            }
            if store.profile_by_username(username).await?.is_some() {
                return Ok(Plan::fail(Reason::ProfileUsernameTaken));
            }
            let profile_id = ProfileId(command.id.0);
            let profile = Profile {
                id: profile_id,
                username: username.clone(),
                kind: ProfileKind::DirectoryUser,
                status: ProfileStatus::Active,
                password_hash: password_hash.clone(),
                public_key: public_key.clone().map(|public_key| {
                    privicore_domain::profile::RegisteredKey {
                        public_key,
                        registered_at: now,
                    }
                }),
                created_at: now,
            };
            let member = Membership {
                directory_id: *directory_id,
                profile_id,
                role: *role,
                kind: Kind::Managed,
                status: MemberStatus::Active,
                display_name: display_name.clone(),
                email: email.clone(),
                attributes: attributes.clone(),
                joined_at: now,
                updated_at: now,
            };
            Ok(Plan::succeed(
                vec![
                    Effect::CreateProfile(profile),
                    effect(DirectoryEffect::PutMember(member)),
                ],
                json!({
                    "profileId": profile_id.to_string(),
                    "username": username,
                    "directoryId": directory_id.to_string(),
                    "role": role.as_str(),
                    "kind": "managed",
                    "passwordSet": password_hash.is_some(),
                    "publicKeyRegistered": public_key.is_some(),
                }),
            ))
        }
        CommandPayload::SetDirectoryUserPassword {
            directory_id,
            target,
            password_hash,
            revoke_tokens,
        } => {
            standing_or_fail!(*directory_id, Action::ManageUsers);
            let Some(member) = store.membership(*directory_id, *target).await? else {
                return Ok(Plan::fail(Reason::DirectoryUserNotFound));
            };
            if member.kind != Kind::Managed {
                return Ok(Plan::fail(Reason::DirectoryUserNotManaged));
            }
            let mut effects = vec![Effect::SetPassword {
                profile_id: *target,
                hash: password_hash.clone(),
            }];
            let mut revoked = 0;
            let mut notices = Vec::new();
            if *revoke_tokens {
                revoked = store.count_live_tokens(*target, None, now).await?;
                effects.push(Effect::Oauth(Box::new(OauthEffect::RevokeProfileGrants {
                    profile_id: *target,
                    at: now,
                })));
                effects.push(Effect::RevokeProfileTokens {
                    profile_id: *target,
                    keep: None,
                    at: now,
                });
                notices.push(BusEvent::ProfileTokensEnded {
                    profile_id: *target,
                    keep: None,
                    code: Reason::AuthTokenRevoked.code().into(),
                });
            }
            let mut plan = Plan::succeed(
                effects,
                json!({ "profileId": target.to_string(), "passwordSet": true, "revokedTokens": revoked }),
            );
            plan.notices = notices;
            plan.after.push(After::ForgetProfile(*target));
            Ok(plan)
        }
        CommandPayload::UpdateDirectoryUser {
            directory_id,
            target,
            display_name,
            email,
            role,
            status,
            attributes,
        } => {
            let (_, s, _) = match standing(store, *directory_id, caller, now).await? {
                Err(reason) => return Ok(Plan::fail(reason)),
                Ok(found) => found,
            };
            let Some(member) = store.membership(*directory_id, *target).await? else {
                return Ok(Plan::fail(Reason::DirectoryUserNotFound));
            };
            let update = MemberUpdate {
                display_name: display_name.clone(),
                email: email.clone(),
                role: *role,
                status: *status,
                attributes: attributes.clone(),
            };
            if let Err(reason) = may_update(caller, s, &member, &update) {
                return Ok(Plan::fail(reason));
            }
            if let Some(to) = status
                && !status_change_ok(member.status, *to)
            {
                return Ok(Plan::fail(Reason::DirectoryInvalidStatusChange));
            }
            let mut updated = member.clone();
            if let Some(v) = display_name {
                updated.display_name = v.clone();
            }
            if let Some(v) = email {
                updated.email = v.clone();
            }
            if let Some(v) = role {
                updated.role = *v;
            }
            if let Some(v) = status {
                updated.status = *v;
            }
            if let Some(v) = attributes {
                updated.attributes = v.clone();
            }
            updated.updated_at = now;
            let mut plan = Plan::succeed(
                vec![effect(DirectoryEffect::PutMember(updated.clone()))],
                Value::Null,
            );
            if member.kind == Kind::Managed
                && let Some(to) = status
                && *to != member.status
            {
                let profile_status = match to {
                    MemberStatus::Active => ProfileStatus::Active,
                    MemberStatus::Suspended => ProfileStatus::Suspended,
                    MemberStatus::Removed => ProfileStatus::Removed,
                };
                block_profile(&mut plan, *target, profile_status, now);
            }
            let record = member_json(core, &updated, false).await?;
            plan.outcome = privicore_domain::command::Outcome::Succeeded(record);
            Ok(plan)
        }
        CommandPayload::InviteToDirectory {
            directory_id,
            username,
            invited,
            role,
            message,
        } => {
            let (d, s, _) = standing_or_fail!(*directory_id, Action::ManageUsers);
            if *role == Role::Admin && !dir::allowed(Action::ChangeRole, s) {
                return Ok(Plan::fail(Reason::DirectoryForbidden));
            }
            let invitee = match (username, invited) {
                (Some(u), _) => store.profile_by_username(u).await?,
                (None, Some(id)) => store.profile(*id).await?,
                (None, None) => None,
            };
            let Some(invitee) = invitee else {
                return Ok(Plan::fail(Reason::DirectoryInviteeNotFound));
            };
            if invitee.id == caller {
                return Ok(Plan::fail(Reason::DirectoryCannotInviteSelf));
            }
            if store
                .membership(*directory_id, invitee.id)
                .await?
                .is_some_and(|m| m.status != MemberStatus::Removed)
            {
                return Ok(Plan::fail(Reason::DirectoryAlreadyMember));
            }
            let invitation = Invitation {
                id: command.id.0,
                directory_id: *directory_id,
                invited: invitee.id,
                invited_by: caller,
                role: *role,
                message: message.clone(),
                status: InvitationStatus::Pending,
                created_at: now,
                expires_at: now.plus_seconds(limits.invitation_ttl_seconds),
                processed_at: None,
            };
            let by = store.profile(caller).await?.map(|p| p.username);
            let mut plan = Plan::succeed(
                vec![effect(DirectoryEffect::Invite(invitation.clone()))],
                json!({
                    "invitationId": command.id.to_string(),
                    "directoryId": directory_id.to_string(),
                    "invitedProfileId": invitee.id.to_string(),
                    "role": role.as_str(),
                    "expiresAt": invitation.expires_at.rfc3339(),
                }),
            );
            // §1.7: the invitee's profile sockets, and app sockets holding directory:manage.
            plan.notices.push(BusEvent::Profile(ProfileEvent {
                profile_id: invitee.id,
                application_id: None,
                command_id: None,
                app_scope: Some(privicore_domain::oauth::SCOPE_DIRECTORY_MANAGE.to_owned()),
                data: json!({
                    "type": "DIRECTORY-INVITATION",
                    "id": command.id.to_string(),
                    "directoryId": directory_id.to_string(),
                    "directoryName": d.name,
                    "role": role.as_str(),
                    "invitedBy": by,
                    "expiresAt": invitation.expires_at.rfc3339(),
                }),
            }));
            Ok(plan)
        }
        CommandPayload::ProcessDirectoryInvitation {
            invitation_id,
            accept,
        } => {
            let Some(invitation) = store
                .invitation(*invitation_id)
                .await?
                .filter(|i| i.invited == caller)
            else {
                return Ok(Plan::fail(Reason::DirectoryInvitationNotFound));
            };
            match invitation.status_at(now) {
                InvitationStatus::Pending => {}
                InvitationStatus::Expired => {
                    return Ok(Plan::fail(Reason::DirectoryInvitationExpired));
                }
                _ => return Ok(Plan::fail(Reason::DirectoryInvitationNotPending)),
            }
            let status = if *accept {
                InvitationStatus::Accepted
            } else {
                InvitationStatus::Declined
            };
            let mut effects = vec![effect(DirectoryEffect::Process {
                invitation_id: *invitation_id,
                status,
                at: now,
            })];
            if *accept {
                if store
                    .membership(invitation.directory_id, caller)
                    .await?
                    .is_some_and(|m| m.status != MemberStatus::Removed)
                {
                    return Ok(Plan::fail(Reason::DirectoryAlreadyMember));
                }
                if store
                    .directory_counts(invitation.directory_id, now)
                    .await?
                    .users
                    >= limits.members_per_directory
                {
                    return Ok(Plan::fail(Reason::DirectoryUserLimitReached));
                }
                effects.push(effect(DirectoryEffect::PutMember(Membership {
                    directory_id: invitation.directory_id,
                    profile_id: caller,
                    role: invitation.role,
                    kind: Kind::Invited,
                    status: MemberStatus::Active,
                    display_name: None,
                    email: None,
                    attributes: Map::new(),
                    joined_at: now,
                    updated_at: now,
                })));
            }
            Ok(Plan::succeed(
                effects,
                json!({
                    "invitationId": invitation_id.to_string(),
                    "status": status.as_str(),
                    "directoryId": invitation.directory_id.to_string(),
                    "role": invitation.role.as_str(),
                }),
            ))
        }
        CommandPayload::CreateProfileDevice {
            directory_id,
            target,
            device_id,
            name,
            description,
            public_key,
            approve,
        } => {
            standing_or_fail!(*directory_id, Action::ManageDevices);
            if let Err(reason) = managed_target(store, *directory_id, *target).await? {
                return Ok(Plan::fail(reason));
            }
            if store.count_live_devices(*target).await? >= core.config.devices_per_profile {
                return Ok(Plan::fail(Reason::DeviceLimitReached));
            }
            let status = if *approve {
                DeviceStatus::Approved
            } else {
                DeviceStatus::Pending
            };
            let device = Device {
                id: *device_id,
                profile_id: *target,
                request_command_id: command.id,
                name: name.clone(),
                description: description.clone(),
                status,
                roles: Vec::new(),
                public_key: public_key.clone(),
                meta: Map::new(),
                credentials: None,
                created_at: now,
                approved_at: approve.then_some(now),
                removed_at: None,
                configuration_issued_at: None,
                storage_registered_at: None,
                authenticator_registered_at: None,
                last_sync: None,
            };
            let mut plan = Plan::succeed(
                vec![DataEffect::SaveDevice(device).into()],
                json!({
                    "deviceIdentifier": device_id.to_string(),
                    "profileId": target.to_string(),
                    "deviceName": name,
                    "status": status.as_str(),
                }),
            );
            plan.after.push(After::ForgetTargets(*target));
            Ok(plan)
        }
        CommandPayload::AddDirectoryStorage {
            directory_id,
            target,
            device_id,
        } => {
            standing_or_fail!(*directory_id, Action::ManageDevices);
            if let Err(reason) = managed_target(store, *directory_id, *target).await? {
                return Ok(Plan::fail(reason));
            }
            let Some(device) = store.device(*device_id).await? else {
                return Ok(Plan::fail(Reason::DeviceNotFound));
            };
            if device.profile_id != *target {
                return Ok(Plan::fail(Reason::DeviceNotOwner));
            }
            // Register storage device on the user's behalf (devices-and-storage.md §3.1).
            let mut on_behalf = command.clone();
            on_behalf.profile_id = *target;
            on_behalf.payload = CommandPayload::RegisterStorage {
                device_id: *device_id,
            };
            let id = device_id.to_string();
            let mut plan =
                crate::pipeline::devices::in_plan(core, &on_behalf, device, id.clone(), now)
                    .await?;
            if let privicore_domain::command::Outcome::Succeeded(result) = &plan.outcome {
                plan.outcome = privicore_domain::command::Outcome::Succeeded(json!({
                    "deviceIdentifier": id,
                    "profileId": target.to_string(),
                    "roles": result["roles"],
                }));
            }
            plan.after.push(After::ForgetTargets(*target));
            Ok(plan)
        }
        _ => Err(StoreError::Corrupt(format!(
            "{} is not a directory command",
            command.payload.kind()
        ))),
    }
}

/// Create Directory User as sent (§3.5), bounds checked by the edge where they are shapes.
#[derive(Debug, Clone)]
pub struct DirectoryUserInput {
    pub directory_id: Uuid,
    pub username: String,
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    pub attributes: Map<String, Value>,
    /// A signed public key (profile-and-keys.md §3.1), as sent.
    pub public_key: Option<String>,
}

/// Invite Profile as sent (§3.7).
#[derive(Debug, Clone)]
pub struct InviteInput {
    pub directory_id: Uuid,
    pub username: Option<String>,
    pub profile_id: Option<ProfileId>,
    pub role: Role,
    pub message: Option<String>,
}

impl Engine {
    /// The caller's standing, or 404 / 403 when `action` is not allowed.
    async fn require(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        action: Action,
    ) -> Result<(Directory, Standing, Option<Membership>), Error> {
        let found = standing(
            self.store.as_ref(),
            directory_id,
            caller.profile_id,
            self.config.clock.now(),
        )
        .await??;
        dir::require(action, found.1)?;
        Ok(found)
    }

    /// §3.1.
    pub async fn register_directory(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<String>,
        meta: Option<Value>,
    ) -> Result<CommandId, Error> {
        let name = dir::check_name(name)?;
        if let Some(d) = &description
            && d.chars().count() > 500
        {
            return Err(Error::out_of_range("description", "0..500 characters"));
        }
        let meta = match meta {
            Some(m) => dir::check_meta(&m)?,
            None => Map::new(),
        };
        let command = self.command_for(
            caller,
            CommandPayload::RegisterDirectory {
                name,
                description,
                meta,
            },
        );
        self.accept(command).await
    }

    /// §3.2.
    pub async fn owned_directories(
        &self,
        caller: &Caller,
        name: Option<Match>,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (rows, total) = self
            .store
            .owned_directories(caller.profile_id, name.as_ref(), page)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for d in rows {
            let mine = self.store.membership(d.id, caller.profile_id).await?;
            items.push(directory_json(self, &d, mine.as_ref()).await?);
        }
        Ok((items, total))
    }

    /// §3.3.
    pub async fn assigned_directories(
        &self,
        caller: &Caller,
        role: Option<Role>,
        status: MemberStatus,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (rows, total) = self
            .store
            .assigned_directories(caller.profile_id, role, status, page)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for (d, m) in rows {
            items.push(directory_json(self, &d, Some(&m)).await?);
        }
        Ok((items, total))
    }

    /// §3.4.
    pub async fn retrieve_directory(&self, caller: &Caller, id: Uuid) -> Result<Value, Error> {
        let (d, _, mine) = self.require(caller, id, Action::Read).await?;
        Ok(directory_json(self, &d, mine.as_ref()).await?)
    }

    /// §3.18.
    pub async fn store_directory_meta(
        &self,
        caller: &Caller,
        id: Uuid,
        meta: Value,
        replace: bool,
    ) -> Result<CommandId, Error> {
        let meta = dir::check_meta(&meta)?;
        let (d, _, _) = self.require(caller, id, Action::StoreMeta).await?;
        dir::merge_meta(&d.meta, meta.clone(), replace)?;
        let command = self.command_for(
            caller,
            CommandPayload::StoreDirectoryMeta {
                directory_id: id,
                meta,
                replace,
            },
        );
        self.accept(command).await
    }

    /// §3.5.
    pub async fn create_directory_user(
        &self,
        caller: &Caller,
        input: DirectoryUserInput,
    ) -> Result<CommandId, Error> {
        check_username(&input.username)?;
        if let Some(p) = &input.password {
            password::check_rules(&input.username, p).map_err(|e| e.with_field("password"))?;
        }
        let (_, s, _) = self
            .require(caller, input.directory_id, Action::ManageUsers)
            .await?;
        if input.role == Role::Admin {
            dir::require(Action::ChangeRole, s)?;
        }
        let public_key = input
            .public_key
            .as_deref()
            .map(privicore_wire::SignedPublicKey::parse)
            .transpose()?
            .map(|k| k.to_hex());
        let password_hash = match input.password {
            Some(p) => Some(crate::profiles::hash_password(p, self.config.hash_cost).await?),
            None => None,
        };
        let command = self.command_for(
            caller,
            CommandPayload::CreateDirectoryUser {
                directory_id: input.directory_id,
                username: input.username,
                password_hash,
                display_name: input.display_name,
                email: input.email,
                role: input.role,
                attributes: input.attributes,
                public_key,
            },
        );
        self.accept(command).await
    }

    /// §3.8.
    pub async fn set_directory_user_password(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        target: ProfileId,
        new_password: &str,
        revoke_tokens: bool,
    ) -> Result<CommandId, Error> {
        self.require(caller, directory_id, Action::ManageUsers)
            .await?;
        let profile = self
            .store
            .membership(directory_id, target)
            .await?
            .ok_or(Reason::DirectoryUserNotFound)?;
        let username = self
            .store
            .profile(profile.profile_id)
            .await?
            .map(|p| p.username)
            .unwrap_or_default();
        password::check_rules(&username, new_password).map_err(|e| e.with_field("password"))?;
        let password_hash =
            crate::profiles::hash_password(new_password.to_owned(), self.config.hash_cost).await?;
        let command = self.command_for(
            caller,
            CommandPayload::SetDirectoryUserPassword {
                directory_id,
                target,
                password_hash,
                revoke_tokens,
            },
        );
        self.accept(command).await
    }

    /// §3.6.
    pub async fn update_directory_user(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        target: ProfileId,
        update: MemberUpdate,
    ) -> Result<CommandId, Error> {
        if update.is_empty() {
            return Err(Reason::ValidationNoChanges.into());
        }
        let found = standing(
            self.store.as_ref(),
            directory_id,
            caller.profile_id,
            self.config.clock.now(),
        )
        .await??;
        let member = self.store.membership(directory_id, target).await?;
        let Some(member) = member else {
            // Outsiders learn nothing about who is a member.
            dir::require(Action::Read, found.1)?;
            return Err(Reason::DirectoryUserNotFound.into());
        };
        if let Err(reason) = may_update(caller.profile_id, found.1, &member, &update)
            && reason == Reason::DirectoryForbidden
        {
            return Err(reason.into());
        }
        let command = self.command_for(
            caller,
            CommandPayload::UpdateDirectoryUser {
                directory_id,
                target,
                display_name: update.display_name,
                email: update.email,
                role: update.role,
                status: update.status,
                attributes: update.attributes,
            },
        );
        self.accept(command).await
    }

    /// §3.7.
    pub async fn invite_profile(
        &self,
        caller: &Caller,
        input: InviteInput,
    ) -> Result<CommandId, Error> {
        if let Some(m) = &input.message
            && m.chars().count() > 500
        {
            return Err(Error::out_of_range("message", "0..500 characters"));
        }
        let (_, s, _) = self
            .require(caller, input.directory_id, Action::ManageUsers)
            .await?;
        if input.role == Role::Admin {
            dir::require(Action::ChangeRole, s)?;
        }
        let command = self.command_for(
            caller,
            CommandPayload::InviteToDirectory {
                directory_id: input.directory_id,
                username: input.username,
                invited: input.profile_id,
                role: input.role,
                message: input.message,
            },
        );
        self.accept(command).await
    }

    /// §3.9: the directory's invitations (owner, admin), or those addressed to the caller.
    pub async fn directory_invitations(
        &self,
        caller: &Caller,
        directory_id: Option<Uuid>,
        status: Option<InvitationStatus>,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let scope = match directory_id {
            Some(id) => {
                self.require(caller, id, Action::ListDirectoryInvites)
                    .await?;
                InvitationScope::Directory(id)
            }
            None => InvitationScope::Invitee(caller.profile_id),
        };
        let (rows, total) = self
            .store
            .invitations(scope, status, self.config.clock.now(), page)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for i in &rows {
            items.push(invitation_json(self, i).await?);
        }
        Ok((items, total))
    }

    /// §3.10.
    pub async fn process_invitation(
        &self,
        caller: &Caller,
        invitation_id: Uuid,
        accept: bool,
    ) -> Result<CommandId, Error> {
        self.store
            .invitation(invitation_id)
            .await?
            .filter(|i| i.invited == caller.profile_id)
            .ok_or(Reason::DirectoryInvitationNotFound)?;
        let command = self.command_for(
            caller,
            CommandPayload::ProcessDirectoryInvitation {
                invitation_id,
                accept,
            },
        );
        self.accept(command).await
    }

    /// §3.11.
    pub async fn directory_profile(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        profile: ProfileId,
    ) -> Result<Value, Error> {
        let action = if profile == caller.profile_id {
            Action::RetrieveOwnProfile
        } else {
            Action::RetrieveOtherProfile
        };
        let (_, s, _) = self.require(caller, directory_id, action).await?;
        let member = self
            .store
            .membership(directory_id, profile)
            .await?
            .ok_or(Reason::DirectoryUserNotFound)?;
        Ok(member_json(self, &member, s == Standing::Member).await?)
    }

    /// §3.12.
    pub async fn directory_users(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        filter: MemberFilter,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (_, s, _) = self.require(caller, directory_id, Action::Read).await?;
        let (rows, total) = self.store.members(directory_id, &filter, page).await?;
        let mut items = Vec::with_capacity(rows.len());
        for m in &rows {
            items.push(member_json(self, m, s == Standing::Member).await?);
        }
        Ok((items, total))
    }

    /// §3.14.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_profile_device(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        target: ProfileId,
        name: &str,
        description: Option<&str>,
        public_key: Option<&str>,
        approve: bool,
    ) -> Result<CommandId, Error> {
        if !privicore_domain::device::valid_name(name) {
            return Err(Error::new(Reason::DeviceInvalidName).with_field("deviceName"));
        }
        if let Some(d) = description {
            crate::devices::check_description(d)?;
        }
        let public_key = public_key
            .map(privicore_wire::SignedPublicKey::parse)
            .transpose()?
            .map(|k| k.to_hex());
        self.require(caller, directory_id, Action::ManageDevices)
            .await?;
        self.store
            .membership(directory_id, target)
            .await?
            .ok_or(Reason::DirectoryUserNotFound)?;
        let command = self.command_for(
            caller,
            CommandPayload::CreateProfileDevice {
                directory_id,
                target,
                device_id: DeviceId::new(),
                name: name.to_owned(),
                description: description.map(str::to_owned),
                public_key,
                approve,
            },
        );
        self.accept(command).await
    }

    /// §3.15.
    pub async fn add_directory_storage(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        target: ProfileId,
        device: &str,
    ) -> Result<CommandId, Error> {
        let device_id: DeviceId = device
            .trim()
            .parse()
            .map_err(|_| Error::invalid_format("deviceIdentifier"))?;
        self.require(caller, directory_id, Action::ManageDevices)
            .await?;
        self.store
            .membership(directory_id, target)
            .await?
            .ok_or(Reason::DirectoryUserNotFound)?;
        self.store
            .device(device_id)
            .await?
            .ok_or(Reason::DeviceNotFound)?;
        let command = self.command_for(
            caller,
            CommandPayload::AddDirectoryStorage {
                directory_id,
                target,
                device_id,
            },
        );
        self.accept(command).await
    }

    /// §3.16: devices of the directory's managed users (not removed), each with its
    /// `username`, ordered by member then device, newest device first.
    pub async fn directory_devices(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        profile: Option<ProfileId>,
        filter: DeviceFilter,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        self.require(caller, directory_id, Action::Report).await?;
        let managed = MemberFilter {
            kind: Some(Kind::Managed),
            statuses: vec![MemberStatus::Active, MemberStatus::Suspended],
            ..MemberFilter::default()
        };
        let (members, _) = self
            .store
            .members(
                directory_id,
                &managed,
                Page {
                    page: 1,
                    per_page: self.config.directories.members_per_directory.max(1),
                },
            )
            .await?;
        let mut all = Vec::new();
        for m in members
            .iter()
            .filter(|m| profile.is_none_or(|p| p == m.profile_id))
        {
            let username = self.store.profile(m.profile_id).await?.map(|p| p.username);
            let (devices, _) = self
                .store
                .list_devices(
                    m.profile_id,
                    &filter,
                    Page {
                        page: 1,
                        per_page: self.config.devices_per_profile.max(1),
                    },
                )
                .await?;
            for d in devices {
                let mut item = crate::devices::device_json(self, &d);
                item["username"] = json!(username);
                all.push(item);
            }
        }
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.per_page as usize)
            .collect();
        Ok((items, total))
    }

    /// §3.13: totals over every active member, one summary per active member of the page.
    pub async fn directory_profiles_info(
        &self,
        caller: &Caller,
        directory_id: Uuid,
        page: Page,
    ) -> Result<Value, Error> {
        self.require(caller, directory_id, Action::Report).await?;
        let active = MemberFilter {
            statuses: vec![MemberStatus::Active],
            ..MemberFilter::default()
        };
        let now = self.config.clock.now();
        let counts = self.store.directory_counts(directory_id, now).await?;
        let mut totals = json!({
            "users": counts.users, "activeUsers": counts.users,
            "withoutPublicKey": 0, "withoutPassword": 0, "withoutStorage": 0,
            "withoutAuthenticator": 0, "devices": 0, "storageDevices": 0, "authenticators": 0,
            "pendingInvitations": counts.pending_invitations,
        });
        let mut items = Vec::new();
        let mut total;
        let mut index = 0u64;
        let mut next = 1;
        loop {
            let (rows, all) = self
                .store
                .members(
                    directory_id,
                    &active,
                    Page {
                        page: next,
                        per_page: 500,
                    },
                )
                .await?;
            total = all;
            if rows.is_empty() {
                break;
            }
            for m in rows {
                let profile = self.store.profile(m.profile_id).await?;
                let a = self.store.profile_activity(m.profile_id).await?;
                let has_key = profile.as_ref().is_some_and(|p| p.public_key.is_some());
                let password = (m.kind == Kind::Managed)
                    .then(|| profile.as_ref().is_some_and(|p| p.password_hash.is_some()));
                let bump = |t: &mut Value, k: &str, n: u64| {
                    t[k] = json!(t[k].as_u64().unwrap_or(0) + n);
                };
                bump(&mut totals, "withoutPublicKey", u64::from(!has_key));
                bump(
                    &mut totals,
                    "withoutPassword",
                    u64::from(password == Some(false)),
                );
                bump(&mut totals, "withoutStorage", u64::from(a.storage == 0));
                bump(
                    &mut totals,
                    "withoutAuthenticator",
                    u64::from(a.authenticators == 0),
                );
                bump(&mut totals, "devices", a.devices);
                bump(&mut totals, "storageDevices", a.storage);
                bump(&mut totals, "authenticators", a.authenticators);
                if index >= page.offset() && index < page.offset() + page.per_page {
                    let online = self
                        .store
                        .list_devices(
                            m.profile_id,
                            &DeviceFilter::default(),
                            Page {
                                page: 1,
                                per_page: 1000,
                            },
                        )
                        .await?
                        .0
                        .iter()
                        .filter(|d| self.online(d.id))
                        .count();
                    items.push(json!({
                        "profileId": m.profile_id.to_string(),
                        "username": profile.as_ref().map(|p| p.username.clone()),
                        "role": m.role.as_str(),
                        "kind": m.kind.as_str(),
                        "publicKeyRegistered": has_key,
                        "passwordSet": password,
                        "storageDevices": a.storage,
                        "authenticators": a.authenticators,
                        "onlineDevices": online,
                        "lastAuthenticatedAt": a.last_authenticated_at.map(|t| t.rfc3339()),
                    }));
                }
                index += 1;
            }
            next += 1;
        }
        Ok(json!({
            "directoryId": directory_id.to_string(),
            "totals": totals,
            "items": items,
            "meta": { "page": page.page, "perPage": page.per_page, "total": total },
        }))
    }
}
