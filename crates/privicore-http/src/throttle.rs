//! Request limits at the edge (docs/api/README.md §3.5): every request is counted per authorization
//! token or, when it does not authenticate, per client address; `/health` never is. The
//! resolved client address is left in the request for the engine's own limits.

use crate::client_ip::ClientIp;
use crate::error::ApiError;
use crate::routes::AppState;
use crate::routes::table::{Guard, ROUTES};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::LazyLock;

/// What [`admit`] learnt about a request, for [`settle`].
pub struct Admitted {
    client: std::net::IpAddr,
    bearer: bool,
}

/// Counts `req` against its limits and leaves its client address in it; `Err` is the 429 to
/// answer instead.
pub fn admit(state: &AppState, req: &mut Request, public: bool) -> Result<Admitted, ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let client = state.edge.trusted_proxies.client(peer, req.headers());
    req.extensions_mut().insert(ClientIp(client));
    if req.uri().path() == "/health" {
        return Ok(Admitted {
            client,
            bearer: false,
        });
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
    match verdict {
        Ok(()) => Ok(Admitted {
            client,
            bearer: token.is_some(),
        }),
        Err(e) => Err(ApiError(e)),
    }
}

/// A bearer token that did not authenticate counts against its address.
pub fn settle(state: &AppState, admitted: &Admitted, response: &Response) {
    if admitted.bearer && response.status() == StatusCode::UNAUTHORIZED {
        state
            .engine
            .limits()
            .token_not_authenticated(admitted.client);
    }
}

/// API paths whose `X-DPT-AUTHORIZATION` is not the caller's token: the routes the route
/// table does not guard with it (a token sent there would otherwise move the request off
/// its address's limit). None of them has a path parameter.
pub fn is_public(path: &str) -> bool {
    static PUBLIC: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        ROUTES
            .iter()
            .filter(|r| !matches!(r.guard, Guard::Token(_) | Guard::OptionalToken(_)))
            .map(|r| r.path)
            .collect()
    });
    PUBLIC.contains(path)
}
