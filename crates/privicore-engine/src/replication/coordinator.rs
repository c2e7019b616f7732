//! Routes device answers (stored, fetched chunks, inventory pages) to the commands waiting
//! for them.

use super::Sealed;
use super::settle::{Held, LateQueue, late_mark};
use privicore_domain::device::DeviceId;
use privicore_wire::bus::{self, Envelope};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

#[derive(Default)]
pub(super) struct Confirmations {
    pub(super) confirmed: HashSet<DeviceId>,
    pub(super) failed: HashSet<DeviceId>,
    /// Set while an exchange waits and will record confirmations with its own commit:
    /// the expected digest. Cleared (closed) once it took its final count.
    pub(super) absorbing: Option<String>,
    /// Set once the exchange committed while targets still owed their answers: the object,
    /// held in memory for them, and how many targets there are.
    pub(super) settling: Option<Held>,
    /// The devices asked to store the object; answers of any other device are ignored.
    pub(super) targets: HashSet<DeviceId>,
}

impl Confirmations {
    fn answered(&self) -> usize {
        self.confirmed.len() + self.failed.len()
    }
}

/// A device may confirm only what it was asked to store.
fn unasked(st: &Confirmations, device: DeviceId, token: &str) -> bool {
    let unasked = !st.targets.contains(&device);
    if unasked {
        tracing::debug!(%device, token, "ignoring an answer from a device not asked to store this object");
    }
    unasked
}

