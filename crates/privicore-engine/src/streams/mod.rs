//! Streaming transfers (docs/api/data-tokens.md §3.4, §3.6, §4): the values that open the
//! upstream and downstream listeners, uploads sealed into the spool as they arrive, the
//! fan-out of large versions from the spool, and downloads fetched window by window.
//!
//! Upload and download values are kept only as SHA-256 digests and compared in constant
//! time. Both live in memory: a download value lives 300 s; an upload value is derived
//! from the reservation's stored salt (see `tokens::upload_value`) and registered here
//! whenever it is shown, so after a restart it opens the listener again once §3.2 (or the
//! update that issued it) has been asked once more.

mod download;
mod fanout;
mod upload;

pub use download::{Download, DownloadBroken};
pub(crate) use download::{issue_download, settle_readiness};
pub(crate) use fanout::fan_out;
pub use upload::{Upload, UploadReceipt};

use privicore_domain::secret::TokenHash;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registered upload values beyond this are forgotten (they register again when shown).
const UPLOAD_VALUES_MAX: usize = 100_000;
/// Outstanding download values at most; the oldest expired ones go first.
const DOWNLOAD_VALUES_MAX: usize = 100_000;

/// What an upload value opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadTarget {
    /// The reservation of this token (§3.2).
    Exchange { token: String },
}

#[derive(Default)]
pub(crate) struct Registry {
    uploads: Mutex<HashMap<[u8; 32], UploadTarget>>,
    pub(super) downloads: Mutex<HashMap<[u8; 32], Arc<download::Grant>>>,
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

    pub(crate) fn forget_upload(&self, value: &str) {
        self.uploads
            .lock()
            .expect("uploads lock")
            .remove(&TokenHash::of(value).0);
    }
}
