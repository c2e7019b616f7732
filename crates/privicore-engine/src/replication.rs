//! Replication (devices-and-storage.md §5): fan-out of sealed objects to the storage devices,
//! the write quorum, retrieval from the first replica whose chunks authenticate, deletion
//! dispatch, and presence.

use crate::engine::Core;
use privicore_domain::Timestamp;
use privicore_domain::data_token::{ReplicaState, TokenVersion};
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::envelope::{Header, Opener};
use privicore_domain::ports::StoreError;
use privicore_wire::bus::{self, Capacity, Envelope, kind};
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};

const OFFLINE_AFTER: Duration = Duration::from_secs(90);

#[derive(Default)]
struct Confirmations {
    confirmed: HashSet<DeviceId>,
    failed: HashSet<DeviceId>,
    /// Set while an exchange waits and will record confirmations with its own commit:
    /// the expected digest. Cleared (closed) once it took its final count.
    absorbing: Option<String>,
}

#[derive(Default)]
pub(crate) struct StoreWait {
    state: Mutex<Confirmations>,
    notify: Notify,
}

impl StoreWait {
    /// Waits until `device` answered for this object; `Some(true)` when it stored it.
    pub(crate) async fn device_answer(&self, device: DeviceId, timeout: Duration) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.state.lock().expect("wait lock");
                if st.confirmed.contains(&device) {
                    return Some(true);
                }
                if st.failed.contains(&device) {
                    return Some(false);
                }
            }
            tokio::time::timeout_at(deadline, notified).await.ok()?;
        }
    }
}

/// Routes device answers to the commands waiting for them.
#[derive(Default)]
pub(crate) struct Coordinator {
    stores: Mutex<HashMap<(String, u32), Arc<StoreWait>>>,
    fetches: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    inventories: Mutex<HashMap<String, mpsc::UnboundedSender<bus::Inventory>>>,
    missing: AtomicU64,
}

impl Coordinator {
    pub(crate) fn watch_store(&self, token: &str, version: u32) -> Arc<StoreWait> {
        self.stores
            .lock()
            .expect("coordinator lock")
            .entry((token.to_owned(), version))
            .or_default()
            .clone()
    }

    /// Like `watch_store`, for a command that records the confirmations it counts with its
    /// own commit, so the inbox need not write each one.
    fn watch_commit(&self, token: &str, version: u32, digest: &str) -> Arc<StoreWait> {
        let wait = self.watch_store(token, version);
        wait.state.lock().expect("wait lock").absorbing = Some(digest.to_owned());
        wait
    }

    /// Hands a device's `storage.stored` to a waiting exchange that will record it; false
    /// when none is waiting any more (the caller records it).
    pub(crate) fn offer_stored(
        &self,
        token: &str,
        version: u32,
        device: DeviceId,
        sha256: &str,
    ) -> bool {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .get(&(token.to_owned(), version))
            .cloned();
        let Some(wait) = wait else { return false };
        let mut st = wait.state.lock().expect("wait lock");
        let Some(expected) = &st.absorbing else {
            return false;
        };
        if expected == sha256 {
            st.confirmed.insert(device);
        } else {
            tracing::warn!(%device, token, "device stored an object with another digest");
            st.failed.insert(device);
        }
        drop(st);
        wait.notify.notify_waiters();
        true
    }

    /// Closes an absorbing wait and forgets it; the devices it counted as confirmed.
    fn stop_absorbing(&self, token: &str, version: u32) -> Option<Vec<DeviceId>> {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .remove(&(token.to_owned(), version))?;
        let mut st = wait.state.lock().expect("wait lock");
        st.absorbing = None;
        Some(st.confirmed.iter().copied().collect())
    }

    pub(crate) fn unwatch_store(&self, token: &str, version: u32) {
        self.stores
            .lock()
            .expect("coordinator lock")
            .remove(&(token.to_owned(), version));
    }

