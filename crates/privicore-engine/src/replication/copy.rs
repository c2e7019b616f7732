//! A committed version pushed to one device a chunk at a time (Synchronize device,
//! docs/api/devices-and-storage.md §5.4 step 4): from the spool while it holds the chunks,
//! then from a replica whose chunks authenticate, re-sent exactly as received. One transfer
//! whatever the source, with at most `fanout_in_flight` chunks queued, so memory stays at a
//! few chunks whatever the object's size.

use super::retrieve::relay_sealed;
use crate::engine::Core;
use privicore_domain::data_token::TokenVersion;
use privicore_domain::device::DeviceId;
use privicore_domain::ports::StoreError;
use privicore_wire::bus::kind;
use tokio::sync::mpsc;

/// Sends every chunk of `version` to `target`; the sealed bytes sent, or None when some
/// chunk could be found neither in the spool nor on a healthy replica (the device then
/// discards the partial transfer).
pub(crate) async fn push_version(
    core: &Core,
    version: &TokenVersion,
    target: DeviceId,
) -> Result<Option<u64>, StoreError> {
    let (tx, mut rx) = mpsc::channel::<(u32, Vec<u8>)>(core.config.streams.fanout_in_flight.max(1));
    let send = async {
        let transfer_id = uuid::Uuid::new_v4().to_string();
        let mut bytes = 0u64;
        while let Some((index, data)) = rx.recv().await {
            bytes += data.len() as u64;
            let body = crate::replication::store_chunk(version, &transfer_id, index, data.into());
            core.send(target, kind::STORE_CHUNK, body).await;
        }
        bytes
    };
    let produce = async move {
        let mut next = 0;
        // The spool may drop the version meanwhile (its last target confirmed): the
        // replicas then take over from the same chunk.
        while next < version.chunk_count {
            let Some(chunk) = core
                .store
                .spool_chunk(&version.token, version.version, next)
                .await?
            else {
                break;
            };
            if tx.send((next, chunk)).await.is_err() {
                return Ok(false);
            }
            next += 1;
        }
        if next == version.chunk_count {
            return Ok(true);
        }
        relay_sealed(core, version, target, next, tx).await
    };
    let (complete, bytes) = tokio::join!(produce, send);
    Ok(complete?.then_some(bytes))
}
