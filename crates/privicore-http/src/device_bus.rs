//! The embedded device bus at `/device-bus` (docs/api/devices-and-storage.md §6.1): one WebSocket per
//! device, HTTP Basic bus credentials on the upgrade, one JSON envelope per text frame.

use crate::error::ApiError;
use crate::routes::AppState;
use crate::ws_close::{self, GOING_AWAY};
use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use privicore_bus_local::LocalDeviceBus;
use privicore_domain::device::DeviceId;
use privicore_domain::{Error, Reason};
use privicore_wire::bus::{Envelope, MAX_MESSAGE_BYTES, kind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

const PING_EVERY: Duration = Duration::from_secs(15);
const DEAD_AFTER: Duration = Duration::from_secs(45);

pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
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
            .on_upgrade(move |socket| {
                serve(socket, bus, device, state.engine.shutdown_token())
                    .instrument(tracing::Span::current())
            })
            .into_response(),
        Err(_) => ApiError(
            Error::new(Reason::RequestMalformed)
                .with_message("A WebSocket upgrade is expected here."),
        )
        .into_response(),
    }
}

const POLICY: u16 = 1008;

enum End {
    Close(u16, &'static str),
    /// The device sent Close: answer it.
    Answer,
    /// The connection is gone or dead: nothing can be delivered.
    Drop,
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
    let end = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break End::Close(GOING_AWAY, "server shutting down"),
            out = attachment.from_engine.recv() => {
                // Replaced by a newer connection of the device, or the device was revoked.
                let Some(env) = out else { break End::Close(POLICY, "connection ended by the engine") };
                if !ws_close::send_timed(&mut sink, Message::Text(env.to_text().into())).await {
                    break End::Drop;
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
                        break End::Close(GOING_AWAY, "server shutting down");
                    }
                }
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Ping(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Binary(_))) => {}
                Some(Ok(Message::Close(_))) => break End::Answer,
                Some(Err(e)) => match ws_close::code_for(&e) {
                    Some((code, why)) => break End::Close(code, why),
                    None => break End::Drop,
                },
                None => break End::Drop,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER || !ws_close::send_timed(&mut sink, Message::Ping(Default::default())).await {
                    break End::Drop;
                }
            }
        }
    };
    bus.detach(&id, attachment.connection);
    match end {
        End::Close(code, reason) => ws_close::close(&mut sink, &mut stream, code, reason).await,
        End::Answer => ws_close::answer(&mut sink).await,
        End::Drop => {}
    }
    tracing::info!(%device, "device left the embedded bus");
}
