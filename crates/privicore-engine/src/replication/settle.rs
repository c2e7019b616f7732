//! After the write quorum (§5.2): an exchange commits as soon as its quorum confirmed, and
//! the other targets' answers are recorded afterwards, in batches (one write for many).
//! Meanwhile the sealed object stays in memory for them; only an object some target has
//! not confirmed within `SPOOL_AFTER` (or one that does not fit in memory) is written to
//! the spool, where that device's catch-up finds it. A crash loses only the memory copy:
//! the object is on the quorum, and the replicas still `pending` are closed by Synchronize
//! device.

use super::Sealed;
use crate::engine::Core;
use crate::workers::Worker;
use async_trait::async_trait;
use privicore_domain::data_token::ReplicaState;
use privicore_domain::device::DeviceId;
use privicore_domain::effect::{DataEffect, Effect};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Sealed bytes held in memory at most for targets that did not answer yet.
const HELD_MAX_BYTES: usize = 64 << 20;
/// An object a target has not confirmed after this long goes to the spool.
const SPOOL_AFTER: Duration = Duration::from_secs(2);
const SWEEP_EVERY: Duration = Duration::from_millis(250);
/// Answers arriving this close together share one write.
const BATCH_WINDOW: Duration = Duration::from_millis(2);
const BATCH_MAX: usize = 512;
/// Late writes queued beyond this refuse new data writes at acceptance (503) until the
/// worker caught up; what is already admitted still queues, so memory stays bounded by it.
pub(crate) const BACKLOG_MAX: usize = 65_536;

/// An object held in memory for the targets that still owe their answer.
pub(crate) struct Held {
    pub(super) object: Sealed,
    pub(super) since: Instant,
    size: usize,
}

fn size(object: &Sealed) -> usize {
    object.1.iter().map(Vec::len).sum()
}

/// A device's late answer, as the write that records it.
pub(crate) fn late_mark(token: &str, version: u32, device_id: DeviceId, ok: bool) -> DataEffect {
    if ok {
        DataEffect::ConfirmReplica {
            token: token.to_owned(),
            version,
            device_id,
        }
    } else {
        DataEffect::TransitionReplica {
            token: token.to_owned(),
            version,
            device_id,
            from: vec![ReplicaState::Pending],
            to: ReplicaState::Missing,
        }
    }
}

/// Writes that may wait for the next batch, and the bytes held in memory meanwhile.
pub(crate) struct LateQueue {
    tx: mpsc::UnboundedSender<DataEffect>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<DataEffect>>>,
    held_bytes: AtomicUsize,
    /// Writes queued and not yet taken by the worker.
    depth: Arc<AtomicUsize>,
}

impl Default for LateQueue {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            held_bytes: AtomicUsize::new(0),
            depth: Arc::default(),
        }
    }
}

impl LateQueue {
    pub(crate) fn push(&self, effect: DataEffect) {
        // Counted before it is sent: the worker may take it (and count it down) at once.
        self.depth.fetch_add(1, Ordering::Relaxed);
        // The receiver lives as long as the engine's settle worker.
        if self.tx.send(effect).is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Writes queued and not yet taken by the worker.
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// More late writes wait than the worker should have behind it.
    pub(crate) fn backlogged(&self) -> bool {
        self.depth.load(Ordering::Relaxed) >= BACKLOG_MAX
    }

    /// Holds `object` in memory unless that would exceed the bound.
    pub(super) fn hold(&self, object: Sealed) -> Result<Held, Sealed> {
        let size = size(&object);
        let held = self.held_bytes.fetch_add(size, Ordering::Relaxed);
        if held + size > HELD_MAX_BYTES {
            self.held_bytes.fetch_sub(size, Ordering::Relaxed);
            return Err(object);
        }
        Ok(Held {
            object,
            since: Instant::now(),
            size,
        })
    }

    pub(super) fn release(&self, held: Held) -> Sealed {
        self.held_bytes.fetch_sub(held.size, Ordering::Relaxed);
        held.object
    }

    /// Queues the object for the spool; answers queued after it drop it again.
    pub(super) fn spool(&self, (version, chunks): Sealed) {
        self.push(DataEffect::PutSpool {
            token: version.token,
            version: version.version,
            chunks,
        });
    }

    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.held_bytes.load(Ordering::Relaxed)
    }

