use super::{AppState, caller, client_address, fields};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use privicore_domain::{Error, Reason};
use privicore_engine::Credentials;
use serde_json::json;

pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let client = client_address(&req);
    let f = fields(req).await?;
    let username = f.str("username")?;
    let password = f.str("password")?;
    let id = state
        .engine
        .register_profile(username, password, client)
        .await?;
    Ok(reply::accepted(id))
}

pub async fn authenticate(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let client = client_address(&req);
    let f = fields(req).await?;
    let qr = f.opt_str("qrToken")?;
    let username = f.opt_str("username")?;
    let password = f.opt_str("password")?;
    let credentials = match (qr, username, password) {
        (Some(qr), None, None) => Credentials::Qr(qr.to_owned()),
        (None, Some(u), Some(p)) => Credentials::Password {
            username: u.to_owned(),
            password: p.to_owned(),
        },
        (None, Some(_), None) => return Err(Error::missing("password").into()),
        (None, None, Some(_)) => return Err(Error::missing("username").into()),
        _ => return Err(Reason::ValidationInvalidCredentialsForm.into()),
    };
    let auth = state.engine.authenticate(credentials, client).await?;
    Ok(reply::no_store(reply::ok(&json!({
        "authorizationToken": auth.token.expose(),
        "expiresAt": auth.expires_at.rfc3339(),
        "profileId": auth.profile_id.to_string(),
        "publicKeyRegistered": auth.public_key_registered,
    }))))
}

pub async fn retrieve_profile_id(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let profile = state.engine.profile_of(&caller).await?;
    Ok(reply::ok(&json!({
        "profileId": profile.id.to_string(),
        "username": profile.username,
        "kind": profile.kind.as_str(),
        "publicKeyRegistered": profile.public_key.is_some(),
        "createdAt": profile.created_at.rfc3339(),
    })))
}

pub async fn change_password(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let client = client_address(&req);
    let f = fields(req).await?;
    let current = f.str("currentPassword")?;
    let new = f.str("newPassword")?;
    let revoke = f.opt_bool("revokeTokens")?.unwrap_or(false);
    let id = state
        .engine
        .change_password(&caller, current, new, revoke, client)
        .await?;
    Ok(reply::accepted(id))
}

pub async fn generate_qr_token(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let qr = state
        .engine
        .generate_qr_token(&caller, f.opt_int("ttl")?)
        .await?;
    Ok(reply::no_store(reply::ok(&json!({
        "qrToken": qr.token.expose(),
        "expiresAt": qr.expires_at.rfc3339(),
        "qrPayload": qr.payload,
    }))))
}

pub async fn reauthorize(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let (token, expires_at) = state.engine.reauthorize(&caller, f.opt_int("ttl")?).await?;
    Ok(reply::no_store(reply::ok(&json!({
        "authorizationToken": token.expose(),
        "expiresAt": expires_at.rfc3339(),
    }))))
}

pub async fn revoke(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    fields(req).await?;
    let at = state.engine.revoke(&caller).await?;
    Ok(reply::ok(
        &json!({ "revoked": true, "revokedAt": at.rfc3339() }),
    ))
}

pub async fn token_expiry(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    fields(req).await?;
    let expiry = state.engine.token_expiry(&caller);
    Ok(reply::ok(&json!({
        "expiresAt": expiry.expires_at.rfc3339(),
        "issuedAt": expiry.issued_at.rfc3339(),
        "secondsRemaining": expiry.seconds_remaining,
    })))
}
