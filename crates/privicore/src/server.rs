//! Wires the adapters to the engine and serves the listeners until shutdown.

use crate::config::Settings;
use crate::hosting::InProcessHost;
use anyhow::Context;
use axum::Router;
use privicore_engine::{Adapters, DeviceHost, Engine, EngineConfig, StorageConfig};
use privicore_http::{AppState, SpoolProbe, SpoolStatus, api_router, ws_router};
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
    /// The upload listener (docs/api/data-tokens.md §3.4).
    pub upstream_addr: SocketAddr,
    /// The download listener (docs/api/data-tokens.md §3.6).
    pub downstream_addr: SocketAddr,
    engine: Arc<Engine>,
    store: crate::store::Store,
    host: Option<Arc<InProcessHost>>,
    listeners: JoinSet<std::io::Result<()>>,
    stop_listening: CancellationToken,
    operator: Option<crate::operator::running::OperatorSocket>,
    broker: Option<Arc<privicore_bus_amqp::Broker>>,
}

/// How `start_with` gets its keys and sockets: by default the root key as the settings say
/// and fresh listeners; after a sealed start, the unsealed key and the listeners that
/// answered 503 meanwhile.
#[derive(Default)]
pub struct Startup {
    pub root: Option<crate::keys::RootSource>,
    pub listeners: Option<(std::net::TcpListener, std::net::TcpListener)>,
}

/// The base URL clients are given for a listener: its configured public URL, else its
/// bound address.
fn public_url(listener: &crate::config::Listener, bound: SocketAddr) -> String {
    listener
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"))
}

