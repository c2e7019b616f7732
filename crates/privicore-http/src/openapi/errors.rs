//! The error keys of each operation: its own (documented per route) plus those its guard,
//! its body parsing and the edge add, grouped by the status the catalogue gives them.

use super::model::{Described, Mode};
use crate::error::status_of;
use crate::routes::table::{Guard, Verb};
use privicore_domain::Reason;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Every key `d` can answer synchronously, by HTTP status.
pub fn by_status(guard: Guard, d: &Described) -> BTreeMap<u16, Vec<&'static str>> {
    let mut codes: Vec<&'static str> = Vec::new();
    let mut add = |c: &'static str| {
        if !codes.contains(&c) {
            codes.push(c);
        }
    };
    // Never the error envelope (docs/api/profile-and-keys.md §1.1).
    if d.path == "/health" {
        return BTreeMap::new();
    }
    for c in ["request.too_large", "rate_limit.exceeded", "internal.error"] {
        add(c);
    }
    match guard {
        Guard::Public => {}
        Guard::Token(access) | Guard::OptionalToken(access) => {
            if matches!(guard, Guard::Token(_)) {
                add("auth.missing_token");
            }
            for c in [
                "auth.invalid_token",
                "auth.token_expired",
                "auth.token_revoked",
            ] {
                add(c);
            }
            add("profile.inactive");
            if access.profile_token_only {
                add("oauth.profile_token_required");
            }
            if access.scope.is_some() {
                add("oauth.scope_denied");
            }
            if !access.key_exempt {
                add("profile.public_key_required");
            }
        }
        Guard::Device => add("device.invalid_credentials"),
        Guard::Client => add("oauth.invalid_client"),
        Guard::AccessToken => add("oauth.invalid_access_token"),
    }
    if d.verb == Verb::Post && d.mode != Mode::Upgrade {
        for c in [
            "request.malformed",
            "request.unsupported_media_type",
            "request.idempotency_conflict",
        ] {
            add(c);
        }
    }
    // Field checks: every POST reads fields (some documented in shared tables rather
    // than per route), and so does a route with query fields.
    if d.verb == Verb::Post || !d.fields.is_empty() {
        for c in [
            "validation.missing_field",
            "validation.invalid_type",
            "validation.invalid_format",
            "validation.out_of_range",
        ] {
            add(c);
        }
    }
    if d.path.contains('{') {
        add("validation.invalid_format");
    }
    if d.mode == Mode::Command {
        add("service.unavailable");
    }
    for c in d.errors {
        add(c);
    }
    group(&codes)
}

/// `codes` by the HTTP status the catalogue gives them.
pub fn group(codes: &[&'static str]) -> BTreeMap<u16, Vec<&'static str>> {
    let mut out: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
    for &code in codes {
        let reason = Reason::from_code(code).unwrap_or(Reason::InternalError);
        out.entry(status_of(reason.kind()).as_u16())
            .or_default()
            .push(reason.code());
    }
    out
}

/// The envelope, its `code` narrowed to `codes`, with one example per code.
pub fn response(codes: &[&'static str]) -> Value {
    let examples: Map<String, Value> = codes
        .iter()
        .map(|c| {
            let message = Reason::from_code(c).map_or("", |r| r.default_message());
            (
                (*c).to_owned(),
                json!({ "value": { "error": { "code": c, "message": message, "field": null } } }),
            )
        })
        .collect();
    let list = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    json!({
        "description": format!("Error keys: {list}."),
        "content": { "application/json": {
            "schema": { "allOf": [
                { "$ref": "#/components/schemas/ErrorEnvelope" },
                { "properties": { "error": { "properties": { "code": { "enum": codes } } } } },
            ]},
            "examples": examples,
        }},
    })
}
