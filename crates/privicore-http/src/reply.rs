use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use privicore_domain::CommandId;
use serde::Serialize;
use serde_json::json;

pub const JSON_UTF8: &str = "application/json; charset=utf-8";

pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

pub fn ok(body: &impl Serialize) -> Response {
    json(StatusCode::OK, body)
}

/// 202 with `{"commandId"}` and the `X-DPT-CAB-ID` header (docs/api/README.md §7.1).
pub fn accepted(id: CommandId) -> Response {
    let mut response = json(
        StatusCode::ACCEPTED,
        &json!({ "commandId": id.to_string() }),
    );
    response.headers_mut().insert(
        "X-DPT-CAB-ID",
        HeaderValue::from_str(&id.to_string()).expect("uuid is a valid header value"),
    );
    response
}

/// For responses that carry secrets.
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
