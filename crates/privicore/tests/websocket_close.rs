//! The closing handshake (RFC 6455 §5.5.1) on the client WebSocket listener, on `/ws` of
//! the API listener and on the device bus, seen by a raw WebSocket client: every close
//! comes as a Close frame with the right code, and the connection then ends cleanly.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Raw = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn raw(url: &str) -> Raw {
    connect_async(url).await.unwrap().0
}

/// Reads up to the server's Close frame and returns its code; then the stream must end
/// without an error: tungstenite answered the Close and the server closed the TCP
/// connection (a dropped connection would show as an error, browsers' 1006).
async fn close_code(ws: &mut Raw) -> u16 {
    let code = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("the connection ended without a Close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a Close frame")
    .expect("a close code");
    let end = tokio::time::timeout(WAIT, ws.next()).await.expect("an end");
    assert!(end.is_none(), "not a clean end: {end:?}");
    code
}

fn close_frame(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: "bye".into(),
    }))
}

fn client_socket_urls(server: &TestServer) -> [String; 2] {
    [server.ws_url(), server.api_ws_url()]
}

#[tokio::test]
async fn a_close_from_the_client_is_answered_with_the_same_code() {
    let server = TestServer::start().await;
    for url in client_socket_urls(&server) {
        let mut ws = raw(&url).await;
        ws.send(close_frame(CloseCode::Normal)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1000, "{url}");
        let mut ws = raw(&url).await;
        ws.send(close_frame(CloseCode::Away)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1001, "{url}");
    }
}

#[tokio::test]
async fn frames_over_16_kib_close_with_1009_on_both_listeners() {
    let server = TestServer::start().await;
    for url in client_socket_urls(&server) {
        let mut ws = raw(&url).await;
        let big = format!(
            r#"{{"action":"ping","data":{{"pad":"{}"}}}}"#,
            "x".repeat(17 * 1024)
        );
        ws.send(Message::Text(big.into())).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1009, "{url}");
    }
}

#[tokio::test]
async fn protocol_errors_close_with_1002_and_bad_utf8_with_1007() {
    let server = TestServer::start().await;
    for url in client_socket_urls(&server) {
        // A data frame with a reserved opcode.
        let mut ws = raw(&url).await;
        let reserved = Frame::message(vec![1u8, 2, 3], OpCode::Data(Data::Reserved(3)), true);
        ws.send(Message::Frame(reserved)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1002, "{url}");

        // A text frame with a reserved bit set and no extension negotiated.
        let mut ws = raw(&url).await;
        let mut flagged = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
        flagged.header_mut().rsv2 = true;
        ws.send(Message::Frame(flagged)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1002, "{url}");

        let mut ws = raw(&url).await;
        let invalid = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
        ws.send(Message::Frame(invalid)).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1007, "{url}");
    }
}

#[tokio::test]
async fn shutdown_closes_with_1001_after_the_handshake() {
    let mut server = TestServer::start().await;
    let mut readers = Vec::new();
    for url in client_socket_urls(&server) {
        let mut ws = raw(&url).await;
        readers.push(tokio::spawn(async move { close_code(&mut ws).await }));
    }
    server.stop().await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 1001);
    }
}

#[tokio::test]
async fn the_client_session_closes_cleanly() {
    let server = TestServer::start().await;
    let alice = provision(&server, "ws-close-session").await;
    assert_eq!(alice.session.close(WAIT).await.unwrap(), Some(1000));
}

/// A raw WebSocket on `/device-bus` with the device's bus credentials.
async fn device_bus(server: &TestServer, name: &str) -> Raw {
    let alice = provision(server, name).await;
    let device = onboard_external(&alice.api, &alice.session, server.dir.path(), name).await;
    let bundle = privicore_storage_device::Bundle::from_json(
        &std::fs::read_to_string(&device.bundle).unwrap(),
    )
    .unwrap();
    let mut request = bundle.embedded_bus_url().into_client_request().unwrap();
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", bundle.rabbit_user, bundle.rabbit_pass));
    request
        .headers_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    connect_async(request).await.unwrap().0
}

#[tokio::test]
async fn the_device_bus_answers_close_and_closes_on_protocol_errors_and_shutdown() {
    let mut server = TestServer::start_with(|s| s.storage.host_devices = false).await;

    let mut ws = device_bus(&server, "bus-close-normal").await;
    ws.send(close_frame(CloseCode::Normal)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1000);

    let mut ws = device_bus(&server, "bus-close-rsv").await;
    let mut flagged = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    flagged.header_mut().rsv1 = true;
    ws.send(Message::Frame(flagged)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1002);

    let mut ws = device_bus(&server, "bus-close-utf8").await;
    let invalid = Frame::message(vec![0xc3, 0x28], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(invalid)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1007);

    let mut ws = device_bus(&server, "bus-close-shutdown").await;
    let reader = tokio::spawn(async move { close_code(&mut ws).await });
    server.stop().await;
    assert_eq!(reader.await.unwrap(), 1001);
}