    pub fn store_result(&self, token: &str, version: u32, device: DeviceId, ok: bool) {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .get(&(token.to_owned(), version))
            .cloned();
        if let Some(wait) = wait {
            let mut st = wait.state.lock().expect("wait lock");
            if ok {
                st.confirmed.insert(device);
            } else {
                st.failed.insert(device);
            }
            drop(st);
            wait.notify.notify_waiters();
        }
    }

    fn open_fetch(&self, fetch_id: &str) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.fetches
            .lock()
            .expect("coordinator lock")
            .insert(fetch_id.to_owned(), tx);
        rx
    }

    fn close_fetch(&self, fetch_id: &str) {
        self.fetches
            .lock()
            .expect("coordinator lock")
            .remove(fetch_id);
    }

    pub fn fetch_message(&self, fetch_id: &str, env: Envelope) {
        if let Some(tx) = self.fetches.lock().expect("coordinator lock").get(fetch_id) {
            let _ = tx.send(env);
        }
    }

    pub(crate) fn open_inventory(&self, sync_id: &str) -> mpsc::UnboundedReceiver<bus::Inventory> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inventories
            .lock()
            .expect("coordinator lock")
            .insert(sync_id.to_owned(), tx);
        rx
    }

    pub(crate) fn close_inventory(&self, sync_id: &str) {
        self.inventories
            .lock()
            .expect("coordinator lock")
            .remove(sync_id);
    }

    pub fn inventory_page(&self, page: bus::Inventory) {
        if let Some(tx) = self
            .inventories
            .lock()
            .expect("coordinator lock")
            .get(&page.sync_id)
        {
            let _ = tx.send(page);
        }
    }

    pub fn missing_count(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
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
                at: Instant::now(),
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
            .is_some_and(|s| s.at.elapsed() < OFFLINE_AFTER)
    }
}

impl Core {
    /// Online: a live bus connection and a message within the last 90 s (§5.6).
    pub(crate) fn online(&self, device: DeviceId) -> bool {
        self.devices.connected(&device.to_string()) && self.presence.recent(device)
    }

    pub(crate) async fn send(&self, device: DeviceId, kind: &str, body: &impl serde::Serialize) {
        let id = device.to_string();
        if let Err(error) = self
            .devices
            .send(&id, Envelope::new(kind, &id, None, body))
            .await
        {
            tracing::warn!(%device, %error, "could not send to a device");
        }
    }

    /// Sends every chunk of one object version to a device.
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

    pub(crate) async fn send_object(
        &self,
        device: DeviceId,
        version: &TokenVersion,
        chunks: &[Vec<u8>],
    ) {
        let transfer_id = uuid::Uuid::new_v4().to_string();
        for (i, data) in chunks.iter().enumerate() {
            let body = bus::StoreChunk {
                transfer_id: transfer_id.clone(),
                token: version.token.clone(),
                version: version.version,
                chunk_index: i as u32,
                chunk_count: version.chunk_count,
                total_size: version.total_size,
                sha256: version.digest.clone(),
                header: version.header.clone(),
                data: data.clone(),
            };
            self.send(device, kind::STORE_CHUNK, &body).await;
        }
    }

    pub(crate) async fn send_delete(&self, device: DeviceId, token: &str, versions: bus::Versions) {
        let body = bus::Delete {
            delete_id: uuid::Uuid::new_v4().to_string(),
            token: token.to_owned(),
            versions,
        };
        self.send(device, kind::DELETE, &body).await;
    }

    pub(crate) async fn send_roles(&self, device: &Device) {
        self.send(
            device.id,
            kind::ROLES_CHANGED,
            &bus::Roles {
                roles: device.roles.clone(),
            },
        )
        .await;
    }

    pub(crate) async fn revoke_device(&self, device: DeviceId, reason: &str) {
        self.send(
            device,
            kind::REVOKED,
            &bus::Reason {
                reason: reason.into(),
            },
        )
        .await;
        // Give the notice a moment to leave before the connection goes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.devices.disconnect(&device.to_string()).await;
    }
}

