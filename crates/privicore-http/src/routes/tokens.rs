use super::query::{filter, filters, items_page, page, query};
use super::{AppState, caller, fields};
use crate::body::Fields;
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use privicore_domain::data_token::{Match, TokenFilter, TokenStatus};
use privicore_domain::{Error, Reason, Timestamp};
use privicore_engine::FileMeta;
use serde_json::{Value, json};

/// `meta` as an object, a JSON string, or bracket notation.
fn meta_field(f: &Fields) -> Option<&Value> {
    f.0.get("meta").filter(|v| !v.is_null())
}

pub async fn reserve(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = state
        .engine
        .reserve_token_space(
            &caller,
            f.str("context")?,
            f.opt_int("ttl")?,
            meta_field(&f),
        )
        .await?;
    Ok(reply::accepted(id))
}

pub async fn temporary(
    State(state): State<AppState>,
    Path(reservation): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let t = state.engine.temporary_token(&caller, &reservation).await?;
    Ok(reply::no_store(reply::ok(&json!({
        "token": t.token,
        "stream": t.stream.expose(),
        "stream_server_id": t.stream_server_id,
        "stream_server_port": t.stream_server_port,
        "streamUrl": t.stream_url,
        "context": t.context,
        "expiresAt": t.expires_at.map(Timestamp::rfc3339),
    }))))
}

pub async fn exchange(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = state
        .engine
        .exchange(&caller, f.str("temporaryTokenSpace")?, f.str("data")?)
        .await?;
    Ok(reply::accepted(id))
}

fn file_meta(f: &Fields) -> Result<FileMeta, Error> {
    Ok(FileMeta {
        file_name: f.opt_str("fileName")?.map(str::to_owned),
        extension: match f.0.get("extension") {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(Error::invalid_type("extension", "a string")),
        },
        path: f.opt_str("path")?.map(str::to_owned),
        size: f.opt_int("size")?,
    })
}

pub async fn configure_file_meta(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let token = f.str("token")?;
    let meta = file_meta(&f)?;
    let token = state
        .engine
        .configure_file_meta(&caller, token, meta, f.opt_str("context")?)
        .await?;
    Ok(reply::ok(&json!({ "token": token })))
}

pub async fn request_data(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let (command, request) = state.engine.request_data(&caller, f.str("token")?).await?;
    let mut response = reply::json(
        StatusCode::ACCEPTED,
        &json!({ "commandId": command.to_string(), "requestId": request.to_string() }),
    );
    for (name, id) in [("X-DPT-CAB-ID", command), ("X-DPT-CAB-REQUEST-ID", request)] {
        response.headers_mut().insert(
            name,
            HeaderValue::from_str(&id.to_string()).expect("uuid header"),
        );
    }
    Ok(response)
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let page = page(&q)?;
    let f = filters(
        &q,
        &[
            "token",
            "context",
            "meta.file.fileName",
            "meta.file.extension",
            "meta.data.type",
            "meta.information_security_risk.classification",
            "status",
        ],
    )?;
    let statuses = match filter(&f, "status") {
        None | Some("active") => vec![TokenStatus::Active],
        Some("all") => vec![
            TokenStatus::Reserved,
            TokenStatus::Exchanging,
            TokenStatus::Active,
        ],
        Some(s @ ("reserved" | "exchanging")) => vec![TokenStatus::parse(s).expect("known status")],
        Some(_) => return Err(Error::invalid_format("filters[status]").into()),
    };
    let filter = TokenFilter {
        token: filter(&f, "token").map(|t| {
            privicore_domain::data_token::normalize_token(t).unwrap_or_else(|| t.to_owned())
        }),
        context: filter(&f, "context").map(Match::exact_or_prefix),
        file_name: filter(&f, "meta.file.fileName").map(Match::exact_or_prefix),
        extension: filter(&f, "meta.file.extension").map(|e| Match::ExactNoCase(e.to_owned())),
        data_type: filter(&f, "meta.data.type").map(|t| Match::Exact(t.to_owned())),
        classification: filter(&f, "meta.information_security_risk.classification")
            .map(|c| Match::ExactNoCase(c.to_owned())),
        statuses,
    };
    let (items, total) = state.engine.list_tokens(&caller, filter, page).await?;
    Ok(reply::ok(&items_page(
        items.into_iter().map(|i| i.0).collect(),
        page,
        total,
    )))
}

pub async fn configure_risk(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let token = f.str("token")?.to_owned();
    Ok(reply::accepted(
        state.engine.configure_risk(&caller, &token, &f.0).await?,
    ))
}

/// Both paths take both shapes; `token` → A, `dataToken` → B (§3.10).
pub async fn update(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    let id = match (f.has("token"), f.has("dataToken")) {
        (true, false) => {
            state
                .engine
                .update_token_meta(
                    &caller,
                    f.str("token")?,
                    file_meta(&f)?,
                    f.opt_str("context")?,
                )
                .await?
        }
        (false, true) => {
            let stream = f.opt_bool("stream")?.unwrap_or(false);
            let data = f.opt_str("data")?;
            if stream && data.is_some() {
                return Err(Reason::ValidationAmbiguousShape.into());
            }
            if stream {
                let (id, t) = state
                    .engine
                    .replace_token_streamed(&caller, f.str("dataToken")?, meta_field(&f))
                    .await?;
                let mut response = reply::json(
                    StatusCode::ACCEPTED,
                    &json!({
                        "commandId": id.to_string(),
                        "stream": t.stream.expose(),
                        "stream_server_id": t.stream_server_id,
                        "stream_server_port": t.stream_server_port,
                        "streamUrl": t.stream_url,
                        "expiresAt": t.expires_at.map(Timestamp::rfc3339),
                    }),
                );
                response.headers_mut().insert(
                    "X-DPT-CAB-ID",
                    HeaderValue::from_str(&id.to_string()).expect("a UUID is a header value"),
                );
                return Ok(reply::no_store(response));
            }
            state
                .engine
                .replace_token(&caller, f.str("dataToken")?, data, meta_field(&f))
                .await?
        }
        _ => return Err(Reason::ValidationAmbiguousShape.into()),
    };
    Ok(reply::accepted(id))
}

pub async fn delete(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let caller = caller(&state, req.headers()).await?;
    let f = fields(req).await?;
    Ok(reply::accepted(
        state.engine.delete_data(&caller, f.str("token")?).await?,
    ))
}

pub async fn statistics(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let caller = caller(&state, &headers).await?;
    let q = query(&uri)?;
    let time = |name: &str| -> Result<Option<Timestamp>, Error> {
        q.opt_str(name)?
            .map(|t| Timestamp::parse_rfc3339(t).ok_or_else(|| Error::invalid_format(name)))
            .transpose()
    };
    let interval = q.opt_str("interval")?.unwrap_or("day");
    if !matches!(interval, "hour" | "day" | "month") {
        return Err(Error::invalid_format("interval").into());
    }
    let f = filters(&q, &["context"])?;
    let stats = state
        .engine
        .statistics(
            &caller,
            time("from")?,
            time("to")?,
            interval,
            filter(&f, "context").map(Match::exact_or_prefix),
        )
        .await?;
    Ok(reply::ok(&stats.0))
}
