//! The client WebSocket (README §8): joinChannel / leaveChannel / ping, delivery of the
//! profile's events, keep-alive, token-ended notices and clean-up when the socket drops.

use crate::error::ApiError;
use crate::routes::AppState;
use axum::extract::State;
use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use privicore_domain::ids::ChannelId;
use privicore_domain::{Error, Reason, Timestamp};
use privicore_engine::Engine;
use privicore_engine::hub::{Outbound, SOCKET_QUEUE};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Client frames above this size close the connection with 1009 (README §8.1).
pub const FRAME_LIMIT: usize = 16 * 1024;
/// Hard cap enforced by the WebSocket codec; frames between the two get a clean 1009.
const CODEC_LIMIT: usize = 64 * 1024;
const READ_BUFFER: usize = 8 * 1024;
const PING_EVERY: Duration = Duration::from_secs(15);
const DEAD_AFTER: Duration = Duration::from_secs(45);

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

pub async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => ws
            .max_message_size(CODEC_LIMIT)
            .max_frame_size(CODEC_LIMIT)
            // tungstenite zeroes its whole free read buffer before every read attempt, and
            // the session polls for a client frame after every event it writes: 128 KiB by
            // default, far more than a client frame (FRAME_LIMIT) needs.
            .read_buffer_size(READ_BUFFER)
            .on_upgrade(move |socket| Session::new(state.engine.clone()).run(socket))
            .into_response(),
        Err(_) => ApiError(
            Error::new(Reason::RequestMalformed)
                .with_message("A WebSocket upgrade is expected here."),
        )
        .into_response(),
    }
}

struct Joined {
    channel: ChannelId,
    events: mpsc::Receiver<Outbound>,
    expires_at: Timestamp,
}

struct Session {
    engine: Arc<Engine>,
    joined: Option<Joined>,
}

enum Step {
    Continue,
    Close(u16, &'static str),
    Stop,
}

fn reply(correlation: Value, status: u16, data: Value) -> Value {
    json!({ "correlationId": correlation, "status": status, "data": data })
}

fn error_reply(correlation: Value, status: u16, reason: Reason, message: &str) -> Value {
    reply(
        correlation,
        status,
        json!({ "message": message, "code": reason.code() }),
    )
}

impl Session {
    fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            joined: None,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let shutdown = self.engine.shutdown_token();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut last_pong = Instant::now();
        let close = loop {
            let deadline = self.joined.as_ref().map(|j| j.expires_at);
            let step = tokio::select! {
                _ = shutdown.cancelled() => Step::Close(CLOSE_GOING_AWAY, "server shutting down"),
                frame = stream.next() => match frame {
                    None | Some(Ok(Message::Close(_))) => Step::Stop,
                    // The codec refuses frames above its cap; that is the only read error a
                    // healthy peer can cause.
                    Some(Err(_)) => Step::Close(CLOSE_TOO_BIG, "frame too large"),
                    Some(Ok(Message::Pong(_))) => {
                        last_pong = Instant::now();
                        Step::Continue
                    }
                    Some(Ok(Message::Ping(_))) => Step::Continue,
                    Some(Ok(Message::Binary(_))) => {
                        let answer = error_reply(Value::Null, 400, Reason::RequestMalformed, "frames are UTF-8 JSON text");
                        send(&mut sink, &answer).await
                    }
                    Some(Ok(Message::Text(text))) if text.len() > FRAME_LIMIT => {
                        Step::Close(CLOSE_TOO_BIG, "frame too large")
                    }
                    Some(Ok(Message::Text(text))) => {
                        let answer = self.handle(text.as_str()).await;
                        send(&mut sink, &answer).await
                    }
                },
                out = next_outbound(&mut self.joined) => match out {
                    Some(first) => self.deliver(&mut sink, first).await,
                    // The hub dropped this socket because it could not keep up.
                    None => Step::Close(CLOSE_POLICY, "too slow to receive events"),
                },
                _ = expiry(deadline) => {
                    let channel = self.leave_current();
                    match channel {
                        Some(channel) => send(&mut sink, &token_ended(channel, Reason::AuthTokenExpired.code())).await,
                        None => Step::Continue,
                    }
                }
                _ = ping.tick() => {
                    let dead = last_pong.elapsed() > DEAD_AFTER;
                    if dead || sink.send(Message::Ping(Default::default())).await.is_err() {
                        Step::Stop
                    } else {
                        Step::Continue
                    }
                }
            };
            match step {
                Step::Continue => continue,
                Step::Close(code, why) => break Some((code, why)),
                Step::Stop => break None,
            }
        };
        self.leave_current();
        if let Some((code, reason)) = close {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
        }
    }

