//! How a device reaches the engine: an in-process channel pair (hosted devices) or the
//! embedded WebSocket bus at `/device-bus` (and the AMQP broker, `link_amqp`).

use async_trait::async_trait;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use privicore_wire::bus::Envelope;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

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
    /// Every message received so far is handled (objects flushed, answers sent): an AMQP
    /// link acknowledges them to the broker now.
    async fn handled(&mut self) -> Result<(), LinkError> {
        Ok(())
    }
    /// Ends the link cleanly (a WebSocket sends Close and waits for the engine's answer).
    async fn close(&mut self) {}
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

/// How long a closing connection may take to finish its handshake.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
                Ok(Message::Close(_)) => {
                    // Reading on answers the engine's Close and sees it end the connection.
                    let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
                    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
                    return None;
                }
                Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn wants_acks(&self) -> bool {
        true
    }

    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Away,
            reason: "device shutting down".into(),
        };
        let handshake = async {
            if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, handshake).await;
    }
}
