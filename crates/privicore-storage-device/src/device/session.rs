//! A device's session on one link: hello, heartbeats, and batches of engine messages
//! handled together so that one flush covers all the objects they complete.

use super::StorageDevice;
use crate::link::{Link, LinkError};
use futures_util::FutureExt;
use privicore_wire::bus::{self, Envelope, kind};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const HEARTBEAT: Duration = Duration::from_secs(30);
/// Most messages handled (and objects flushed) together.
const MAX_BATCH: usize = 256;
/// How long a batch of several messages counts as a sign of concurrent senders.
const CONCURRENCY_MEMORY: Duration = Duration::from_millis(100);
/// Segment files are closed once the device has been idle this long: hundreds of idle
/// hosted devices then hold no file descriptors.
const RELEASE_AFTER: Duration = Duration::from_secs(2);

/// How a session on a link ended.
#[derive(Debug)]
pub enum SessionEnd {
    /// `shutdown` was cancelled.
    Shutdown,
    /// The engine refused the hello (`device.rejected`), or its welcome did not prove the
    /// engine key: trying again at once would be refused again.
    Refused(String),
    /// The engine revoked a welcomed session (`device.revoked`).
    Revoked(String),
    /// The link closed or failed.
    Lost { welcomed: bool, error: LinkError },
}

impl StorageDevice {
    /// Runs the device on `link` until the engine ends the session, the link drops or
    /// `shutdown` is cancelled.
    pub async fn run(self, link: impl Link, shutdown: CancellationToken) -> SessionEnd {
        let device = Arc::new(Mutex::new(self));
        match Self::session(&device, link, shutdown).await {
            Ok(end) => end,
            Err(error) => SessionEnd::Lost {
                welcomed: device.lock().expect("device lock").welcomed,
                error,
            },
        }
    }

    async fn session(
        device: &Arc<Mutex<Self>>,
        mut link: impl Link,
        shutdown: CancellationToken,
    ) -> Result<SessionEnd, LinkError> {
        let hello = device.lock().expect("device lock").hello();
        link.send(hello).await?;
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        let mut last_concurrent: Option<Instant> = None;
        let release = tokio::time::sleep(RELEASE_AFTER);
        tokio::pin!(release);
        let mut holding = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    link.close().await;
                    return Ok(SessionEnd::Shutdown);
                }
                _ = &mut release, if holding => {
                    device.lock().expect("device lock").store.release_handles();
                    holding = false;
                }
                _ = heartbeat.tick() => {
                    let (beat, swept) = {
                        let mut device = device.lock().expect("device lock");
                        let mut swept = super::Handled::default();
                        device.sweep_staging(Instant::now(), &mut swept);
                        (device.heartbeat(), swept.replies)
                    };
                    link.send(beat).await?;
                    for reply in swept {
                        link.send(reply).await?;
                    }
                }
                next = link.recv() => {
                    let Some(env) = next else { return Err(LinkError::Closed) };
                    // When recent batches showed concurrent senders, others are likely about
                    // to send more: one yield lets them, so one flush covers their writes
                    // too (with a single sender it would only add latency). Whatever has
                    // arrived by then is handled (and flushed) together.
                    if last_concurrent.is_some_and(|at| at.elapsed() < CONCURRENCY_MEMORY) {
                        tokio::task::yield_now().await;
                    }
                    let mut batch = vec![env];
                    while batch.len() < MAX_BATCH
                        && let Some(Some(more)) = link.recv().now_or_never()
                    {
                        batch.push(more);
                    }
                    if batch.len() > 1 {
                        last_concurrent = Some(Instant::now());
                    }
                    let ids: Vec<String> = batch.iter().map(|e| e.message_id.clone()).collect();
                    let inline = device.lock().expect("device lock").only_small_reads(&batch);
                    let handled = if inline {
                        // A few KiB read back from the page cache cost less than a hop to
                        // the blocking pool and back.
                        device.lock().expect("device lock").handle_batch(batch)
                    } else {
                        // Writes, fsyncs and large reads happen off the async threads.
                        let worker = device.clone();
                        tokio::task::spawn_blocking(move || worker.lock().expect("device lock").handle_batch(batch))
                            .await
                            .map_err(|e| LinkError::Transport(e.to_string()))?
                    };
                    release.as_mut().reset(tokio::time::Instant::now() + RELEASE_AFTER);
                    holding = true;
                    for reply in handled.replies {
                        link.send(reply).await?;
                    }
                    // Large fetches: each chunk is sent before the next is read.
                    for mut reading in handled.reads {
                        loop {
                            if shutdown.is_cancelled() {
                                link.close().await;
                                return Ok(SessionEnd::Shutdown);
                            }
                            let worker = device.clone();
                            let (back, next) = tokio::task::spawn_blocking(move || {
                                let next = worker.lock().expect("device lock").next_reply(&mut reading);
                                (reading, next)
                            })
                            .await
                            .map_err(|e| LinkError::Transport(e.to_string()))?;
                            reading = back;
                            let Some(reply) = next else { break };
                            link.send(reply).await?;
                        }
                    }
                    link.handled().await?;
                    if link.wants_acks() {
                        let ack = Envelope::new(kind::ACK, &device.lock().expect("device lock").identity.device_identifier, None, bus::Ack { message_ids: ids });
                        link.send(ack).await?;
                    }
                    if let Some(reason) = handled.stop {
                        let welcomed = device.lock().expect("device lock").welcomed;
                        return Ok(if welcomed {
                            SessionEnd::Revoked(reason)
                        } else {
                            SessionEnd::Refused(reason)
                        });
                    }
                }
            }
        }
    }
}
