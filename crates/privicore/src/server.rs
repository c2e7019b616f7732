//! Wires the adapters to the engine and serves the listeners until shutdown.

use crate::config::Settings;
use crate::hosting::InProcessHost;
use anyhow::Context;
use axum::Router;
use privicore_bus_local::{LocalBus, LocalDeviceBus};
use privicore_domain::ports::MetadataStore;
use privicore_engine::{Adapters, DeviceHost, Engine, EngineConfig, StorageConfig};
use privicore_http::{AppState, SpoolProbe, SpoolStatus, api_router, ws_router};
use privicore_store_sqlite::SqliteStore;
use privicore_wire::SignedPublicKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A running engine with its bound listeners.
pub struct Server {
    pub api_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    engine: Arc<Engine>,
    store: Arc<SqliteStore>,
    host: Option<Arc<InProcessHost>>,
    listeners: JoinSet<std::io::Result<()>>,
    stop_listening: CancellationToken,
    operator: Option<crate::operator::running::OperatorSocket>,
}

/// How `start_with` gets its keys and sockets: by default the root key as the settings say
/// and fresh listeners; after a sealed start, the unsealed key and the listeners that
/// answered 503 meanwhile.
#[derive(Default)]
pub struct Startup {
    pub root: Option<crate::keys::RootSource>,
    pub listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
}

fn engine_config(s: &Settings, api_addr: SocketAddr) -> EngineConfig {
    let off_if_zero = |n: u32| (n > 0).then_some(n);
    EngineConfig {
        token_ttl_seconds: s.auth.token_ttl_seconds,
        api_public_url: s
            .api
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}")),
        upstream_public_url: s
            .upstream
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}", api_addr.ip(), s.upstream.port)),
        generate_keys_enabled: s.keys.generate_endpoint_enabled,
        storage: StorageConfig {
            write_quorum: s.storage.write_quorum.max(1),
            commit_timeout_base: std::time::Duration::from_secs(s.storage.commit_timeout_seconds),
            inventory_page_timeout: std::time::Duration::from_secs(
                s.storage.inventory_page_timeout_seconds,
            ),
            ..StorageConfig::default()
        },
        devices_per_profile: s.devices.per_profile,
        directories: privicore_engine::DirectoryLimits {
            owned_per_profile: s.directories.owned_per_profile,
            members_per_directory: s.directories.members_per_directory.max(1),
            invitation_ttl_seconds: s.directories.invitation_ttl_seconds.max(1),
        },
        commands_per_lane: s.commands.queued_per_lane,
        limits: privicore_engine::RateLimits {
            failed_logins_per_15min: off_if_zero(s.rate_limits.failed_logins_per_15min),
            registrations_per_hour: off_if_zero(s.rate_limits.registrations_per_hour),
            generate_keys_per_minute: off_if_zero(s.rate_limits.generate_keys_per_minute),
            requests_per_token_per_minute: off_if_zero(s.rate_limits.requests_per_token_per_minute),
            unauthenticated_per_minute: off_if_zero(s.rate_limits.unauthenticated_per_minute),
        },
        socket_queue: s.socket_queue,
        clock: s
            .clock
            .clone()
            .unwrap_or_else(|| EngineConfig::default().clock),
        ..EngineConfig::default()
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// Below 10 % free space the spool reports `low_space` (docs/api/profile-and-keys.md §1.1).
fn spool_probe(dir: PathBuf) -> SpoolProbe {
    Arc::new(move || match fs4::statvfs(&dir) {
        Ok(stats) if stats.total_space() == 0 => SpoolStatus::Down,
        Ok(stats) if stats.available_space() * 10 < stats.total_space() => SpoolStatus::LowSpace,
        Ok(_) => SpoolStatus::Ok,
        Err(_) => SpoolStatus::Down,
    })
}

/// Request ids and request lines (DEBUG); see `request_log`.
fn traced(router: Router) -> Router {
    crate::request_log::layer(router)
}

impl Server {
    pub async fn start(settings: &Settings) -> anyhow::Result<Self> {
        Self::start_with(settings, Startup::default()).await
    }

