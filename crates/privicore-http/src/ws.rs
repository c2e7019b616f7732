//! The client WebSocket (docs/api/README.md §8): joinChannel / leaveChannel / ping, delivery of the
//! profile's events, keep-alive, token-ended notices and clean-up when the socket drops.

use crate::error::ApiError;
use crate::routes::AppState;
use crate::ws_close::{self, GOING_AWAY, POLICY_VIOLATION, Sink, TOO_BIG, TRY_AGAIN_LATER};
use axum::extract::State;
use axum::extract::ws::{
    Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection,
};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use privicore_domain::event::ProfileEvent;
use privicore_domain::ids::ChannelId;
use privicore_domain::{Error, Reason, Timestamp};
use privicore_engine::Engine;
use privicore_engine::hub::{Ended, Subscription};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Client frames above this size close the connection with 1009 (docs/api/README.md §8.1).
pub const FRAME_LIMIT: usize = 16 * 1024;
/// Hard cap enforced by the WebSocket codec; frames between the two get a clean 1009.
const CODEC_LIMIT: usize = 64 * 1024;
const READ_BUFFER: usize = 8 * 1024;
const PING_EVERY: Duration = Duration::from_secs(15);
const DEAD_AFTER: Duration = Duration::from_secs(45);

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
            // The socket's lines carry the id of the request that opened it.
            .on_upgrade(move |socket| {
                Session::new(state.engine.clone())
                    .run(socket)
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

struct Joined {
    sub: Subscription,
    expires_at: Timestamp,
    /// An event taken off the queue but not yet handed to the socket.
    pending: Option<ProfileEvent>,
}

struct Session {
    engine: Arc<Engine>,
    joined: Option<Joined>,
    /// Frames were handed to the socket but their flush was interrupted (by a client frame,
    /// say): they must go out before the socket waits for more events.
    unflushed: bool,
}

enum Step {
    Continue,
    Close(u16, &'static str),
    /// The peer sent Close: answer it.
    Answer,
    Stop,
}

/// What the joined channel asks of the socket.
enum Outbound {
    Ended(Ended),
    Wrote(Step),
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
            unflushed: false,
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let shutdown = self.engine.shutdown_token();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        let mut last_pong = Instant::now();
        let end = loop {
            let deadline = self.joined.as_ref().map(|j| j.expires_at);
            // Biased: shutdown and a channel's end come before anything queued.
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => Step::Close(GOING_AWAY, "server shutting down"),
                out = outbound(&mut self.joined, &mut self.unflushed, &mut sink) => match out {
                    Outbound::Wrote(step) => step,
                    Outbound::Ended(ended) => self.ended(&mut sink, ended).await,
                },
                frame = stream.next() => match frame {
                    None => Step::Stop,
                    Some(Ok(Message::Close(_))) => Step::Answer,
                    Some(Err(e)) => match ws_close::code_for(&e) {
                        Some((code, why)) => Step::Close(code, why),
                        None => Step::Stop,
                    },
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
                        Step::Close(TOO_BIG, "frame too large")
                    }
                    Some(Ok(Message::Text(text))) => {
                        let answer = self.handle(text.as_str()).await;
                        send(&mut sink, &answer).await
                    }
                },
                _ = expiry(deadline) => {
                    let code = Reason::AuthTokenExpired.code().to_owned();
                    self.ended(&mut sink, Ended::Token { code }).await
                }
                _ = ping.tick() => {
                    let dead = last_pong.elapsed() > DEAD_AFTER;
                    if dead || !ws_close::send_timed(&mut sink, Message::Ping(Default::default())).await {
                        Step::Stop
                    } else {
                        Step::Continue
                    }
                }
            };
            match step {
                Step::Continue => continue,
                other => break other,
            }
        };
        self.leave_current();
        match end {
            Step::Close(code, reason) => {
                tracing::debug!(code, reason, "closing the socket");
                ws_close::close(&mut sink, &mut stream, code, reason).await
            }
            Step::Answer => ws_close::answer(&mut sink).await,
            Step::Continue | Step::Stop => {}
        }
    }

    /// The hub ended the channel (or the socket saw its token expire). Events queued for
    /// the socket go back to the replay buffer: after a token ended they belong to the
    /// next join, not after the notice; after a lag the client joins again for them.
    async fn ended(&mut self, sink: &mut Sink, ended: Ended) -> Step {
        let Some(channel) = self.leave_current() else {
            return Step::Continue;
        };
        match ended {
            // A blocked profile (docs/api/directory.md §1.2) loses the connection too.
            Ended::Token { code } if code == Reason::ProfileInactive.code() => {
                match send(sink, &token_ended(channel, &code)).await {
                    Step::Continue => Step::Close(POLICY_VIOLATION, "profile inactive"),
                    other => other,
                }
            }
            Ended::Token { code } => send(sink, &token_ended(channel, &code)).await,
            Ended::Lagged => {
                let notice = reply(
                    Value::Null,
                    crate::error::status_of(Reason::ChannelLagged.kind()).as_u16(),
                    json!({
                        "channelId": channel.to_string(),
                        "message": "too slow to receive events; join again",
                        "code": Reason::ChannelLagged.code(),
                    }),
                );
                match send(sink, &notice).await {
                    Step::Continue => Step::Close(TRY_AGAIN_LATER, "too slow to receive events"),
                    other => other,
                }
            }
        }
    }

    /// Leaves the channel (a no-op in the hub when the hub ended it). Events taken off the
    /// hub but not written go back to the replay buffer, whether the channel ended, the
    /// client left or the connection is going: nobody has seen them yet.
    fn leave_current(&mut self) -> Option<ChannelId> {
        let Joined {
            mut sub, pending, ..
        } = self.joined.take()?;
        self.engine.hub().leave(sub.channel);
        let mut unwritten: Vec<ProfileEvent> = pending.into_iter().collect();
        while let Ok(event) = sub.events.try_recv() {
            unwritten.push(event);
        }
        self.engine.hub().requeue(sub.profile, unwritten);
        Some(sub.channel)
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
                let sub = match self.engine.join_channel(&caller).await {
                    Ok(sub) => sub,
                    Err(e) => {
                        let status = crate::error::status_of(e.kind()).as_u16();
                        return error_reply(correlation, status, e.reason, &e.message);
                    }
                };
                let channel = sub.channel;
                self.joined = Some(Joined {
                    sub,
                    expires_at: caller.expires_at,
                    pending: None,
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
            (Some(joined), Some(id)) if joined.sub.channel == id => {
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

/// Events written with one flush at most: enough to spare a system call per event on both
/// ends under load, few enough that the first of them is not held back.
const EVENTS_PER_FLUSH: usize = 64;

/// Waits for the joined channel to end or to have events, and writes them. Cancel-safe:
/// an event leaves the queue only once the socket can take it, so when this future is
/// dropped (the channel ended, shutdown) no event has been taken and not written; frames
/// whose flush was cut short are flushed first on the next call.
async fn outbound(joined: &mut Option<Joined>, unflushed: &mut bool, sink: &mut Sink) -> Outbound {
    if *unflushed {
        if sink.flush().await.is_err() {
            return Outbound::Wrote(Step::Stop);
        }
        *unflushed = false;
    }
    let Some(joined) = joined else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        ended = &mut joined.sub.ended => Outbound::Ended(ended.unwrap_or(Ended::Lagged)),
        step = write_events(&mut joined.sub.events, &mut joined.pending, unflushed, sink) => Outbound::Wrote(step),
    }
}

/// Writes the events already queued (up to [`EVENTS_PER_FLUSH`]), then flushes once.
async fn write_events(
    events: &mut tokio::sync::mpsc::Receiver<ProfileEvent>,
    pending: &mut Option<ProfileEvent>,
    unflushed: &mut bool,
    sink: &mut Sink,
) -> Step {
    if pending.is_none() {
        match events.recv().await {
            Some(event) => *pending = Some(event),
            // The hub let go of the channel; its end is on the way.
            None => return std::future::pending().await,
        }
    }
    let mut written = 0;
    loop {
        if futures_util::future::poll_fn(|cx| sink.poll_ready_unpin(cx))
            .await
            .is_err()
        {
            return Step::Stop;
        }
        let event = match pending.take() {
            Some(event) => event,
            None => match events.try_recv() {
                Ok(event) => event,
                Err(_) => break,
            },
        };
        let frame = json!({ "data": event.data }).to_string();
        if sink.start_send_unpin(Message::Text(frame.into())).is_err() {
            return Step::Stop;
        }
        *unflushed = true;
        written += 1;
        if written == EVENTS_PER_FLUSH {
            break;
        }
    }
    match sink.flush().await {
        Ok(()) => {
            *unflushed = false;
            Step::Continue
        }
        Err(_) => Step::Stop,
    }
}

async fn send(sink: &mut Sink, value: &Value) -> Step {
    if ws_close::send_timed(sink, Message::Text(value.to_string().into())).await {
        Step::Continue
    } else {
        Step::Stop
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
