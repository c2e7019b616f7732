//! Cross-cutting edge rules: size limits on the request head, JSON for every error the
//! router itself produces, and a 500 envelope (never a dropped connection) on panics.

use crate::error::ApiError;
use crate::reply::JSON_UTF8;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use privicore_domain::Reason;
use std::any::Any;

pub const QUERY_LIMIT: usize = 8 * 1024;
pub const HEADERS_LIMIT: usize = 16 * 1024;

pub async fn limits_and_envelopes(req: Request, next: Next) -> Response {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let query_bytes = req.uri().query().map_or(0, str::len);
    if header_bytes > HEADERS_LIMIT || query_bytes > QUERY_LIMIT {
        return ApiError::from(Reason::RequestTooLarge).into_response();
    }
    let response = next.run(req).await;
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
