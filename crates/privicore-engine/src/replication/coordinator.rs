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

/// Routes device answers to the commands waiting for them.
#[derive(Default)]
pub(crate) struct Coordinator {
    stores: Mutex<HashMap<(String, u32), Arc<StoreWait>>>,
    fetches: Mutex<HashMap<String, mpsc::UnboundedSender<Envelope>>>,
    inventories: Mutex<HashMap<String, mpsc::UnboundedSender<bus::Inventory>>>,
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

    pub(super) fn open_fetch(&self, fetch_id: &str) -> mpsc::UnboundedReceiver<Envelope> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.fetches
            .lock()
            .expect("coordinator lock")
            .insert(fetch_id.to_owned(), tx);
        rx
    }

    pub(super) fn close_fetch(&self, fetch_id: &str) {
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