    fn leave_current(&mut self) -> Option<ChannelId> {
        let joined = self.joined.take()?;
        self.engine.hub().leave(joined.channel);
        Some(joined.channel)
    }

    async fn handle(&mut self, text: &str) -> Value {
        let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
            return error_reply(
                Value::Null,
                400,
                Reason::RequestMalformed,
                "frame is not a JSON object",
            );
        };
        let data = frame.get("data").cloned().unwrap_or(Value::Null);
        let correlation = data.get("correlationId").cloned().unwrap_or(Value::Null);
        let Some(action) = frame.get("action").and_then(Value::as_str) else {
            return error_reply(
                correlation,
                400,
                Reason::RequestMalformed,
                "frame has no action",
            );
        };
        match action {
            "joinChannel" => self.join(correlation, &data).await,
            "leaveChannel" => self.leave(correlation, &data),
            "ping" => reply(correlation, 200, json!({ "message": "pong" })),
            _ => error_reply(
                correlation,
                400,
                Reason::RequestUnknownAction,
                "unknown action",
            ),
        }
    }

    async fn join(&mut self, correlation: Value, data: &Value) -> Value {
        let Some(token) = data.get("authorizationToken").and_then(Value::as_str) else {
            return error_reply(
                correlation,
                401,
                Reason::AuthMissingToken,
                "authorization token missing",
            );
        };
        // A connection holds one channel: joining again leaves the first.
        self.leave_current();
        match self.engine.authorize_join(token).await {
            Ok(caller) => {
                let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
                let channel = self.engine.hub().join(&caller, tx);
                self.joined = Some(Joined {
                    channel,
                    events: rx,
                    expires_at: caller.expires_at,
                });
                reply(
                    correlation,
                    200,
                    json!({ "channelId": channel.to_string(), "message": "joined" }),
                )
            }
            Err(e) if e.kind() == privicore_domain::ErrorKind::Unauthorized => {
                error_reply(correlation, 401, e.reason, "invalid authorization token")
            }
            Err(e) => {
                let status = crate::error::status_of(e.kind()).as_u16();
                error_reply(correlation, status, e.reason, &e.message)
            }
        }
    }

    fn leave(&mut self, correlation: Value, data: &Value) -> Value {
        let requested = data
            .get("channelId")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<ChannelId>().ok());
        match (&self.joined, requested) {
            (Some(joined), Some(id)) if joined.channel == id => {
                self.leave_current();
                reply(
                    correlation,
                    200,
                    json!({ "channelId": id.to_string(), "message": "left" }),
                )
            }
            _ => error_reply(correlation, 404, Reason::ChannelNotFound, "unknown channel"),
        }
    }
}

fn token_ended(channel: ChannelId, code: &str) -> Value {
    reply(
        Value::Null,
        401,
        json!({ "channelId": channel.to_string(), "message": "authorization token ended", "code": code }),
    )
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

/// Events written with one flush at most: enough to spare a system call per event on both
/// ends under load, few enough that the first of them is not held back.
const EVENTS_PER_FLUSH: usize = 64;

impl Session {
    /// Writes `first` and the events already queued behind it, then flushes once.
    async fn deliver(&mut self, sink: &mut Sink, first: Outbound) -> Step {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(out) = next.take() {
            let frame = match out {
                Outbound::Event(data) => json!({ "data": data }),
                Outbound::TokenEnded { channel, code } => {
                    self.joined = None;
                    token_ended(channel, &code)
                }
            };
            if sink
                .feed(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return Step::Stop;
            }
            written += 1;
            if written < EVENTS_PER_FLUSH
                && let Some(joined) = &mut self.joined
            {
                next = joined.events.try_recv().ok();
            }
        }
        match sink.flush().await {
            Ok(()) => Step::Continue,
            Err(_) => Step::Stop,
        }
    }
}

async fn send(sink: &mut Sink, value: &Value) -> Step {
    match sink.send(Message::Text(value.to_string().into())).await {
        Ok(()) => Step::Continue,
        Err(_) => Step::Stop,
    }
}

async fn next_outbound(joined: &mut Option<Joined>) -> Option<Outbound> {
    match joined {
        Some(j) => j.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn expiry(deadline: Option<Timestamp>) {
    match deadline {
        Some(at) => {
            let left = Timestamp::now().seconds_until(at).max(0) as u64;
            tokio::time::sleep(Duration::from_secs(left)).await
        }
        None => std::future::pending().await,
    }
}
