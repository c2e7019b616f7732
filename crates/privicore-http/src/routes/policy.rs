//! Policy endpoints (docs/api/voting-and-policy.md §5).

use super::query::{filter, filters, items_page, page, query};
use super::{AppState, caller, fields};
use crate::body::Fields;
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use privicore_domain::governance::{PolicyFilter, PolicyStatus};
use privicore_domain::{Error, Reason};
use privicore_engine::PolicyInput;
use serde_json::Value;

pub async fn templates(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&state, &headers).await?;
    Ok(reply::ok(&state.engine.policy_templates()))
}

/// `configuration`: an object, bracket notation, or a string holding a JSON object.
fn configuration(f: &Fields) -> Result<Value, Error> {
    let invalid = || {
        Error::new(Reason::PolicyInvalidConfiguration)
            .with_field("configuration")
            .with_message("The configuration must be an object.")
    };
    match f.0.get("configuration") {
        None | Some(Value::Null) => Err(Error::missing("configuration")),
        Some(Value::String(s)) if s.trim().is_empty() => Err(Error::missing("configuration")),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(invalid()),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(invalid()),
    }
}

/// `policyTemplateId`: a string or a number.
fn template_id(f: &Fields) -> Result<Value, Error> {
    match f.0.get("policyTemplateId") {
        None | Some(Value::Null) => Err(Error::missing("policyTemplateId")),
        Some(Value::String(s)) if s.is_empty() => Err(Error::missing("policyTemplateId")),
        Some(Value::String(s)) => Ok(Value::String(s.trim().to_owned())),
        Some(v) => Ok(v.clone()),
    }
}

pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let policy_template_id = template_id(&f)?;
    let applying_event_ids = f
        .opt_list("applyingEventIds")?
        .ok_or_else(|| Error::missing("applyingEventIds"))?;
    let configuration = configuration(&f)?;
    let voting_configuration = match f.opt_str("votingConfigurationId")? {
        Some(c) => Some(c),
        None => f.opt_str("configurationId")?,
    };
    let input = PolicyInput {
        name: f.opt_str("name")?.map(str::to_owned),
        description: f.opt_str("description")?.map(str::to_owned),
        policy_template_id,
        applying_event_ids,
        configuration,
        voting_configuration: voting_configuration.map(str::to_owned),
    };
    Ok(reply::accepted(
        state.engine.register_policy(&caller, input).await?,
    ))
}

pub async fn activate(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .activate_policy(&caller, f.str("policyId")?)
            .await?,
    ))
}

pub async fn deactivate(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .deactivate_policy(&caller, f.str("policyId")?)
            .await?,
    ))
}

pub async fn delete(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .delete_policy(&caller, f.str("policyId")?)
            .await?,
    ))
}

async fn list(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    status: Option<PolicyStatus>,
) -> Result<Response, ApiError> {
    let caller = caller(state, headers).await?;
    let q = query(uri)?;
    let page = page(&q)?;
    let allowed: &[&str] = match status {
        Some(_) => &["policyTemplateId", "eventId"],
        None => &["policyTemplateId", "eventId", "status"],
    };
    let f = filters(&q, allowed)?;
    let statuses = match (status, filter(&f, "status")) {
        (Some(s), _) => vec![s],
        (None, None) => Vec::new(),
        (None, Some("active")) => vec![PolicyStatus::Active],
        (None, Some("inactive")) => vec![PolicyStatus::Inactive],
        (None, Some(_)) => return Err(Error::invalid_format("filters[status]").into()),
    };
    let filter = PolicyFilter {
        statuses,
        template_id: filter(&f, "policyTemplateId").map(str::to_owned),
        event_id: filter(&f, "eventId").map(str::to_owned),
        voting_configuration_id: None,
    };
    let (items, total) = state.engine.list_policies(&caller, filter, page).await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

pub async fn list_active(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    list(&state, &headers, &uri, Some(PolicyStatus::Active)).await
}

pub async fn list_inactive(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    list(&state, &headers, &uri, Some(PolicyStatus::Inactive)).await
}

pub async fn list_registered(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    list(&state, &headers, &uri, None).await
}

pub async fn retrieve(
    State(state): State<AppState>,
    Path(policy): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(reply::ok(
        &state.engine.retrieve_policy(&caller, &policy).await?,
    ))
}
