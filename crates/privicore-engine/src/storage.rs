//! Storage endpoints (docs/api/devices-and-storage.md §3).

use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandPayload, Outcome};
use privicore_domain::data_token::{Page, ReplicaState};
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use serde_json::{Value, json};

pub struct StorageDeviceItem(pub Value);

impl Engine {
    pub async fn register_storage(
        &self,
        caller: &Caller,
        device: &str,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::RegisterStorage {
            device_id: device.id,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    pub async fn remove_storage(
        &self,
        caller: &Caller,
        device: &str,
        force: bool,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::RemoveStorage {
            device_id: device.id,
            force,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    pub async fn sync_device(
        &self,
        caller: &Caller,
        device: &str,
        verify: bool,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::SyncDevice {
            device_id: device.id,
            verify,
        };
        let command = self.command_for(caller, payload);
        if self.syncing.is_held(&device.id.to_string()) {
            let refused = Outcome::Failed(Reason::StorageSyncInProgress.code().into());
            return self
                .finish_at_acceptance(command, Vec::new(), refused)
                .await;
        }
        self.accept(command).await
    }

    /// Devices holding the storage role, with replica counts and reported capacity.
    pub async fn list_storage_devices(
        &self,
        caller: &Caller,
        online: Option<bool>,
        page: Page,
    ) -> Result<(Vec<StorageDeviceItem>, u64), Error> {
        let mut devices = self.store.storage_devices(Some(caller.profile_id)).await?;
        devices.reverse();
        if let Some(want) = online {
            devices.retain(|d| self.online(d.id) == want);
        }
        let total = devices.len() as u64;
        let mut items = Vec::new();
        for d in devices
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.per_page as usize)
        {
            let replicas = self.store.device_replicas(d.id).await?;
            let count = |s: ReplicaState| replicas.iter().filter(|r| r.state == s).count();
            let capacity = self.presence.capacity(d.id).map(|(c, at)| {
                json!({ "bytesUsed": c.bytes_used, "bytesFree": c.bytes_free, "reportedAt": at.rfc3339() })
            });
            items.push(StorageDeviceItem(json!({
                "deviceIdentifier": d.id.to_string(),
                "name": d.name,
                "status": d.status.as_str(),
                "roles": d.roles,
                "online": self.online(d.id),
                "lastSeenAt": self.presence.last_seen(d.id).map(Timestamp::rfc3339),
                "registeredAt": d.storage_registered_at.map(Timestamp::rfc3339),
                "replicas": {
                    "confirmed": count(ReplicaState::Confirmed),
                    "pending": count(ReplicaState::Pending),
                    "missing": count(ReplicaState::Missing),
                },
                "capacity": capacity,
                "lastSync": d.last_sync.as_ref().map(|s| json!({
                    "syncId": s.sync_id.to_string(),
                    "status": s.status,
                    "startedAt": s.started_at.rfc3339(),
                    "finishedAt": s.finished_at.map(Timestamp::rfc3339),
                })),
            })));
        }
        Ok((items, total))
    }
}
