//! Routes device answers (stored, fetched chunks, inventory pages) to the commands waiting
//! for them.

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
    pub(super) fn watch_commit(&self, token: &str, version: u32, digest: &str) -> Arc<StoreWait> {
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
    pub(super) fn stop_absorbing(&self, token: &str, version: u32) -> Option<Vec<DeviceId>> {
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

    pub fn missing_count(&self) -> u64 {
        self.missing.load(Ordering::Relaxed)
    }
}
