//! The engine inbox: every message devices send (docs/api/devices-and-storage.md §6.5, §6.6).

use crate::engine::Core;
use crate::workers::Worker;
use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use privicore_domain::data_token::{ReplicaState, TokenVersion};
use privicore_domain::device::{DeviceId, DeviceStatus};
use privicore_domain::effect::DataEffect;
use privicore_domain::{Reason, Timestamp};
use privicore_wire::SignedPublicKey;
use privicore_wire::bus::{self, Envelope, kind};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Device messages handled at once; the next waits in the inbox until one is done.
const HANDLING_AT_ONCE: usize = 1024;

pub(crate) struct InboxWorker {
    core: Arc<Core>,
    inbox: BoxStream<'static, Envelope>,
    handling: Arc<Semaphore>,
}

impl InboxWorker {
    pub fn new(core: Arc<Core>, inbox: BoxStream<'static, Envelope>) -> Self {
        Self {
            core,
            inbox,
            handling: Arc::new(Semaphore::new(HANDLING_AT_ONCE)),
        }
    }
}

#[async_trait]
impl Worker for InboxWorker {
    fn name(&self) -> String {
        "device-inbox".into()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        loop {
            let env = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = self.inbox.next() => match next {
                    Some(env) => env,
                    None => return Ok(()),
                },
            };
            // Fetched chunks must stay in order: routed here, in memory. Everything else
            // writes to the store and runs concurrently, so writes share group commits.
            if matches!(
                env.kind.as_str(),
                kind::FETCH_CHUNK | kind::FETCH_FAILED | kind::INVENTORY
            ) {
                if let Err(error) = handle(&self.core, env).await {
                    tracing::warn!(%error, "device message not handled");
                }
                continue;
            }
            let permit = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                permit = self.handling.clone().acquire_owned() => permit.map_err(|e| e.to_string())?,
            };
            let core = self.core.clone();
            tokio::spawn(async move {
                if let Err(error) = handle(&core, env).await {
                    tracing::warn!(%error, "device message not handled");
                }
                drop(permit);
            });
        }
    }
}

async fn reply(
    core: &Core,
    to: &Envelope,
    kind: &str,
    body: impl serde::Serialize + Send + Sync + 'static,
) {
    let env = Envelope::new(kind, &to.device_identifier, Some(&to.message_id), body);
    if let Err(error) = core.devices.send(&to.device_identifier, env).await {
        tracing::warn!(%error, "could not answer a device");
    }
}

async fn handle(core: &Core, env: Envelope) -> Result<(), privicore_domain::Error> {
    let Ok(device_id) = env.device_identifier.parse::<DeviceId>() else {
        return Ok(());
    };
    if env.v != bus::PROTOCOL_VERSION {
        reply(
            core,
            &env,
            kind::REJECTED,
            bus::Reason {
                reason: Reason::BusUnsupportedVersion.code().into(),
            },
        )
        .await;
        return Ok(());
    }
    match env.kind.as_str() {
        kind::HELLO => hello(core, device_id, &env).await?,
        kind::HEARTBEAT => {
            let capacity = env.body::<bus::Heartbeat>().map(|h| h.capacity);
            core.presence.touch(device_id, capacity);
        }
        kind::STORED => {
            core.presence.touch(device_id, None);
            if let Some(s) = env.body::<bus::Stored>() {
                stored(core, device_id, s).await?;
            }
        }
        kind::STORE_FAILED => {
            core.presence.touch(device_id, None);
            if let Some(f) = env.body::<bus::StoreFailed>() {
                tracing::warn!(device = %device_id, token = %f.token, reason = %f.reason, "device could not store an object");
                if core
                    .coordinator
                    .offer_answer(&f.token, f.version, device_id, None)
                {
                    return Ok(());
                }
                core.coordinator
                    .store_result(&f.token, f.version, device_id, false);
                let mark = DataEffect::TransitionReplica {
                    token: f.token,
                    version: f.version,
                    device_id,
                    from: vec![ReplicaState::Pending],
                    to: ReplicaState::Missing,
                };
                core.apply(vec![mark]).await?;
            }
        }
        kind::FETCH_CHUNK | kind::FETCH_FAILED => {
            core.presence.touch(device_id, None);
            if let Some(fetch_id) = env.fetch_id() {
                core.coordinator.fetches.deliver(&fetch_id, env);
            }
        }
        kind::INVENTORY => {
            core.presence.touch(device_id, None);
            if let Some(page) = env.body::<bus::Inventory>() {
                core.presence.touch(device_id, Some(page.capacity));
                let sync_id = page.sync_id.clone();
                core.coordinator.inventories.deliver(&sync_id, page);
            }
        }
        kind::DELETED => {
            core.presence.touch(device_id, None);
            if let Some(d) = env.body::<bus::Deleted>() {
                core.apply(vec![DataEffect::DropReplicas {
                    token: d.token,
                    device_id,
                }])
                .await?;
            }
        }
        bus::ballots::VOTE => {
            core.presence.touch(device_id, None);
            let result =
                crate::voting::bus_vote(core, device_id, env.body::<bus::ballots::Vote>()).await?;
            reply(core, &env, bus::ballots::VOTE_RESULT, result).await;
        }
        _ => core.presence.touch(device_id, None),
    }
    Ok(())
}

