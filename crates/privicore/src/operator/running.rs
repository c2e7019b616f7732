//! The operator socket of an unsealed, serving engine: status, KEK rotation, backup.

use super::rotate::{self, Progress};
use super::{Handler, Reply, Request, Status};
use crate::keys::keystore::Keystore;
use crate::keys::root::Vault;
use async_trait::async_trait;
use privicore_domain::ports::MetadataStore;
use privicore_engine::Engine;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// What operator requests work on.
pub struct Context {
    pub engine: Arc<Engine>,
    pub store: Arc<dyn MetadataStore>,
    pub vault: Arc<Vault>,
    pub data_dir: PathBuf,
    /// The embedded database file; `None` when the metadata lives in PostgreSQL.
    pub database: Option<PathBuf>,
    pub rotation: Mutex<Option<Progress>>,
    pub stop: CancellationToken,
    /// Key store writes one at a time (rotation, backup).
    pub keystore_lock: tokio::sync::Mutex<()>,
}

impl Context {
    pub fn keystore(&self) -> anyhow::Result<Keystore> {
        let path = Keystore::path_in(&self.data_dir);
        Keystore::load(&path)?.ok_or_else(|| anyhow::anyhow!("{} is missing", path.display()))
    }

    fn status(&self) -> Status {
        let ring = self.engine.keyring_now();
        let mut keks: Vec<String> = ring.keys().map(|k| k.id().to_owned()).collect();
        keks.sort();
        Status {
            sealed: false,
            active_kek: Some(ring.active().id().to_owned()),
            keks,
            rotation: self.rotation.lock().expect("rotation lock").clone(),
            ..Status::default()
        }
    }
}

pub struct Running(pub Arc<Context>);

#[async_trait]
impl Handler for Running {
    async fn handle(&self, request: Request) -> Reply {
        let ctx = &self.0;
        match request {
            Request::Status => Reply::status(ctx.status()),
            Request::Unseal { .. } => Reply::status(ctx.status()),
            Request::RotateKek => {
                let _guard = ctx.keystore_lock.lock().await;
                match rotate::start(ctx).await {
                    Ok(_) => Reply::status(ctx.status()),
                    Err(e) => Reply::error(format!("{e:#}")),
                }
            }
            Request::Backup { path } => {
                let _guard = ctx.keystore_lock.lock().await;
                match super::backup::write(ctx, &path).await {
                    Ok(message) => Reply {
                        message: Some(message),
                        ..Reply::status(ctx.status())
                    },
                    Err(e) => Reply::error(format!("{e:#}")),
                }
            }
        }
    }
}

/// The socket of a running engine, stopped with it.
pub struct OperatorSocket {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl OperatorSocket {
    /// `None`, with a warning, when the socket cannot be bound (a data directory path too
    /// long for a Unix socket, say): the engine serves, only its administration waits.
    pub fn start(
        settings: &crate::config::Settings,
        engine: Arc<Engine>,
        store: Arc<dyn MetadataStore>,
        vault: Arc<Vault>,
        database: Option<PathBuf>,
    ) -> Option<Self> {
        let ctx = Arc::new(Context {
            engine,
            store,
            vault,
            data_dir: settings.data_dir.clone(),
            database,
            rotation: Mutex::new(None),
            stop: CancellationToken::new(),
            keystore_lock: tokio::sync::Mutex::new(()),
        });
        let stop = ctx.stop.clone();
        let data_dir = ctx.data_dir.clone();
        match super::listen(&data_dir, Arc::new(Running(ctx)), stop.clone()) {
            Ok(task) => Some(Self { stop, task }),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "no operator socket");
                None
            }
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
