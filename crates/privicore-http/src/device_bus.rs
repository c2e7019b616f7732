//! The embedded device bus at `/device-bus` (devices-and-storage.md §6.1): one WebSocket per
//! device, HTTP Basic bus credentials on the upgrade, one JSON envelope per text frame.

use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use privicore_bus_local::LocalDeviceBus;
use privicore_domain::device::DeviceId;
use privicore_domain::{Error, Reason};
use privicore_wire::bus::{Envelope, MAX_MESSAGE_BYTES, kind};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PING_EVERY: Duration = Duration::from_secs(15);
const DEAD_AFTER: Duration = Duration::from_secs(45);

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Some(bus) = state.device_bus.clone() else {
        return ApiError::from(Reason::RequestUnknownRoute).into_response();
    };
    let Some((user, pass)) = basic(&headers) else {
        return ApiError::from(Reason::DeviceInvalidCredentials).into_response();
    };
    let device = match state.engine.authenticate_bus(&user, &pass).await {
        Ok(device) => device,
        Err(e) => return ApiError(e).into_response(),
    };
    match ws {
        Ok(ws) => ws
            .max_message_size(MAX_MESSAGE_BYTES + 1024)
            .on_upgrade(move |socket| serve(socket, bus, device, state.engine.shutdown_token()))
            .into_response(),
        Err(_) => ApiError(
            Error::new(Reason::RequestMalformed)
                .with_message("A WebSocket upgrade is expected here."),
        )
        .into_response(),
    }
}

async fn serve(
    socket: WebSocket,
    bus: Arc<LocalDeviceBus>,
    device: DeviceId,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let id = device.to_string();
    let mut attachment = bus.attach(&id);
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    tracing::info!(%device, "device connected to the embedded bus");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            out = attachment.from_engine.recv() => {
                let Some(env) = out else { break };
                if sink.send(Message::Text(env.to_text().into())).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    let Some(env) = Envelope::parse(text.as_str()) else { continue };
                    // A device speaks only for itself.
                    if env.device_identifier != id || env.kind == kind::ACK {
                        continue;
                    }
                    if attachment.to_engine.send(env).is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Ping(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Binary(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER || sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    bus.detach(&id, attachment.connection);
    let _ = sink.send(Message::Close(None)).await;
    tracing::info!(%device, "device left the embedded bus");
}