pub(crate) enum Replicated {
    Committed {
        /// Devices known to hold the object; their replicas become `confirmed` with the commit.
        devices: Vec<DeviceId>,
        /// Targets without a replica row yet.
        fresh: Vec<DeviceId>,
        pending: u64,
        stored_size: u64,
    },
    NoDevices,
    WriteFailed {
        targets: Vec<DeviceId>,
    },
}

/// A sealed version: its header row and its layer-2 chunks.
pub(crate) type Sealed = (TokenVersion, Vec<Vec<u8>>);

/// After the write quorum, answers still owed by the other targets are awaited this long,
/// so that they are recorded with the commit instead of one write each afterwards.
const LINGER: Duration = Duration::from_millis(3);

/// Fans one object version out to the profile's storage devices and waits for the write
/// quorum (§5.2). A version `in_hand` is being exchanged at acceptance: nothing of it is in
/// the store yet, so confirmations that come after the count are still absorbed, until
/// `record_late` runs after the commit.
pub(crate) async fn replicate(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
    in_hand: Option<&Sealed>,
) -> Result<Replicated, StoreError> {
    let kept = match in_hand {
        Some(_) => None,
        None => core.fresh.take(token, version),
    };
    let targets = core.storage_targets(profile).await?;
    if targets.is_empty() {
        return Ok(Replicated::NoDevices);
    }
    let loaded;
    let (tv, chunks) = match (in_hand, kept) {
        (Some((tv, chunks)), _) => (tv, chunks),
        (None, Some(kept)) => {
            loaded = kept;
            (&loaded.0, &loaded.1)
        }
        (None, None) => {
            loaded = (
                core.store
                    .token_version(token, version)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("no header for {token} v{version}"))
                    })?,
                core.store
                    .spool(token, version)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("spool lost {token} v{version}")))?,
            );
            (&loaded.0, &loaded.1)
        }
    };
    let existing = core.store.replicas(token, Some(version)).await?;
    let known: HashSet<DeviceId> = existing.iter().map(|r| r.device_id).collect();
    // Recorded with the commit (one write instead of two); a crash before it re-runs the
    // command, which sends again.
    let fresh: Vec<DeviceId> = targets
        .iter()
        .copied()
        .filter(|id| !known.contains(id))
        .collect();

    let wait = core.coordinator.watch_commit(token, version, &tv.digest);
    {
        let mut st = wait.state.lock().expect("wait lock");
        for r in existing
            .iter()
            .filter(|r| r.state == ReplicaState::Confirmed)
        {
            st.confirmed.insert(r.device_id);
        }
    }
    for device in &targets {
        core.send_object(*device, tv, chunks).await;
    }
    let quorum = core.config.storage.write_quorum.clamp(1, targets.len());
    let deadline = tokio::time::Instant::now() + core.config.storage.commit_timeout(tv.total_size);
    let mut linger_until = None;
    let devices: Vec<DeviceId> = loop {
        let notified = wait.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = wait.state.lock().expect("wait lock");
            let (confirmed, failed) = (st.confirmed.len(), st.failed.len());
            let now = tokio::time::Instant::now();
            if confirmed >= quorum && linger_until.is_none() {
                linger_until = Some((now + LINGER).min(deadline));
            }
            if confirmed + failed >= targets.len()
                || now >= deadline
                || linger_until.is_some_and(|until| now >= until)
            {
                let devices: Vec<DeviceId> = st.confirmed.iter().copied().collect();
                if in_hand.is_none() || devices.len() < quorum {
                    // From here on the inbox records late confirmations itself.
                    st.absorbing = None;
                }
                break devices;
            }
        }
        let _ = tokio::time::timeout_at(linger_until.unwrap_or(deadline), notified).await;
    };
    if in_hand.is_none() || devices.len() < quorum {
        core.coordinator.unwatch_store(token, version);
    }
    if devices.len() >= quorum {
        Ok(Replicated::Committed {
            pending: (targets.len() - devices.len()) as u64,
            devices,
            fresh,
            stored_size: tv.total_size,
        })
    } else {
        Ok(Replicated::WriteFailed { targets })
    }
}

