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
/// `failing` names every check that is not ok; 503 when the engine cannot carry out
/// commands (its database, or a supervised worker), 200 `degraded` for the rest.
pub async fn health(State(state): State<AppState>) -> Response {
    let health = state.engine.health().await;
    let spool = (state.spool)();
    let up_down = |ok: bool| if ok { "ok" } else { "down" };
    let checks = [
        ("database", up_down(health.database)),
        ("bus", up_down(health.bus)),
        (
            "spool",
            match spool {
                SpoolStatus::Ok => "ok",
                SpoolStatus::LowSpace => "low_space",
                SpoolStatus::Down => "down",
            },
        ),
        ("devices", up_down(health.devices)),
        ("workers", up_down(health.workers())),
    ];
    let failing: Vec<&str> = checks
        .iter()
        .filter(|(_, state)| *state != "ok")
        .map(|(name, _)| *name)
        .collect();
    let unavailable = !health.database || !health.workers();
    let status = if unavailable {
        "unavailable"
    } else if failing.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "time": Timestamp::now().rfc3339(),
        "checks": checks.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "failing": failing,
    });
    if !health.workers() {
        body["workers"] = json!(health.troubled_workers);
    }
    if health.devices_offline > 0 {
        body["devicesOffline"] = json!(health.devices_offline);
    }
    let code = if unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
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
