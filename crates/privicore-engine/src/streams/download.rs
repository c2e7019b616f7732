//! Downloads from the downstream listener (docs/api/data-tokens.md §3.5 stream branch,
//! §3.6): a single-use value bound to one request and one token version, ready once the
//! first chunk was fetched from a device and authenticated; the body is fetched window by
//! window while it is sent, switching devices from the same chunk index.

use crate::engine::{Core, Engine};
use privicore_domain::data_token::TokenStatus;
use privicore_domain::secret::{Secret, TokenHash};
use privicore_domain::{Error, ProfileId, Reason, Timestamp};
use privicore_wire::{TokenKind, is_well_formed_token};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{mpsc, oneshot, watch};

/// Opened chunks queued between the devices and the client connection.
const CHUNKS_QUEUED: usize = 2;
/// How often an early download looks at the engine clock while it waits for readiness.
const READY_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A download value handed out with an `output_type: 1` event.
pub(crate) struct Grant {
    token: String,
    version: u32,
    profile: ProfileId,
    size: u64,
    expires_at: Timestamp,
    /// None until the first chunk was fetched; then whether it authenticated.
    ready: watch::Sender<Option<bool>>,
    used: AtomicBool,
}

impl Grant {
    pub(crate) fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

/// Issues a download value for `version` of `token` (`size` bytes of client payload).
pub(crate) fn issue_download(
    core: &Core,
    token: &str,
    version: u32,
    profile: ProfileId,
    size: u64,
) -> (Secret, Arc<Grant>) {
    let value = Secret::generate(TokenKind::Download);
    let now = core.config.clock.now();
    let grant = Arc::new(Grant {
        token: token.to_owned(),
        version,
        profile,
        size,
        expires_at: now.plus_seconds(core.config.streams.download_auth_seconds),
        ready: watch::Sender::new(None),
        used: AtomicBool::new(false),
    });
    let mut downloads = core.streams.downloads.lock().expect("downloads lock");
    if downloads.len() >= super::DOWNLOAD_VALUES_MAX {
        downloads.retain(|_, g| g.expires_at > now && !g.used.load(Ordering::Relaxed));
    }
    if downloads.len() < super::DOWNLOAD_VALUES_MAX {
        downloads.insert(value.hash().0, grant.clone());
    }
    (value, grant)
}

/// Records whether the first chunk could be fetched; a value that cannot be served is
/// withdrawn.
pub(crate) fn settle_readiness(core: &Core, value: &Secret, grant: &Grant, ready: bool) {
    if !ready {
        core.streams
            .downloads
            .lock()
            .expect("downloads lock")
            .remove(&value.hash().0);
    }
    grant.ready.send_replace(Some(ready));
}

/// A download being served: the token and version, the payload size, and the opened
/// chunks as the devices deliver them.
pub struct Download {
    pub token: String,
    pub version: u32,
    pub size: u64,
    chunks: mpsc::Receiver<Vec<u8>>,
    outcome: Option<oneshot::Receiver<bool>>,
}

/// No device could deliver some chunk: the connection must be aborted (§3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no storage device could deliver the next chunk")]
pub struct DownloadBroken;

impl Download {
    /// The next opened chunk; `Ok(None)` once every chunk was sent.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, DownloadBroken> {
        if let Some(chunk) = self.chunks.recv().await {
            return Ok(Some(chunk));
        }
        match self.outcome.take() {
            Some(outcome) => match outcome.await {
                Ok(true) => Ok(None),
                _ => Err(DownloadBroken),
            },
            None => Ok(None),
        }
    }
}

fn invalid_auth() -> Error {
    Error::new(Reason::StreamInvalidAuth)
}

impl Engine {
    /// Opens a download (§3.6). The value is consumed only when everything checks out, just
    /// before the response headers go out; an early request waits for readiness and is
    /// refused with `stream.not_ready` without consuming the value.
    pub async fn open_download(self: &Arc<Self>, value: &str) -> Result<Download, Error> {
        if !is_well_formed_token(TokenKind::Download, value) {
            return Err(invalid_auth());
        }
        let digest = TokenHash::of(value);
        let grant = self
            .streams
            .downloads
            .lock()
            .expect("downloads lock")
            .get(&digest.0)
            .cloned()
            .ok_or_else(invalid_auth)?;
        let forget = || {
            self.streams
                .downloads
                .lock()
                .expect("downloads lock")
                .remove(&digest.0);
        };
        if grant.used.load(Ordering::SeqCst) || grant.expires_at <= self.config.clock.now() {
            forget();
            return Err(invalid_auth());
        }
        let mut ready = grant.ready.subscribe();
        // The wait ends by wall time or by the engine clock, whichever passes it first.
        let wait = self.config.streams.not_ready_wait;
        let (deadline, since) = (tokio::time::Instant::now() + wait, self.config.clock.now());
        let waited = loop {
            let poll =
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + READY_POLL));
            tokio::select! {
                // The watch guard is not held across the awaits.
                state = ready.wait_for(Option::is_some) => {
                    break Some(state.is_ok_and(|state| *state == Some(true)));
                }
                () = poll => {}
            }
            if tokio::time::Instant::now() >= deadline
                || since.seconds_until(self.config.clock.now()) >= wait.as_secs() as i64
            {
                break None;
            }
        };
        match waited {
            None => {
                return Err(Error::new(Reason::StreamNotReady).with_retry_after(2));
            }
            Some(true) => {}
            Some(false) => return Err(invalid_auth()),
        }
        let row = self.store.data_token(&grant.token).await?;
        match row {
            Some(row) if row.status == TokenStatus::Active => {
                if row.version != Some(grant.version) {
                    forget();
                    return Err(Reason::StreamDataSuperseded.into());
                }
            }
            _ => {
                forget();
                return Err(Reason::DataTokenNotFound.into());
            }
        }
        if grant.used.swap(true, Ordering::SeqCst) {
            return Err(invalid_auth());
        }
        forget();
        let (tx, chunks) = mpsc::channel(CHUNKS_QUEUED);
        let (done, outcome) = oneshot::channel();
        let core = self.shared_core();
        let (token, version, profile) = (grant.token.clone(), grant.version, grant.profile);
        tokio::spawn(async move {
            let delivered =
                crate::replication::stream_chunks(&core, profile, &token, version, None, Some(tx))
                    .await;
            let delivered = match delivered {
                Ok(delivered) => delivered,
                Err(error) => {
                    tracing::warn!(%token, version, %error, "a download could not be served");
                    false
                }
            };
            if !delivered {
                tracing::warn!(%token, version, "download aborted: no device delivered the next chunk");
            }
            let _ = done.send(delivered);
        });
        Ok(Download {
            token: grant.token.clone(),
            version: grant.version,
            size: grant.size,
            chunks,
            outcome: Some(outcome),
        })
    }
}
