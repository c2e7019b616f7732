mod devices;
mod directory;
mod keys;
mod oauth;
mod policy;
mod pools;
mod profile;
mod query;
mod storage;
pub mod table;
mod tokens;
mod utility;
mod voting;

use crate::body::Fields;
use crate::client_ip::{ClientIp, TrustedProxies};
use crate::error::ApiError;
use crate::guard;
use crate::ws;
use axum::Router;
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use axum::routing::get;
use privicore_domain::auth::Caller;
use privicore_domain::{Error, Reason};
use privicore_engine::Engine;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::CorsLayer;

/// Free space of the engine spool, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolStatus {
    Ok,
    LowSpace,
    Down,
}

pub type SpoolProbe = Arc<dyn Fn() -> SpoolStatus + Send + Sync>;

/// Bytes free where the spool lives (None when unknown), for the upstream listener's
/// `stream.spool_full`.
pub type SpoolFree = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// What every handler reaches, behind one pointer: axum clones the state for each request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub engine: Arc<Engine>,
    pub edge: Edge,
    pub spool: SpoolProbe,
    /// The embedded device bus, served at `/device-bus` (absent in AMQP mode).
    pub device_bus: Option<Arc<privicore_bus_local::LocalDeviceBus>>,
    pub spool_free: Option<SpoolFree>,
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        spool: SpoolProbe,
        device_bus: Option<Arc<privicore_bus_local::LocalDeviceBus>>,
    ) -> Self {
        Self(Arc::new(Shared {
            engine,
            edge: Edge::default(),
            spool,
            device_bus,
            spool_free: None,
        }))
    }

    /// The same state, measuring the spool's free bytes with `free` (call before the
    /// routers are built).
    pub fn with_spool_free(self, free: SpoolFree) -> Self {
        Self(Arc::new(Shared {
            engine: self.engine.clone(),
            edge: self.edge.clone(),
            spool: self.spool.clone(),
            device_bus: self.device_bus.clone(),
            spool_free: Some(free),
        }))
    }

    /// The same state with these edge settings (call before the routers are built).
    pub fn with_edge(self, edge: Edge) -> Self {
        Self(Arc::new(Shared {
            engine: self.engine.clone(),
            edge,
            spool: self.spool.clone(),
            device_bus: self.device_bus.clone(),
            spool_free: self.spool_free.clone(),
        }))
    }
}

/// Settings of the HTTP edge itself.
#[derive(Clone, Default)]
pub struct Edge {
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client.
    pub trusted_proxies: TrustedProxies,
    /// Cross-origin access to the API; `None` keeps it off (docs/api/README.md §4.6).
    pub cors: Option<CorsLayer>,
    /// Bearer token that opens `/metrics` to clients off loopback (docs/metrics.md);
    /// `None`: loopback only.
    pub metrics_token: Option<Arc<str>>,
}

impl Edge {
    /// `cors_origins` are `scheme://host[:port]`, or `*` for any.
    pub fn new(
        trusted_proxies: Vec<ipnet::IpNet>,
        cors_origins: &[String],
    ) -> Result<Self, String> {
        Ok(Self {
            trusted_proxies: TrustedProxies(trusted_proxies),
            cors: crate::cors::layer(cors_origins)?,
            metrics_token: None,
        })
    }

    /// Opens `/metrics` to anyone sending `Authorization: Bearer <token>`.
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.map(Arc::from);
        self
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Every REST route of the API listener, plus the WebSocket at `/ws`.
pub fn api_router(state: AppState) -> Router {
    crate::metrics::install();
    let cors = state.edge.cors.clone();
    let console = crate::console::router(state.clone());
    let router = table::ROUTES
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.method_router())
        })
        // Operational, not part of the API contract: outside the route table.
        .route("/metrics", get(crate::metrics::render))
        .fallback(guard::unknown_route)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, guard::api))
        .layer(CatchPanicLayer::custom(guard::panic_response));
    // The console's static files pass no API guard: they carry no caller and no command.
    let router = console.merge(router);
    // Outermost, so preflights are answered before any limit and every answer (a 429
    // too) carries the CORS headers.
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The WebSocket listener: an upgrade on any path.
pub fn ws_router(state: AppState) -> Router {
    Router::new()
        .fallback(get(ws::upgrade))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, guard::ws))
        .layer(CatchPanicLayer::custom(guard::panic_response))
}

fn token_header(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    match headers.get("x-dpt-authorization") {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| Error::new(Reason::AuthInvalidToken)),
    }
}

/// Authenticates before the body is read (docs/api/README.md §7.4 order), against the
/// access the route table gives the route being served.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let access = match table::current() {
        Some(table::Guard::Token(access) | table::Guard::OptionalToken(access)) => access,
        other => {
            return Err(Error::internal(format!(
                "a handler asked for a token on a route guarded by {other:?}"
            ))
            .into());
        }
    };
    Ok(state
        .engine
        .authorize(token_header(headers)?, access)
        .await?)
}

/// For routes whose token is optional: `None` without the header.
async fn optional_caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    match token_header(headers)? {
        None => Ok(None),
        Some(_) => caller(state, headers).await.map(Some),
    }
}

async fn fields(req: Request) -> Result<Fields, ApiError> {
    Fields::from_request(req, &()).await
}

/// Resolved by the throttle layer, which every request passes.
fn client_address(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ClientIp(ip)| *ip)
}
