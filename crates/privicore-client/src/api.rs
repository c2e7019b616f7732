//! Typed answers of the engine.

use serde::Deserialize;
use serde_json::Value;

/// A 202: the command id from the body and the `X-DPT-CAB-ID` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub command_id: String,
    pub header_id: Option<String>,
    /// The engine repeated the reply to an earlier request with the same `Idempotency-Key`.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestStatus {
    Started,
    Succeeded(Option<Value>),
    Failed(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticated {
    pub authorization_token: String,
    pub expires_at: String,
    pub profile_id: String,
    pub public_key_registered: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileInfo {
    pub profile_id: String,
    pub username: String,
    pub kind: String,
    pub public_key_registered: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QrToken {
    pub qr_token: String,
    pub expires_at: String,
    pub qr_payload: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenGrant {
    pub authorization_token: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenExpiry {
    pub expires_at: String,
    pub issued_at: String,
    pub seconds_remaining: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GeneratedKeys {
    pub private: String,
    pub public: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeyInfo {
    pub public_key: String,
    pub registered_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CabKey {
    pub public_key: String,
    pub key_id: String,
    pub created_at: String,
}
