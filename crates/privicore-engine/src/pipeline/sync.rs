//! Synchronize device (docs/api/devices-and-storage.md §5.4): inventory, push what is missing or
//! wrong, prune what should not be there.

use super::execute::Plan;
use crate::engine::Core;
use crate::replication::push_version;
use privicore_domain::command::CommandRecord;
use privicore_domain::data_token::{Page, Replica, ReplicaState, TokenFilter, TokenStatus};
use privicore_domain::device::DeviceId;
use privicore_domain::device::SyncRecord;
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use privicore_wire::bus::{self, Versions, kind};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const PAGE_MISSES: u32 = 3;
const PUSH_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn plan(
    core: &Core,
    command: &CommandRecord,
    device_id: DeviceId,
    verify: bool,
) -> Result<Plan, StoreError> {
    let Some(device) = core.store.device(device_id).await? else {
        return Ok(Plan::fail(Reason::DeviceNotFound));
    };
    // The owner, or the directory holding authority over it (docs/api/directory.md §1.4);
    // the sync covers the device owner's tokens either way.
    if device.profile_id != command.profile_id
        && !crate::directory::device_authority(core, command.profile_id, device.profile_id).await?
    {
        return Ok(Plan::fail(Reason::DeviceNotOwner));
    }
    if !device.is_storage() {
        return Ok(Plan::fail(Reason::StorageNotRegistered));
    }
    if !core.online(device_id) {
        return Ok(Plan::fail(Reason::StorageDeviceOffline));
    }
    // Lanes run one sync of a device at a time; the claim lets acceptance refuse another.
    let Some(_running) = core.syncing.claim(&device_id.to_string()) else {
        return Ok(Plan::fail(Reason::StorageSyncInProgress));
    };
    let sync_id = command.id.to_string();
    let started_at = Timestamp::now();
    let record = |status: &str, finished: bool| DataEffect::SetDeviceSync {
        device_id,
        record: SyncRecord {
            sync_id: command.id,
            status: status.into(),
            started_at,
            finished_at: finished.then(Timestamp::now),
        },
    };
    core.apply(vec![record("running", false)])
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let interrupted = || {
        Plan::fail_with(
            Reason::StorageSyncInterrupted,
            vec![record("failed", true).into()],
        )
    };

    // 1. Inventory, page by page.
    let mut held: HashMap<(String, u32), bus::InventoryItem> = HashMap::new();
    let mut pages = core.coordinator.inventories.open(&sync_id);
    let mut cursor = None;
    let mut misses = 0;
    let capacity = loop {
        let request = bus::InventoryRequest {
            sync_id: sync_id.clone(),
            cursor: cursor.clone(),
            page_size: 1000,
            verify,
        };
        core.send(device_id, kind::INVENTORY_REQUEST, request).await;
        let page_wait = core.config.storage.inventory_page_timeout;
        match tokio::time::timeout(page_wait, pages.recv()).await {
            Ok(Some(page)) => {
                for item in page.items {
                    held.insert((item.token.clone(), item.version), item);
                }
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break page.capacity,
                }
            }
            _ => {
                misses += 1;
                if misses >= PAGE_MISSES {
                    core.coordinator.inventories.close(&sync_id);
                    return Ok(interrupted());
                }
            }
        }
    };
    core.coordinator.inventories.close(&sync_id);

    // 2. The expected set: every active token of the profile at its current version.
    let mut expected = Vec::new();
    let filter = TokenFilter {
        statuses: vec![TokenStatus::Active],
        ..TokenFilter::default()
    };
    let mut page = 1;
    loop {
        let (rows, total) = core
            .store
            .list_data_tokens(
                device.profile_id,
                &filter,
                Page {
                    page,
                    per_page: 500,
                },
            )
            .await?;
        for row in &rows {
            if let Some(v) = row.version
                && let Some(version) = core.store.token_version(&row.token, v).await?
            {
                expected.push(version);
            }
        }
        if page * 500 >= total || rows.is_empty() {
            break;
        }
        page += 1;
    }

    // 3. Push what is absent or wrong.
    let (mut checked, mut pushed, mut repaired, mut unavailable, mut bytes_pushed) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut confirmations = Vec::new();
    for version in &expected {
        checked += 1;
        let key = (version.token.clone(), version.version);
        let present = held.remove(&key);
        let healthy = present
            .as_ref()
            .is_some_and(|i| i.status == "ok" && i.sha256 == version.digest);
        if healthy {
            confirmations.push(DataEffect::SetReplica(Replica {
                token: key.0,
                version: key.1,
                device_id,
                state: ReplicaState::Confirmed,
            }));
            continue;
        }
        confirmations.push(DataEffect::SetReplica(Replica {
            token: key.0.clone(),
            version: key.1,
            device_id,
            state: ReplicaState::Pending,
        }));
        core.apply(std::mem::take(&mut confirmations))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let wait = core.coordinator.watch_store(&key.0, key.1, &[device_id]);
        if present.is_some() {
            // A wrong copy is removed first so the device stores the good one.
            core.send_delete(device_id, &key.0, Versions::List(vec![key.1]))
                .await;
        }
        // A chunk at a time from the spool or another replica, never the whole object.
        let sent = match push_version(core, version, device_id).await {
            Ok(sent) => sent,
            Err(error) => {
                core.coordinator.unwatch_store(&key.0, key.1);
                return Err(error);
            }
        };
        let stored = match sent {
            Some(_) => wait.device_answer(device_id, PUSH_WAIT).await,
            None => Some(false),
        };
        core.coordinator.unwatch_store(&key.0, key.1);
        match (stored, sent) {
            (Some(true), Some(bytes)) => {
                pushed += 1;
                bytes_pushed += bytes;
                if present.is_some() {
                    repaired += 1;
                }
            }
            (None, _) => return Ok(interrupted()),
            _ => unavailable += 1,
        }
    }

    // 4. Prune what the device holds but should not.
    let mut pruned = 0u64;
    let mut by_token: HashMap<String, Vec<u32>> = HashMap::new();
    for (token, version) in held.into_keys() {
        by_token.entry(token).or_default().push(version);
    }
    for (token, versions) in by_token {
        pruned += versions.len() as u64;
        core.send_delete(device_id, &token, Versions::List(versions))
            .await;
    }
    let complete = bus::SyncComplete {
        sync_id: sync_id.clone(),
        pushed,
        repaired,
        pruned,
        unavailable,
    };
    core.send(device_id, kind::SYNC_COMPLETE, complete).await;

    confirmations.push(record("succeeded", true));
    let effects: Vec<Effect> = confirmations.into_iter().map(Effect::from).collect();
    Ok(Plan::succeed(
        effects,
        json!({
            "syncId": sync_id,
            "objectsChecked": checked,
            "objectsPushed": pushed,
            "objectsRepaired": repaired,
            "objectsPruned": pruned,
            "objectsUnavailable": unavailable,
            "bytesPushed": bytes_pushed,
            "capacity": { "bytesUsed": capacity.bytes_used, "bytesFree": capacity.bytes_free },
        }),
    ))
}
