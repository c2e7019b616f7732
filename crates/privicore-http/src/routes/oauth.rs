//! OAuth application endpoints (docs/api/oauth.md §3).

use super::query::{filter, filters, items_page, page, query};
use super::{AppState, caller, fields};
use crate::body::Fields;
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use privicore_domain::data_token::Match;
use privicore_domain::oauth::{parse_scopes, spaced};
use privicore_domain::secret::Secret;
use privicore_domain::{Error, Reason};
use privicore_engine::{ApplicationInput, IssuedTokens};
use serde_json::json;
use uuid::Uuid;

/// A scope list under the first of `names` that was sent (docs/api/oauth.md §1.1).
fn scope_list(f: &Fields, names: &[&'static str]) -> Result<Vec<String>, Error> {
    for name in names {
        if let Some(items) = f.opt_str_list(name)? {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            return parse_scopes(name, &items);
        }
    }
    Err(Error::missing(names[0]))
}

/// `Authorization: Basic base64(clientId:clientSecret)`.
fn client_credentials(headers: &HeaderMap) -> Result<(String, Secret), Error> {
    crate::device_bus::basic(headers)
        .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
        .map(|(id, secret)| (id, Secret::new(secret)))
        .ok_or_else(|| Error::new(Reason::OauthInvalidClient))
}

/// `Authorization: Basic <raw access token>`.
fn raw_access_token(headers: &HeaderMap) -> Result<Secret, Error> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Basic "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Secret::new)
        .ok_or_else(|| Error::new(Reason::OauthInvalidAccessToken))
}

fn tokens_json(t: &IssuedTokens) -> serde_json::Value {
    json!({
        "clientId": t.client_id,
        "token": t.access.expose(),
        "refreshToken": t.refresh.expose(),
        "type": "bearer",
        "scope": spaced(&t.scopes),
        "expiresAt": t.expires_at.rfc3339(),
        "refreshTokenExpiresAt": t.refresh_expires_at.rfc3339(),
    })
}

/// §3.1.
pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let input = ApplicationInput {
        name: f.str("name")?.to_owned(),
        description: f.opt_str("description")?.map(str::to_owned),
        redirect_uri: f.str("redirectUri")?.trim().to_owned(),
        scopes: scope_list(&f, &["scopes"])?,
    };
    let id = state
        .engine
        .register_oauth_application(&caller, input)
        .await?;
    Ok(reply::accepted(id))
}

/// §3.2.
pub async fn configuration(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id: Uuid = f
        .str("applicationId")?
        .trim()
        .parse()
        .map_err(|_| Error::invalid_format("applicationId"))?;
    let (application, secret) = state.engine.oauth_configuration(&caller, id).await?;
    Ok(reply::no_store(reply::ok(&json!({
        "applicationId": application.id.to_string(),
        "name": application.name,
        "clientId": application.client_id,
        "clientSecret": secret.expose(),
        "redirectUri": application.redirect_uri,
        "scopes": application.scopes,
        "createdAt": application.created_at.rfc3339(),
    }))))
}

/// §3.3: every parameter in the query string.
pub async fn request_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let client_id = q.str("client_id")?.to_owned();
    let nonce = q
        .opt_str("nonce")?
        .ok_or_else(|| Error::new(Reason::OauthInvalidNonce).with_field("nonce"))?
        .to_owned();
    let scopes = scope_list(&q, &["scope", "scopes"])?;
    let id = state
        .engine
        .request_oauth_code(&caller, &client_id, &nonce, scopes)
        .await?;
    Ok(reply::accepted(id))
}

/// §3.6.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["name"])?;
    let name = filter(&f, "name").map(Match::exact_or_prefix);
    let (items, total) = state.engine.oauth_applications(&caller, name, page).await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

/// §3.4.
pub async fn retrieve_code(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (client_id, secret) = client_credentials(req.headers())?;
    let f = fields(req).await?;
    let id = f.str("id")?;
    let nonce = f.str("nonce")?;
    let (client_id, code, expires_at) = state
        .engine
        .retrieve_oauth_code(&client_id, &secret, id, nonce)
        .await?;
    Ok(reply::no_store(reply::ok(&json!({
        "clientId": client_id,
        "nonce": nonce,
        "authorizationCode": code.expose(),
        "expiresAt": expires_at.rfc3339(),
    }))))
}

/// §3.5.
pub async fn obtain_token(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let (client_id, secret) = client_credentials(req.headers())?;
    let f = fields(req).await?;
    let code = f.str("authorization_code")?;
    let tokens = state
        .engine
        .obtain_oauth_token(&client_id, &secret, code)
        .await?;
    Ok(reply::no_store(reply::ok(&tokens_json(&tokens))))
}

/// §3.8.
pub async fn refresh_token(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let access = raw_access_token(req.headers())?;
    let f = fields(req).await?;
    let refresh = f.str("refresh_token")?;
    let tokens = state
        .engine
        .refresh_oauth_token(access.expose(), refresh)
        .await?;
    Ok(reply::no_store(reply::ok(&tokens_json(&tokens))))
}

/// §3.7 (GET, or POST with the body ignored).
pub async fn scope(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let access = raw_access_token(req.headers())?;
    Ok(reply::ok(&state.engine.oauth_scope(access.expose()).await?))
}
