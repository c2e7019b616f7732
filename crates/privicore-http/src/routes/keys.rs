use super::{AppState, caller, client_address, fields};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

/// The body is a private key: never cached, never logged.
pub async fn generate(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let keys = state.engine.generate_keys(client_address(&req))?;
    Ok(reply::no_store(reply::ok(&json!({
        "private": keys.private_hex,
        "public": keys.public_signed,
    }))))
}

pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = state
        .engine
        .register_public_key(&caller, f.str("publicKey")?)
        .await?;
    Ok(reply::accepted(id))
}

pub async fn retrieve(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let key = state.engine.public_key_of(&caller).await?;
    Ok(reply::ok(&json!({
        "publicKey": key.public_key,
        "registeredAt": key.registered_at.rfc3339(),
    })))
}

pub async fn cab(State(state): State<AppState>) -> Response {
    let key = state.engine.cab_key();
    reply::ok(&json!({
        "publicKey": key.public_key,
        "keyId": key.key_id,
        "createdAt": key.created_at.rfc3339(),
    }))
}
