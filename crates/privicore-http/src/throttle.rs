//! Request limits at the edge (docs/api/README.md §3.5): every request is counted per authorization
//! token or, when it does not authenticate, per client address; `/health` never is. The
//! resolved client address is left in the request for the engine's own limits.

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// API paths that never authenticate with `X-DPT-AUTHORIZATION`: a token sent there would
/// otherwise move the request off its address's limit.
const PUBLIC: &[&str] = &[
    "/profile/register-profile",
    "/profile/authenticate",
    "/generate-keys",
    "/dptcab/public-key",
    "/device-bus",
    "/ws",
];

pub async fn api(state: State<AppState>, req: Request, next: Next) -> Response {
    let public = PUBLIC.contains(&req.uri().path());
    limit(state, req, next, public).await
}

/// The WebSocket listener: upgrades authenticate later, on the socket.
pub async fn ws(state: State<AppState>, req: Request, next: Next) -> Response {
    limit(state, req, next, true).await
}

async fn limit(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
    public: bool,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let client = state.edge.trusted_proxies.client(peer, req.headers());
    req.extensions_mut().insert(ClientIp(client));
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let limits = state.engine.limits();
    let token = req
        .headers()
        .get("x-dpt-authorization")
        .filter(|v| !public && !v.as_bytes().trim_ascii().is_empty());
    let verdict = match token {
        Some(value) => limits.address_open(client).and_then(|()| {
            // A value that is not text cannot authenticate; it is counted by address below.
            value
                .to_str()
                .map_or(Ok(()), |text| limits.token_request(text))
        }),
        None => limits.unauthenticated_request(client),
    };
    if let Err(e) = verdict {
        return ApiError(e).into_response();
    }
    let bearer = token.is_some();
    let response = next.run(req).await;
    if bearer && response.status() == StatusCode::UNAUTHORIZED {
        limits.token_not_authenticated(client);
    }
    response
}
