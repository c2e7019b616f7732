//! The device side of the bus contract: hello/welcome, heartbeat, and the idempotent
//! storage handlers (store, fetch, delete, inventory). The session loop on a link is in
//! `session`.

mod fetch;
mod seen;
mod session;
mod store;

pub use fetch::Reading;
pub use session::SessionEnd;

use crate::identity::DeviceIdentity;
use crate::objects::ObjectStore;
use privicore_wire::bus::{self, Envelope, kind};
use seen::Seen;
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;
use store::{PendingPut, Staging, Taken};

const REMEMBERED_IDS: usize = 10_000;

/// What handling one message produced.
#[derive(Default)]
pub struct Handled {
    pub replies: Vec<Envelope>,
    /// Fetches of larger objects, answered a chunk at a time after `replies`
    /// (`StorageDevice::next_reply`), so a window of chunks is never in memory at once.
    pub reads: Vec<Reading>,
    /// Set when the engine ended the session: why (a reason key).
    pub stop: Option<String>,
}

/// Reads up to this size are answered on the async thread (see `session`) and with the
/// batch; larger ones become `Reading`s.
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

    /// Handles messages in order; the one-chunk objects they complete are written with one
    /// flush before any of them is confirmed. Fetches of larger objects come back in
    /// `reads`, to be answered a chunk at a time with `next_reply`.
    pub fn handle_batch(&mut self, envs: Vec<Envelope>) -> Handled {
        let mut out = Handled::default();
        let mut pending = Vec::new();
        for env in envs {
            self.handle_one(env, &mut out, &mut pending);
        }
        self.flush(pending, &mut out);
        out
    }

    fn handle_one(&mut self, env: Envelope, out: &mut Handled, pending: &mut Vec<PendingPut>) {
        if env.v != bus::PROTOCOL_VERSION || !self.first_time(&env.message_id) {
            return;
        }
        self.sweep_staging(Instant::now(), out);
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
                        Taken::Put(put) => pending.push(put),
                        Taken::Answer(reply) => out.replies.push(reply),
                        Taken::Wait => {}
                    }
                }
            }
            kind::FETCH => {
                if let Some(fetch) = env.body::<bus::Fetch>() {
                    self.fetch(fetch, &env.message_id, out);
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
}

#[cfg(test)]
mod tests;
