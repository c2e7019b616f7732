//! Retrieval: a version read back from the first replica whose chunks authenticate.

use crate::engine::Core;
use privicore_domain::data_token::{ReplicaState, TokenVersion};
use privicore_domain::device::DeviceId;
use privicore_domain::effect::DataEffect;
use privicore_domain::envelope::{Header, Opener};
use privicore_domain::ports::StoreError;
use privicore_wire::bus::{self, kind};
use rand::seq::SliceRandom;
use std::sync::atomic::Ordering;

/// Where sealed chunks go, exactly as received once they authenticate, with their index
/// (a synchronization push relays them to another device).
pub(crate) type SealedRelay = tokio::sync::mpsc::Sender<(u32, Vec<u8>)>;

/// Relays the sealed chunks `from..` of a committed version from the confirmed, online
/// replicas other than `skip`, one at a time, continuing from the same chunk on the next
/// device when one fails (§5.3). True when every chunk went out.
pub(crate) async fn relay_sealed(
    core: &Core,
    version: &TokenVersion,
    skip: DeviceId,
    from: u32,
    relay: SealedRelay,
) -> Result<bool, StoreError> {
    let header = Header::parse(&version.header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let opener =
        Opener::new(&core.keyring(), &header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let source = Source {
        token: &version.token,
        version: version.version,
        opener: &opener,
    };
    let mut progress = Progress {
        next: from,
        relay: Some(relay),
        ..Progress::default()
    };
    let mut candidates: Vec<DeviceId> = core
        .store
        .replicas(&version.token, Some(version.version))
        .await?
        .into_iter()
        .filter(|r| {
            r.device_id != skip && r.state == ReplicaState::Confirmed && core.online(r.device_id)
        })
        .map(|r| r.device_id)
        .collect();
    candidates.shuffle(&mut rand::thread_rng());
    for device in candidates {
        if try_device(core, device, &source, &mut progress).await? {
            return Ok(true);
        }
        if progress.cancelled {
            break;
        }
    }
    Ok(false)
}

enum FetchProblem {
    /// The copy is absent or does not authenticate: the replica becomes `missing`.
    Bad(&'static str),
    /// The device did not answer in time, or was busy.
    Silent,
    /// Whoever takes the chunks stopped taking them.
    Cancelled,
}

/// Fetches and opens the whole payload from the first candidate that delivers
/// authenticating chunks, continuing from the same chunk on the next one (§5.3).
pub(crate) async fn retrieve(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
) -> Result<Option<Vec<u8>>, StoreError> {
    let (tv, opener) = opener_for(core, token, version).await?;
    let mut progress = Progress {
        payload: Vec::with_capacity(tv.total_size as usize),
        ..Progress::default()
    };
    Ok(
        deliver(core, profile, token, version, &opener, &mut progress)
            .await?
            .then_some(progress.payload),
    )
}

/// Where an opened chunk goes: appended to the payload, or handed to a stream.
pub(crate) type ChunkSink = tokio::sync::mpsc::Sender<Vec<u8>>;

/// Fetches chunks `from..until` (the whole version when `until` is None) and hands each
/// opened chunk to `sink` as it authenticates, switching devices from the same chunk index
/// (§5.3, data-tokens.md §3.6). True when every chunk was delivered; false when no device
/// could deliver some chunk, or the sink was closed (the client went away).
pub(crate) async fn stream_chunks(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
    until: Option<u32>,
    sink: Option<ChunkSink>,
) -> Result<bool, StoreError> {
    let (_, opener) = opener_for(core, token, version).await?;
    let mut progress = Progress {
        until,
        sink,
        ..Progress::default()
    };
    deliver(core, profile, token, version, &opener, &mut progress).await
}

/// The header of a committed version and the opener of its chunks.
async fn opener_for(
    core: &Core,
    token: &str,
    version: u32,
) -> Result<(TokenVersion, Opener), StoreError> {
    let ring = core.keyring();
    // A cached header wrapped by a KEK retired since (rotation) is read again.
    let cached = core
        .committed
        .get(token, version)
        .filter(|tv| Header::parse(&tv.header).is_ok_and(|h| ring.contains(&h.kek_id)));
    let tv = match cached {
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
    let opener = Opener::new(&ring, &header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((tv, opener))
}

/// Tries the devices that hold the version until `progress` is complete.
async fn deliver(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
    opener: &Opener,
    progress: &mut Progress,
) -> Result<bool, StoreError> {
    // Only devices that are still approved storage devices of the profile are asked.
    let storage = core.storage_targets(profile).await?;
    let usable = |device: &DeviceId| core.online(*device) && storage.contains(device);
    let source = Source {
        token,
        version,
        opener,
    };
    // The devices that confirmed the commit first; the replica rows when none delivers.
    let mut tried = Vec::new();
    if let Some(hinted) = core.holders.get(token, version) {
        let mut order: Vec<DeviceId> = hinted.iter().copied().filter(|d| usable(d)).collect();
        order.shuffle(&mut rand::thread_rng());
        for device in order {
            tried.push(device);
            if try_device(core, device, &source, progress).await? {
                if tried.len() > 1 {
                    // The ones that failed before are not asked first again.
                    let kept = hinted
                        .into_iter()
                        .filter(|d| !tried.contains(d) || *d == device);
                    core.holders.note(token, version, kept.collect());
                }
                return Ok(true);
            }
            if progress.cancelled {
                return Ok(false);
            }
        }
        core.holders.forget(token, version);
    }
    let mut candidates: Vec<DeviceId> = core
        .store
        .replicas(token, Some(version))
        .await?
        .into_iter()
        .filter(|r| {
            r.state == ReplicaState::Confirmed
                && usable(&r.device_id)
                && !tried.contains(&r.device_id)
        })
        .map(|r| r.device_id)
        .collect();
    // Latency-based ordering is not tracked yet: equals are tried in random order.
    candidates.shuffle(&mut rand::thread_rng());
    for device in candidates {
        if try_device(core, device, &source, progress).await? {
            return Ok(true);
        }
        if progress.cancelled {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Asks one device for the rest of the version; true when the payload is complete. A copy
/// that is absent or does not authenticate is marked `missing`.
async fn try_device(
    core: &Core,
    device: DeviceId,
    source: &Source<'_>,
    progress: &mut Progress,
) -> Result<bool, StoreError> {
    let Source { token, version, .. } = *source;
    match fetch_from(core, device, source, progress).await {
        Ok(()) => return Ok(true),
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
        Err(FetchProblem::Cancelled) => {}
    }
    Ok(false)
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
    /// Stop before this chunk (None: after the last).
    until: Option<u32>,
    payload: Vec<u8>,
    /// Opened chunks go here instead of into `payload`.
    sink: Option<ChunkSink>,
    cancelled: bool,
    /// Sealed chunks go here instead (nothing is opened into `payload` or `sink`).
    relay: Option<SealedRelay>,
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
        until,
        payload,
        sink,
        cancelled,
        relay,
    } = progress;
    let total = until.map_or(opener.core().chunk_count, |u| {
        u.min(opener.core().chunk_count)
    });
    let window = core.config.storage.fetch_window.max(1);
    while *next < total {
        let fetch_id = uuid::Uuid::new_v4().to_string();
        let mut rx = core.coordinator.fetches.open(&fetch_id);
        let body = bus::Fetch {
            fetch_id: fetch_id.clone(),
            token: token.to_owned(),
            version,
            from_chunk: *next,
            count: window.min(total - *next),
        };
        core.send(device, kind::FETCH, body).await;
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
                    let Some(chunk) = env.into_body::<bus::FetchChunk>() else {
                        break Err(FetchProblem::Bad("malformed chunk"));
                    };
                    if chunk.chunk_index != *next {
                        break Err(FetchProblem::Bad("chunk out of order"));
                    }
                    match opener.open_chunk(chunk.chunk_index, &chunk.data) {
                        Ok(plain) => {
                            if let Some(relay) = relay {
                                drop(plain);
                                if relay.send((chunk.chunk_index, chunk.data)).await.is_err() {
                                    *cancelled = true;
                                    break Err(FetchProblem::Cancelled);
                                }
                                *next += 1;
                                continue;
                            }
                            match sink {
                                Some(sink) => {
                                    if sink.send(plain).await.is_err() {
                                        *cancelled = true;
                                        break Err(FetchProblem::Cancelled);
                                    }
                                }
                                None => payload.extend_from_slice(&plain),
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
        core.coordinator.fetches.close(&fetch_id);
        result?;
    }
    Ok(())
}