#[derive(Default)]
pub(crate) struct StoreWait {
    pub(super) state: Mutex<Confirmations>,
    pub(super) notify: Notify,
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

/// Device messages for a command that opened a mailbox under their id; messages for an id
/// nobody waits on any more are dropped.
pub(crate) struct Mailboxes<T> {
    open: Mutex<HashMap<String, mpsc::UnboundedSender<T>>>,
}

impl<T> Default for Mailboxes<T> {
    fn default() -> Self {
        Self {
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Mailboxes<T> {
    pub(crate) fn open(&self, id: &str) -> mpsc::UnboundedReceiver<T> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.open
            .lock()
            .expect("mailbox lock")
            .insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn close(&self, id: &str) {
        self.open.lock().expect("mailbox lock").remove(id);
    }

    pub(crate) fn deliver(&self, id: &str, message: T) {
        if let Some(tx) = self.open.lock().expect("mailbox lock").get(id) {
            let _ = tx.send(message);
        }
    }
}

/// Routes device answers to the commands waiting for them.
#[derive(Default)]
pub(crate) struct Coordinator {
    stores: Mutex<HashMap<(String, u32), Arc<StoreWait>>>,
    /// Chunks of a retrieval, by fetch id.
    pub(crate) fetches: Mailboxes<Envelope>,
    /// Inventory pages of a synchronization, by sync id.
    pub(crate) inventories: Mailboxes<bus::Inventory>,
    pub(super) missing: AtomicU64,
    /// Confirmations of committed versions, written in batches by the settle worker.
    pub(crate) late: LateQueue,
}

impl Coordinator {
    /// Waits for the answers of `targets`, the devices about to be asked to store it.
    pub(crate) fn watch_store(
        &self,
        token: &str,
        version: u32,
        targets: &[DeviceId],
    ) -> Arc<StoreWait> {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .entry((token.to_owned(), version))
            .or_default()
            .clone();
        wait.state
            .lock()
            .expect("wait lock")
            .targets
            .extend(targets.iter().copied());
        wait
    }

    /// Like `watch_store`, for a command that records the confirmations it counts with its
    /// own commit, so the inbox need not write each one.
    pub(super) fn watch_commit(
        &self,
        token: &str,
        version: u32,
        digest: &str,
        targets: &[DeviceId],
    ) -> Arc<StoreWait> {
        let wait = self.watch_store(token, version, targets);
        wait.state.lock().expect("wait lock").absorbing = Some(digest.to_owned());
        wait
    }

    /// Hands a device's `storage.stored` (`sha256` Some) or `storage.store_failed` (None) to
    /// the exchange waiting for it; false when none will record it (the caller does). A
    /// failure is only taken once the exchange committed: before, the caller records it.
    pub(crate) fn offer_answer(
        &self,
        token: &str,
        version: u32,
        device: DeviceId,
        sha256: Option<&str>,
    ) -> bool {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .get(&(token.to_owned(), version))
            .cloned();
        let Some(wait) = wait else { return false };
        let mut st = wait.state.lock().expect("wait lock");
        if unasked(&st, device, token) {
            return true;
        }
        let ok = match (&st.absorbing, &st.settling, sha256) {
            (Some(digest), _, Some(sha256)) => digest == sha256,
            (None, Some(held), sha256) => sha256 == Some(held.object.0.digest.as_str()),
            _ => return false,
        };
        if ok {
            st.confirmed.insert(device);
        } else {
            if sha256.is_some() {
                tracing::warn!(%device, token, "device stored an object with another digest");
            }
            st.failed.insert(device);
        }
        if st.absorbing.is_none() {
            // Committed already: the answer is written in the next batch.
            self.late.push(late_mark(token, version, device, ok));
            if st.answered() >= st.targets.len() {
                let held = st.settling.take();
                drop(st);
                self.unwatch_store(token, version);
                if let Some(held) = held {
                    self.late.release(held);
                }
                return true;
            }
        }
        drop(st);
        wait.notify.notify_waiters();
        true
    }

    /// After the commit of an exchange run at acceptance: the confirmations it did not
    /// record go to the next batch; while targets still owe theirs, `object` stays held in
    /// memory for them (or goes to the spool when too much is held already).
    pub(super) fn settle(
        &self,
        token: &str,
        version: u32,
        recorded: &[DeviceId],
        object: Option<Sealed>,
    ) {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .get(&(token.to_owned(), version))
            .cloned();
        let Some(wait) = wait else { return };
        let mut st = wait.state.lock().expect("wait lock");
        st.absorbing = None;
        for device in st.confirmed.iter().filter(|d| !recorded.contains(d)) {
            self.late.push(late_mark(token, version, *device, true));
        }
        if st.answered() < st.targets.len()
            && let Some(object) = object
        {
            match self.late.hold(object) {
                Ok(held) => {
                    st.settling = Some(held);
                    return;
                }
                Err(object) => self.late.spool(object),
            }
        }
        drop(st);
        self.unwatch_store(token, version);
    }

    /// Objects held longer than `age` for targets that did not answer go to the spool (so
    /// a device's catch-up finds them); their later answers are written like any other.
    pub(super) fn spool_stragglers(&self, age: std::time::Duration) {
        let waits: Vec<((String, u32), Arc<StoreWait>)> = self
            .stores
            .lock()
            .expect("coordinator lock")
            .iter()
            .map(|(k, w)| (k.clone(), w.clone()))
            .collect();
        for ((token, version), wait) in waits {
            let mut st = wait.state.lock().expect("wait lock");
            if st
                .settling
                .as_ref()
                .is_some_and(|h| h.since.elapsed() >= age)
            {
                let held = st.settling.take().expect("checked above");
                // Queued while the lock is held: an answer that then misses the wait is
                // queued after the spool write, so its spool drop finds the copy.
                let object = self.late.release(held);
                self.late.spool(object);
                drop(st);
                self.unwatch_store(&token, version);
            }
        }
    }

    /// The object held in memory for targets that did not answer yet, if any.
    pub(crate) fn held_object(&self, token: &str, version: u32) -> Option<Sealed> {
        let wait = self
            .stores
            .lock()
            .expect("coordinator lock")
            .get(&(token.to_owned(), version))
            .cloned()?;
        let st = wait.state.lock().expect("wait lock");
        st.settling.as_ref().map(|h| h.object.clone())
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
            if unasked(&st, device, token) {
                return;
            }
            if ok {
                st.confirmed.insert(device);
            } else {
                st.failed.insert(device);
            }
            drop(st);
            wait.notify.notify_waiters();
        }
    }

    pub fn missing_count(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }
}