/// Ends the absorbing of an exchange run at acceptance, once its record is written (or
/// was not, `recorded` None): confirmations absorbed after its count are written now;
/// later ones find the version in the store and go through the inbox.
pub(crate) async fn record_late(
    core: &Core,
    token: &str,
    version: u32,
    recorded: Option<&[DeviceId]>,
) -> Result<(), StoreError> {
    let late: Vec<DeviceId> = match core.coordinator.stop_absorbing(token, version) {
        Some(confirmed) => confirmed
            .into_iter()
            .filter(|d| recorded.is_some_and(|r| !r.contains(d)))
            .collect(),
        None => return Ok(()),
    };
    if late.is_empty() {
        return Ok(());
    }
    let mut effects: Vec<Effect> = late
        .into_iter()
        .map(|device_id| {
            Effect::from(DataEffect::ConfirmReplica {
                token: token.to_owned(),
                version,
                device_id,
            })
        })
        .collect();
    core.store.apply(&effects, None).await?;
    if core.store.replica_counts(token, version).await?.pending == 0 {
        effects = vec![Effect::from(DataEffect::DropSpool {
            token: token.to_owned(),
            version,
        })];
        core.store.apply(&effects, None).await?;
    }
    Ok(())
}

/// The sealed chunks of a version, from the spool or from a replica whose chunks
/// authenticate (for a synchronization push).
pub(crate) async fn sealed_copy(
    core: &Core,
    version: &TokenVersion,
    skip: DeviceId,
) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
    if let Some(chunks) = core.store.spool(&version.token, version.version).await? {
        return Ok(Some(chunks));
    }
    let header = Header::parse(&version.header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let opener =
        Opener::new(&core.keyring, &header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    for replica in core
        .store
        .replicas(&version.token, Some(version.version))
        .await?
    {
        if replica.device_id == skip
            || replica.state != ReplicaState::Confirmed
            || !core.online(replica.device_id)
        {
            continue;
        }
        let mut progress = Progress {
            sealed: Some(Vec::new()),
            ..Progress::default()
        };
        let source = Source {
            token: &version.token,
            version: version.version,
            opener: &opener,
        };
        if fetch_from(core, replica.device_id, &source, &mut progress)
            .await
            .is_ok()
        {
            return Ok(progress.sealed);
        }
    }
    Ok(None)
}

enum FetchProblem {
    /// The copy is absent or does not authenticate: the replica becomes `missing`.
    Bad(&'static str),
    /// The device did not answer in time, or was busy.
    Silent,
}

/// Fetches and opens the whole payload from the first candidate that delivers
/// authenticating chunks, continuing from the same chunk on the next one (§5.3).
pub(crate) async fn retrieve(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let tv = match core.committed.get(token, version) {
        Some(tv) => tv,
        None => {
            let tv = core
                .store
                .token_version(token, version)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("no header for {token} v{version}")))?;
            core.committed.note(&tv);
            tv
        }
    };
    let header = Header::parse(&tv.header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let opener =
        Opener::new(&core.keyring, &header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // Only devices that are still approved storage devices of the profile are asked.
    let storage = core.storage_targets(profile).await?;
    let mut candidates: Vec<DeviceId> = core
        .store
        .replicas(token, Some(version))
        .await?
        .into_iter()
        .filter(|r| {
            r.state == ReplicaState::Confirmed
                && core.online(r.device_id)
                && storage.contains(&r.device_id)
        })
        .map(|r| r.device_id)
        .collect();
    // Latency-based ordering is not tracked yet: equals are tried in random order.
    candidates.shuffle(&mut rand::thread_rng());
    let mut progress = Progress {
        payload: Vec::with_capacity(header.core.total_size as usize),
        ..Progress::default()
    };
    let source = Source {
        token,
        version,
        opener: &opener,
    };
    for device in candidates {
        match fetch_from(core, device, &source, &mut progress).await {
            Ok(()) => return Ok(Some(progress.payload)),
            Err(FetchProblem::Bad(why)) => {
                core.coordinator.missing.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%device, token, version, reason = why, "replica failed to deliver; marked missing");
                let mark = DataEffect::TransitionReplica {
                    token: token.to_owned(),
                    version,
                    device_id: device,
                    from: vec![ReplicaState::Confirmed],
                    to: ReplicaState::Missing,
                };
                core.apply(vec![mark])
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            }
            Err(FetchProblem::Silent) => {
                tracing::warn!(%device, token, version, "device did not deliver in time; trying the next replica");
            }
        }
    }
    Ok(None)
}

/// What is being fetched.
struct Source<'a> {
    token: &'a str,
    version: u32,
    opener: &'a Opener,
}