/// Authenticates the device, pins its key, answers the welcome, and re-sends what it missed.
async fn hello(
    core: &Core,
    device_id: DeviceId,
    env: &Envelope,
) -> Result<(), privicore_domain::Error> {
    let reject = |reason: Reason| bus::Reason {
        reason: reason.code().into(),
    };
    let Some(mut device) = core.store.device(device_id).await? else {
        reply(core, env, kind::REJECTED, reject(Reason::DeviceNotFound)).await;
        return Ok(());
    };
    match device.status {
        DeviceStatus::Approved => {}
        DeviceStatus::Removed => {
            reply(core, env, kind::REJECTED, reject(Reason::DeviceInactive)).await;
            return Ok(());
        }
        _ => {
            reply(core, env, kind::REJECTED, reject(Reason::DeviceNotApproved)).await;
            return Ok(());
        }
    }
    let Some(hello) = env.body::<bus::Hello>() else {
        return Ok(());
    };
    let Ok(key) = SignedPublicKey::parse(&hello.public_key) else {
        reply(
            core,
            env,
            kind::REJECTED,
            reject(Reason::DevicePublicKeyMismatch),
        )
        .await;
        return Ok(());
    };
    match &device.public_key {
        Some(pinned) if *pinned != key.to_hex() => {
            tracing::warn!(device = %device_id, "hello with a key other than the pinned one");
            reply(
                core,
                env,
                kind::REJECTED,
                reject(Reason::DevicePublicKeyMismatch),
            )
            .await;
            lost_identity(core, device_id).await?;
            return Ok(());
        }
        Some(_) => {}
        None => {
            device.public_key = Some(key.to_hex());
            // Targeted, so it never races a device command's row update.
            core.apply(vec![DataEffect::PinDeviceKey {
                device_id,
                public_key: key.to_hex(),
            }])
            .await?;
        }
    }
    core.presence.touch(device_id, Some(hello.capacity));
    let pair = core
        .cab
        .key_pair()
        .ok_or_else(|| privicore_domain::Error::internal("unreadable engine key"))?;
    let k_dc = bus::channel_key(&pair.diffie_hellman(&key), &env.device_identifier);
    let welcome = bus::Welcome {
        device_identifier: env.device_identifier.clone(),
        profile_id: device.profile_id.to_string(),
        roles: device.roles.clone(),
        chunk_size: core.config.storage.chunk_size,
        heartbeat_interval: 30,
        server_time: Timestamp::now().rfc3339(),
        engine_key_id: core.cab.key_id.clone(),
        key_confirmation: bus::key_confirmation(&k_dc, &env.device_identifier, &env.message_id),
    };
    reply(core, env, kind::WELCOME, welcome).await;
    // Open ballots follow every welcome; the device deduplicates them by ballotId.
    crate::voting::resend_ballots(core, &device).await?;

    // Catch up: pending objects still in the spool (or held in memory), and deletions not
    // yet confirmed.
    for replica in core.store.device_replicas(device_id).await? {
        match replica.state {
            ReplicaState::Pending => {
                let version = core
                    .store
                    .token_version(&replica.token, replica.version)
                    .await?;
                // A large version goes from the spool a chunk at a time, never whole.
                if let Some(v) = version.as_ref().filter(|v| v.chunk_count > 1) {
                    if let Err(error) = crate::streams::fan_out(core, &[device_id], v).await {
                        tracing::warn!(%device_id, token = %v.token, %error, "could not catch a device up from the spool");
                    }
                    continue;
                }
                let chunks = match core.store.spool(&replica.token, replica.version).await? {
                    Some(chunks) => Some(chunks),
                    None => core
                        .coordinator
                        .held_object(&replica.token, replica.version)
                        .map(|(_, chunks)| chunks),
                };
                if let (Some(v), Some(chunks)) = (version, chunks) {
                    core.send_object(&[device_id], &v, &chunks).await;
                }
            }
            ReplicaState::Deleting => {
                core.send_delete(
                    device_id,
                    &replica.token,
                    bus::Versions::List(vec![replica.version]),
                )
                .await;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A device that says hello with a key other than the pinned one is not the device that
/// stored its replicas (its data directory was replaced, or someone else holds its
/// credentials): the connection is closed (§6.5), the device shows offline, and what it
/// confirmed counts as `missing` until a synchronization after the bundle is reissued.
async fn lost_identity(core: &Core, device_id: DeviceId) -> Result<(), privicore_domain::Error> {
    core.devices.disconnect(&device_id.to_string()).await;
    core.presence.forget(device_id);
    let marks: Vec<DataEffect> = core
        .store
        .device_replicas(device_id)
        .await?
        .into_iter()
        .filter(|r| r.state == ReplicaState::Confirmed)
        .map(|r| DataEffect::TransitionReplica {
            token: r.token,
            version: r.version,
            device_id,
            from: vec![ReplicaState::Confirmed],
            to: ReplicaState::Missing,
        })
        .collect();
    if !marks.is_empty() {
        tracing::warn!(device = %device_id, replicas = marks.len(), "replicas of a device with a new key are missing");
        core.apply(marks).await?;
    }
    Ok(())
}

/// Whether the engine asked `device` to store this version: its replica row is `pending`
/// or, while the version is not committed (a command writes its targets' rows with its
/// commit), the device is a storage target of the token's profile.
async fn asked(
    core: &Core,
    device: DeviceId,
    version: &TokenVersion,
) -> Result<bool, privicore_domain::Error> {
    let rows = core
        .store
        .replicas(&version.token, Some(version.version))
        .await?;
    if let Some(row) = rows.iter().find(|r| r.device_id == device) {
        return Ok(row.state == ReplicaState::Pending);
    }
    if version.committed {
        return Ok(false);
    }
    let Some(token) = core.store.data_token(&version.token).await? else {
        return Ok(false);
    };
    Ok(core
        .storage_targets(token.profile_id)
        .await?
        .contains(&device))
}

async fn stored(
    core: &Core,
    device_id: DeviceId,
    s: bus::Stored,
) -> Result<(), privicore_domain::Error> {
    // A waiting exchange records the confirmation with its own commit.
    if core
        .coordinator
        .offer_answer(&s.token, s.version, device_id, Some(&s.sha256))
    {
        return Ok(());
    }
    let Some(version) = core.store.token_version(&s.token, s.version).await? else {
        return Ok(());
    };
    if !asked(core, device_id, &version).await? {
        tracing::debug!(device = %device_id, token = %s.token, "ignoring a confirmation of an object the device was not asked to store");
        return Ok(());
    }
    let ok = version.digest == s.sha256;
    if !ok {
        tracing::warn!(device = %device_id, token = %s.token, "device stored an object with another digest");
    }
    // The waiting exchange only needs to know; it records the confirmation with its commit.
    core.coordinator
        .store_result(&s.token, s.version, device_id, ok);
    // Batched, and after any spool write queued for the version, so the drop finds it.
    let late = &core.coordinator.late;
    late.push(crate::replication::late_mark(
        &s.token, s.version, device_id, ok,
    ));
    // Once every target has it, the spool copy is no longer needed.
    if ok && version.committed {
        late.push(DataEffect::DropSettledSpool {
            token: s.token,
            version: s.version,
        });
    }
    Ok(())
}
