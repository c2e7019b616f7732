//! Device and storage commands (docs/api/devices-and-storage.md §2, §3).

use super::execute::{After, Plan};
use crate::engine::Core;
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::data_token::ReplicaState;
use privicore_domain::device::{Device, DeviceStatus, ROLE_AUTHENTICATOR, ROLE_STORAGE};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use serde_json::{Map, json};

fn save(device: &Device) -> Vec<Effect> {
    vec![DataEffect::SaveDevice(device.clone()).into()]
}

/// Whether the device holds the only confirmed replica of some active token's current version.
async fn holds_last_replica(core: &Core, device: &Device) -> Result<bool, StoreError> {
    for replica in core.store.device_replicas(device.id).await? {
        if replica.state != ReplicaState::Confirmed {
            continue;
        }
        let Some(token) = core.store.data_token(&replica.token).await? else {
            continue;
        };
        if token.version != Some(replica.version)
            || token.status != privicore_domain::data_token::TokenStatus::Active
        {
            continue;
        }
        if core
            .store
            .replica_counts(&replica.token, replica.version)
            .await?
            .confirmed
            <= 1
        {
            return Ok(true);
        }
    }
    Ok(false)
}

pub(crate) async fn plan(
    core: &Core,
    command: &CommandRecord,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let store = core.store.as_ref();
    if let CommandPayload::RequestDevice {
        device_id,
        name,
        description,
        public_key,
    } = &command.payload
    {
        if store.count_live_devices(command.profile_id).await? >= core.config.devices_per_profile {
            return Ok(Plan::fail(Reason::DeviceLimitReached));
        }
        let device = Device {
            id: *device_id,
            profile_id: command.profile_id,
            request_command_id: command.id,
            name: name.clone(),
            description: description.clone(),
            status: DeviceStatus::Pending,
            roles: Vec::new(),
            public_key: public_key.clone(),
            meta: Map::new(),
            credentials: None,
            created_at: now,
            approved_at: None,
            removed_at: None,
            configuration_issued_at: None,
            storage_registered_at: None,
            authenticator_registered_at: None,
            last_sync: None,
        };
        return Ok(Plan::succeed(
            save(&device),
            json!({ "deviceIdentifier": device_id.to_string(), "deviceName": name, "status": "pending" }),
        ));
    }
    let device_id = match &command.payload {
        CommandPayload::ApproveDevice { device_id }
        | CommandPayload::RejectDevice { device_id }
        | CommandPayload::ConfigureDevice { device_id, .. }
        | CommandPayload::RemoveDevice { device_id, .. }
        | CommandPayload::RegisterStorage { device_id }
        | CommandPayload::RemoveStorage { device_id, .. } => *device_id,
        _ => return Err(StoreError::Corrupt("not a device command".into())),
    };
    let Some(device) = store.device(device_id).await? else {
        return Ok(Plan::fail(Reason::DeviceNotFound));
    };
    let foreign = device.profile_id != command.profile_id;
    if foreign
        && !crate::directory::device_authority(core, command.profile_id, device.profile_id).await?
    {
        return Ok(Plan::fail(Reason::DeviceNotOwner));
    }
    let owner = device.profile_id;
    let id = device.id.to_string();
    let mut plan = in_plan(core, command, device, id, now).await?;
    if foreign {
        plan.after.push(After::ForgetTargets(owner));
    }
    Ok(plan)
}

