//! Which devices are online, and the device messages the engine sends.

use crate::engine::Core;
use privicore_domain::Timestamp;
use privicore_domain::data_token::TokenVersion;
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::ports::StoreError;
use privicore_wire::bus::{self, Capacity, Envelope, kind};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const OFFLINE_AFTER: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// None once the device was refused: offline until its next accepted message.
    at: Option<Instant>,
    at_ts: Timestamp,
}

/// Which devices talked to the engine recently, and what capacity they reported.
#[derive(Default)]
pub(crate) struct Presence {
    seen: Mutex<HashMap<DeviceId, Seen>>,
    capacity: Mutex<HashMap<DeviceId, (Capacity, Timestamp)>>,
}

impl Presence {
    pub fn touch(&self, device: DeviceId, capacity: Option<Capacity>) {
        let now = Timestamp::now();
        self.seen.lock().expect("presence lock").insert(
            device,
            Seen {
                at: Some(Instant::now()),
                at_ts: now,
            },
        );
        if let Some(c) = capacity {
            self.capacity
                .lock()
                .expect("presence lock")
                .insert(device, (c, now));
        }
    }

    /// The device is offline until its next accepted message.
    pub fn forget(&self, device: DeviceId) {
        if let Some(seen) = self.seen.lock().expect("presence lock").get_mut(&device) {
            seen.at = None;
        }
    }

    pub fn last_seen(&self, device: DeviceId) -> Option<Timestamp> {
        self.seen
            .lock()
            .expect("presence lock")
            .get(&device)
            .map(|s| s.at_ts)
    }

    pub fn capacity(&self, device: DeviceId) -> Option<(Capacity, Timestamp)> {
        self.capacity
            .lock()
            .expect("presence lock")
            .get(&device)
            .copied()
    }

    fn recent(&self, device: DeviceId) -> bool {
        self.seen
            .lock()
            .expect("presence lock")
            .get(&device)
            .and_then(|s| s.at)
            .is_some_and(|at| at.elapsed() < OFFLINE_AFTER)
    }
}

impl Core {
    /// Online: a live bus connection and a message within the last 90 s (§5.6).
    pub(crate) fn online(&self, device: DeviceId) -> bool {
        self.devices.connected(&device.to_string()) && self.presence.recent(device)
    }

    pub(crate) async fn send(
        &self,
        device: DeviceId,
        kind: &str,
        body: impl serde::Serialize + Send + Sync + 'static,
    ) {
        let id = device.to_string();
        if let Err(error) = self
            .devices
            .send(&id, Envelope::new(kind, &id, None, body))
            .await
        {
            tracing::warn!(%device, %error, "could not send to a device");
        }
    }

    /// The approved storage devices of a profile (reused for a second unless a device
    /// command of the profile ends first).
    pub(crate) async fn storage_targets(
        &self,
        profile: privicore_domain::ProfileId,
    ) -> Result<Vec<DeviceId>, StoreError> {
        if let Some(devices) = self.targets.get(profile) {
            return Ok(devices);
        }
        let devices: Vec<DeviceId> = self
            .store
            .storage_devices(Some(profile))
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        self.targets.put(profile, devices.clone());
        Ok(devices)
    }

    /// True when the profile has storage devices and every one is online: only then is a
    /// replication expected to finish within a device round trip.
    pub(crate) async fn targets_online(
        &self,
        profile: privicore_domain::ProfileId,
    ) -> Result<bool, StoreError> {
        let targets = self.storage_targets(profile).await?;
        Ok(!targets.is_empty() && targets.iter().all(|d| self.online(*d)))
    }

    /// Sends every chunk of one object version to each of `devices`; a chunk is copied
    /// once and shared by every device's message.
    pub(crate) async fn send_object(
        &self,
        devices: &[DeviceId],
        version: &TokenVersion,
        chunks: &[Vec<u8>],
    ) {
        let transfers: Vec<String> = devices
            .iter()
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        for (i, data) in chunks.iter().enumerate() {
            let data = bytes::Bytes::copy_from_slice(data);
            for (device, transfer_id) in devices.iter().zip(&transfers) {
                let body = store_chunk(version, transfer_id, i as u32, data.clone());
                self.send(*device, kind::STORE_CHUNK, body).await;
            }
        }
    }

    pub(crate) async fn send_delete(&self, device: DeviceId, token: &str, versions: bus::Versions) {
        let body = bus::Delete {
            delete_id: uuid::Uuid::new_v4().to_string(),
            token: token.to_owned(),
            versions,
        };
        self.send(device, kind::DELETE, body).await;
    }

    pub(crate) async fn send_roles(&self, device: &Device) {
        self.send(
            device.id,
            kind::ROLES_CHANGED,
            bus::Roles {
                roles: device.roles.clone(),
            },
        )
        .await;
    }

    pub(crate) async fn revoke_device(&self, device: DeviceId, reason: &str) {
        self.send(
            device,
            kind::REVOKED,
            bus::Reason {
                reason: reason.into(),
            },
        )
        .await;
        // Give the notice a moment to leave before the connection goes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.devices.disconnect(&device.to_string()).await;
    }
}

/// The `storage.store_chunk` body of chunk `index` of `version` in transfer `transfer_id`.
pub(crate) fn store_chunk(
    version: &TokenVersion,
    transfer_id: &str,
    index: u32,
    data: bytes::Bytes,
) -> bus::StoreChunk {
    bus::StoreChunk {
        transfer_id: transfer_id.to_owned(),
        token: version.token.clone(),
        version: version.version,
        chunk_index: index,
        chunk_count: version.chunk_count,
        total_size: version.total_size,
        sha256: version.digest.clone(),
        header: version.header.clone(),
        data,
    }
}
