//! `storage.store_chunk` (docs/api/devices-and-storage.md §6.6). A one-chunk object is
//! complete on arrival and waits in memory for the batch's single flush. An object of more
//! chunks is staged on disk as its chunks arrive (`ObjectStore::begin_upload`), so a
//! device holds at most one chunk of it in memory whatever its size.

use super::{Handled, StorageDevice};
use crate::at_rest::ObjectInfo;
use crate::objects::{Upload, UploadError};
use privicore_wire::bus::{self, Envelope, kind};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// A transfer with no new chunk for this long is discarded and answered `incomplete`.
pub(super) const STAGING_IDLE: Duration = Duration::from_secs(600);

/// A transfer of several chunks in progress.
pub(super) struct Staging {
    upload: Upload,
    sha256: String,
    touched: Instant,
    /// The message id of its latest chunk, which a discard answers.
    correlation: String,
}

/// What one chunk led to.
pub(super) enum Taken {
    /// A complete one-chunk object, for the batch's flush.
    Put(PendingPut),
    /// An answer now (stored, or refused).
    Answer(Envelope),
    /// Nothing yet: more chunks are to come.
    Wait,
}

/// A complete object waiting for the batch's single flush.
pub(super) struct PendingPut {
    info: ObjectInfo,
    chunk: [Vec<u8>; 1],
    request: bus::StoreChunk,
    correlation: String,
}

fn digest_of_hex(hex_digest: &str) -> Option<[u8; 32]> {
    hex::decode(hex_digest).ok()?.try_into().ok()
}

fn failure_reason(e: &UploadError) -> &'static str {
    match e {
        UploadError::Mismatch => "digest_mismatch",
        UploadError::Io(e) => io_reason(e),
    }
}

fn io_reason(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(28) {
        "disk_full"
    } else {
        tracing::error!(error = %e, "could not write an object");
        "io_error"
    }
}

impl StorageDevice {
    /// Writes the one-chunk objects of a batch with one flush, then answers them.
    pub(super) fn flush(&mut self, pending: Vec<PendingPut>, out: &mut Handled) {
        let objects: Vec<(&ObjectInfo, &[Vec<u8>])> = pending
            .iter()
            .map(|p| (&p.info, p.chunk.as_slice()))
            .collect();
        let results = self.store.put_many(&objects);
        for (p, result) in pending.iter().zip(results) {
            let cid = Some(p.correlation.as_str());
            out.replies.push(match result {
                Ok(bytes) => self.stored(&p.request, cid, bytes),
                Err(e) => self.store_failed(&p.request, cid, io_reason(&e)),
            });
        }
    }

    /// Discards transfers idle since before `now - STAGING_IDLE` (their staging files go
    /// with them) and answers each `incomplete`.
    pub fn sweep_staging(&mut self, now: Instant, out: &mut Handled) {
        let stale: Vec<_> = self
            .staging
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.touched) >= STAGING_IDLE)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            let Some(staging) = self.staging.remove(&key) else {
                continue;
            };
            let (token, version, transfer_id) = key;
            out.replies.push(self.envelope(
                kind::STORE_FAILED,
                Some(&staging.correlation),
                bus::StoreFailed {
                    transfer_id,
                    token,
                    version,
                    reason: "incomplete".into(),
                },
            ));
        }
    }

    /// How many transfers of several chunks are being staged.
    pub fn transfers_in_progress(&self) -> usize {
        self.staging.len()
    }

    /// Takes one chunk.
    pub(super) fn store_chunk(&mut self, mut c: bus::StoreChunk, message_id: &str) -> Taken {
        let cid = Some(message_id);
        let key = (c.token.clone(), c.version, c.transfer_id.clone());
        if let Some(digest) = self.store.digest_of(&c.token, c.version)
            && hex::encode(digest) == c.sha256
        {
            // Held already: a transfer of it is not needed, and one answer per transfer
            // (at its last chunk) is enough.
            self.staging.remove(&key);
            let last = c.chunk_index.saturating_add(1) >= c.chunk_count;
            return if last {
                Taken::Answer(self.stored(&c, cid, 0))
            } else {
                Taken::Wait
            };
        }
        if c.chunk_count == 0 || c.chunk_index >= c.chunk_count {
            return Taken::Answer(self.store_failed(&c, cid, "incomplete"));
        }
        let Some(digest) = digest_of_hex(&c.sha256) else {
            self.staging.remove(&key);
            return Taken::Answer(self.store_failed(&c, cid, "digest_mismatch"));
        };
        let info = |c: &bus::StoreChunk| ObjectInfo {
            token: c.token.clone(),
            version: c.version,
            chunk_count: c.chunk_count,
            digest,
            layer2_header: c.header.clone(),
        };
        if c.chunk_count == 1 {
            let actual: [u8; 32] = Sha256::digest(&c.data).into();
            if actual != digest {
                return Taken::Answer(self.store_failed(&c, cid, "digest_mismatch"));
            }
            return Taken::Put(PendingPut {
                info: info(&c),
                chunk: [Vec::from(std::mem::take(&mut c.data))],
                request: c,
                correlation: message_id.to_owned(),
            });
        }
        if let Some(s) = self.staging.get(&key)
            && (s.sha256 != c.sha256 || s.upload.chunk_count() != c.chunk_count)
        {
            // Chunks of one transfer that disagree on the object cannot make it.
            self.staging.remove(&key);
            return Taken::Answer(self.store_failed(&c, cid, "digest_mismatch"));
        }
        if !self.staging.contains_key(&key) {
            match self.store.begin_upload(&info(&c)) {
                Ok(upload) => {
                    let staging = Staging {
                        upload,
                        sha256: c.sha256.clone(),
                        touched: Instant::now(),
                        correlation: String::new(),
                    };
                    self.staging.insert(key.clone(), staging);
                }
                Err(e) => return Taken::Answer(self.store_failed(&c, cid, failure_reason(&e))),
            }
        }
        let staging = self.staging.get_mut(&key).expect("staged above");
        staging.touched = Instant::now();
        staging.correlation = message_id.to_owned();
        match staging.upload.write(c.chunk_index, &c.data) {
            Ok(false) => Taken::Wait,
            Ok(true) => {
                let staging = self.staging.remove(&key).expect("staged above");
                Taken::Answer(match self.store.finish_upload(staging.upload) {
                    Ok(bytes) => self.stored(&c, cid, bytes),
                    Err(e) => self.store_failed(&c, cid, failure_reason(&e)),
                })
            }
            Err(e) => {
                self.staging.remove(&key);
                Taken::Answer(self.store_failed(&c, cid, failure_reason(&e)))
            }
        }
    }

    pub(super) fn store_failed(
        &self,
        c: &bus::StoreChunk,
        cid: Option<&str>,
        reason: &str,
    ) -> Envelope {
        self.envelope(
            kind::STORE_FAILED,
            cid,
            bus::StoreFailed {
                transfer_id: c.transfer_id.clone(),
                token: c.token.clone(),
                version: c.version,
                reason: reason.into(),
            },
        )
    }

    fn stored(&self, c: &bus::StoreChunk, cid: Option<&str>, bytes: u64) -> Envelope {
        self.envelope(
            kind::STORED,
            cid,
            bus::Stored {
                transfer_id: c.transfer_id.clone(),
                token: c.token.clone(),
                version: c.version,
                sha256: c.sha256.clone(),
                bytes_stored: bytes,
            },
        )
    }
}
