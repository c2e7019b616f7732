mod devices;
mod keys;
mod policy;
mod pools;
mod profile;
mod query;
mod storage;
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
use axum::routing::{get, post};
use privicore_domain::auth::{Access, Caller};
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
        })
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
    let cors = state.edge.cors.clone();
    let router = Router::new()
        .route("/health", get(utility::health))
        .route(
            "/request-status/{command_id}",
            post(utility::request_status).get(utility::request_status),
        )
        .route("/profile/register-profile", post(profile::register))
        .route("/profile/authenticate", post(profile::authenticate))
        .route(
            "/profile/retrieve-profile-id",
            get(profile::retrieve_profile_id),
        )
        .route("/profile/change-password", post(profile::change_password))
        .route(
            "/profile/generate-token-qr",
            post(profile::generate_qr_token),
        )
        .route(
            "/profile/reauthorize-authorization-token",
            post(profile::reauthorize),
        )
        .route("/profile/revoke-authorization-token", post(profile::revoke))
        .route(
            "/profile/authorization-token/expiry",
            post(profile::token_expiry),
        )
        .route("/generate-keys", get(keys::generate))
        .route("/public-key/register-public-key", post(keys::register))
        .route("/public-key/retrieve-public-key", get(keys::retrieve))
        .route("/dptcab/public-key", get(keys::cab))
        .route(
            "/device/request-unique-identifier",
            post(devices::request_identifier),
        )
        .route(
            "/device/retrieve-unique-identifier",
            post(devices::retrieve_identifier),
        )
        .route("/device/retrieve-profile-devices", get(devices::list))
        .route("/device/configure-meta", post(devices::configure_meta))
        .route("/device/approve-device", post(devices::approve))
        .route("/device/reject-device", post(devices::reject))
        .route(
            "/device/download-device-configuration",
            post(devices::download_configuration),
        )
        .route(
            "/device/retrieve-device-configuration/{device}",
            get(devices::retrieve_configuration),
        )
        .route("/device/remove", post(devices::remove))
        .route("/storage/register", post(storage::register))
        .route("/storage/list-storage-devices", get(storage::list))
        .route("/storage/sync-device", post(storage::sync))
        .route("/storage/remove", post(storage::remove))
        .route("/data-token/reserve-token-space", post(tokens::reserve))
        .route(
            "/data-token/retrieve-temporary-data-token/{reservation}",
            get(tokens::temporary),
        )
        .route(
            "/data-token/exchange-data-for-token",
            post(tokens::exchange),
        )
        .route("/data-token/request-data", post(tokens::request_data))
        .route(
            "/data-token/configure-information-security-risk-meta",
            post(tokens::configure_risk),
        )
        .route(
            "/data-token/configure-file-meta",
            post(tokens::configure_file_meta),
        )
        .route("/data-token/list-data-tokens", get(tokens::list))
        .route("/data-token/update-data-token", post(tokens::update))
        .route("/data-token/update-data", post(tokens::update))
        .route("/data-token/delete-data", post(tokens::delete))
        .route(
            "/data-token/transaction-count-statistics",
            get(tokens::statistics),
        )
        .route("/data-token/statistics", get(tokens::statistics))
        .route("/verified-authenticator/register", post(voting::register))
        .route(
            "/verified-authenticator/list-verified-authenticators",
            get(voting::list),
        )
        .route(
            "/verified-authenticator/retrieve-voting-strategy",
            get(voting::strategy),
        )
        .route(
            "/verified-authenticator/retrieve-strategy",
            get(voting::strategy),
        )
        .route(
            "/verified-authenticator/set-quorum-size",
            post(voting::set_quorum_size),
        )
        .route(
            "/verified-authenticator/set-quorum-strategy",
            post(voting::set_quorum_strategy),
        )
        .route(
            "/verified-authenticator/set-voting-time-limit",
            post(voting::set_time_limit),
        )
        .route(
            "/verified-authenticator/set-maximum-voting-attempts",
            post(voting::set_attempts),
        )
        .route("/verified-authenticator/remove", post(voting::remove))
        .route(
            "/verified-authenticator/voting-configuration/register",
            post(voting::register_configuration),
        )
        .route(
            "/verified-authenticator/voting-configuration/update",
            post(voting::update_configuration),
        )
        .route(
            "/verified-authenticator/voting-configuration/list",
            get(voting::list_configurations),
        )
        .route(
            "/verified-authenticator/voting-configuration/retrieve/{configuration}",
            get(voting::retrieve_configuration),
        )
        .route("/policy/list-policy-templates", get(policy::templates))
        .route("/policy/register", post(policy::register))
        .route("/policy/list-active-policies", get(policy::list_active))
        .route("/policy/list-inactive-policies", get(policy::list_inactive))
        .route("/policy/activate", post(policy::activate))
        .route("/policy/deactivate", post(policy::deactivate))
        .route("/policy/delete", post(policy::delete))
        .route(
            "/policy/list-registered-policies",
            get(policy::list_registered),
        )
        .route("/policy/retrieve-policy/{policy}", get(policy::retrieve))
        .route("/voting/create", post(pools::create))
        .route("/voting/check-pool-status/{pool}", get(pools::pool_status))
        .route("/voting/pending-ballots", get(pools::pending_ballots))
        .route("/voting/cast-vote", post(pools::cast_vote))
        .route("/device-bus", get(crate::device_bus::upgrade))
        .route("/ws", get(ws::upgrade))
        .fallback(guard::unknown_route)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, guard::api))
        .layer(CatchPanicLayer::custom(guard::panic_response));
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

/// Authenticates before the body is read (docs/api/README.md §7.4 order).
async fn caller(state: &AppState, headers: &HeaderMap, access: Access) -> Result<Caller, ApiError> {
    Ok(state
        .engine
        .authorize(token_header(headers)?, access)
        .await?)
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