    fn take_receiver(&self) -> Option<(mpsc::UnboundedReceiver<DataEffect>, Arc<AtomicUsize>)> {
        let rx = self.rx.lock().expect("late queue lock").take()?;
        Some((rx, self.depth.clone()))
    }
}

/// Writes the queued late answers in batches and moves stragglers to the spool.
pub(crate) struct SettleWorker {
    core: Arc<Core>,
    rx: mpsc::UnboundedReceiver<DataEffect>,
    depth: Arc<AtomicUsize>,
}

impl SettleWorker {
    /// None when the engine's worker took the queue already.
    pub(crate) fn new(core: Arc<Core>) -> Option<Self> {
        let (rx, depth) = core.coordinator.late.take_receiver()?;
        Some(Self { core, rx, depth })
    }

    async fn write(&self, batch: Vec<DataEffect>) {
        self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
        let effects: Vec<Effect> = batch.into_iter().map(Effect::from).collect();
        if self.core.store.apply(&effects, None).await.is_ok() {
            // Retrieval may now ask these devices too.
            for effect in &effects {
                if let Effect::Data(data) = effect
                    && let DataEffect::ConfirmReplica {
                        token,
                        version,
                        device_id,
                    } = data.as_ref()
                {
                    self.core.holders.add(token, *version, *device_id);
                }
            }
            return;
        }
        // One bad write (its token deleted meanwhile, say) must not cost the others.
        for effect in &effects {
            if let Err(error) = self
                .core
                .store
                .apply(std::slice::from_ref(effect), None)
                .await
            {
                tracing::warn!(%error, "could not record a late device answer");
            }
        }
    }

    /// On shutdown: everything held goes to the spool, everything queued is written.
    async fn flush(&mut self) {
        self.core.coordinator.spool_stragglers(Duration::ZERO);
        let mut batch = Vec::new();
        while let Ok(effect) = self.rx.try_recv() {
            batch.push(effect);
        }
        if !batch.is_empty() {
            self.write(batch).await;
        }
    }
}

