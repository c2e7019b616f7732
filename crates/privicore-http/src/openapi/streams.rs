//! The upload (8010) and download (8011) listeners: one path each, `/`, served by routers of
//! their own (`crate::streams`), so they are described here rather than in the table.

use super::errors;
use serde_json::{Value, json};

pub const TAG: &str = "Streams";

fn server(port: u16, what: &str) -> Value {
    json!([{
        "url": "{scheme}://{host}:{port}",
        "description": what,
        "variables": {
            "scheme": { "default": "http", "enum": ["http", "https"] },
            "host": { "default": "127.0.0.1" },
            "port": { "default": port.to_string() },
        },
    }])
}

fn auth(prefix: &str) -> Value {
    json!({
        "name": "auth", "in": "query", "required": true,
        "description": format!("Single-use value `{prefix}-…`."),
        "schema": { "type": "string", "pattern": format!("^{prefix}-[A-Za-z0-9_-]{{43}}$") },
    })
}

/// The `(status, keys)` of each listener, as `crate::streams` answers them.
pub const UPLOAD_ERRORS: &[&str] = &[
    "stream.invalid_auth",
    "request.method_not_allowed",
    "request.unknown_route",
    "request.unsupported_media_type",
    "request.malformed",
    "stream.too_large",
    "stream.incomplete",
    "stream.idle_timeout",
    "stream.spool_full",
    "rate_limit.exceeded",
    "internal.error",
];

pub const DOWNLOAD_ERRORS: &[&str] = &[
    "stream.invalid_auth",
    "request.method_not_allowed",
    "request.unknown_route",
    "data_token.not_found",
    "stream.data_superseded",
    "stream.not_ready",
    "rate_limit.exceeded",
    "internal.error",
];

pub fn path_item() -> Value {
    let mut upload_responses = json!({
        "202": {
            "description": "The whole body arrived; the exchange (or update) continues as a command.",
            "headers": { "X-DPT-CAB-ID": { "schema": { "type": "string", "format": "uuid" } } },
            "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/UploadAccepted" },
                "example": {
                    "commandId": "019c80d6-0298-7e8e-a508-6a3b1eb559b1",
                    "token": "dtk-25ea7a5c-7fa6-4ce4-ad2e-ca44dc78fc51",
                    "storedSize": 734003228,
                },
            }},
        },
    });
    for (status, codes) in errors::group(UPLOAD_ERRORS) {
        upload_responses[status.to_string()] = errors::response(&codes);
    }
    let mut download_responses = json!({
        "200": {
            "description": "The client payload, streamed.",
            "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } },
        },
    });
    for (status, codes) in errors::group(DOWNLOAD_ERRORS) {
        download_responses[status.to_string()] = errors::response(&codes);
    }
    json!({
        "post": {
            "operationId": "upload_stream",
            "tags": [TAG],
            "summary": "Upload a payload (upload listener)",
            "description": "Specified in docs/api/data-tokens.md §3.4. Raw payload bytes, `Content-Length` or chunked.",
            "servers": server(8010, "Upload listener"),
            "security": [{ "uploadValue": [] }],
            "parameters": [auth("U")],
            "requestBody": {
                "required": true,
                "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } },
            },
            "responses": upload_responses,
            "x-async-errors": ["storage.no_storage_devices", "storage.write_failed"],
        },
        "get": {
            "operationId": "download_stream",
            "tags": [TAG],
            "summary": "Download a payload (download listener)",
            "description": "Specified in docs/api/data-tokens.md §3.6. The value comes with a data request result (`output_type: 1`); an early request waits for STREAM-READY.",
            "servers": server(8011, "Download listener"),
            "security": [{ "downloadValue": [] }],
            "parameters": [auth("D")],
            "responses": download_responses,
        },
    })
}
