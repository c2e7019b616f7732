//! The API described from the code: `GET /openapi.json` (OpenAPI 3.1), `GET /asyncapi.json`
//! (AsyncAPI 3.0 of the WebSocket and device bus messages) and `GET /docs`, a reference page
//! whose script is embedded in the binary.
//!
//! Paths, methods and security come from the route table; error statuses from the
//! [`Reason`] catalogue; every table route must have exactly one entry in
//! `described/` (`tests::every_route_is_described_once`).

mod asyncapi;
mod described;
mod errors;
mod model;
mod schemas;
mod streams;
#[cfg(test)]
mod tests;

pub use model::{Described, Mode};

use crate::reply;
use crate::routes::table::{self, Guard, Route, Verb};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use model::{Field, In, Ty};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// The description of `route`, if it has one.
pub fn described(route: &Route) -> Option<&'static Described> {
    all_described().find(|d| d.verb == route.verb && d.path == route.path)
}

fn all_described() -> impl Iterator<Item = &'static Described> {
    described::all()
}

/// The OpenAPI document, built once.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

pub async fn openapi_json() -> Response {
    reply::ok(document())
}

pub async fn asyncapi_json() -> Response {
    static DOC: OnceLock<Value> = OnceLock::new();
    reply::ok(DOC.get_or_init(asyncapi::build))
}

/// The reference page: HTML and script in one file, nothing loaded from elsewhere.
pub async fn docs_page() -> Response {
    let mut response = include_str!("docs.html").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    response
}

fn build() -> Value {
    let mut components = schemas::components();
    let mut paths = Map::new();
    for route in table::ROUTES {
        let Some(d) = described(route) else { continue };
        let op = operation(route.guard, d, &mut components);
        let item = paths
            .entry(openapi_path(route.path))
            .or_insert_with(|| json!({}));
        item[method(route.verb)] = op;
    }
    paths.insert("/".into(), streams::path_item());
    let tags: Vec<Value> = {
        let mut seen: Vec<&str> = Vec::new();
        for d in all_described() {
            if !seen.contains(&d.tag) {
                seen.push(d.tag);
            }
        }
        seen.push(streams::TAG);
        seen.iter().map(|t| json!({ "name": t })).collect()
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "privicore API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": INFO,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "/", "description": "API listener (default port 8009)" }],
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": security_schemes(),
        },
        "x-asyncapi": "/asyncapi.json",
    })
}

const INFO: &str = "Every endpoint of the API listener, the upload (`POST /?auth=U-…`, port \
8010) and download (`GET /?auth=D-…`, port 8011) listeners and the WebSocket upgrades. \
Request bodies may be sent as `application/x-www-form-urlencoded`, `multipart/form-data` \
or JSON, with the same field names. Commands answer 202 `{\"commandId\"}`; their outcome \
arrives as a `command_status` event on the WebSocket (described in the AsyncAPI document \
at `/asyncapi.json`) or from `/request-status/{commandId}`; keys a command can fail with \
later are listed in each operation's `x-async-errors`. Every failure is \
`{\"error\":{\"code\",\"message\",\"field\"}}`; each response lists the codes it can carry.";

fn method(verb: Verb) -> &'static str {
    match verb {
        Verb::Get => "get",
        Verb::Post => "post",
    }
}

/// The table's path with its `{…}` parameters, which OpenAPI spells the same way.
fn openapi_path(path: &str) -> String {
    path.to_owned()
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

pub(crate) fn operation_id(verb: Verb, path: &str) -> String {
    let mut id = method(verb).to_owned();
    for part in path.split(['/', '-', '.']).filter(|p| !p.is_empty()) {
        let part = part.trim_matches(['{', '}']);
        id.push('_');
        id.push_str(&part.replace('-', "_"));
    }
    id
}

fn operation(guard: Guard, d: &Described, components: &mut Map<String, Value>) -> Value {
    let op_id = operation_id(d.verb, d.path);
    let mut parameters: Vec<Value> = path_params(d.path)
        .into_iter()
        .map(|name| {
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
        })
        .collect();
    let (body_fields, query_fields): (Vec<&Field>, Vec<&Field>) = d
        .fields
        .iter()
        .partition(|f| f.at == In::Body && d.verb == Verb::Post);
    for f in query_fields {
        parameters.push(json!({
            "name": f.name, "in": "query", "required": f.required,
            "description": f.note, "schema": field_schema(f),
        }));
    }
    let mut op = json!({
        "operationId": op_id,
        "tags": [d.tag],
        "summary": d.summary,
        "description": format!("Specified in docs/api/{}.", d.spec),
        "security": security(guard),
        "responses": responses(guard, d, &op_id, components),
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    if d.verb == Verb::Post && d.mode != Mode::Upgrade {
        op["requestBody"] = request_body(&body_fields, &op_id, components);
    }
    if !d.async_errors.is_empty() {
        op["x-async-errors"] = json!(d.async_errors);
    }
    if d.mode == Mode::Command
        && let Some(result) = d.reply.and_then(|r| serde_json::from_str::<Value>(r).ok())
    {
        op["x-command-result"] = result;
    }
    op
}

fn field_schema(f: &Field) -> Value {
    let mut s = match f.ty {
        Ty::Str => json!({ "type": "string" }),
        Ty::Uuid => json!({ "type": "string", "format": "uuid" }),
        Ty::Int => json!({ "type": "integer" }),
        Ty::Num => json!({ "type": "number" }),
        Ty::Bool => json!({ "type": "boolean" }),
        Ty::Arr => json!({ "type": ["array", "string"] }),
        Ty::Obj => json!({ "type": ["object", "string", "null"] }),
    };
    if !f.note.is_empty() {
        s["description"] = json!(f.note);
    }
    s
}

/// One schema for the three encodings: form and multipart carry the same names.
fn request_body(fields: &[&Field], op_id: &str, components: &mut Map<String, Value>) -> Value {
    let name = format!("{op_id}_request");
    let properties: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_owned(), field_schema(f)))
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    components.insert(name.clone(), schema);
    let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
    let mut json_media = json!({ "schema": reference });
    if let Some(example) = schemas::request_example(op_id) {
        json_media["example"] = example;
    }
    json!({
        "required": !required.is_empty(),
        "content": {
            "application/json": json_media,
            "application/x-www-form-urlencoded": { "schema": reference },
            "multipart/form-data": { "schema": reference },
        },
    })
}

fn responses(
    guard: Guard,
    d: &Described,
    op_id: &str,
    components: &mut Map<String, Value>,
) -> Value {
    let mut out = Map::new();
    match d.mode {
        Mode::Command => {
            out.insert(
                "202".into(),
                json!({
                    "description": "Accepted: the command is recorded; its outcome follows as an event.",
                    "headers": { "X-DPT-CAB-ID": {
                        "description": "The command id, as in the body.",
                        "schema": { "type": "string", "format": "uuid" },
                    }},
                    "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/CommandAccepted" },
                        "example": { "commandId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb" },
                    }},
                }),
            );
        }
        Mode::Upgrade => {
            out.insert(
                "101".into(),
                json!({ "description": "Switching Protocols: a WebSocket; messages in /asyncapi.json." }),
            );
        }
        Mode::Page => {
            out.insert(
                "200".into(),
                json!({ "description": "The page.", "content": { "text/html": { "schema": { "type": "string" } } } }),
            );
        }
        Mode::Sync => {
            for (status, response) in schemas::success(d, op_id, components) {
                out.insert(status.to_string(), response);
            }
        }
    }
    for (status, codes) in errors::by_status(guard, d) {
        out.insert(status.to_string(), errors::response(&codes));
    }
    Value::Object(out)
}

