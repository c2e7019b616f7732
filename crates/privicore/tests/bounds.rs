//! Queues and connections are bounded: a full command lane refuses with 503 and
//! `Retry-After` instead of growing memory, and one client holding connections open
//! cannot lock others out.

mod common;

use common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_command_lane_answers_503_with_retry_after() {
    let server = TestServer::start_with(|s| s.commands.queued_per_lane = 1).await;
    let profile = provision(&server, "lane").await;
    profile.attach_devices(&["d1", "d2", "d3"]).await;
    let token = profile.store("/lane", &random_payload(64)).await;

    // Commands on one token share a lane: a burst overflows it.
    let http = reqwest::Client::new();
    let url = format!(
        "{}/data-token/configure-information-security-risk-meta",
        server.running().api_url()
    );
    let burst = (0..200).map(|_| {
        let request = http
            .post(&url)
            .header("X-DPT-AUTHORIZATION", &profile.token)
            .form(&[
                ("token", token.as_str()),
                ("classification", "confidential"),
            ]);
        async move { request.send().await.unwrap() }
    });
    let answers = futures_util::future::join_all(burst).await;

    let mut accepted = Vec::new();
    let mut refused = 0;
    for answer in answers {
        match answer.status().as_u16() {
            202 => accepted.push(
                answer.headers()["x-dpt-cab-id"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            ),
            503 => {
                let retry: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                let body: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["code"], "service.unavailable");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(refused > 0, "a lane of one overflowed");
    assert!(!accepted.is_empty());
    // Every command that got its 202 runs: nothing accepted was dropped.
    for command in accepted {
        profile.ok(&command).await;
    }
}

/// Reads until the server closes; `true` if it did.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn one_client_holding_connections_cannot_lock_others_out() {
    const SHARE: usize = 20;
    let server = TestServer::start_with(|s| s.connections.per_address = SHARE).await;
    let addr = server.running().api_addr;

    // Half-open requests from one address (loopback answers on all of 127/8).
    let mut held = Vec::new();
    let mut closed = 0;
    for _ in 0..SHARE * 5 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        tcp.write_all(b"POST /profile/authenticate HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(tcp);
    }
    for tcp in &mut held[SHARE..] {
        if closed_by_server(tcp).await {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        SHARE * 4,
        "every connection over the share is closed"
    );

    let health = tokio::time::timeout(Duration::from_secs(5), server.client().health())
        .await
        .expect("health answers while one client holds its share")
        .unwrap();
    assert!(health["status"].is_string(), "{health}");
}
