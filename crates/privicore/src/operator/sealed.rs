//! A sealed start: the listeners are bound at once and answer 503 `service.unavailable`
//! (`/health` says `sealed`) until an operator gives the passphrase or enough shares over
//! the operator socket; then the same sockets go to the engine.

use super::init::{from_passphrase, from_shares};
use super::{Handler, Reply, Request, Status};
use crate::config::Settings;
use crate::keys::RootSource;
use crate::keys::keystore::{Keystore, Unseal};
use crate::keys::root::Vault;
use crate::server::Startup;
use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use privicore_domain::{Error, Reason, Timestamp};
use privicore_http::ApiError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

const RETRY_AFTER_SECONDS: u64 = 5;

/// The engine's keys are sealed: everything answers 503, `/health` says so.
fn sealed_router() -> Router {
    Router::new()
        .route("/health", get(health))
        .fallback(unavailable)
}

async fn health() -> Response {
    let body = serde_json::json!({
        "status": "sealed",
        "version": env!("CARGO_PKG_VERSION"),
        "time": Timestamp::now().rfc3339(),
        "checks": { "database": "sealed", "bus": "sealed", "spool": "sealed" },
    });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn unavailable() -> Response {
    ApiError(
        Error::new(Reason::ServiceUnavailable)
            .with_message("The engine is sealed until an operator unseals it.")
            .with_retry_after(RETRY_AFTER_SECONDS),
    )
    .into_response()
}

struct Sealed {
    keystore: Keystore,
    shares: Mutex<Vec<Zeroizing<String>>>,
    unsealed: Mutex<Option<Vault>>,
    /// Set once; the vault itself is taken by the start that follows.
    opened: AtomicBool,
    done: Notify,
}

impl Sealed {
    fn status(&self) -> Status {
        let threshold = match self.keystore.unseal() {
            Some(Unseal::Shamir { threshold, .. }) => Some(*threshold),
            _ => None,
        };
        Status {
            sealed: !self.opened.load(Ordering::SeqCst),
            shares_given: threshold.map(|_| self.shares.lock().expect("shares lock").len()),
            threshold,
            ..Status::default()
        }
    }

    fn open_with(&self, vault: Vault) -> Reply {
        *self.unsealed.lock().expect("unseal lock") = Some(vault);
        self.opened.store(true, Ordering::SeqCst);
        self.done.notify_one();
        tracing::info!("unsealed by an operator");
        Reply::status(self.status())
    }
}

#[async_trait]
impl Handler for Sealed {
    async fn handle(&self, request: Request) -> Reply {
        let Request::Unseal { passphrase, shares } = request else {
            return match request {
                Request::Status => Reply::status(self.status()),
                _ => Reply::error("the engine is sealed; unseal it first"),
            };
        };
        if !self.status().sealed {
            return Reply::status(self.status());
        }
        match self.keystore.unseal() {
            Some(Unseal::Passphrase { salt }) => {
                let Some(passphrase) = passphrase.map(Zeroizing::new) else {
                    return Reply::error("this engine is unsealed with a passphrase");
                };
                let salt = salt.clone();
                let derived =
                    tokio::task::spawn_blocking(move || from_passphrase(&passphrase, &salt)).await;
                match derived {
                    Ok(Ok(vault)) if self.keystore.opens_with(&vault) => self.open_with(vault),
                    _ => Reply::error("the passphrase does not open this data directory"),
                }
            }
            Some(Unseal::Shamir { threshold, .. }) => {
                let threshold = *threshold;
                let rebuilt = {
                    let mut given = self.shares.lock().expect("shares lock");
                    for share in shares {
                        let share = Zeroizing::new(share.trim().to_ascii_lowercase());
                        if !given.contains(&share) {
                            given.push(share);
                        }
                    }
                    if given.len() < usize::from(threshold) {
                        None
                    } else {
                        let vault = from_shares(&given, threshold)
                            .filter(|vault| self.keystore.opens_with(vault));
                        if vault.is_none() {
                            given.clear();
                        }
                        Some(vault)
                    }
                };
                match rebuilt {
                    None => Reply::status(self.status()),
                    Some(Some(vault)) => self.open_with(vault),
                    Some(None) => Reply::error(
                        "the shares do not rebuild this data directory's root key; they were \
                         discarded, start over",
                    ),
                }
            }
            None => Reply::error("this data directory is not unsealed by an operator"),
        }
    }
}

fn bind(settings: &Settings, port: u16) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind((settings.bind, port))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What `serve` starts with: right away when the root key is given, or after an unseal.
/// `None` when a shutdown was asked for while sealed.
pub async fn startup(settings: &Settings) -> anyhow::Result<Option<Startup>> {
    let keystore = Keystore::load(&Keystore::path_in(&settings.data_dir))?;
    let by_operator = keystore.as_ref().is_some_and(|k| k.unseal().is_some());
    if !by_operator {
        anyhow::ensure!(
            !settings.keys.sealed,
            "--sealed needs a data directory prepared by `privicore operator init`"
        );
        return Ok(Some(Startup::default()));
    }
    let keystore = keystore.expect("checked above");
    crate::server::create_private_dir(&settings.data_dir)?;
    let api = bind(settings, settings.api.port)?;
    let ws = bind(settings, settings.ws.port)?;
    let (api_addr, ws_addr) = (api.local_addr()?, ws.local_addr()?);
    let stop = CancellationToken::new();
    let mut serving = Vec::new();
    for listener in [api.try_clone()?, ws.try_clone()?] {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        serving.push(tokio::spawn(privicore_http::serve(
            listener,
            sealed_router(),
            settings.connections.limits(),
            stop.clone(),
        )));
    }
    let sealed = Arc::new(Sealed {
        keystore,
        shares: Mutex::new(Vec::new()),
        unsealed: Mutex::new(None),
        opened: AtomicBool::new(false),
        done: Notify::new(),
    });
    let socket = super::listen(&settings.data_dir, sealed.clone(), stop.clone())?;
    crate::server::write_endpoints(&settings.data_dir, api_addr, ws_addr, None)?;
    tracing::warn!(%api_addr, %ws_addr, "privicore is SEALED: run `privicore operator unseal`");
    let unsealed = tokio::select! {
        _ = sealed.done.notified() => true,
        _ = crate::server::shutdown_signal() => false,
    };
    stop.cancel();
    for task in serving {
        let _ = task.await;
    }
    let _ = socket.await;
    if !unsealed {
        return Ok(None);
    }
    let vault = sealed
        .unsealed
        .lock()
        .expect("unseal lock")
        .take()
        .expect("notified after unsealing");
    Ok(Some(Startup {
        root: Some(RootSource::Given(vault)),
        listeners: Some((api, ws)),
    }))
}