/// How far a fetch got; the next device continues from `next`.
#[derive(Default)]
struct Progress {
    next: u32,
    payload: Vec<u8>,
    /// Also keep the sealed chunks (to push them elsewhere).
    sealed: Option<Vec<Vec<u8>>>,
}

async fn fetch_from(
    core: &Core,
    device: DeviceId,
    source: &Source<'_>,
    progress: &mut Progress,
) -> Result<(), FetchProblem> {
    let Source {
        token,
        version,
        opener,
    } = *source;
    let Progress {
        next,
        payload,
        sealed,
    } = progress;
    let total = opener.core().chunk_count;
    let window = core.config.storage.fetch_window.max(1);
    while *next < total {
        let fetch_id = uuid::Uuid::new_v4().to_string();
        let mut rx = core.coordinator.open_fetch(&fetch_id);
        let body = bus::Fetch {
            fetch_id: fetch_id.clone(),
            token: token.to_owned(),
            version,
            from_chunk: *next,
            count: window,
        };
        core.send(device, kind::FETCH, &body).await;
        let end = (*next + window).min(total);
        let mut wait = core.config.storage.first_chunk_timeout;
        let result = loop {
            if *next >= end {
                break Ok(());
            }
            let Ok(Some(env)) = tokio::time::timeout(wait, rx.recv()).await else {
                break Err(FetchProblem::Silent);
            };
            wait = core.config.storage.chunk_gap_timeout;
            match env.kind.as_str() {
                kind::FETCH_CHUNK => {
                    let Some(chunk) = env.body::<bus::FetchChunk>() else {
                        break Err(FetchProblem::Bad("malformed chunk"));
                    };
                    if chunk.chunk_index != *next {
                        break Err(FetchProblem::Bad("chunk out of order"));
                    }
                    match opener.open_chunk(chunk.chunk_index, &chunk.data) {
                        Ok(plain) => {
                            payload.extend_from_slice(&plain);
                            if let Some(sealed) = sealed.as_mut() {
                                sealed.push(chunk.data);
                            }
                            *next += 1;
                        }
                        Err(_) => break Err(FetchProblem::Bad("chunk does not authenticate")),
                    }
                }
                kind::FETCH_FAILED => {
                    let reason = env
                        .body::<bus::FetchFailed>()
                        .map(|f| f.reason)
                        .unwrap_or_default();
                    break Err(match reason.as_str() {
                        "not_found" => FetchProblem::Bad("not_found"),
                        "corrupt" => FetchProblem::Bad("corrupt"),
                        _ => FetchProblem::Silent,
                    });
                }
                _ => {}
            }
        };
        core.coordinator.close_fetch(&fetch_id);
        result?;
    }
    Ok(())
}