/// A device command on `device`, whose ownership (or directory authority) was checked.
pub(crate) async fn in_plan(
    core: &Core,
    command: &CommandRecord,
    mut device: Device,
    id: String,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    match &command.payload {
        CommandPayload::ApproveDevice { .. } => {
            if device.status != DeviceStatus::Pending {
                return Ok(Plan::fail(Reason::DeviceInvalidState));
            }
            device.status = DeviceStatus::Approved;
            device.approved_at = Some(now);
            Ok(Plan::succeed(
                save(&device),
                json!({ "deviceIdentifier": id, "status": "approved", "approvedAt": now.rfc3339() }),
            ))
        }
        CommandPayload::RejectDevice { .. } => {
            if device.status != DeviceStatus::Pending {
                return Ok(Plan::fail(Reason::DeviceInvalidState));
            }
            device.status = DeviceStatus::Rejected;
            Ok(Plan::succeed(
                save(&device),
                json!({ "deviceIdentifier": id, "status": "rejected" }),
            ))
        }
        CommandPayload::ConfigureDevice {
            name,
            description,
            meta,
            ..
        } => {
            if !matches!(
                device.status,
                DeviceStatus::Pending | DeviceStatus::Approved
            ) {
                return Ok(Plan::fail(Reason::DeviceInvalidState));
            }
            if let Some(n) = name {
                device.name = n.clone();
            }
            if let Some(d) = description {
                device.description = d.clone().filter(|d| !d.is_empty());
            }
            if let Some(m) = meta {
                device.meta = m.clone();
            }
            Ok(Plan::succeed(
                save(&device),
                json!({ "deviceIdentifier": id, "name": device.name, "description": device.description, "meta": device.meta }),
            ))
        }
        CommandPayload::RemoveDevice { force, .. } => {
            if !matches!(
                device.status,
                DeviceStatus::Pending | DeviceStatus::Approved
            ) {
                return Ok(Plan::fail(Reason::DeviceInvalidState));
            }
            if !force && holds_last_replica(core, &device).await? {
                return Ok(Plan::fail(Reason::StorageLastReplica));
            }
            if !force
                && device.has_role(ROLE_AUTHENTICATOR)
                && crate::governance::required_by_active_policy(core, &device).await?
            {
                return Ok(Plan::fail(Reason::AuthenticatorRequiredByActivePolicy));
            }
            let dropped = std::mem::take(&mut device.roles);
            device.status = DeviceStatus::Removed;
            device.removed_at = Some(now);
            device.credentials = None;
            let mut effects = save(&device);
            effects.push(
                DataEffect::ClearDeviceCredentials {
                    device_id: device.id,
                }
                .into(),
            );
            effects.push(
                DataEffect::DetachReplicas {
                    device_id: device.id,
                }
                .into(),
            );
            let mut plan = Plan::succeed(
                effects,
                json!({ "deviceIdentifier": id, "status": "removed", "removedAt": now.rfc3339(), "rolesDropped": dropped }),
            );
            plan.after = vec![
                After::Unhost(device.id),
                After::Revoke(device.id, "removed"),
            ];
            Ok(plan)
        }
        CommandPayload::RegisterStorage { .. } => {
            match device.status {
                DeviceStatus::Approved => {}
                DeviceStatus::Removed => return Ok(Plan::fail(Reason::DeviceInactive)),
                _ => return Ok(Plan::fail(Reason::DeviceNotApproved)),
            }
            if device.has_role(ROLE_STORAGE) {
                return Ok(Plan::fail(Reason::StorageAlreadyRegistered));
            }
            device.roles.push(ROLE_STORAGE.into());
            device.storage_registered_at = Some(now);
            let mut plan = Plan::succeed(
                save(&device),
                json!({ "deviceIdentifier": id, "roles": device.roles, "registeredAt": now.rfc3339() }),
            );
            plan.after = vec![After::SendRoles(device.clone()), After::Host(device)];
            Ok(plan)
        }
        CommandPayload::RemoveStorage { force, .. } => {
            if !device.has_role(ROLE_STORAGE) {
                return Ok(Plan::fail(Reason::StorageNotRegistered));
            }
            if !force && holds_last_replica(core, &device).await? {
                return Ok(Plan::fail(Reason::StorageLastReplica));
            }
            device.roles.retain(|r| r != ROLE_STORAGE);
            let mut effects = save(&device);
            effects.push(
                DataEffect::DetachReplicas {
                    device_id: device.id,
                }
                .into(),
            );
            let mut plan = Plan::succeed(
                effects,
                json!({ "deviceIdentifier": id, "roles": device.roles }),
            );
            plan.after = vec![After::SendRoles(device.clone()), After::Unhost(device.id)];
            Ok(plan)
        }
        _ => Err(StoreError::Corrupt("not a device command".into())),
    }
}
