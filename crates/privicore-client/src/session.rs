//! A WebSocket session on the engine's channel protocol (docs/api/README.md §8). Frames are collected
//! by a reader task; callers wait on what they need: a join reply, a command's final
//! status, a notice.

use crate::error::ClientError;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

type Sink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// The final status of a command, as delivered on the channel.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    /// `command_status: 2` with its result body.
    Succeeded(Value),
    /// `command_status: 3` with its dotted error key.
    Failed(String),
}

impl CommandOutcome {
    pub fn result(self) -> Result<Value, ClientError> {
        match self {
            Self::Succeeded(v) => Ok(v),
            Self::Failed(code) => Err(ClientError::Api {
                status: 0,
                message: format!("command failed: {code}"),
                code,
                field: None,
            }),
        }
    }
}

/// A long-lived session forgets old events, so its memory stays bounded; callers wait for
/// their own commands as they go, far fewer than this at a time.
const KEPT_IDS: usize = 4096;
const KEPT_FRAMES: usize = 1024;
/// Read buffer of the socket; a larger frame grows it as needed.
const READ_BUFFER: usize = 8 * 1024;

struct State {
    /// Frames with a `status`: replies to actions and notices.
    replies: Vec<Value>,
    /// Event `data` objects by their `id`, for the `KEPT_IDS` most recent ids.
    events: HashMap<String, Vec<Value>>,
    /// The ids in `events`, oldest first.
    event_ids: VecDeque<String>,
    /// The `KEPT_FRAMES` most recent frames, in arrival order, as received: they are
    /// parsed only when asked for, not copied for every event.
    log: VecDeque<Utf8Bytes>,
    /// Set when the connection ended, with the close code if one was sent.
    closed: Option<Option<u16>>,
    /// Callers waiting for events of one id, woken only by those events (many concurrent
    /// commands on one session must not wake every waiter on every frame).
    waiting: HashMap<String, Vec<Arc<Notify>>>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

pub struct Session {
    sink: tokio::sync::Mutex<Sink>,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Default for State {
    /// The bounded maps get their full size at once: growing by doubling would pause the
    /// reader (and every caller waiting on it) to rehash at each step.
    fn default() -> Self {
        Self {
            replies: Vec::new(),
            events: HashMap::with_capacity(KEPT_IDS),
            event_ids: VecDeque::with_capacity(KEPT_IDS),
            log: VecDeque::with_capacity(KEPT_FRAMES),
            closed: None,
            waiting: HashMap::new(),
        }
    }
}

impl State {
    fn record_event(&mut self, id: &str, data: Value) {
        if let Some(list) = self.events.get_mut(id) {
            list.push(data);
            return;
        }
        if self.event_ids.len() == KEPT_IDS
            && let Some(oldest) = self.event_ids.pop_front()
        {
            self.events.remove(&oldest);
        }
        self.event_ids.push_back(id.to_owned());
        self.events.insert(id.to_owned(), vec![data]);
    }
}

/// The final status among a command's events, if it has arrived.
fn final_status(events: &[Value]) -> Option<CommandOutcome> {
    events.iter().find_map(
        |e| match (e["type"].as_str(), e["command_status"].as_u64()) {
            (Some("X-DPT-CAB-ID"), Some(2)) => Some(CommandOutcome::Succeeded(e["body"].clone())),
            (Some("X-DPT-CAB-ID"), Some(3)) => Some(CommandOutcome::Failed(
                e["body"].as_str().unwrap_or_default().to_owned(),
            )),
            _ => None,
        },
    )
}

/// A waiter entry in `State::waiting`, removed when the wait ends however it ends.
struct Registration<'a> {
    shared: &'a Shared,
    id: String,
    waiter: Arc<Notify>,
}

impl<'a> Registration<'a> {
    fn new(shared: &'a Shared, id: &str, waiter: Arc<Notify>) -> Self {
        let mut st = shared.state.lock().expect("session lock");
        st.waiting
            .entry(id.to_owned())
            .or_default()
            .push(waiter.clone());
        Self {
            shared,
            id: id.to_owned(),
            waiter,
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let Ok(mut st) = self.shared.state.lock() else {
            return;
        };
        if let Some(list) = st.waiting.get_mut(&self.id) {
            list.retain(|w| !Arc::ptr_eq(w, &self.waiter));
            if list.is_empty() {
                st.waiting.remove(&self.id);
            }
        }
    }
}

/// Records the end of the connection once, with the close code the server sent if any.
fn mark_closed(shared: &Shared, code: Option<u16>) {
    let mut st = shared.state.lock().expect("session lock");
    if st.closed.is_some() {
        return;
    }
    st.closed = Some(code);
    let waiting: Vec<_> = st.waiting.values().flatten().cloned().collect();
    drop(st);
    shared.notify.notify_waiters();
    for waiter in waiting {
        waiter.notify_one();
    }
}

fn correlation() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Session {
    /// Connects to `ws_url` (the WebSocket listener, or `<api>/ws`).
    pub async fn connect(ws_url: &str) -> Result<Self, ClientError> {
        // tungstenite zeroes its whole free read buffer before every read (128 KiB by
        // default); event frames are small, so a small buffer spares that per frame.
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let (stream, _) = connect_async_with_config(ws_url, Some(config), true)
            .await
            .map_err(|e| ClientError::WebSocket(e.to_string()))?;
        let (sink, mut source) = stream.split();
        let shared = Arc::new(Shared::default());
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            while let Some(frame) = source.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        let mut value: Value =
                            serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        let mut st = reader_shared.state.lock().expect("session lock");
                        let mut waiters = Vec::new();
                        if value.get("status").is_some() {
                            st.replies.push(value);
                        } else if let Some(id) = value["data"]["id"].as_str().map(str::to_owned) {
                            waiters = st.waiting.get(&id).cloned().unwrap_or_default();
                            st.record_event(&id, value["data"].take());
                        }
                        if st.log.len() == KEPT_FRAMES {
                            st.log.pop_front();
                        }
                        st.log.push_back(text);
                        drop(st);
                        if waiters.is_empty() {
                            reader_shared.notify.notify_waiters();
                        }
                        for waiter in waiters {
                            waiter.notify_one();
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        // Reading on sends tungstenite's answer to the Close and then sees
                        // the server end the connection (RFC 6455 §5.5.1); waiters learn of
                        // the close at once.
                        mark_closed(&reader_shared, frame.map(|f| u16::from(f.code)));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            mark_closed(&reader_shared, None);
        });
        Ok(Self {
            sink: tokio::sync::Mutex::new(sink),
            shared,
            reader,
        })
    }

