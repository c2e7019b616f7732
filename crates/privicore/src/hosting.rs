//! The embedded default: every storage device registered with the engine runs inside the
//! engine process, on the in-process bus, with its data under `<data_dir>/devices/<id>/`.
//! A hosted device is a task on the engine's runtime, not a thread: hundreds of idle
//! devices cost a few hundred KiB each.

mod reconnect;

pub use reconnect::{Ended, REFUSED_FIRST, REFUSED_MAX, Reconnect};

use async_trait::async_trait;
use privicore_bus_local::{Attachment, LocalDeviceBus};
use privicore_domain::device::{Device, DeviceId};
use privicore_engine::DeviceHost;
use privicore_storage_device::{
    DeviceIdentity, KeyWrap, Link, LinkError, SessionEnd, StorageDevice,
};
use privicore_wire::SignedPublicKey;
use privicore_wire::bus::Envelope;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Devices opened at once: opening reads a device's whole segment log on the blocking
/// pool, and at start every device opens.
const OPENING_AT_ONCE: usize = 2;

/// A hosted device's end of the in-process bus.
struct AttachedLink(Attachment);

#[async_trait]
impl Link for AttachedLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), LinkError> {
        self.0
            .to_engine
            .send(envelope)
            .map_err(|_| LinkError::Closed)
    }

    async fn recv(&mut self) -> Option<Envelope> {
        self.0.from_engine.recv().await
    }
}

/// A hosted device's reconnects, as far as operators and tests can see them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostedState {
    /// Refusals in a row.
    pub refusals: u32,
    /// The pause before the next attempt, while one is scheduled.
    pub retry_in: Option<Duration>,
}

#[derive(Clone)]
struct Hosted {
    stop: CancellationToken,
    retry_now: Arc<Notify>,
    state: Arc<Mutex<HostedState>>,
}

pub struct InProcessHost {
    bus: Arc<LocalDeviceBus>,
    root: PathBuf,
    engine_key: SignedPublicKey,
    /// Seals each device's keys at rest under the root key.
    wrap: Arc<dyn KeyWrap>,
    running: Mutex<HashMap<DeviceId, Hosted>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
    opening: Arc<Semaphore>,
}

impl InProcessHost {
    /// Devices run as tasks on the runtime this is created on.
    pub fn new(
        bus: Arc<LocalDeviceBus>,
        root: PathBuf,
        engine_key: SignedPublicKey,
        wrap: Arc<dyn KeyWrap>,
    ) -> Self {
        Self {
            bus,
            root,
            engine_key,
            wrap,
            running: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
            opening: Arc::new(Semaphore::new(OPENING_AT_ONCE)),
        }
    }

    /// Opens the keys of every device that already has a directory (sealing plain keys of
    /// earlier builds), so a missing or foreign key stops the start instead of one device.
    pub fn check_keys(&self, devices: &[Device]) -> anyhow::Result<()> {
        for device in devices {
            let dir = self.root.join(device.id.to_string());
            if dir.exists() {
                DeviceIdentity::load_or_create_wrapped(
                    &dir,
                    &device.id.to_string(),
                    self.engine_key.clone(),
                    self.wrap.as_ref(),
                )
                .map_err(|e| anyhow::anyhow!("hosted storage device {}: {e}", device.id))?;
            }
        }
        Ok(())
    }

    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// The reconnect state of a hosted device.
    pub fn state(&self, device: DeviceId) -> Option<HostedState> {
        let running = self.running.lock().expect("host lock");
        let hosted = running.get(&device)?;
        Some(*hosted.state.lock().expect("hosted state lock"))
    }

    /// How many devices are hosted.
    pub fn hosted(&self) -> usize {
        self.running
            .lock()
            .expect("host lock")
            .values()
            .filter(|h| !h.stop.is_cancelled())
            .count()
    }
}