fn security(guard: Guard) -> Value {
    let token = |access: privicore_domain::auth::Access| {
        let mut options = vec![json!({ "profileToken": [] })];
        if !access.profile_token_only {
            options
                .push(json!({ "oauthAccessToken": access.scope.into_iter().collect::<Vec<_>>() }));
        }
        options
    };
    Value::Array(match guard {
        Guard::Public => Vec::new(),
        Guard::Token(access) => token(access),
        Guard::OptionalToken(access) => {
            let mut options = token(access);
            options.push(json!({}));
            options
        }
        Guard::Device => vec![json!({ "deviceCredentials": [] })],
        Guard::Client => vec![json!({ "clientCredentials": [] })],
        Guard::AccessToken => vec![json!({ "accessTokenBasic": [] })],
    })
}

fn security_schemes() -> Value {
    let scopes: Map<String, Value> = privicore_domain::oauth::SCOPES
        .iter()
        .map(|s| ((*s).to_owned(), json!(scope_text(s))))
        .collect();
    json!({
        "profileToken": {
            "type": "apiKey", "in": "header", "name": "X-DPT-AUTHORIZATION",
            "description": "A profile token (`T-…`) from /profile/authenticate. An OAuth access token goes in the same header (see oauthAccessToken).",
        },
        "oauthAccessToken": {
            "type": "oauth2",
            "description": "An OAuth access token (`A-…`), sent in `X-DPT-AUTHORIZATION` like a profile token; the operation's scope must be granted (`all` grants every scope). Profile-token-only operations do not list this scheme.",
            "flows": { "authorizationCode": {
                "authorizationUrl": "/profile/oauth-application-request-authorization-code",
                "tokenUrl": "/oauth-application/obtain-access-token",
                "refreshUrl": "/oauth-application/refresh-access-token",
                "scopes": scopes,
            }},
        },
        "deviceCredentials": {
            "type": "http", "scheme": "basic",
            "description": "`Basic base64(client-id:client-secret)` from the device's configuration bundle.",
        },
        "clientCredentials": {
            "type": "http", "scheme": "basic",
            "description": "`Basic base64(clientId:clientSecret)` of an OAuth application.",
        },
        "accessTokenBasic": {
            "type": "http", "scheme": "basic",
            "description": "`Basic <raw OAuth access token>` (the `A-…` value itself, not base64 of a pair).",
        },
        "uploadValue": {
            "type": "apiKey", "in": "query", "name": "auth",
            "description": "Single-use upload value `U-…` (the `stream` of Retrieve temporary data token).",
        },
        "downloadValue": {
            "type": "apiKey", "in": "query", "name": "auth",
            "description": "Single-use download value `D-…` (from the data request result or STREAM-READY event).",
        },
    })
}

fn scope_text(scope: &str) -> &'static str {
    match scope {
        "all" => "Every endpoint an app token may call",
        "profile:read" => "Retrieve profile id; Retrieve public key",
        "data-token:read" => "Request data, list data tokens, statistics",
        "data-token:write" => "Reserve, exchange, update, configure and delete data tokens",
        "device:manage" => "Every /device/* endpoint",
        "storage:manage" => "Every /storage/* endpoint",
        "authenticator:manage" => "Every /verified-authenticator/* endpoint",
        "policy:manage" => "Every /policy/* endpoint",
        "voting:vote" => "Create voting; check pool status",
        "directory:manage" => "Every /directory/* endpoint",
        _ => "See docs/api/oauth.md §1.1",
    }
}
