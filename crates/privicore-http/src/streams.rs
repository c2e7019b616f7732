//! The upstream and downstream listeners (docs/api/data-tokens.md §3.4, §3.6, §4.1): one
//! route each, `POST /?auth=<U-value>` with the raw payload and `GET /?auth=<D-value>`
//! answered with it. They take the `auth` value only (never `X-DPT-AUTHORIZATION`) and
//! answer errors with the usual envelope. Downloads have no `Range` support: an
//! interrupted download is requested again with a new request-data (§3.6).

use crate::error::ApiError;
use crate::guard;
use crate::reply;
use crate::routes::{AppState, SpoolStatus};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use http_body_util::BodyExt;
use privicore_domain::{Error, Reason};
use serde_json::json;
use std::time::{Duration, Instant};
use tower_http::catch_panic::CatchPanicLayer;

/// How often a waiting upload checks its idle and total time limits.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// `Retry-After` of `stream.spool_full`.
const SPOOL_FULL_RETRY: u64 = 30;

/// The upstream (upload) listener.
pub fn upstream_router(state: AppState) -> Router {
    with_cors(
        Router::new()
            .route("/", any(upload))
            .fallback(guard::unknown_route)
            .with_state(state.clone())
            .layer(CatchPanicLayer::custom(guard::panic_response)),
        &state,
    )
}

/// The downstream (download) listener.
pub fn downstream_router(state: AppState) -> Router {
    with_cors(
        Router::new()
            .route("/", any(download))
            .fallback(guard::unknown_route)
            .with_state(state.clone())
            .layer(CatchPanicLayer::custom(guard::panic_response)),
        &state,
    )
}

/// The API's cross-origin rules, no others (§4.1), outermost so preflights are answered.
fn with_cors(router: Router, state: &AppState) -> Router {
    match state.edge.cors.clone() {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// 405 with the one method the listener takes in `Allow`.
fn method_not_allowed(allowed: &'static str) -> Response {
    let mut response = ApiError::from(Reason::RequestMethodNotAllowed).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// The `auth` query parameter; missing is as unusable as unknown.
fn auth_value(uri: &Uri) -> Result<String, Error> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "auth")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| Error::new(Reason::StreamInvalidAuth))
}

/// `application/octet-stream` (parameters ignored) or no content type at all.
fn octet_stream(headers: &HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if essence.eq_ignore_ascii_case("application/octet-stream") {
        Ok(())
    } else {
        Err(Reason::RequestUnsupportedMediaType.into())
    }
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, Error> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| Error::new(Reason::RequestMalformed))
        })
        .transpose()
}

/// A chunked upload checks the spool's room again after this many bytes.
const SPOOL_RECHECK: u64 = 64 << 20;

/// `stream.spool_full` unless the spool has room for `bytes` more (the probe already keeps
/// the configured reserve aside).
fn spool_room(state: &AppState, bytes: u64) -> Result<(), Error> {
    let full = match &state.spool_free {
        Some(free) => free().is_none_or(|free| free < bytes.max(1)),
        None => (state.spool)() == SpoolStatus::Down,
    };
    if full {
        return Err(Error::new(Reason::StreamSpoolFull).with_retry_after(SPOOL_FULL_RETRY));
    }
    Ok(())
}

async fn upload(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(method_not_allowed("POST"));
    }
    let value = auth_value(req.uri())?;
    octet_stream(req.headers())?;
    let declared = declared_length(req.headers())?;
    // Checked before the body is read, so `Expect: 100-continue` gets the answer early.
    let mut upload = state.engine.open_upload(&value, declared).await?;
    spool_room(&state, declared.unwrap_or(0))?;
    upload.begin().await?;
    let mut unchecked = 0u64;
    let limits = &state.engine.config().streams;
    let clock = state.engine.config().clock.clone();
    let (started, started_clock) = (Instant::now(), clock.now());
    let max_secs = limits.upload_max_duration.as_secs() as i64;
    // The whole upload too long, by wall time or by the engine clock (§1.5: 6 h).
    let too_long = || {
        started.elapsed() >= limits.upload_max_duration
            || started_clock.seconds_until(clock.now()) >= max_secs.max(1)
    };
    let mut body = req.into_body();
    let (mut last_real, mut last_clock) = (Instant::now(), clock.now());
    loop {
        let frame = match tokio::time::timeout(IDLE_POLL, body.frame()).await {
            Ok(frame) => frame,
            Err(_) => {
                // No byte lately: too long idle by wall time or by the engine clock, or the
                // whole upload too long.
                let idle_secs = limits.upload_idle.as_secs() as i64;
                if last_real.elapsed() >= limits.upload_idle
                    || last_clock.seconds_until(clock.now()) >= idle_secs.max(1)
                    || too_long()
                {
                    upload.abort(Reason::StreamIdleTimeout).await;
                    return Err(Reason::StreamIdleTimeout.into());
                }
                continue;
            }
        };
        match frame {
            None => break,
            Some(Err(error)) => {
                tracing::debug!(%error, "upload body ended early");
                upload.abort(Reason::StreamIncomplete).await;
                return Err(Reason::StreamIncomplete.into());
            }
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                (last_real, last_clock) = (Instant::now(), clock.now());
                if too_long() {
                    upload.abort(Reason::StreamIdleTimeout).await;
                    return Err(Reason::StreamIdleTimeout.into());
                }
                // A body of unknown length checks the room again as it grows.
                unchecked += data.len() as u64;
                let checked = if declared.is_none() && unchecked >= SPOOL_RECHECK {
                    unchecked = 0;
                    spool_room(&state, 0)
                } else {
                    Ok(())
                };
                let pushed = match checked {
                    Ok(()) => upload.push(&data).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = pushed {
                    upload.abort(error.reason).await;
                    return Err(error.into());
                }
            }
        }
    }
    // A failed finish undoes the upload itself.
    let receipt = upload.finish().await?;
    let id = receipt.command_id.to_string();
    let mut response = reply::json(
        StatusCode::ACCEPTED,
        &json!({ "commandId": id, "token": receipt.token, "storedSize": receipt.stored_size }),
    );
    response.headers_mut().insert(
        "X-DPT-CAB-ID",
        HeaderValue::from_str(&id).expect("a UUID is a header value"),
    );
    Ok(response)
}

async fn download(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if req.method() != Method::GET {
        return Ok(method_not_allowed("GET"));
    }
    let value = auth_value(req.uri())?;
    let download = state.engine.open_download(&value).await?;
    let (token, version, size) = (download.token.clone(), download.version, download.size);
    // Chunks go out as the devices deliver them; an error aborts the connection, so the
    // client sees a body shorter than `Content-Length`.
    let chunks = futures_util::stream::unfold(Some(download), |state| async move {
        let mut download = state?;
        match download.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some(download))),
            Ok(None) => None,
            Err(broken) => Some((Err(std::io::Error::other(broken)), None)),
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    let text = |s: &str| HeaderValue::from_str(s).map_err(|_| Error::internal("header value"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_DISPOSITION,
        text(&format!("attachment; filename=\"{token}.bin\""))?,
    );
    headers.insert("X-DPT-DATA-TOKEN", text(&token)?);
    headers.insert("X-DPT-DATA-VERSION", HeaderValue::from(version));
    Ok(response)
}