impl Drop for InProcessHost {
    /// An engine dropped without `stop` still ends its devices.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One hosted device: opens its data, runs sessions on the in-process bus and, between
/// them, waits as `Reconnect` says (or until told to try again now).
struct DeviceTask {
    bus: Arc<LocalDeviceBus>,
    dir: PathBuf,
    id: String,
    engine_key: SignedPublicKey,
    wrap: Arc<dyn KeyWrap>,
    opening: Arc<Semaphore>,
    hosted: Hosted,
}

impl DeviceTask {
    async fn open(&self) -> std::io::Result<StorageDevice> {
        let _permit = self.opening.acquire().await;
        let (dir, id, key) = (self.dir.clone(), self.id.clone(), self.engine_key.clone());
        let wrap = self.wrap.clone();
        tokio::task::spawn_blocking(move || {
            DeviceIdentity::load_or_create_wrapped(&dir, &id, key, wrap.as_ref())
                .and_then(|identity| StorageDevice::open(&dir, identity))
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn run(self) {
        let Hosted {
            stop,
            retry_now,
            state,
        } = self.hosted.clone();
        let id = &self.id;
        let mut reconnect = Reconnect::default();
        while !stop.is_cancelled() {
            state.lock().expect("hosted state lock").retry_in = None;
            let device = match self.open().await {
                Ok(device) => device,
                Err(error) => {
                    tracing::error!(device = %id, %error, "hosted device cannot open its data");
                    return;
                }
            };
            let attachment = self.bus.attach(id);
            let connection = attachment.connection;
            let end = device.run(AttachedLink(attachment), stop.clone()).await;
            self.bus.detach(id, connection);
            let ended = match end {
                SessionEnd::Shutdown => break,
                SessionEnd::Refused(reason) => {
                    let pause = reconnect.next(Ended::Refused);
                    // One line per attempt, and attempts grow rare.
                    tracing::warn!(device = %id, %reason, attempt = reconnect.refusals(), retry_in = ?pause,
                        "the engine refused this hosted device; its data directory may have been replaced");
                    *state.lock().expect("hosted state lock") = HostedState {
                        refusals: reconnect.refusals(),
                        retry_in: Some(pause),
                    };
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(pause) => {}
                        _ = retry_now.notified() => {}
                    }
                    continue;
                }
                SessionEnd::Revoked(reason) => {
                    tracing::info!(device = %id, %reason, "hosted device revoked; reconnecting");
                    Ended::AfterWelcome
                }
                SessionEnd::Lost { welcomed, error } => {
                    tracing::debug!(device = %id, %error, "hosted device link dropped; reconnecting");
                    if welcomed {
                        Ended::AfterWelcome
                    } else {
                        Ended::BeforeWelcome
                    }
                }
            };
            let pause = reconnect.next(ended);
            *state.lock().expect("hosted state lock") = HostedState {
                refusals: 0,
                retry_in: Some(pause),
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

impl DeviceHost for InProcessHost {
    fn host(&self, device: &Device) {
        let mut running = self.running.lock().expect("host lock");
        if running
            .get(&device.id)
            .is_some_and(|h| !h.stop.is_cancelled())
        {
            return;
        }
        let hosted = Hosted {
            stop: self.shutdown.child_token(),
            retry_now: Arc::new(Notify::new()),
            state: Arc::default(),
        };
        let task = DeviceTask {
            bus: self.bus.clone(),
            dir: self.root.join(device.id.to_string()),
            id: device.id.to_string(),
            engine_key: self.engine_key.clone(),
            wrap: self.wrap.clone(),
            opening: self.opening.clone(),
            hosted: hosted.clone(),
        };
        running.insert(device.id, hosted);
        self.tasks.spawn_on(task.run(), &self.runtime);
        tracing::debug!(device = %device.id, "hosting storage device in-process");
    }

    fn unhost(&self, device: DeviceId) {
        if let Some(hosted) = self.running.lock().expect("host lock").remove(&device) {
            hosted.stop.cancel();
        }
    }

    fn retry_now(&self, device: DeviceId) {
        if let Some(hosted) = self.running.lock().expect("host lock").get(&device) {
            hosted.retry_now.notify_one();
        }
    }
}