    /// Sends any text frame (for protocol tests).
    pub async fn send_text(&self, text: &str) -> Result<(), ClientError> {
        self.sink
            .lock()
            .await
            .send(Message::Text(text.to_owned().into()))
            .await
            .map_err(|e| ClientError::WebSocket(e.to_string()))
    }

    async fn send_action(&self, action: &str, data: Value) -> Result<(), ClientError> {
        self.send_text(&json!({ "action": action, "data": data }).to_string())
            .await
    }

    async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = self.shared.state.lock().expect("session lock");
                if let Some(found) = check(&mut st) {
                    return Ok(found);
                }
                if st.closed.is_some() {
                    return Err(ClientError::WebSocket(format!(
                        "connection closed while waiting for {what}"
                    )));
                }
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .map_err(|_| ClientError::Timeout(what.to_owned()))?;
        }
    }

    /// Takes the reply whose `correlationId` is `id`.
    pub async fn reply(&self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        self.wait_until(&format!("reply {id}"), timeout, |st| {
            let at = st.replies.iter().position(|r| r["correlationId"] == id)?;
            Some(st.replies.remove(at))
        })
        .await
    }

    fn reply_result(reply: Value) -> Result<Value, ClientError> {
        match reply["status"].as_u64() {
            Some(200) => Ok(reply["data"].clone()),
            status => Err(ClientError::Api {
                status: status.unwrap_or_default() as u16,
                code: reply["data"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                message: reply["data"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                field: None,
            }),
        }
    }

    /// Joins the channel of the token's profile; returns the channel id.
    pub async fn join(&self, token: &str) -> Result<String, ClientError> {
        let id = correlation();
        self.send_action(
            "joinChannel",
            json!({ "authorizationToken": token, "correlationId": id }),
        )
        .await?;
        let data = Self::reply_result(self.reply(&id, Duration::from_secs(10)).await?)?;
        Ok(data["channelId"].as_str().unwrap_or_default().to_owned())
    }

    pub async fn leave(&self, channel_id: &str) -> Result<Value, ClientError> {
        let id = correlation();
        self.send_action(
            "leaveChannel",
            json!({ "channelId": channel_id, "correlationId": id }),
        )
        .await?;
        Self::reply_result(self.reply(&id, Duration::from_secs(10)).await?)
    }

    pub async fn ping(&self) -> Result<Value, ClientError> {
        let id = correlation();
        self.send_action("ping", json!({ "correlationId": id }))
            .await?;
        Self::reply_result(self.reply(&id, Duration::from_secs(10)).await?)
    }

    /// Waits for the final `command_status` (2 or 3) of `command_id`.
    pub async fn wait_command(
        &self,
        command_id: &str,
        timeout: Duration,
    ) -> Result<CommandOutcome, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let waiter = Arc::new(Notify::new());
        let _registered = Registration::new(&self.shared, command_id, waiter.clone());
        loop {
            {
                let st = self.shared.state.lock().expect("session lock");
                if let Some(outcome) = st.events.get(command_id).and_then(|e| final_status(e)) {
                    return Ok(outcome);
                }
                if st.closed.is_some() {
                    return Err(ClientError::WebSocket(format!(
                        "connection closed while waiting for command {command_id}"
                    )));
                }
            }
            // `notify_one` keeps a permit, so an event between the check and here is not lost.
            tokio::time::timeout_at(deadline, waiter.notified())
                .await
                .map_err(|_| ClientError::Timeout(format!("command {command_id}")))?;
        }
    }

    /// Waits for the first notice (an uncorrelated reply), such as "token ended".
    pub async fn notice(&self, timeout: Duration) -> Result<Value, ClientError> {
        self.wait_until("a notice", timeout, |st| {
            let at = st
                .replies
                .iter()
                .position(|r| r["correlationId"].is_null())?;
            Some(st.replies.remove(at))
        })
        .await
    }

    /// Every event `data` seen so far with this id (kept for the most recent `KEPT_IDS` ids).
    pub fn events_for(&self, id: &str) -> Vec<Value> {
        let st = self.shared.state.lock().expect("session lock");
        st.events.get(id).cloned().unwrap_or_default()
    }

    /// The frames seen so far (the most recent `KEPT_FRAMES`).
    pub fn frames(&self) -> Vec<Value> {
        let st = self.shared.state.lock().expect("session lock");
        st.log
            .iter()
            .map(|text| serde_json::from_str(text.as_str()).unwrap_or(Value::Null))
            .collect()
    }

    /// Closes the connection with 1000 and waits (up to `timeout`) for the server's answer;
    /// returns the code the server answered with.
    pub async fn close(&self, timeout: Duration) -> Result<Option<u16>, ClientError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static("bye"),
        };
        // An error means the connection is already closing; the answer still comes.
        let _ = self
            .sink
            .lock()
            .await
            .send(Message::Close(Some(frame)))
            .await;
        self.closed(timeout).await
    }

    /// Waits until the server closes the connection; returns its close code.
    pub async fn closed(&self, timeout: Duration) -> Result<Option<u16>, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(code) = self.shared.state.lock().expect("session lock").closed {
                return Ok(code);
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .map_err(|_| ClientError::Timeout("close".into()))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_event_ids_are_forgotten_and_recent_ones_kept_whole() {
        let mut st = State::default();
        for i in 0..=KEPT_IDS {
            st.record_event(&format!("id-{i}"), json!({ "n": i }));
        }
        st.record_event("id-1", json!({ "n": "again" }));
        assert!(!st.events.contains_key("id-0"));
        assert_eq!(st.events.len(), KEPT_IDS);
        assert_eq!(st.events["id-1"].len(), 2);
        assert_eq!(st.event_ids.front().map(String::as_str), Some("id-1"));
    }

    #[test]
    fn final_status_reads_success_and_failure() {
        let ok = [
            json!({ "type": "X-DPT-CAB-ID", "command_status": 1 }),
            json!({ "type": "X-DPT-CAB-ID", "command_status": 2, "body": { "a": 1 } }),
        ];
        assert_eq!(
            final_status(&ok),
            Some(CommandOutcome::Succeeded(json!({ "a": 1 })))
        );
        let failed = [json!({ "type": "X-DPT-CAB-ID", "command_status": 3, "body": "x.y" })];
        assert_eq!(
            final_status(&failed),
            Some(CommandOutcome::Failed("x.y".into()))
        );
        assert_eq!(final_status(&ok[..1]), None);
    }
}
