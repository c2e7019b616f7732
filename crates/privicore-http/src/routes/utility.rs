use super::{AppState, SpoolStatus, optional_caller};
use crate::error::ApiError;
use crate::reply;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use privicore_domain::{CommandId, Error, Timestamp};
use privicore_engine::CommandStatus;
use serde_json::json;

/// Never the error envelope, never rate-limited (docs/api/profile-and-keys.md §1.1).
pub async fn health(State(state): State<AppState>) -> Response {
    let health = state.engine.health().await;
    let spool = (state.spool)();
    let status = if !health.database {
        "unavailable"
    } else if !health.bus || spool != SpoolStatus::Ok {
        "degraded"
    } else {
        "ok"
    };
    let up_down = |ok: bool| if ok { "ok" } else { "down" };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "time": Timestamp::now().rfc3339(),
        "checks": {
            "database": up_down(health.database),
            "bus": up_down(health.bus),
            "spool": match spool {
                SpoolStatus::Ok => "ok",
                SpoolStatus::LowSpace => "low_space",
                SpoolStatus::Down => "down",
            },
        },
    });
    let code = if health.database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply::json(code, &body)
}

/// The POST body is ignored; the token is optional.
pub async fn request_status(
    State(state): State<AppState>,
    Path(command_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = optional_caller(&state, &headers).await?;
    let id: CommandId = command_id
        .parse()
        .map_err(|_| Error::invalid_format("commandId"))?;
    Ok(
        match state.engine.command_status(id, caller.as_ref()).await? {
            CommandStatus::Started => reply::json(StatusCode::ACCEPTED, &json!(["started"])),
            CommandStatus::Succeeded(Some(result)) => reply::ok(&json!(["succeeded", result])),
            CommandStatus::Succeeded(None) => reply::ok(&json!(["succeeded"])),
            CommandStatus::Failed(key) => reply::ok(&json!(["failed", key])),
        },
    )
}
