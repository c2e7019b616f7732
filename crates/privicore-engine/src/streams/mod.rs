//! Streaming transfers (docs/api/data-tokens.md §3.4, §3.6, §4): the values that open the
//! upstream and downstream listeners, uploads sealed into the spool as they arrive, the
//! fan-out of large versions from the spool, and downloads fetched window by window.
//!
//! Upload and download values are kept only as SHA-256 digests and compared in constant
//! time. Both live in memory: a download value lives 300 s; an upload value is derived
//! from the reservation's stored salt (see `tokens::upload_value`) and registered here
//! whenever it is shown, so after a restart it opens the listener again once §3.2 has been
//! asked once more. A streamed replacement's value is derived from its command id, whose
//! record is pending from acceptance; a start registers it again (`restore_replacements`).

mod download;
mod fanout;
mod upload;

pub use download::{Download, DownloadBroken};
pub(crate) use download::{issue_download, settle_readiness};
pub(crate) use fanout::fan_out;
pub use upload::{Upload, UploadReceipt};

use crate::engine::Core;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use privicore_domain::CommandId;
use privicore_domain::command::{CommandPayload, CommandRecord, CommandState, Completion, Outcome};
use privicore_domain::effect::DataEffect;
use privicore_domain::secret::{Secret, TokenHash};
use privicore_domain::{Reason, Timestamp};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Registered upload values beyond this are forgotten (they register again when shown).
const UPLOAD_VALUES_MAX: usize = 100_000;
/// Outstanding download values at most; the oldest expired ones go first.
const DOWNLOAD_VALUES_MAX: usize = 100_000;

/// A streamed replacement's upload must start within this many seconds (§3.10).
pub(crate) const REPLACEMENT_UPLOAD_SECONDS: i64 = 15 * 60;

/// What an upload value opens.
#[derive(Clone)]
pub(crate) enum UploadTarget {
    /// The reservation of this token (§3.2).
    Exchange { token: String },
    /// A streamed data replacement accepted by §3.10 shape B.
    Replace(Arc<Replacement>),
}

/// A streamed replacement waiting for its upload: the update command (which runs once the
/// upload is complete) and the deadline for the upload to start.
pub(crate) struct Replacement {
    pub(crate) command: CommandRecord,
    pub(crate) expires_at: Timestamp,
    pub(crate) since: Instant,
    /// Set when the upload starts (the value is consumed) or the deadline passed.
    pub(crate) taken: AtomicBool,
}

impl Replacement {
    pub(crate) fn new(command: CommandRecord, expires_at: Timestamp, since: Instant) -> Self {
        Self {
            command,
            expires_at,
            since,
            taken: AtomicBool::new(false),
        }
    }

    /// The token and the version the replacement writes.
    pub(crate) fn target(&self) -> (&str, u32) {
        match &self.command.payload {
            CommandPayload::ReplaceData { token, version, .. } => (token, *version),
            _ => ("", 0),
        }
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    uploads: Mutex<HashMap<[u8; 32], UploadTarget>>,
    pub(super) downloads: Mutex<HashMap<[u8; 32], Arc<download::Grant>>>,
    /// Tokens with a streamed replacement accepted and not finished.
    replacing: Mutex<HashSet<String>>,
}

impl Registry {
    /// Remembers the digest of an upload value that was just shown to a client.
    pub(crate) fn note_upload(&self, value: &str, target: UploadTarget) {
        let mut uploads = self.uploads.lock().expect("uploads lock");
        if uploads.len() >= UPLOAD_VALUES_MAX {
            uploads.clear();
        }
        uploads.insert(TokenHash::of(value).0, target);
    }

    /// What `value` opens, if it was shown; the caller still checks it against the
    /// reservation's current value.
    pub(crate) fn upload_target(&self, value: &str) -> Option<UploadTarget> {
        let digest = TokenHash::of(value);
        let uploads = self.uploads.lock().expect("uploads lock");
        uploads.get(&digest.0).cloned()
    }

    /// False when a streamed replacement of the token is already waiting.
    pub(crate) fn begin_replacement(&self, token: &str) -> bool {
        self.replacing
            .lock()
            .expect("replacing lock")
            .insert(token.to_owned())
    }

    pub(crate) fn end_replacement(&self, token: &str) {
        self.replacing.lock().expect("replacing lock").remove(token);
    }

    pub(crate) fn replacing(&self, token: &str) -> bool {
        self.replacing
            .lock()
            .expect("replacing lock")
            .contains(token)
    }

