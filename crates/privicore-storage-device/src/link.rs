//! How a device reaches the engine: an in-process channel pair (hosted devices) or the
//! embedded WebSocket bus at `/device-bus`.

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use privicore_wire::bus::Envelope;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the link is closed")]
    Closed,
    #[error("transport: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Link: Send {
    async fn send(&mut self, envelope: Envelope) -> Result<(), LinkError>;
    /// The next message from the engine; `None` once the link is gone. Cancel-safe.
    async fn recv(&mut self) -> Option<Envelope>;
    /// Whether the transport wants `bus.ack` for engine messages (embedded WebSocket bus).
    fn wants_acks(&self) -> bool {
        false
    }
}

/// The device end of an in-process link.
pub struct ChannelLink {
    from_engine: mpsc::UnboundedReceiver<Envelope>,
    to_engine: mpsc::UnboundedSender<Envelope>,
}

/// A device link plus the engine's ends: a sender to the device and a receiver of its
/// messages.
pub fn channel_pair() -> (
    ChannelLink,
    mpsc::UnboundedSender<Envelope>,
    mpsc::UnboundedReceiver<Envelope>,
) {
    let (to_device, from_engine) = mpsc::unbounded_channel();
    let (to_engine, from_device) = mpsc::unbounded_channel();
    (
        ChannelLink {
            from_engine,
            to_engine,
        },
        to_device,
        from_device,
    )
}

#[async_trait]
impl Link for ChannelLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), LinkError> {
        self.to_engine.send(envelope).map_err(|_| LinkError::Closed)
    }

    async fn recv(&mut self) -> Option<Envelope> {
        self.from_engine.recv().await
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct WebSocketLink {
    ws: Ws,
}

/// Connects to `ws(s)://host:port/device-bus` with the bundle's bus credentials.
pub async fn connect_websocket(
    url: &str,
    user: &str,
    pass: &str,
) -> Result<WebSocketLink, LinkError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| LinkError::Transport(e.to_string()))?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    request.headers_mut().insert(
        "authorization",
        format!("Basic {basic}")
            .parse()
            .map_err(|_| LinkError::Transport("bad credentials".into()))?,
    );
    let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .map_err(|e| LinkError::Transport(e.to_string()))?;
    Ok(WebSocketLink { ws })
}

#[async_trait]
impl Link for WebSocketLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), LinkError> {
        self.ws
            .send(Message::Text(envelope.to_text().into()))
            .await
            .map_err(|e| LinkError::Transport(e.to_string()))
    }

    async fn recv(&mut self) -> Option<Envelope> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(text)) => match Envelope::parse(text.as_str()) {
                    Some(env) => return Some(env),
                    None => tracing::warn!("ignoring an unparseable bus message"),
                },
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn wants_acks(&self) -> bool {
        true
    }
}
