//! The embedded default: every storage device registered with the engine runs inside the
//! engine process, on the in-process bus, with its data under `<data_dir>/devices/<id>/`.

use async_trait::async_trait;
use privicore_bus_local::{Attachment, LocalDeviceBus};
use privicore_domain::device::{Device, DeviceId};
use privicore_engine::DeviceHost;
use privicore_storage_device::{DeviceIdentity, KeyWrap, Link, LinkError, StorageDevice};
use privicore_wire::SignedPublicKey;
use privicore_wire::bus::Envelope;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

pub struct InProcessHost {
    bus: Arc<LocalDeviceBus>,
    root: PathBuf,
    engine_key: SignedPublicKey,
    /// Seals each device's keys at rest under the root key.
    wrap: Arc<dyn KeyWrap>,
    running: Mutex<HashMap<DeviceId, CancellationToken>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl InProcessHost {
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
}

impl Drop for InProcessHost {
    /// An engine dropped without `stop` still ends its device threads.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl DeviceHost for InProcessHost {
    fn host(&self, device: &Device) {
        let mut running = self.running.lock().expect("host lock");
        if running.get(&device.id).is_some_and(|t| !t.is_cancelled()) {
            return;
        }
        let stop = self.shutdown.child_token();
        let wrap = self.wrap.clone();
        let (bus, dir, key, id, hosted_stop) = (
            self.bus.clone(),
            self.root.join(device.id.to_string()),
            self.engine_key.clone(),
            device.id.to_string(),
            stop.clone(),
        );
        // Each hosted device runs on an OS thread of its own, so its flushes block nobody
        // else and need no hop to the blocking pool. Not a blocking-pool thread: a runtime
        // dropped without `stop` would wait for it forever.
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(device = %device.id, %error, "cannot start a hosted device");
                return;
            }
        };
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let hosted = async move {
            let _done = done;
            let mut backoff = Duration::from_millis(100);
            while !stop.is_cancelled() {
                let opened =
                    DeviceIdentity::load_or_create_wrapped(&dir, &id, key.clone(), wrap.as_ref())
                        .and_then(|identity| StorageDevice::open(&dir, identity))
                        .map(StorageDevice::on_own_thread);
                let device = match opened {
                    Ok(d) => d,
                    Err(error) => {
                        tracing::error!(device = %id, %error, "hosted device cannot open its data");
                        return;
                    }
                };
                let attachment = bus.attach(&id);
                let connection = attachment.connection;
                let result = device.run(AttachedLink(attachment), stop.clone()).await;
                bus.detach(&id, connection);
                match result {
                    // Ended by the engine (revoked, rejected) or by shutdown.
                    Ok(()) if stop.is_cancelled() => break,
                    Ok(()) => {
                        tracing::info!(device = %id, "hosted device session ended; reconnecting")
                    }
                    Err(error) => {
                        tracing::debug!(device = %id, %error, "hosted device link dropped; reconnecting")
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        };
        let spawned = std::thread::Builder::new()
            .name(format!("device-{}", &device.id.to_string()[..8]))
            .spawn(move || runtime.block_on(hosted));
        if let Err(error) = spawned {
            tracing::error!(device = %device.id, %error, "cannot start a hosted device");
            return;
        }
        running.insert(device.id, hosted_stop);
        // `stop` waits for the thread through this task.
        self.tasks.spawn(async move {
            let _ = finished.await;
        });
        tracing::info!(device = %device.id, "hosting storage device in-process");
    }

    fn unhost(&self, device: DeviceId) {
        if let Some(stop) = self.running.lock().expect("host lock").remove(&device) {
            stop.cancel();
        }
    }
}