    pub(crate) fn forget_upload(&self, value: &str) {
        self.uploads
            .lock()
            .expect("uploads lock")
            .remove(&TokenHash::of(value).0);
    }
}

/// Hands back the reservations of uploads a stop cut off: tokens left `exchanging` without
/// an unfinished exchange command (an upload's command is recorded only once its body is
/// complete).
pub(crate) async fn release_stranded_uploads(
    core: &Core,
    unfinished: &[CommandRecord],
) -> Result<(), privicore_domain::Error> {
    let running: HashSet<&str> = unfinished
        .iter()
        .filter_map(|c| match &c.payload {
            CommandPayload::ExchangeData { token, .. } => Some(token.as_str()),
            _ => None,
        })
        .collect();
    for token in core.store.exchanging_tokens().await? {
        if running.contains(token.as_str()) {
            continue;
        }
        if let Some(row) = core.store.data_token(&token).await? {
            tracing::info!(%token, "an upload was cut off by a stop; handing its reservation back");
            upload::hand_back(core, &row, 1).await;
        }
    }
    Ok(())
}

/// How often a waiting replacement checks its deadline.
const REPLACEMENT_POLL: Duration = Duration::from_millis(500);

/// The upload value of a streamed replacement: derived from its command id with the
/// upload-value key, so a restart opens the same value again without storing it.
pub(crate) fn replacement_value(core: &Core, command: CommandId) -> Secret {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(core.secrets.upload()).expect("any key length");
    mac.update(b"replace\0");
    mac.update(command.to_string().as_bytes());
    Secret::new(format!(
        "U-{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

/// Takes out of `pending` the streamed replacements a stop left waiting for their upload
/// (no version row yet) and opens them again: the same value until the same deadline; one
/// whose deadline passed meanwhile fails with `stream.not_started`. An upload the stop cut
/// off left at most some spooled chunks, which go; the client uploads again.
pub(crate) async fn restore_replacements(
    core: &Arc<Core>,
    pending: &mut Vec<CommandRecord>,
) -> Result<(), privicore_domain::Error> {
    let mut kept = Vec::with_capacity(pending.len());
    for command in std::mem::take(pending) {
        let waiting = match &command.payload {
            CommandPayload::ReplaceData {
                token,
                version,
                upload_by: Some(by),
                ..
            } if core.store.token_version(token, *version).await?.is_none() => {
                Some((token.clone(), *version, *by))
            }
            _ => None,
        };
        let Some((token, version, by)) = waiting else {
            kept.push(command);
            continue;
        };
        core.apply(vec![DataEffect::DropSpool {
            token: token.clone(),
            version,
        }])
        .await?;
        // The wall-time bound continues from the acceptance.
        let waited = command
            .created_at
            .seconds_until(Timestamp::now())
            .clamp(0, REPLACEMENT_UPLOAD_SECONDS);
        let since = Instant::now()
            .checked_sub(Duration::from_secs(waited as u64))
            .unwrap_or_else(Instant::now);
        let value = replacement_value(core, command.id);
        let replacement = Arc::new(Replacement::new(command, by, since));
        if core.config.clock.now() >= by {
            replacement.taken.store(true, Ordering::SeqCst);
            fail_replacement(core, &replacement, Reason::StreamNotStarted).await;
            continue;
        }
        tracing::info!(%token, "a streamed replacement waits for its upload again");
        core.streams.begin_replacement(&token);
        core.streams
            .note_upload(value.expose(), UploadTarget::Replace(replacement.clone()));
        watch_replacement(core.clone(), value, replacement);
    }
    *pending = kept;
    Ok(())
}

/// Fails a streamed replacement with `stream.not_started` once its deadline passed (by the
/// engine clock, or by wall time) without the upload having started.
pub(crate) fn watch_replacement(core: Arc<Core>, value: Secret, replacement: Arc<Replacement>) {
    tokio::spawn(async move {
        let wall = Duration::from_secs(REPLACEMENT_UPLOAD_SECONDS as u64);
        loop {
            tokio::time::sleep(REPLACEMENT_POLL).await;
            if replacement.taken.load(Ordering::SeqCst) {
                return;
            }
            if core.config.clock.now() >= replacement.expires_at
                || replacement.since.elapsed() >= wall
            {
                break;
            }
        }
        if replacement.taken.swap(true, Ordering::SeqCst) {
            return;
        }
        core.streams.forget_upload(value.expose());
        fail_replacement(&core, &replacement, Reason::StreamNotStarted).await;
    });
}

/// Records a streamed replacement's command as failed (version n stays served). Its record
/// is pending since acceptance.
pub(crate) async fn fail_replacement(core: &Core, replacement: &Replacement, reason: Reason) {
    let (token, _) = replacement.target();
    core.streams.end_replacement(token);
    let mut command = replacement.command.clone();
    let outcome = Outcome::failed(reason);
    let finished_at = Timestamp::now();
    let completion = Completion {
        command_id: command.id,
        outcome: outcome.clone(),
        finished_at,
    };
    if let Err(error) = core.store.apply(&[], Some(&completion)).await {
        tracing::warn!(command = %command.id, %error, "could not record a failed replacement");
        return;
    }
    command.state = CommandState::Finished {
        outcome: outcome.clone(),
        finished_at,
    };
    crate::pipeline::publish_outcome(core, &command, outcome).await;
}
