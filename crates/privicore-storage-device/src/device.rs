//! The device side of the bus contract: hello/welcome, heartbeat, and the idempotent
//! storage handlers (store, fetch, delete, inventory). The session loop on a link is in
//! `session`.

mod seen;
mod session;

pub use session::SessionEnd;

use crate::at_rest::ObjectInfo;
use crate::identity::DeviceIdentity;
use crate::objects::{ObjectStore, ReadError};
use privicore_wire::bus::{self, Envelope, kind};
use seen::Seen;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const STAGING_IDLE: Duration = Duration::from_secs(600);
const REMEMBERED_IDS: usize = 10_000;

struct Staging {
    chunk_count: u32,
    sha256: String,
    header: Vec<u8>,
    chunks: BTreeMap<u32, Vec<u8>>,
    touched: Instant,
}

/// What handling one message produced.
#[derive(Default)]
pub struct Handled {
    pub replies: Vec<Envelope>,
    /// Set when the engine ended the session: why (a reason key).
    pub stop: Option<String>,
}

/// A complete object waiting for the batch's single flush.
struct PendingPut {
    info: ObjectInfo,
    chunks: Vec<Vec<u8>>,
    request: bus::StoreChunk,
    correlation: String,
}

/// Reads up to this size are answered on the async thread (see `session`).
const SMALL_READS: u64 = 64 * 1024;

pub struct StorageDevice {
    identity: DeviceIdentity,
    store: ObjectStore,
    staging: HashMap<(String, u32, String), Staging>,
    seen: Seen,
    hello_id: Option<String>,
    /// Whether the engine's welcome on this session proved the engine key.
    welcomed: bool,
    roles: Vec<String>,
}

impl StorageDevice {
    pub fn open(data_dir: &Path, identity: DeviceIdentity) -> std::io::Result<Self> {
        let store = ObjectStore::open(data_dir, identity.dmk)?;
        Ok(Self {
            identity,
            store,
            staging: HashMap::new(),
            seen: Seen::new(REMEMBERED_IDS),
            hello_id: None,
            welcomed: false,
            roles: vec!["storage".into()],
        })
    }

    pub fn objects(&self) -> &ObjectStore {
        &self.store
    }

    fn envelope(
        &self,
        kind: &str,
        correlation: Option<&str>,
        body: impl serde::Serialize + Send + Sync + 'static,
    ) -> Envelope {
        Envelope::new(kind, &self.identity.device_identifier, correlation, body)
    }

