//! Pools and gated commands (docs/api/voting-and-policy.md §1.4–1.6, §2, §6): opening
//! pools for commands that match active policies, holding the command, recording votes,
//! closing attempts at their deadlines (engine clock), and releasing the command.
//!
//! Changes of one command's pools run under that command's lock, so tallies, deadlines and
//! votes of a pool never race; different commands' pools change side by side.
//! Every vote, pool opened/decided and held-command outcome is appended to the audit log
//! before it takes effect.

mod api;
mod ballots;
mod directory;
mod gate;
mod pools;
#[cfg(test)]
mod tests;
mod worker;

pub use ballots::VoteRecorded;
pub(crate) use ballots::*;
pub(crate) use gate::*;
pub(crate) use pools::*;
pub(crate) use worker::*;

use crate::engine::Core;
use crate::workers::Worker;
use async_trait::async_trait;
use privicore_domain::audit::{AuditEntry, AuditKind, actor};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::{Effect, VotingEffect};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::governance::{
    AfterAttempt, Attempt, AttemptStatus, Ballot, Channel, Decision, EventAttributes, Policy, Pool,
    PoolEvent, PoolOrigin, PoolStatus, RequestedBy, Vote, VotingRules, WithdrawReason,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{
    BallotId, CommandId, Error, PoolId, ProfileId, Reason, Timestamp, VotingConfigurationId,
};
use privicore_wire::bus;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the deadline worker looks at the engine clock.
const TICK: Duration = Duration::from_millis(100);

/// The voting state an engine keeps in memory; the store has the durable truth.
pub(crate) struct Voting {
    /// Changes of the pools of one command (or of one manual pool) run one at a time;
    /// those of different commands run side by side, so their writes share commits.
    locks: Mutex<HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Taken shared with every pool lock; taken alone by changes across many pools.
    all: tokio::sync::RwLock<()>,
    /// K_dc per device and the pinned key it was derived from: one X25519 agreement per
    /// device instead of one per ballot and vote.
    channel_keys: Mutex<HashMap<DeviceId, PinnedChannelKey>>,
    /// Active policies per profile, dropped when a policy changes.
    policies: Mutex<HashMap<ProfileId, Arc<Vec<Policy>>>>,
    /// Policy changes per profile, so a read that a change overtook is not cached.
    policy_changes: Mutex<HashMap<ProfileId, u64>>,
    /// Commands held for their pools.
    held: Mutex<HashSet<CommandId>>,
    /// Open pools and the deadline of their current attempt.
    deadlines: Mutex<HashMap<PoolId, Timestamp>>,
    /// The resources held commands occupy, and the later commands on them (lane order).
    order: Mutex<HeldResources>,
    /// Commands whose pools all resolved: the worker hands them back to their lane.
    release_tx: mpsc::UnboundedSender<CommandId>,
    /// Shared by every run of the worker, so a restarted worker takes the same queue.
    release_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<CommandId>>>,
}

/// Lane order around holds (docs/contract-decisions.md, "Commands behind a held command"):
/// while a command is held, later commands on the same resource wait behind it, in
/// acceptance order, and run in its lane right after it finished.
#[derive(Default)]
struct HeldResources {
    /// Resource (ordering key) → the held command occupying it.
    holder: HashMap<String, CommandId>,
    /// Resource → commands accepted after its holder, oldest first.
    parked: HashMap<String, VecDeque<CommandRecord>>,
}

/// The resource a held command occupies: only commands that name one (a token or a
/// device); profile-wide commands and manual votes do not stop their lane-mates.
fn occupied(command: &CommandRecord) -> Option<String> {
    if let CommandPayload::CreateVoting { .. } | CommandPayload::CreateDirectoryVoting { .. } =
        command.payload
    {
        return None;
    }
    command.payload.resource()
}

impl Default for Voting {
    fn default() -> Self {
        let (release_tx, rx) = mpsc::unbounded_channel();
        Self {
            locks: Default::default(),
            all: Default::default(),
            channel_keys: Default::default(),
            policies: Default::default(),
            policy_changes: Default::default(),
            held: Default::default(),
            deadlines: Default::default(),
            order: Default::default(),
            release_tx,
            release_rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
}

/// A device's pinned public key and the K_dc derived from it.
type PinnedChannelKey = (String, zeroize::Zeroizing<[u8; 32]>);

/// One command's (or manual pool's) pools, held for a change.
pub(crate) struct PoolsGuard<'a> {
    _all: tokio::sync::RwLockReadGuard<'a, ()>,
    _key: tokio::sync::OwnedMutexGuard<()>,
}

/// The key a pool's changes are serialized by: its command, or the pool itself.
pub(crate) fn pool_key(pool: &Pool) -> uuid::Uuid {
    pool.command_id.map_or(pool.id.0, |c| c.0)
}

impl Voting {
    /// Serializes changes of the pools keyed `key` (a command id, or a manual pool's id).
    pub(crate) async fn lock(&self, key: uuid::Uuid) -> PoolsGuard<'_> {
        let all = self.all.read().await;
        let lock = self
            .locks
            .lock()
            .expect("pool locks")
            .entry(key)
            .or_default()
            .clone();
        PoolsGuard {
            _all: all,
            _key: lock.lock_owned().await,
        }
    }

    /// Every pool at once, for a change across many (a device leaving).
    pub(crate) async fn lock_all(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.all.write().await
    }

    fn cached_channel_key(&self, device: DeviceId, pinned: &str) -> Option<[u8; 32]> {
        let keys = self.channel_keys.lock().expect("channel keys");
        let (key_of, key) = keys.get(&device)?;
        (key_of == pinned).then(|| **key)
    }

    fn cache_channel_key(&self, device: DeviceId, pinned: &str, key: [u8; 32]) {
        self.channel_keys
            .lock()
            .expect("channel keys")
            .insert(device, (pinned.to_owned(), zeroize::Zeroizing::new(key)));
    }

    /// Drops the locks nobody holds or waits for.
    pub(crate) fn prune_locks(&self) {
        self.locks
            .lock()
            .expect("pool locks")
            .retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    /// Forgets the cached active policies of a profile (a policy changed).
    pub(crate) fn forget_policies(&self, profile: ProfileId) {
        let mut cached = self.policies.lock().expect("policies");
        *self
            .policy_changes
            .lock()
            .expect("policy changes")
            .entry(profile)
            .or_default() += 1;
        cached.remove(&profile);
    }

    /// How many times the profile's policies changed while this engine ran.
    fn policy_generation(&self, profile: ProfileId) -> u64 {
        self.policy_changes
            .lock()
            .expect("policy changes")
            .get(&profile)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn is_held(&self, command: CommandId) -> bool {
        self.held.lock().expect("held").contains(&command)
    }

    /// Marks `command` held, occupying its resource.
    fn hold(&self, command: &CommandRecord) {
        self.held.lock().expect("held").insert(command.id);
        if let Some(key) = occupied(command) {
            self.order
                .lock()
                .expect("order")
                .holder
                .insert(key, command.id);
        }
    }

    /// Parks `command` when another command holds its resource; it then runs right after
    /// that one finished (see [`Voting::next_parked`]). Returns whether it was parked.
    pub(crate) fn park(&self, command: &CommandRecord) -> bool {
        let Some(key) = command.payload.resource() else {
            return false;
        };
        let mut order = self.order.lock().expect("order");
        match order.holder.get(&key) {
            Some(holder) if *holder != command.id => {
                order
                    .parked
                    .entry(key)
                    .or_default()
                    .push_back(command.clone());
                true
            }
            _ => false,
        }
    }

    /// Whether a held command occupies `key`, or commands wait behind one: a command on
    /// it must go through its lane (not run at acceptance).
    pub(crate) fn resource_busy(&self, key: &str) -> bool {
        let order = self.order.lock().expect("order");
        order.holder.contains_key(key) || order.parked.get(key).is_some_and(|q| !q.is_empty())
    }

    /// The next command parked behind `key`, once no held command occupies it.
    pub(crate) fn next_parked(&self, key: &str) -> Option<CommandRecord> {
        let mut order = self.order.lock().expect("order");
        if order.holder.contains_key(key) {
            return None;
        }
        let queue = order.parked.get_mut(key)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            order.parked.remove(key);
        }
        next
    }

    /// The command's outcome (with the end of its hold) is durable: it is no longer held
    /// and frees its resource. Until then a retry finds it still held, so it never opens
    /// pools twice.
    pub(crate) fn finished(&self, command: &CommandRecord) {
        if !self.held.lock().expect("held").remove(&command.id) {
            return;
        }
        if let Some(key) = occupied(command) {
            let mut order = self.order.lock().expect("order");
            if order.holder.get(&key) == Some(&command.id) {
                order.holder.remove(&key);
            }
        }
    }

    fn set_deadline(&self, pool: PoolId, deadline: Option<Timestamp>) {
        let mut d = self.deadlines.lock().expect("deadlines");
        match deadline {
            Some(at) => d.insert(pool, at),
            None => d.remove(&pool),
        };
    }

    fn due(&self, now: Timestamp) -> Vec<PoolId> {
        self.deadlines
            .lock()
            .expect("deadlines")
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect()
    }
}

fn now(core: &Core) -> Timestamp {
    core.config.clock.now()
}
