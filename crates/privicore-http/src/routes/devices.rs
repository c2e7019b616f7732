use super::query::{filter, filters, items_page, page, query};
use super::{AppState, caller, fields};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::Response;
use privicore_domain::device::{DeviceFilter, DeviceStatus};
use privicore_domain::{Error, Reason};
use serde_json::{Value, json};

pub async fn request_identifier(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = state
        .engine
        .request_device(
            &caller,
            f.str("deviceName")?,
            f.opt_str("description")?,
            f.opt_str("publicKey")?,
        )
        .await?;
    Ok(reply::accepted(id))
}

pub async fn retrieve_identifier(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let d = state
        .engine
        .retrieve_device_identifier(&caller, f.str("id")?)
        .await?;
    Ok(reply::ok(
        &json!({ "deviceIdentifier": d.id.to_string(), "deviceName": d.name, "status": d.status.as_str() }),
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
    let f = filters(&q, &["status", "role", "name"])?;
    let statuses = match filter(&f, "status") {
        None => vec![DeviceStatus::Pending, DeviceStatus::Approved],
        Some("all") => DeviceStatus::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| DeviceStatus::parse(s).ok_or_else(|| Error::invalid_format("filters[status]")))
            .collect::<Result<_, _>>()?,
    };
    let role = filter(&f, "role").map(str::to_owned);
    if role
        .as_deref()
        .is_some_and(|r| !matches!(r, "storage" | "authenticator" | "none"))
    {
        return Err(Error::invalid_format("filters[role]").into());
    }
    let (name, name_prefix) = match filter(&f, "name") {
        Some(n) => match n.strip_suffix('*') {
            Some(p) => (Some(p.to_owned()), true),
            None => (Some(n.to_owned()), false),
        },
        None => (None, false),
    };
    let filter = DeviceFilter {
        statuses,
        role,
        name,
        name_prefix,
    };
    let (items, total) = state.engine.list_devices(&caller, filter, page).await?;
    Ok(reply::ok(&items_page(
        items.into_iter().map(|i| i.0).collect(),
        page,
        total,
    )))
}

pub async fn configure_meta(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let description = match f.0.get("description") {
        None => None,
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => Some(None),
        Some(Value::String(s)) => Some(Some(s.as_str())),
        Some(_) => return Err(Error::invalid_type("description", "a string").into()),
    };
    let meta = match f.0.get("meta") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            serde_json::from_str::<Value>(s)
                .map_err(|_| Error::new(Reason::DeviceInvalidMeta).with_field("meta"))?,
        ),
        Some(v) => Some(v.clone()),
    };
    let id = state
        .engine
        .configure_device(
            &caller,
            f.str("deviceIdentifier")?,
            f.opt_str("name")?,
            description,
            meta.as_ref(),
        )
        .await?;
    Ok(reply::accepted(id))
}

pub async fn approve(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .approve_device(&caller, f.str("deviceIdentifier")?)
            .await?,
    ))
}

pub async fn reject(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .reject_device(&caller, f.str("deviceIdentifier")?)
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
            .remove_device(&caller, f.str("deviceIdentifier")?, force)
            .await?,
    ))
}

async fn bundle(
    state: &AppState,
    caller: &privicore_domain::auth::Caller,
    device: &str,
) -> Result<Response, ApiError> {
    let bundle = state.engine.issue_device_bundle(caller, device).await?;
    let mut response = reply::no_store(reply::ok(&bundle.json));
    let disposition = format!(
        "attachment; filename=\"privicore-device-{}.json\"",
        bundle.device_id
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

pub async fn download_configuration(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    bundle(&state, &caller, f.str("deviceIdentifier")?).await
}

pub async fn retrieve_configuration(
    State(state): State<AppState>,
    Path(device): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    bundle(&state, &caller, &device).await
}