    pub fn hello(&mut self) -> Envelope {
        let env = self.envelope(
            kind::HELLO,
            None,
            bus::Hello {
                public_key: self.identity.public_key().to_hex(),
                software: bus::Software {
                    name: "privicore-storage".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
                roles: self.roles.clone(),
                capacity: self.store.capacity(),
                object_count: self.store.object_count(),
            },
        );
        self.hello_id = Some(env.message_id.clone());
        env
    }

    pub fn heartbeat(&self) -> Envelope {
        self.envelope(
            kind::HEARTBEAT,
            None,
            bus::Heartbeat {
                capacity: self.store.capacity(),
                object_count: self.store.object_count(),
            },
        )
    }

    /// At-least-once delivery: a message id seen before is not handled twice.
    fn first_time(&mut self, id: &str) -> bool {
        self.seen.first_time(id)
    }

    pub fn handle(&mut self, env: Envelope) -> Handled {
        self.handle_batch(vec![env])
    }

    /// Handles messages in order; the objects they complete are written with one flush
    /// before any of them is confirmed.
    /// True when every message fetches an object this device holds and together they
    /// read at most `SMALL_READS` bytes.
    pub fn only_small_reads(&self, envs: &[Envelope]) -> bool {
        let mut total = 0;
        envs.iter().all(|env| {
            env.kind == kind::FETCH
                && env.body::<bus::Fetch>().is_some_and(|f| {
                    total += self
                        .store
                        .stored_len(&f.token, f.version)
                        .unwrap_or(u64::MAX / 2);
                    total <= SMALL_READS
                })
        })
    }

    pub fn handle_batch(&mut self, envs: Vec<Envelope>) -> Handled {
        let mut out = Handled::default();
        let mut pending = Vec::new();
        for env in envs {
            self.handle_one(env, &mut out, &mut pending);
        }
        self.flush(pending, &mut out);
        out
    }

    fn flush(&mut self, pending: Vec<PendingPut>, out: &mut Handled) {
        let objects: Vec<(&ObjectInfo, &[Vec<u8>])> = pending
            .iter()
            .map(|p| (&p.info, p.chunks.as_slice()))
            .collect();
        let results = self.store.put_many(&objects);
        for (p, result) in pending.iter().zip(results) {
            let cid = Some(p.correlation.as_str());
            out.replies.push(match result {
                Ok(bytes) => self.stored(&p.request, cid, bytes),
                Err(e) if e.raw_os_error() == Some(28) => {
                    self.store_failed(&p.request, cid, "disk_full")
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not write an object");
                    self.store_failed(&p.request, cid, "io_error")
                }
            });
        }
    }

    fn handle_one(&mut self, env: Envelope, out: &mut Handled, pending: &mut Vec<PendingPut>) {
        if env.v != bus::PROTOCOL_VERSION || !self.first_time(&env.message_id) {
            return;
        }
        self.staging
            .retain(|_, s| s.touched.elapsed() < STAGING_IDLE);
        let cid = Some(env.message_id.as_str());
        match env.kind.as_str() {
            kind::WELCOME => {
                let ok = env
                    .body::<bus::Welcome>()
                    .is_some_and(|w| self.welcome_is_genuine(&w));
                if ok {
                    tracing::debug!(device = %self.identity.device_identifier, "device welcomed");
                    self.welcomed = true;
                } else {
                    tracing::error!(device = %self.identity.device_identifier, "welcome does not prove the engine key; disconnecting");
                    out.stop = Some("welcome_not_genuine".into());
                }
            }
            // The caller logs how the session ended (and decides when to try again).
            kind::REJECTED | kind::REVOKED => {
                let reason = env
                    .body::<bus::Reason>()
                    .map(|r| r.reason)
                    .unwrap_or_default();
                out.stop = Some(reason);
            }
            kind::ROLES_CHANGED => {
                if let Some(r) = env.body::<bus::Roles>() {
                    self.roles = r.roles;
                }
            }
            kind::STORE_CHUNK => {
                let message_id = env.message_id.clone();
                if let Some(chunk) = env.into_body::<bus::StoreChunk>() {
                    match self.store_chunk(chunk, &message_id) {
                        Some(Ok(put)) => pending.push(put),
                        Some(Err(reply)) => out.replies.push(reply),
                        None => {}
                    }
                }
            }
            kind::FETCH => {
                if let Some(fetch) = env.body::<bus::Fetch>() {
                    out.replies.extend(self.fetch(fetch, cid));
                }
            }
            kind::DELETE => {
                if let Some(delete) = env.body::<bus::Delete>() {
                    let versions = match &delete.versions {
                        bus::Versions::List(v) => Some(v.as_slice()),
                        bus::Versions::All(_) => None,
                    };
                    let removed = self.store.delete(&delete.token, versions);
                    out.replies.push(self.envelope(
                        kind::DELETED,
                        cid,
                        bus::Deleted {
                            delete_id: delete.delete_id,
                            token: delete.token,
                            versions_removed: removed,
                        },
                    ));
                }
            }
            kind::INVENTORY_REQUEST => {
                if let Some(req) = env.body::<bus::InventoryRequest>() {
                    let (items, cursor) = self.store.inventory(
                        req.cursor.as_deref(),
                        req.page_size.clamp(1, 1000) as usize,
                        req.verify,
                    );
                    out.replies.push(self.envelope(
                        kind::INVENTORY,
                        cid,
                        bus::Inventory {
                            sync_id: req.sync_id,
                            items,
                            cursor,
                            capacity: self.store.capacity(),
                        },
                    ));
                }
            }
            // sync_complete and unknown types: acknowledged and ignored.
            _ => {}
        }
    }

    fn welcome_is_genuine(&self, welcome: &bus::Welcome) -> bool {
        let Some(hello_id) = &self.hello_id else {
            return false;
        };
        let shared = self
            .identity
            .keys
            .diffie_hellman(&self.identity.engine_public_key);
        let k_dc = bus::channel_key(&shared, &self.identity.device_identifier);
        bus::verify_key_confirmation(
            &k_dc,
            &self.identity.device_identifier,
            hello_id,
            &welcome.key_confirmation,
        )
    }

    /// Stages one chunk. A completed object comes back to be flushed with the batch;
    /// `Err` is an immediate answer (already stored, or refused).
    fn store_chunk(
        &mut self,
        mut c: bus::StoreChunk,
        message_id: &str,
    ) -> Option<Result<PendingPut, Envelope>> {
        let cid = Some(message_id);
        if let Some(digest) = self.store.digest_of(&c.token, c.version)
            && hex::encode(digest) == c.sha256
        {
            return Some(Err(self.stored(&c, cid, 0)));
        }
        if c.chunk_count == 0 || c.chunk_index >= c.chunk_count {
            return Some(Err(self.store_failed(&c, cid, "incomplete")));
        }
        let key = (c.token.clone(), c.version, c.transfer_id.clone());
        let staging = self.staging.entry(key.clone()).or_insert_with(|| Staging {
            chunk_count: c.chunk_count,
            sha256: c.sha256.clone(),
            header: c.header.clone(),
            chunks: BTreeMap::new(),
            touched: Instant::now(),
        });
        staging.touched = Instant::now();
        // The chunk moves to staging; the message is kept for its answer, which needs
        // only its ids.
        staging
            .chunks
            .insert(c.chunk_index, std::mem::take(&mut c.data));
        if staging.chunks.len() < staging.chunk_count as usize {
            return None;
        }
        let staging = self.staging.remove(&key).expect("just seen");
        let chunks: Vec<Vec<u8>> = staging.chunks.into_values().collect();
        let mut h = Sha256::new();
        chunks.iter().for_each(|chunk| h.update(chunk));
        let digest: [u8; 32] = h.finalize().into();
        if hex::encode(digest) != staging.sha256 {
            return Some(Err(self.store_failed(&c, cid, "digest_mismatch")));
        }
        let info = ObjectInfo {
            token: c.token.clone(),
            version: c.version,
            chunk_count: staging.chunk_count,
            digest,
            layer2_header: staging.header,
        };
        Some(Ok(PendingPut {
            info,
            chunks,
            request: c,
            correlation: message_id.to_owned(),
        }))
    }

    fn store_failed(&self, c: &bus::StoreChunk, cid: Option<&str>, reason: &str) -> Envelope {
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

    fn fetch(&self, f: bus::Fetch, cid: Option<&str>) -> Vec<Envelope> {
        let failed = |index: Option<u32>, reason: &str| {
            vec![self.envelope(
                kind::FETCH_FAILED,
                cid,
                bus::FetchFailed {
                    fetch_id: f.fetch_id.clone(),
                    token: f.token.clone(),
                    version: f.version,
                    chunk_index: index,
                    reason: reason.into(),
                },
            )]
        };
        match self
            .store
            .read(&f.token, f.version, f.from_chunk, f.count.clamp(1, 64))
        {
            Ok((total, chunks)) => chunks
                .into_iter()
                .enumerate()
                .map(|(i, data)| {
                    self.envelope(
                        kind::FETCH_CHUNK,
                        cid,
                        bus::FetchChunk {
                            fetch_id: f.fetch_id.clone(),
                            token: f.token.clone(),
                            version: f.version,
                            chunk_index: f.from_chunk + i as u32,
                            chunk_count: total,
                            data,
                        },
                    )
                })
                .collect(),
            Err(ReadError::NotFound) => failed(None, "not_found"),
            Err(ReadError::Corrupt(index)) => failed(index, "corrupt"),
            Err(ReadError::Io) => failed(None, "io_error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_wire::KeyPair;

    fn fetch(token: &str) -> Envelope {
        Envelope::new(
            kind::FETCH,
            "dev-1",
            None,
            bus::Fetch {
                fetch_id: "f".into(),
                token: token.into(),
                version: 1,
                from_chunk: 0,
                count: 1,
            },
        )
    }

    fn put(device: &StorageDevice, token: &str, size: usize) {
        let info = ObjectInfo {
            token: token.into(),
            version: 1,
            chunk_count: 1,
            digest: [7; 32],
            layer2_header: vec![1, 2, 3],
        };
        device.objects().put(&info, &[vec![9; size]]).unwrap();
    }

    #[test]
    fn only_fetches_of_small_held_objects_count_as_small_reads() {
        let dir = tempfile::tempdir().unwrap();
        let engine = KeyPair::generate().public().clone();
        let identity = DeviceIdentity::load_or_create(dir.path(), "dev-1", engine).unwrap();
        let device = StorageDevice::open(dir.path(), identity).unwrap();
        let small = "dtk-00000000-0000-4000-8000-000000000001";
        let large = "dtk-00000000-0000-4000-8000-000000000002";
        let absent = "dtk-00000000-0000-4000-8000-000000000003";
        put(&device, small, 1024);
        put(&device, large, 100 * 1024);

        assert!(device.only_small_reads(&[fetch(small), fetch(small)]));
        assert!(!device.only_small_reads(&[fetch(large)]));
        assert!(!device.only_small_reads(&[fetch(absent)]));
        let store = Envelope::new(kind::DELETE, "dev-1", None, serde_json::json!({}));
        assert!(!device.only_small_reads(&[fetch(small), store]));
    }
}
