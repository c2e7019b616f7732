//! The closing handshake (RFC 6455 §5.5.1, §7), shared by the client sockets and the device
//! bus: a Close from the peer is answered with a Close, and a Close the engine sends waits
//! for the peer's answer before the TCP connection goes, so peers see a clean close
//! instead of 1006.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;

pub type Sink = SplitSink<WebSocket, Message>;
pub type Stream = SplitStream<WebSocket>;

pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const INVALID_DATA: u16 = 1007;
pub const POLICY_VIOLATION: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
pub const TRY_AGAIN_LATER: u16 = 1013;

/// A frame that cannot be written, or a Close that is not answered, within this time means
/// the peer is not reading: the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The close code for a frame the codec refused, and a reason safe to show the peer.
/// `None` for transport failures, where no Close can be delivered anyway.
pub fn code_for(error: &axum::Error) -> Option<(u16, &'static str)> {
    let inner = std::error::Error::source(error)?;
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some((TOO_BIG, "frame too large")),
        tungstenite::Error::Utf8(_) => Some((INVALID_DATA, "text frame is not valid UTF-8")),
        tungstenite::Error::Protocol(_) => Some((PROTOCOL_ERROR, "WebSocket protocol error")),
        _ => None,
    }
}

/// Answers the peer's Close: tungstenite queued the echo when it read the frame, and a
/// flush writes it.
pub async fn answer(sink: &mut Sink) {
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await;
}

/// Sends a Close with `code` and `reason`, then reads (and discards) until the peer's
/// Close, the end of the stream or a read error, at most [`WRITE_TIMEOUT`] in all.
pub async fn close(sink: &mut Sink, stream: &mut Stream, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let handshake = async {
        if sink.send(Message::Close(Some(frame))).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, handshake).await;
}

/// Sends one frame, or gives up after [`WRITE_TIMEOUT`]; `false` when it was not written.
pub async fn send_timed(sink: &mut Sink, message: Message) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await,
        Ok(Ok(()))
    )
}
