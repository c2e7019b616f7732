//! The WebSocket protocol of docs/api/README.md §8 as a client meets it.

mod common;

use common::*;
use privicore_client::{CommandOutcome, Session};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn join_replies_echo_the_correlation_id() {
    let server = TestServer::start().await;
    let alice = provision(&server, "ws-join").await;
    let session = server.session().await;

    session
        .send_text(&json!({"action": "joinChannel", "data": {"authorizationToken": "T-bad", "correlationId": "c-1"}}).to_string())
        .await
        .unwrap();
    let reply = session.reply("c-1", WAIT).await.unwrap();
    assert_eq!(reply["status"], 401);
    assert_eq!(reply["data"]["code"], "auth.invalid_token");
    assert_eq!(reply["data"]["message"], "invalid authorization token");

    // Without a correlation id the reply carries null.
    session
        .send_text(
            &json!({"action": "joinChannel", "data": {"authorizationToken": alice.token}})
                .to_string(),
        )
        .await
        .unwrap();
    let reply = session.notice(WAIT).await.unwrap();
    assert_eq!(reply["status"], 200);
    assert_eq!(reply["data"]["message"], "joined");
    assert!(reply["correlationId"].is_null());
    let channel = reply["data"]["channelId"].as_str().unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&channel).unwrap().get_version_num(),
        4
    );

    // A second join leaves the first channel.
    let second = session.join(&alice.token).await.unwrap();
    assert_ne!(second, channel);
    let err = session.leave(&channel).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("channel.not_found"))
    );
    let left = session.leave(&second).await.unwrap();
    assert_eq!(left, json!({"channelId": second, "message": "left"}));
    // Still connected after leaving.
    assert_eq!(session.ping().await.unwrap()["message"], "pong");
}

#[tokio::test]
async fn protocol_errors_are_answered_not_dropped() {
    let server = TestServer::start().await;
    let session = server.session().await;
    session.send_text("not json").await.unwrap();
    let reply = session.notice(WAIT).await.unwrap();
    assert_eq!(
        (reply["status"].as_u64(), reply["data"]["code"].as_str()),
        (Some(400), Some("request.malformed"))
    );
    session.send_text(r#"{"data":{}}"#).await.unwrap();
    assert_eq!(
        session.notice(WAIT).await.unwrap()["data"]["code"],
        "request.malformed"
    );
    session
        .send_text(r#"{"action":"dance","data":{"correlationId":"c-9"}}"#)
        .await
        .unwrap();
    let reply = session.reply("c-9", WAIT).await.unwrap();
    assert_eq!(
        (reply["status"].as_u64(), reply["data"]["code"].as_str()),
        (Some(400), Some("request.unknown_action"))
    );
    session.ping().await.unwrap();
}

#[tokio::test]
async fn frames_over_16_kib_close_with_1009() {
    let server = TestServer::start().await;
    let session = server.session().await;
    let big =
        json!({"action": "ping", "data": {"correlationId": "x".repeat(17 * 1024)}}).to_string();
    session.send_text(&big).await.unwrap();
    assert_eq!(session.closed(WAIT).await.unwrap(), Some(1009));

    let session = server.session().await;
    let huge = json!({"action": "ping", "data": {"pad": "x".repeat(200 * 1024)}}).to_string();
    let _ = session.send_text(&huge).await;
    assert_eq!(session.closed(WAIT).await.unwrap(), Some(1009));
}

#[tokio::test]
async fn the_websocket_listener_accepts_any_path() {
    let server = TestServer::start().await;
    let alice = provision(&server, "ws-path").await;
    let session = Session::connect(&format!("{}/some/where", server.ws_url()))
        .await
        .unwrap();
    session.join(&alice.token).await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001() {
    let mut server = TestServer::start().await;
    let alice = provision(&server, "ws-shutdown").await;
    server.stop().await;
    assert_eq!(
        alice.session.closed(Duration::from_secs(10)).await.unwrap(),
        Some(1001)
    );
}

/// Under a burst the engine writes the events queued for a socket together (one flush for
/// many frames): every command's final status still arrives, once, on the one session.
#[tokio::test]
async fn a_burst_of_commands_on_one_session_gets_every_ack_once() {
    let server = TestServer::start().await;
    let alice = provision(&server, "ws-burst").await;
    let accepted = futures_util::future::join_all(
        (0..300).map(|_| alice.api.reserve_token_space("/burst", None)),
    )
    .await;
    for reserved in accepted {
        let id = reserved.unwrap().command_id;
        let outcome = alice.session.wait_command(&id, WAIT).await.unwrap();
        assert!(matches!(outcome, CommandOutcome::Succeeded(_)), "{id}");
        let finals = alice
            .session
            .events_for(&id)
            .iter()
            .filter(|e| e["command_status"] == 2)
            .count();
        assert_eq!(finals, 1, "{id}");
    }
}
