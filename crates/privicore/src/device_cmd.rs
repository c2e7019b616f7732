//! `privicore storage-device --config <bundle.json> --data-dir <dir>`: a storage device as
//! its own process, connected to the engine's embedded bus.

use anyhow::Context;
use privicore_storage_device::{
    Bundle, DeviceIdentity, SessionEnd, StorageDevice, connect_websocket,
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
    if bundle.bus != "embedded" {
        anyhow::bail!(
            "this build connects to the embedded bus only (bundle says {})",
            bundle.bus
        );
    }
    let engine_key = SignedPublicKey::parse(&bundle.engine_public_key)
        .map_err(|e| anyhow::anyhow!("engine-public-key: {e}"))?;
    let url = bundle.embedded_bus_url();
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let identity = DeviceIdentity::load_or_create(
            data_dir,
            &bundle.device_identifier,
            engine_key.clone(),
        )?;
        let device = StorageDevice::open(data_dir, identity)?;
        match connect_websocket(&url, &bundle.rabbit_user, &bundle.rabbit_pass).await {
            Ok(link) => {
                tracing::info!(device = %bundle.device_identifier, %url, "connected to the engine");
                backoff = Duration::from_millis(200);
                match device.run(link, shutdown.clone()).await {
                    SessionEnd::Shutdown => break,
                    SessionEnd::Refused(reason) | SessionEnd::Revoked(reason) => {
                        tracing::warn!(
                            %reason,
                            "the engine ended this device's session; waiting for a new bundle"
                        );
                        return Ok(());
                    }
                    SessionEnd::Lost { error, .. } => {
                        tracing::warn!(%error, "bus connection lost")
                    }
                }
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