fn engine_config(s: &Settings, api_addr: SocketAddr, streams: StreamAddrs) -> EngineConfig {
    let off_if_zero = |n: u32| (n > 0).then_some(n);
    let st = &s.streams;
    EngineConfig {
        token_ttl_seconds: s.auth.token_ttl_seconds,
        api_public_url: s
            .api
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}")),
        upstream_public_url: public_url(&s.upstream, streams.upstream),
        streams: privicore_engine::StreamConfig {
            downstream_public_url: public_url(&s.downstream, streams.downstream),
            upload_max_bytes: st.upload_max_bytes,
            upload_idle: std::time::Duration::from_secs(st.upload_idle_seconds),
            upload_max_duration: std::time::Duration::from_secs(st.upload_max_duration_seconds),
            download_auth_seconds: st.download_auth_seconds as i64,
            not_ready_wait: std::time::Duration::from_secs(st.not_ready_wait_seconds),
            fanout_in_flight: st.fanout_in_flight,
        },
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
            purge_interval_ms: s.directories.purge_interval_ms.max(10),
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

/// Where the streaming listeners are bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamAddrs {
    pub upstream: SocketAddr,
    pub downstream: SocketAddr,
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

/// Bytes free for uploads on the spool's disk, the reserve kept aside.
fn spool_free(dir: PathBuf, reserve: u64) -> privicore_http::SpoolFree {
    Arc::new(move || {
        fs4::statvfs(&dir)
            .ok()
            .map(|stats| stats.available_space().saturating_sub(reserve))
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
        let opened = crate::store::Store::open(settings).await?;
        let store = opened.metadata();
        let buses = crate::bus::Buses::open(settings).await?;
        // Every key opens before anything listens; the engine key must exist before hosted
        // devices can verify their welcome.
        let source = match startup.root {
            Some(source) => source,
            None => crate::keys::RootSource::from_settings(settings)?,
        };
        let keys = crate::keys::open(&settings.data_dir, source, store.as_ref()).await?;
        // Devices of several engine replicas are processes of their own, on the broker.
        let hosting = match &buses.local {
            Some(local) if settings.storage.host_devices => Some(local.clone()),
            Some(_) => None,
            None => {
                if settings.storage.host_devices {
                    tracing::warn!(
                        "storage.host_devices is ignored with a broker bus: devices run as `privicore storage-device`"
                    );
                }
                None
            }
        };
        let host = match hosting {
            None => None,
            Some(device_bus) => {
                let key = SignedPublicKey::parse(&keys.engine_key.public_key)
                    .context("the stored engine key is invalid")?;
                let host = Arc::new(InProcessHost::new(
                    device_bus,
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
        let (upstream_listener, downstream_listener) = bind_stream_listeners(settings).await?;
        let streams = StreamAddrs {
            upstream: upstream_listener.local_addr()?,
            downstream: downstream_listener.local_addr()?,
        };

        let adapters = Adapters {
            store: store.clone(),
            bus: buses.bus.clone(),
            devices: buses.devices.clone(),
            keyring: keys.ring,
            host: host.clone().map(|h| h as Arc<dyn DeviceHost>),
            engine_key: Some(keys.engine_key),
            secrets: keys.secrets,
            audit: opened.audit(),
        };
        let mut config = engine_config(settings, api_addr, streams);
        config.device_broker = buses.device_broker.clone();
        let engine = Engine::start(adapters, config)
            .await
            .map_err(|e| anyhow::anyhow!("starting the engine: {e}"))?;
        let operator = crate::operator::running::OperatorSocket::start(
            settings,
            engine.clone(),
            store.clone(),
            keys.vault.clone(),
            opened.embedded_file(settings),
        );
        let state = AppState::new(
            engine.clone(),
            spool_probe(settings.data_dir.clone()),
            buses.local.clone(),
        )
        .with_edge(settings.edge()?)
        .with_spool_free(spool_free(
            settings.data_dir.clone(),
            settings.streams.spool_reserve_bytes,
        ));

        let stop_listening = CancellationToken::new();
        let mut listeners = JoinSet::new();
        // The upload listener enforces its own idle limit (by the engine clock too); the
        // connection-level body timeout only catches what that misses.
        let stream_limits = privicore_http::ConnectionLimits {
            body_read_timeout: std::time::Duration::from_secs(
                settings.streams.upload_idle_seconds + 30,
            ),
            ..settings.connections.limits()
        };
        for (listener, router, limits) in [
            (
                api_listener,
                traced(api_router(state.clone())),
                settings.connections.limits(),
            ),
            (
                ws_listener,
                traced(ws_router(state.clone())),
                settings.connections.limits(),
            ),
            (
                upstream_listener,
                traced(privicore_http::upstream_router(state.clone())),
                stream_limits.clone(),
            ),
            (
                downstream_listener,
                traced(privicore_http::downstream_router(state)),
                stream_limits,
            ),
        ] {
            listeners.spawn(privicore_http::serve(
                listener,
                router,
                limits,
                stop_listening.clone(),
            ));
        }
        tracing::info!(%api_addr, %ws_addr, upstream = %streams.upstream, downstream = %streams.downstream, data_dir = %settings.data_dir.display(), "privicore is serving");
        write_endpoints(&settings.data_dir, api_addr, ws_addr, Some(streams))?;
        Ok(Self {
            api_addr,
            ws_addr,
            upstream_addr: streams.upstream,
            downstream_addr: streams.downstream,
            engine,
            store: opened,
            host,
            listeners,
            stop_listening,
            operator,
            broker: buses.broker,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// The metadata store (operator tooling; tests close it to see `/health` fail).
    pub fn store(&self) -> &crate::store::Store {
        &self.store
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
        if let Some(broker) = &self.broker {
            broker.close();
        }
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

async fn bind_stream_listeners(settings: &Settings) -> anyhow::Result<(TcpListener, TcpListener)> {
    let bind = |port: u16, name: &'static str| async move {
        TcpListener::bind((settings.bind, port))
            .await
            .with_context(|| format!("binding the {name} listener on port {port}"))
    };
    Ok((
        bind(settings.upstream.port, "upstream").await?,
        bind(settings.downstream.port, "downstream").await?,
    ))
}

/// Where a supervisor or a test finds the bound ports (`<data-dir>/run/endpoints.json`);
/// the streaming listeners once they are bound (not while the engine is sealed).
pub(crate) fn write_endpoints(
    data_dir: &Path,
    api: SocketAddr,
    ws: SocketAddr,
    streams: Option<StreamAddrs>,
) -> anyhow::Result<()> {
    let run = data_dir.join("run");
    std::fs::create_dir_all(&run)?;
    let mut body =
        serde_json::json!({ "api": format!("http://{api}"), "ws": format!("ws://{ws}") });
    if let Some(streams) = streams {
        body["upstream"] = format!("http://{}", streams.upstream).into();
        body["downstream"] = format!("http://{}", streams.downstream).into();
    }
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
