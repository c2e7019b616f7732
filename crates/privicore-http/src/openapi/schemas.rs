//! Schemas: the shared shapes as Rust types (utoipa derives), each route's answer from its
//! documented example, and the request examples replayed by the integration tests.

use super::model::{Described, Mode};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

/// 202 of every command (docs/api/README.md §7.1).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({ "commandId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb" }))]
pub struct CommandAccepted {
    pub command_id: uuid::Uuid,
}

/// Every failure (docs/api/README.md §10).
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A dotted key of the catalogue, such as `auth.invalid_token`.
    #[schema(pattern = r"^[a-z_]+(\.[a-z_]+)+$")]
    pub code: String,
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
}

/// 202 of an upload (docs/api/data-tokens.md §3.4).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadAccepted {
    pub command_id: uuid::Uuid,
    pub token: String,
    pub stored_size: u64,
}

fn schema_of<T: ToSchema>() -> (String, Value) {
    let schema = serde_json::to_value(T::schema()).unwrap_or_else(|_| json!({}));
    (T::name().into_owned(), schema)
}

pub fn components() -> Map<String, Value> {
    let mut out: Map<String, Value> = [
        schema_of::<CommandAccepted>(),
        schema_of::<ErrorEnvelope>(),
        schema_of::<ErrorBody>(),
        schema_of::<UploadAccepted>(),
    ]
    .into_iter()
    .collect();
    // `["started"]`, `["succeeded", <result>?]` or `["failed", "<key>"]` (§1.2).
    out.insert(
        "RequestStatus".into(),
        json!({
            "type": "array",
            "prefixItems": [{ "enum": ["started", "succeeded", "failed"] }],
            "minItems": 1,
            "maxItems": 2,
        }),
    );
    out
}

/// The success responses of a synchronous route.
pub fn success(
    d: &Described,
    op_id: &str,
    components: &mut Map<String, Value>,
) -> Vec<(u16, Value)> {
    debug_assert_eq!(d.mode, Mode::Sync);
    if d.path.starts_with("/request-status/") {
        let media = |example: Value| {
            json!({ "application/json": {
                "schema": { "$ref": "#/components/schemas/RequestStatus" },
                "example": example,
            }})
        };
        return vec![
            (
                200,
                json!({ "description": "Finished.", "content": media(json!(["succeeded", { "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb" }])) }),
            ),
            (
                202,
                json!({ "description": "Still running.", "content": media(json!(["started"])) }),
            ),
        ];
    }
    let example = d.reply.and_then(|r| serde_json::from_str::<Value>(r).ok());
    let schema = match &example {
        Some(example) => {
            let name = format!("{op_id}_response");
            components.insert(name.clone(), infer(example));
            json!({ "$ref": format!("#/components/schemas/{name}") })
        }
        None => json!({ "type": ["object", "array"] }),
    };
    let mut media = json!({ "schema": schema });
    if let Some(example) = example {
        media["example"] = example;
    }
    let ok = json!({ "description": "OK.", "content": { "application/json": media } });
    if d.path == "/health" {
        let down = json!({ "description": "The database is unavailable; same body, status `unavailable`.", "content": ok["content"].clone() });
        return vec![(200, ok), (503, down)];
    }
    vec![(200, ok)]
}

/// A schema that the documented example and every answer of its shape satisfy: types as
/// in the example, fields optional, scalars nullable, unknown fields allowed (clients must
/// ignore them, README §8.8).
pub fn infer(example: &Value) -> Value {
    match example {
        Value::Null => json!({}),
        Value::Bool(_) => json!({ "type": ["boolean", "null"] }),
        Value::Number(n) if n.is_f64() => json!({ "type": ["number", "null"] }),
        Value::Number(_) => json!({ "type": ["integer", "null"] }),
        Value::String(_) => json!({ "type": ["string", "null"] }),
        Value::Array(items) => json!({
            "type": "array",
            "items": items.first().map_or(json!({}), infer),
        }),
        Value::Object(fields) => {
            let properties: Map<String, Value> =
                fields.iter().map(|(k, v)| (k.clone(), infer(v))).collect();
            json!({ "type": ["object", "null"], "properties": properties })
        }
    }
}

/// Request examples, one or more per endpoint family; the integration tests send each
/// and hold the answer to the document.
pub fn request_example(op_id: &str) -> Option<Value> {
    Some(match op_id {
        "post_profile_register_profile" => {
            json!({ "username": "alice@example.com", "password": "correct horse battery" })
        }
        "post_profile_authenticate" => {
            json!({ "username": "alice@example.com", "password": "correct horse battery" })
        }
        "post_profile_generate_token_qr" => json!({ "ttl": 120 }),
        "post_profile_authorization_token_expiry" => json!({}),
        "post_profile_oauth_application_register" => json!({
            "name": "Ledger sync",
            "redirectUri": "https://ledger.example.com/callback",
            "scopes": ["data-token:read"],
        }),
        "post_data_token_reserve_token_space" => json!({ "context": "/finance/2026", "ttl": 30 }),
        "post_device_request_unique_identifier" => json!({ "deviceName": "Alice's laptop" }),
        "post_directory_register" => json!({ "name": "Finance", "description": "Finance team" }),
        "post_verified_authenticator_set_quorum_size" => json!({ "quorumSize": 1 }),
        "post_voting_create" => json!({
            "votingConfigurationId": "unknown-configuration",
            "title": "Approve the budget",
            "question": "Do you approve the 2026 budget?",
        }),
        _ => return None,
    })
}
