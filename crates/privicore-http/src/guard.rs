//! Cross-cutting edge rules: size limits on the request head, rate limits, event holds,
//! JSON for every error the router itself produces, and a 500 envelope (never a dropped
//! connection) on panics.

use crate::error::ApiError;
use crate::flush::{self, FlushHooks};
use crate::reply::JSON_UTF8;
use crate::routes::AppState;
use crate::{idempotency, throttle};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use privicore_domain::Reason;
use std::any::Any;

pub const QUERY_LIMIT: usize = 8 * 1024;
pub const HEADERS_LIMIT: usize = 16 * 1024;

/// The API listener's one middleware (one layer rather than four: each layer costs an
/// allocation and a move of the request on every call): head size limits, rate limits,
/// event holds, `Idempotency-Key`, and JSON for the router's own 405s.
pub async fn api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let timer = crate::metrics::RequestTimer::start(&req);
    let response = api_inner(state, req, next).await;
    timer.finish(&response);
    response
}

async fn api_inner(state: AppState, mut req: Request, next: Next) -> Response {
    if let Err(refused) = head_within_limits(&req) {
        return refused.into_response();
    }
    let public = throttle::is_public(req.uri().path());
    let admitted = match throttle::admit(&state, &mut req, public) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let hooks = req.extensions().get::<FlushHooks>().cloned();
    let response = flush::hold_events(hooks, idempotency::handle(&state, req, next)).await;
    throttle::settle(&state, &admitted, &response);
    json_method_not_allowed(response)
}

/// The WebSocket listener's middleware: upgrades authenticate later, on the socket.
pub async fn ws(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Err(refused) = head_within_limits(&req) {
        return refused.into_response();
    }
    let admitted = match throttle::admit(&state, &mut req, true) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let response = next.run(req).await;
    throttle::settle(&state, &admitted, &response);
    json_method_not_allowed(response)
}

fn head_within_limits(req: &Request) -> Result<(), ApiError> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let query_bytes = req.uri().query().map_or(0, str::len);
    if header_bytes > HEADERS_LIMIT || query_bytes > QUERY_LIMIT {
        return Err(Reason::RequestTooLarge.into());
    }
    Ok(())
}

fn json_method_not_allowed(response: Response) -> Response {
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json(&response) {
        let (parts, _) = response.into_parts();
        let mut json = ApiError::from(Reason::RequestMethodNotAllowed).into_response();
        if let Some(allow) = parts.headers.get(header::ALLOW) {
            json.headers_mut().insert(header::ALLOW, allow.clone());
        }
        return json;
    }
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == JSON_UTF8.as_bytes())
}

pub async fn unknown_route() -> ApiError {
    Reason::RequestUnknownRoute.into()
}

pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic");
    tracing::error!(%detail, "handler panicked");
    ApiError::from(Reason::InternalError).into_response()
}
