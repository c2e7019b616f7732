use super::query::{items_page, online_filter, page, query};
use super::{AppState, caller, fields};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;

pub async fn register(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state
            .engine
            .register_storage(&caller, f.str("deviceIdentifier")?)
            .await?,
    ))
}

pub async fn sync(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let verify = f.opt_bool("verify")?.unwrap_or(false);
    Ok(reply::accepted(
        state
            .engine
            .sync_device(&caller, f.str("deviceIdentifier")?, verify)
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
            .remove_storage(&caller, f.str("deviceIdentifier")?, force)
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
        .list_storage_devices(&caller, online, page)
        .await?;
    Ok(reply::ok(&items_page(
        items.into_iter().map(|i| i.0).collect(),
        page,
        total,
    )))
}
