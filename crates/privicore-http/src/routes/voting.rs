//! Verified authenticator endpoints (docs/api/voting-and-policy.md §4).

use super::query::{filter, filters, items_page, online_filter, page, query};
use super::{AppState, caller, fields};
use crate::body::Fields;
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use privicore_domain::Error;
use privicore_domain::governance::ConfigurationFilter;
use privicore_domain::governance::voting::check_strategy;
use privicore_engine::{ConfigurationInput, ConfigurationUpdate};

fn required_int(f: &Fields, name: &str) -> Result<i64, Error> {
    f.opt_int(name)?.ok_or_else(|| Error::missing(name))
}

/// An optional integer that JSON `null` or an empty value resets.
fn resettable_int(f: &Fields, name: &str) -> Result<Option<Option<i64>>, Error> {
    if f.reset(name) {
        return Ok(Some(None));
    }
    Ok(f.opt_int(name)?.map(Some))
}

pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .register_authenticator(&caller, f.str("deviceIdentifier")?)
            .await?,
    ))
}

pub async fn remove(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let force = f.opt_bool("force")?.unwrap_or(false);
    Ok(reply::accepted(
        state
            .engine
            .remove_authenticator(&caller, f.str("deviceIdentifier")?, force)
            .await?,
    ))
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let online = online_filter(&q)?;
    let (items, total) = state
        .engine
        .list_authenticators(&caller, online, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

pub async fn strategy(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(reply::ok(&state.engine.voting_strategy(&caller).await?))
}

pub async fn set_quorum_size(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let quorum = required_int(&f, "quorumSize")?;
    Ok(reply::accepted(
        state.engine.set_quorum_size(&caller, quorum).await?,
    ))
}

pub async fn set_quorum_strategy(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let strategy = f.str("strategy")?;
    let params = f.opt_int("strategy_params")?;
    Ok(reply::accepted(
        state
            .engine
            .set_quorum_strategy(&caller, strategy, params)
            .await?,
    ))
}

pub async fn set_time_limit(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let seconds = required_int(&f, "timeLimit")?;
    Ok(reply::accepted(
        state.engine.set_voting_time_limit(&caller, seconds).await?,
    ))
}

pub async fn set_attempts(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let attempts = required_int(&f, "numberOfAttempts")?;
    Ok(reply::accepted(
        state
            .engine
            .set_maximum_voting_attempts(&caller, attempts)
            .await?,
    ))
}

pub async fn register_configuration(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let input = ConfigurationInput {
        name: f.str("name")?.to_owned(),
        strategy: f.str("strategy")?.to_owned(),
        time_limit: required_int(&f, "timeLimit")?,
        percentage_required: f.opt_int("percentageRequired")?,
        device_identifiers: f.opt_str_list("deviceIdentifiers")?.unwrap_or_default(),
        quorum_size: f.opt_int("quorumSize")?,
        number_of_attempts: f.opt_int("numberOfAttempts")?,
    };
    Ok(reply::accepted(
        state
            .engine
            .register_voting_configuration(&caller, input)
            .await?,
    ))
}

pub async fn update_configuration(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let configuration = match f.opt_str("votingConfigurationId")? {
        Some(c) => c,
        None => f
            .str("configurationId")
            .map_err(|_| Error::missing("votingConfigurationId"))?,
    };
    // An empty list is a change: back to every authenticator of the profile.
    let device_identifiers = match f.opt_str_list("deviceIdentifiers")? {
        Some(list) => Some(list),
        None if f.sent("deviceIdentifiers") => Some(Vec::new()),
        None => None,
    };
    let input = ConfigurationUpdate {
        name: f.opt_str("name")?.map(str::to_owned),
        strategy: f.opt_str("strategy")?.map(str::to_owned),
        time_limit: f.opt_int("timeLimit")?,
        percentage_required: f.opt_int("percentageRequired")?,
        device_identifiers,
        quorum_size: resettable_int(&f, "quorumSize")?,
        number_of_attempts: resettable_int(&f, "numberOfAttempts")?,
    };
    Ok(reply::accepted(
        state
            .engine
            .update_voting_configuration(&caller, configuration, input)
            .await?,
    ))
}

pub async fn list_configurations(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(&q, &["name", "strategy"])?;
    let (name, name_prefix) = match filter(&f, "name") {
        Some(n) => match n.strip_suffix('*') {
            Some(p) => (Some(p.to_owned()), true),
            None => (Some(n.to_owned()), false),
        },
        None => (None, false),
    };
    let strategy = filter(&f, "strategy")
        .map(|s| check_strategy(s, "filters[strategy]"))
        .transpose()?;
    let filter = ConfigurationFilter {
        name,
        name_prefix,
        strategy,
    };
    let (items, total) = state
        .engine
        .list_voting_configurations(&caller, filter, page)
        .await?;
    Ok(reply::ok(&items_page(items, page, total)))
}

pub async fn retrieve_configuration(
    State(state): State<AppState>,
    Path(configuration): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    Ok(reply::ok(
        &state
            .engine
            .retrieve_voting_configuration(&caller, &configuration)
            .await?,
    ))
}
