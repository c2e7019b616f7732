//! Replication (docs/api/devices-and-storage.md §5): fan-out of sealed objects to the storage devices,
//! the write quorum, retrieval from the first replica whose chunks authenticate, deletion
//! dispatch, and presence.

mod coordinator;
mod copy;
mod presence;
mod retrieve;
mod settle;

pub(crate) use coordinator::Coordinator;
pub(crate) use copy::push_version;
pub(crate) use presence::{Presence, store_chunk};
pub(crate) use retrieve::{retrieve, stream_chunks};
pub(crate) use settle::{SettleWorker, late_mark};

use crate::engine::Core;
use privicore_domain::data_token::{ReplicaState, TokenVersion};
use privicore_domain::device::DeviceId;
use privicore_domain::ports::StoreError;
use std::collections::HashSet;
use std::time::Duration;

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

/// After the write quorum, a command replicating a version from the spool awaits the other
/// targets' answers up to this long, so that they are recorded with its commit instead of
/// one write each afterwards. An exchange run at acceptance commits at the quorum: its
/// late answers are batched (see `settle`).
const LINGER: Duration = Duration::from_millis(3);
const LINGER_MIN: Duration = Duration::from_micros(500);

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
    let header;
    let spooled;
    let (tv, chunks) = match (in_hand, kept) {
        (Some((tv, chunks)), _) => (tv, Some(chunks)),
        (None, Some(kept)) => {
            loaded = kept;
            (&loaded.0, Some(&loaded.1))
        }
        (None, None) => {
            header = core
                .store
                .token_version(token, version)
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("no header for {token} v{version}")))?;
            // A large version (an upload) goes out from the spool a chunk at a time.
            if header.chunk_count > 1 {
                (&header, None)
            } else {
                spooled =
                    core.store.spool(token, version).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("spool lost {token} v{version}"))
                    })?;
                (&header, Some(&spooled))
            }
        }
    };
    // A version in hand has nothing in the store yet: no replica rows to read.
    let existing = match in_hand {
        Some(_) => Vec::new(),
        None => core.store.replicas(token, Some(version)).await?,
    };
    let known: HashSet<DeviceId> = existing.iter().map(|r| r.device_id).collect();
    // Recorded with the commit (one write instead of two); a crash before it re-runs the
    // command, which sends again.
    let fresh: Vec<DeviceId> = targets
        .iter()
        .copied()
        .filter(|id| !known.contains(id))
        .collect();

    let wait = core
        .coordinator
        .watch_commit(token, version, &tv.digest, &targets);
    {
        let mut st = wait.state.lock().expect("wait lock");
        for r in existing
            .iter()
            .filter(|r| r.state == ReplicaState::Confirmed)
        {
            st.confirmed.insert(r.device_id);
        }
    }
    match chunks {
        Some(chunks) => {
            core.send_object(&targets, tv, chunks).await;
        }
        None => {
            // Devices offline now get the object from the spool when they come back (§5.2
            // step 6) instead of queueing every chunk in memory for them.
            let online: Vec<DeviceId> = targets
                .iter()
                .copied()
                .filter(|d| core.online(*d))
                .collect();
            crate::streams::fan_out(core, &online, tv).await?;
        }
    }
    let quorum = core.config.storage.write_quorum.clamp(1, targets.len());
    let sent = tokio::time::Instant::now();
    let deadline = sent + core.config.storage.commit_timeout(tv.total_size);
    let mut linger_until = None;
    let devices: Vec<DeviceId> = loop {
        let notified = wait.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = wait.state.lock().expect("wait lock");
            let (confirmed, failed) = (st.confirmed.len(), st.failed.len());
            let now = tokio::time::Instant::now();
            if confirmed >= quorum && in_hand.is_some() {
                linger_until = Some(now);
            } else if confirmed >= quorum && linger_until.is_none() {
                // As long again as the quorum took, within bounds: the others usually
                // answer about as fast, and a straggler should not hold up the ack.
                let linger = (now - sent).clamp(LINGER_MIN, LINGER);
                linger_until = Some((now + linger).min(deadline));
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
/// was not, `recorded` None): the answers it counted too late for its record are written
/// in the next batch, and `object` (the version, when targets still owe their copy) is held
/// for them. Answers to a record that was not written are dropped.
pub(crate) fn record_late(
    core: &Core,
    token: &str,
    version: u32,
    recorded: Option<&[DeviceId]>,
    object: Option<Sealed>,
) {
    match recorded {
        Some(recorded) => core.coordinator.settle(token, version, recorded, object),
        None => core.coordinator.unwatch_store(token, version),
    }
}
