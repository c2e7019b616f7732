//! `privicore storage-device --config <bundle.json> --data-dir <dir>`: a storage device as
//! its own process, connected to the engine's embedded bus or to the AMQP broker, as the
//! bundle says.

use anyhow::Context;
use privicore_storage_device::{
    Bundle, DeviceIdentity, Link, SessionEnd, StorageDevice, connect_amqp, connect_websocket,
};
use privicore_wire::SignedPublicKey;
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn run(
    config: &Path,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let bundle = Bundle::from_json(&text).context("parsing the device bundle")?;
    if bundle.bus != "embedded" && bundle.bus != "amqp" {
        anyhow::bail!(
            "unknown bus {:?} in the bundle (embedded or amqp)",
            bundle.bus
        );
    }
    let engine_key = SignedPublicKey::parse(&bundle.engine_public_key)
        .map_err(|e| anyhow::anyhow!("engine-public-key: {e}"))?;
    let place = match bundle.bus.as_str() {
        "amqp" => format!("amqp {}:{}", bundle.rabbit_host, bundle.rabbit_port),
        _ => bundle.embedded_bus_url(),
    };
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let identity = DeviceIdentity::load_or_create(
            data_dir,
            &bundle.device_identifier,
            engine_key.clone(),
        )?;
        let device = StorageDevice::open(data_dir, identity)?;
        let session = match bundle.bus.as_str() {
            "amqp" => match connect_amqp(&bundle).await {
                Ok(link) => Ok(session(device, link, &bundle, &place, shutdown.clone()).await),
                Err(error) => Err(error),
            },
            _ => match connect_websocket(&place, &bundle.rabbit_user, &bundle.rabbit_pass).await {
                Ok(link) => Ok(session(device, link, &bundle, &place, shutdown.clone()).await),
                Err(error) => Err(error),
            },
        };
        match session {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Refused(reason) | SessionEnd::Revoked(reason)) => {
                tracing::warn!(
                    %reason,
                    "the engine ended this device's session; waiting for a new bundle"
                );
                return Ok(());
            }
            Ok(SessionEnd::Lost { error, .. }) => {
                tracing::warn!(%error, "bus connection lost");
                backoff = Duration::from_millis(200);
            }
            Err(error) => tracing::warn!(%error, ?backoff, "cannot reach the engine bus"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    Ok(())
}

async fn session(
    device: StorageDevice,
    link: impl Link,
    bundle: &Bundle,
    place: &str,
    shutdown: CancellationToken,
) -> SessionEnd {
    tracing::info!(device = %bundle.device_identifier, %place, "connected to the engine bus");
    device.run(link, shutdown).await
}
