//! Fan-out of a large version from the spool (docs/api/devices-and-storage.md §5.2 step 3):
//! one chunk read at a time, queued to every target with at most `fanout_in_flight` chunks
//! waiting per device. The slowest device sets the pace, so memory stays at a few chunks
//! whatever the object's size; the devices share each chunk's buffer (no copy per device).

use crate::engine::Core;
use privicore_domain::data_token::TokenVersion;
use privicore_domain::device::DeviceId;
use privicore_domain::ports::StoreError;
use privicore_wire::bus::kind;
use tokio::sync::mpsc;

/// Sends every chunk of `version`, read from the spool, to every device of `targets`.
pub(crate) async fn fan_out(
    core: &Core,
    targets: &[DeviceId],
    version: &TokenVersion,
) -> Result<(), StoreError> {
    if targets.is_empty() {
        return Ok(());
    }
    let depth = core.config.streams.fanout_in_flight.max(1);
    let mut senders = Vec::with_capacity(targets.len());
    let mut lanes = Vec::with_capacity(targets.len());
    for device in targets {
        let (tx, mut rx) = mpsc::channel::<(u32, bytes::Bytes)>(depth);
        senders.push(tx);
        let transfer_id = uuid::Uuid::new_v4().to_string();
        let device = *device;
        lanes.push(async move {
            while let Some((index, data)) = rx.recv().await {
                let body = crate::replication::store_chunk(version, &transfer_id, index, data);
                core.send(device, kind::STORE_CHUNK, body).await;
            }
        });
    }
    let produce = async move {
        for index in 0..version.chunk_count {
            let chunk = core
                .store
                .spool_chunk(&version.token, version.version, index)
                .await?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "spool lost chunk {index} of {} v{}",
                        version.token, version.version
                    ))
                })?;
            let chunk = bytes::Bytes::from(chunk);
            for tx in &senders {
                // A lane only ends with the whole fan-out.
                let _ = tx.send((index, chunk.clone())).await;
            }
        }
        Ok(())
    };
    let (produced, _) = tokio::join!(produce, futures_util::future::join_all(lanes));
    produced
}
