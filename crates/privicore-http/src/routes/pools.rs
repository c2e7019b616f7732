//! Voting endpoints (docs/api/voting-and-policy.md §6.1, §6.3): create voting, check pool
//! status for profiles; pending ballots and cast vote for devices (Basic credentials).

use super::query::{items_page, page, query};
use super::{AppState, caller, fields};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::{Error, Reason};
use serde_json::json;

async fn device(state: &AppState, headers: &HeaderMap) -> Result<Device, ApiError> {
    let Some((id, secret)) = crate::device_bus::basic(headers) else {
        return Err(Error::new(Reason::DeviceInvalidCredentials).into());
    };
    Ok(state.engine.device_by_credentials(&id, &secret).await?)
}

pub async fn create(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let configuration = match f.opt_str("votingConfigurationId")? {
        Some(c) => c.to_owned(),
        None => f.str("configurationId")?.to_owned(),
    };
    let title = f.str("title")?;
    let question = f.str("question")?;
    let skip = match f.opt_str_list("skipAuthenticatorDevices")? {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|s| {
                s.parse::<DeviceId>().map_err(|_| {
                    Error::invalid_type("skipAuthenticatorDevices", "an array of device ids")
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let nonce = f.opt_str("nonce")?.map(str::to_owned);
    let id = state
        .engine
        .create_voting(&caller, &configuration, title, question, skip, nonce)
        .await?;
    Ok(pool_accepted(id))
}

/// 202 of a command that opens a pool: `{commandId, poolId}`, both the command id.
pub(super) fn pool_accepted(id: privicore_domain::CommandId) -> Response {
    let mut response = reply::json(
        StatusCode::ACCEPTED,
        &json!({ "commandId": id.to_string(), "poolId": id.to_string() }),
    );
    response.headers_mut().insert(
        "X-DPT-CAB-ID",
        HeaderValue::from_str(&id.to_string()).expect("uuid is a valid header value"),
    );
    response
}

pub async fn pool_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(pool): Path<String>,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(reply::ok(&state.engine.pool_status(&caller, &pool).await?))
}

pub async fn pending_ballots(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let device = device(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let (items, total) = state.engine.pending_ballots(&device, page).await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

pub async fn cast_vote(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let device = device(&state, req.headers()).await?;
    let f = fields(req).await?;
    let ballot = f.str("ballotId")?;
    let decision = f.str("decision")?;
    let done = state
        .engine
        .cast_vote(
            &device,
            ballot,
            decision,
            f.opt_str("mac")?,
            f.opt_str("votedAt")?,
        )
        .await?;
    Ok(reply::ok(&json!({
        "ballotId": done.ballot_id.to_string(),
        "poolId": done.pool_id.to_string(),
        "attempt": done.attempt,
        "decision": done.decision.as_str(),
        "recordedAt": done.recorded_at.rfc3339(),
        "poolStatus": done.pool_status.as_str(),
    })))
}
