//! `Idempotency-Key` on POSTs (docs/api/README.md §4.7). The body is compared by its parsed fields, so a
//! repeat counts as the same body whatever its multipart boundary or key order. Only 202
//! replies are remembered: a refused request frees its key for a corrected retry.

use crate::body::{BODY_LIMIT, parse_body};
use crate::error::ApiError;
use crate::routes::AppState;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use privicore_domain::idempotency::{IdempotencyKey, IdempotencySlot, Presented, is_secret_field};
use privicore_domain::{Error, Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

const KEY_HEADER: &str = "idempotency-key";
/// Sent with a reply that repeats the original one.
const REPLAYED_HEADER: &str = "idempotent-replayed";
/// How long a repeat waits for the first request with its key to be accepted.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
const IN_FLIGHT_POLL: Duration = Duration::from_millis(50);
/// 202 bodies are a few ids; anything bigger is not remembered.
const REPLY_LIMIT: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct StoredReply {
    headers: Vec<(String, String)>,
    body: String,
}

/// Runs `req` under its `Idempotency-Key`, if it is a POST that carries one.
pub async fn handle(state: &AppState, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(KEY_HEADER) else {
        return next.run(req).await;
    };
    let key = match IdempotencyKey::parse(value.to_str().unwrap_or_default()) {
        Ok(key) => key,
        Err(e) => return ApiError(e).into_response(),
    };
    let authorization = req
        .headers()
        .get("x-dpt-authorization")
        .map(|v| v.to_str().unwrap_or_default());
    let Some(scope) = state.engine.idempotency_scope(authorization).await else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::from(Reason::RequestTooLarge).into_response(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Ok(fields) = parse_body(content_type, bytes.clone()).await else {
        // Malformed: the handler answers with the precise error, and nothing is remembered.
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let mut fields = fields.0;
    // A password never enters the fingerprint, not even keyed.
    fields.retain(|name, _| !is_secret_field(name));
    let body_hash = state
        .engine
        .idempotency_fingerprint(&canonical(Value::Object(fields)));
    let slot = IdempotencySlot::new(scope, parts.uri.path(), &key);
    let req = Request::from_parts(parts, Body::from(bytes));

    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        match state
            .engine
            .present_idempotency_key(slot.clone(), &body_hash)
            .await
        {
            Err(e) => return ApiError(e).into_response(),
            Ok(Presented::Claimed(slot)) => return run_and_settle(state, slot, req, next).await,
            Ok(Presented::Replay(stored)) => return replay(&stored),
            Ok(Presented::Conflict) => {
                return ApiError::from(Reason::RequestIdempotencyConflict).into_response();
            }
            Ok(Presented::InFlight) if tokio::time::Instant::now() >= deadline => {
                return ApiError(Error::new(Reason::RequestIdempotencyConflict).with_message(
                    "A request with this Idempotency-Key is still running; retry later.",
                ))
                .into_response();
            }
            Ok(Presented::InFlight) => tokio::time::sleep(IN_FLIGHT_POLL).await,
        }
    }
}

async fn run_and_settle(
    state: &AppState,
    slot: IdempotencySlot,
    req: Request,
    next: Next,
) -> Response {
    let response = next.run(req).await;
    if response.status() != StatusCode::ACCEPTED {
        if let Err(e) = state.engine.settle_idempotency_key(&slot, None).await {
            tracing::warn!(reason = %e.reason, "could not free an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, REPLY_LIMIT).await else {
        return ApiError::from(Reason::InternalError).into_response();
    };
    let stored = StoredReply {
        headers: kept_headers(&parts.headers),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    let text = serde_json::to_string(&stored).unwrap_or_default();
    if let Err(e) = state
        .engine
        .settle_idempotency_key(&slot, Some(&text))
        .await
    {
        // The command is accepted either way; only a repeat would not find this reply.
        tracing::warn!(reason = %e.reason, "could not remember an idempotent reply");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| *name != header::CONTENT_LENGTH)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect()
}

fn replay(stored: &str) -> Response {
    let Ok(stored) = serde_json::from_str::<StoredReply>(stored) else {
        return ApiError(Error::internal("an idempotent reply does not parse")).into_response();
    };
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::ACCEPTED;
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// JSON with every object's keys sorted, so equal fields give equal bytes.
fn canonical(value: Value) -> Vec<u8> {
    fn sorted(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                let mut out = serde_json::Map::new();
                for (k, v) in entries {
                    out.insert(k, sorted(v));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
            other => other,
        }
    }
    serde_json::to_vec(&sorted(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_ignores_key_order() {
        assert_eq!(
            canonical(json!({ "b": 1, "a": { "y": 2, "x": [ { "q": 1, "p": 2 } ] } })),
            canonical(json!({ "a": { "x": [ { "p": 2, "q": 1 } ], "y": 2 }, "b": 1 }))
        );
        assert_ne!(canonical(json!({ "a": 1 })), canonical(json!({ "a": 2 })));
    }

    #[test]
    fn a_stored_reply_replays_status_headers_and_body() {
        let stored = serde_json::to_string(&StoredReply {
            headers: vec![("x-dpt-cab-id".into(), "abc".into())],
            body: "{\"commandId\":\"abc\"}".into(),
        })
        .unwrap();
        let response = replay(&stored);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["x-dpt-cab-id"], "abc");
        assert_eq!(response.headers()[REPLAYED_HEADER], "true");
    }
}