    pub async fn start_with(settings: &Settings, startup: Startup) -> anyhow::Result<Self> {
        create_private_dir(&settings.data_dir)?;
        let store = Arc::new(
            SqliteStore::open(&settings.database_path())
                .await
                .context("opening the metadata store")?,
        );
        let bus = Arc::new(LocalBus::default());
        let device_bus = Arc::new(LocalDeviceBus::default());
        // Every key opens before anything listens; the engine key must exist before hosted
        // devices can verify their welcome.
        let source = match startup.root {
            Some(source) => source,
            None => crate::keys::RootSource::from_settings(settings)?,
        };
        let keys = crate::keys::open(&settings.data_dir, source, store.as_ref()).await?;
        let host = match settings.storage.host_devices {
            false => None,
            true => {
                let key = SignedPublicKey::parse(&keys.engine_key.public_key)
                    .context("the stored engine key is invalid")?;
                let host = Arc::new(InProcessHost::new(
                    device_bus.clone(),
                    settings.devices_dir(),
                    key,
                    Arc::new(crate::keys::root::DeviceKeys(keys.vault.clone())),
                ));
                host.check_keys(&store.storage_devices(None).await?)?;
                Some(host)
            }
        };

        let (api_listener, ws_listener) = match startup.listeners {
            Some((api, ws)) => (TcpListener::from_std(api)?, TcpListener::from_std(ws)?),
            None => bind_listeners(settings).await?,
        };
        let api_addr = api_listener.local_addr()?;
        let ws_addr = ws_listener.local_addr()?;

        let adapters = Adapters {
            store: store.clone(),
            bus,
            devices: device_bus.clone(),
            keyring: keys.ring,
            host: host.clone().map(|h| h as Arc<dyn DeviceHost>),
            engine_key: Some(keys.engine_key),
            secrets: keys.secrets,
            audit: store.clone(),
        };
        let engine = Engine::start(adapters, engine_config(settings, api_addr))
            .await
            .map_err(|e| anyhow::anyhow!("starting the engine: {e}"))?;
        let operator = crate::operator::running::OperatorSocket::start(
            settings,
            engine.clone(),
            store.clone(),
            keys.vault.clone(),
        );
        let state = AppState::new(
            engine.clone(),
            spool_probe(settings.data_dir.clone()),
            Some(device_bus),
        )
        .with_edge(settings.edge()?);

        let stop_listening = CancellationToken::new();
        let mut listeners = JoinSet::new();
        for (listener, router) in [
            (api_listener, traced(api_router(state.clone()))),
            (ws_listener, traced(ws_router(state))),
        ] {
            listeners.spawn(privicore_http::serve(
                listener,
                router,
                settings.connections.limits(),
                stop_listening.clone(),
            ));
        }
        tracing::info!(%api_addr, %ws_addr, data_dir = %settings.data_dir.display(), "privicore is serving");
        write_endpoints(&settings.data_dir, api_addr, ws_addr)?;
        Ok(Self {
            api_addr,
            ws_addr,
            engine,
            store,
            host,
            listeners,
            stop_listening,
            operator,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// The in-process device host, unless devices run as their own processes.
    pub fn host(&self) -> Option<&InProcessHost> {
        self.host.as_deref()
    }

    /// Stops accepting, closes sockets (1001), stops workers; pending commands stay
    /// persisted and resume on the next start.
    pub async fn shutdown(mut self) {
        self.stop_listening.cancel();
        if let Some(operator) = self.operator {
            operator.stop().await;
        }
        if let Some(host) = &self.host {
            host.stop().await;
        }
        self.engine.shutdown().await;
        while self.listeners.join_next().await.is_some() {}
        self.store.close().await;
        tracing::info!("privicore stopped");
    }
}

async fn bind_listeners(settings: &Settings) -> anyhow::Result<(TcpListener, TcpListener)> {
    let api = TcpListener::bind((settings.bind, settings.api.port))
        .await
        .with_context(|| format!("binding the API listener on port {}", settings.api.port))?;
    let ws = TcpListener::bind((settings.bind, settings.ws.port))
        .await
        .with_context(|| {
            format!(
                "binding the WebSocket listener on port {}",
                settings.ws.port
            )
        })?;
    Ok((api, ws))
}

/// Where a supervisor or a test finds the bound ports (`<data-dir>/run/endpoints.json`).
pub(crate) fn write_endpoints(
    data_dir: &Path,
    api: SocketAddr,
    ws: SocketAddr,
) -> anyhow::Result<()> {
    let run = data_dir.join("run");
    std::fs::create_dir_all(&run)?;
    let body = serde_json::json!({ "api": format!("http://{api}"), "ws": format!("ws://{ws}") });
    let tmp = run.join("endpoints.json.tmp");
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(tmp, run.join("endpoints.json"))?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