#[async_trait]
impl Worker for SettleWorker {
    fn name(&self) -> String {
        "replica-settle".into()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.flush().await;
                    return Ok(());
                }
                _ = sweep.tick() => {
                    self.core.coordinator.spool_stragglers(SPOOL_AFTER);
                    continue;
                }
                next = self.rx.recv() => match next {
                    Some(effect) => effect,
                    None => return Ok(()),
                },
            };
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + BATCH_WINDOW;
            while batch.len() < BATCH_MAX {
                match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(Some(effect)) => batch.push(effect),
                    _ => break,
                }
            }
            self.write(batch).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::Coordinator;
    use privicore_domain::data_token::TokenVersion;
    use std::collections::HashSet;

    fn object(token: &str, size: usize) -> Sealed {
        let version = TokenVersion {
            token: token.into(),
            version: 1,
            header: vec![],
            digest: "d".into(),
            total_size: size as u64,
            chunk_count: 1,
            committed: true,
        };
        (version, vec![vec![7; size]])
    }

    fn device() -> DeviceId {
        DeviceId(uuid::Uuid::new_v4())
    }

    fn queued(coordinator: &Coordinator) -> Vec<DataEffect> {
        let (mut rx, _) = coordinator.late.take_receiver().expect("receiver");
        let mut out = Vec::new();
        while let Ok(effect) = rx.try_recv() {
            out.push(effect);
        }
        out
    }

    #[test]
    fn holding_is_bounded_and_released() {
        let queue = LateQueue::default();
        let held = queue.hold(object("a", 10)).expect("fits");
        assert_eq!(queue.held_bytes(), 10);
        assert!(queue.hold(object("b", HELD_MAX_BYTES)).is_err());
        assert_eq!(queue.held_bytes(), 10, "a refused object is not counted");
        queue.release(held);
        assert_eq!(queue.held_bytes(), 0);
    }

    #[test]
    fn a_deep_backlog_refuses_until_the_worker_took_it() {
        let queue = LateQueue::default();
        for _ in 0..BACKLOG_MAX {
            assert!(!queue.backlogged());
            queue.push(late_mark("t", 1, device(), true));
        }
        assert!(queue.backlogged());
        let (_rx, depth) = queue.take_receiver().expect("receiver");
        // What the worker does once it wrote a batch.
        depth.fetch_sub(BATCH_MAX, Ordering::Relaxed);
        assert!(!queue.backlogged());
    }

    /// An exchange of "t" v1 waiting on three targets, the first of which (`a`) answered.
    fn waiting_on_three() -> (Coordinator, [DeviceId; 3]) {
        let coordinator = Coordinator::default();
        let devices = [device(), device(), device()];
        coordinator.watch_commit("t", 1, "d", &devices);
        assert!(coordinator.offer_answer("t", 1, devices[0], Some("d")));
        (coordinator, devices)
    }

    #[test]
    fn late_answers_are_queued_and_the_object_released_once_every_target_answered() {
        let (coordinator, [a, b, c]) = waiting_on_three();
        // The commit recorded `a`; `b` and `c` still owe their copy.
        coordinator.settle("t", 1, &[a], Some(object("t", 100)));
        assert_eq!(coordinator.late.held_bytes(), 100);
        assert!(coordinator.held_object("t", 1).is_some());
        assert!(coordinator.offer_answer("t", 1, b, Some("d")));
        assert!(coordinator.offer_answer("t", 1, c, Some("other")));
        assert_eq!(coordinator.late.held_bytes(), 0);
        assert!(coordinator.held_object("t", 1).is_none());
        assert!(
            !coordinator.offer_answer("t", 1, c, Some("d")),
            "after the last answer the inbox records on its own"
        );
        let marks = queued(&coordinator);
        assert!(matches!(&marks[..], [
            DataEffect::ConfirmReplica { device_id: first, .. },
            DataEffect::TransitionReplica { device_id: second, to: ReplicaState::Missing, .. },
        ] if *first == b && *second == c));
    }

    #[test]
    fn answers_counted_after_the_record_and_stragglers_go_to_the_spool() {
        let (coordinator, [a, b, c]) = waiting_on_three();
        // `b` answered after the count but before the record was written.
        coordinator.offer_answer("t", 1, b, Some("d"));
        coordinator.settle("t", 1, &[a], Some(object("t", 100)));
        coordinator.spool_stragglers(Duration::from_secs(3600));
        assert!(coordinator.held_object("t", 1).is_some(), "not old enough");
        coordinator.spool_stragglers(Duration::ZERO);
        assert!(coordinator.held_object("t", 1).is_none());
        assert_eq!(coordinator.late.held_bytes(), 0);
        assert!(!coordinator.offer_answer("t", 1, c, Some("d")));
        let marks = queued(&coordinator);
        assert!(matches!(&marks[..], [
            DataEffect::ConfirmReplica { device_id, .. },
            DataEffect::PutSpool { token, .. },
        ] if *device_id == b && token == "t"));
    }

    #[test]
    fn answers_of_devices_not_asked_change_nothing() {
        let (coordinator, [a, b, _]) = waiting_on_three();
        let stranger = device();
        assert!(
            coordinator.offer_answer("t", 1, stranger, Some("d")),
            "taken, so the inbox does not record it either"
        );
        coordinator.store_result("t", 1, stranger, true);
        let wait = coordinator.watch_store("t", 1, &[]);
        let st = wait.state.lock().unwrap();
        assert_eq!(st.confirmed, HashSet::from([a]));
        assert!(st.failed.is_empty());
        drop(st);
        coordinator.settle("t", 1, &[a], Some(object("t", 100)));
        assert!(coordinator.offer_answer("t", 1, stranger, Some("d")));
        assert!(coordinator.offer_answer("t", 1, b, Some("d")));
        let marks = queued(&coordinator);
        assert!(
            matches!(&marks[..], [DataEffect::ConfirmReplica { device_id, .. }] if *device_id == b)
        );
    }

    #[test]
    fn a_failed_record_drops_what_it_absorbed() {
        let coordinator = Coordinator::default();
        let a = device();
        coordinator.watch_commit("t", 1, "d", &[a]);
        coordinator.offer_answer("t", 1, a, Some("d"));
        coordinator.unwatch_store("t", 1);
        assert!(!coordinator.offer_answer("t", 1, a, Some("d")));
        assert!(queued(&coordinator).is_empty());
    }
}
