//! No event is silently lost under a flood: a socket that stops reading is told
//! (`channel.lagged`) and closed with 1013, and a new join gets what it missed from the
//! replay buffer; a revoked token ends every socket joined with it within a second while
//! events keep pouring in.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use privicore_client::{Client, Session};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

/// Inline deliveries near their 64 KiB limit: few events fill the socket buffers.
const PAYLOAD: usize = 60 * 1024;

/// A profile with one hosted device and one stored payload; returns it and the data token.
async fn profile_with_payload(server: &TestServer, prefix: &str) -> (Provisioned, String) {
    let alice = provision(server, prefix).await;
    alice.attach_devices(&["flood"]).await;
    let (token, _) = alice
        .api
        .store_payload(&alice.session, "/flood", &random_payload(PAYLOAD))
        .await
        .unwrap();
    (alice, token)
}

/// Waits until every request has finished (all its events are published). They share
/// one token, so they run one after the other.
async fn finish_all(api: &Client, requests: &[privicore_client::DataRequest]) {
    let polls = requests
        .iter()
        .map(|r| api.poll_command(&r.command_id, 3 * WAIT));
    for status in futures_util::future::join_all(polls).await {
        status.unwrap();
    }
}

/// Frames of one raw connection, read until the server closes it.
struct Read {
    frames: Vec<Value>,
    close: Option<u16>,
}

#[tokio::test]
async fn a_socket_that_stops_reading_is_told_closed_and_its_events_replayed() {
    let server = TestServer::start_with(|s| s.socket_queue = 8).await;
    let (alice, token) = profile_with_payload(&server, "ws-lag").await;
    // Only the slow socket is joined from here on, so what it misses waits for a rejoin.
    assert_eq!(alice.session.close(WAIT).await.unwrap(), Some(1000));

    // A client that joins and then stops reading.
    let mut slow = raw_joined(&server, &alice.token).await;

    // The flood: more inline deliveries (8 MB) than its queue and the socket buffers hold
    // (4 MB on loopback), few enough that the client is back within the engine's 30 s
    // write timeout.
    let requests: Vec<_> = futures_util::stream::iter(0..100)
        .map(|_| alice.api.request_data(&token))
        .buffer_unordered(8)
        .collect()
        .await;
    let requests: Vec<_> = requests.into_iter().map(Result::unwrap).collect();
    // Every event is published before the client reads again.
    finish_all(&alice.api, &requests).await;

    // The client reads again: what was written, then the notice, then the close.
    let read = tokio::time::timeout(WAIT, async {
        let mut read = Read {
            frames: Vec::new(),
            close: None,
        };
        while let Some(frame) = slow.next().await {
            match frame.unwrap() {
                Message::Text(text) => read.frames.push(serde_json::from_str(&text).unwrap()),
                Message::Close(frame) => read.close = frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        read
    })
    .await
    .expect("the slow socket is closed");
    assert_eq!(read.close, Some(1013), "closed with try-again-later");
    let notice = read.frames.last().unwrap();
    assert_eq!(notice["correlationId"], Value::Null);
    assert_eq!(notice["status"], 503);
    assert_eq!(notice["data"]["code"], "channel.lagged");
    let (delivered, finished) = ids(&read.frames);
    assert!(!delivered.is_empty(), "some deliveries were written first");
    assert!(delivered.len() < requests.len(), "the socket did lag");

    // A new join gets every event the slow socket did not: nothing is lost.
    let again = Session::connect(&server.ws_url()).await.unwrap();
    again.join(&alice.token).await.unwrap();
    let mut replayed = 0;
    for r in &requests {
        if !finished.contains(&r.command_id) {
            again.wait_command(&r.command_id, WAIT).await.unwrap();
        }
        if !delivered.contains(&r.request_id) {
            let events = again.events_for(&r.request_id);
            assert_eq!(events.len(), 1, "delivery of {} replayed", r.request_id);
            assert_eq!(events[0]["output_type"], 0);
            replayed += 1;
        }
    }
    assert!(replayed > 0);
    println!(
        "slow socket: {} deliveries before its notice, {replayed} replayed",
        delivered.len()
    );
}

/// A raw connection joined with `token`, with a small receive buffer so that what it does
/// not read queues up in the engine.
async fn raw_joined(server: &TestServer, token: &str) -> Raw {
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.set_recv_buffer_size(64 * 1024).unwrap();
    let stream = tcp.connect(server.running().ws_addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), stream)
        .await
        .unwrap();
    let join = json!({"action": "joinChannel", "data": {"authorizationToken": token, "correlationId": "j"}});
    ws.send(Message::Text(join.to_string().into()))
        .await
        .unwrap();
    let joined = ws.next().await.unwrap().unwrap();
    assert!(joined.to_text().unwrap().contains("joined"), "{joined}");
    ws
}

type Raw = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Ids of the inline deliveries, and of the commands whose final status, among `frames`.
fn ids(frames: &[Value]) -> (HashSet<String>, HashSet<String>) {
    let of = |kind: &str| -> HashSet<String> {
        frames
            .iter()
            .filter(|f| f["data"]["type"] == kind)
            .filter(|f| kind != "X-DPT-CAB-ID" || f["data"]["command_status"] == 2)
            .filter_map(|f| f["data"]["id"].as_str().map(str::to_owned))
            .collect()
    };
    (of("X-DPT-CAB-REQUEST-ID"), of("X-DPT-CAB-ID"))
}

#[tokio::test]
async fn a_revoked_token_ends_its_sockets_within_a_second_under_a_flood() {
    let server = TestServer::start().await;
    let (alice, token) = profile_with_payload(&server, "ws-revoke").await;
    // Three sockets joined with the token to revoke: two that read, one that does not
    // read until the end. The flood runs on a second token.
    let second = Session::connect(&server.api_ws_url()).await.unwrap();
    second.join(&alice.token).await.unwrap();
    let mut stalled = raw_joined(&server, &alice.token).await;
    let other = server
        .client()
        .authenticate(&alice.username, PASSWORD)
        .await
        .unwrap();
    let flooder = Client::new(&server.running().api_url()).with_token(&other.authorization_token);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..6 {
        let (api, token, stop, sent) = (flooder.clone(), token.clone(), stop.clone(), sent.clone());
        flood.push(tokio::spawn(async move {
            let mut requests = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                requests.push(api.request_data(&token).await.unwrap());
                sent.fetch_add(1, Ordering::Relaxed);
            }
            requests
        }));
    }
    let deadline = Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "the flood runs");
        tokio::task::yield_now().await;
    }

    let revoked_at = Instant::now();
    alice.api.revoke().await.unwrap();
    for session in [&alice.session, &second] {
        let notice = session.notice(WAIT).await.unwrap();
        let took = revoked_at.elapsed();
        assert_eq!(notice["status"], 401);
        assert_eq!(notice["data"]["code"], "auth.token_revoked");
        println!("token-ended notice after {took:?}");
        assert!(took < Duration::from_secs(1), "notice after {took:?}");
    }
    let during = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut requests = Vec::new();
    for task in flood {
        requests.extend(task.await.unwrap());
    }
    println!(
        "{during} requests of the flood before the notices, {} in all",
        requests.len()
    );
    // The sockets stay open for a new join (docs/api/README.md §8.7).
    assert_eq!(second.ping().await.unwrap()["message"], "pong");

    // The stalled socket reads what was written to it, then its notice; what was still
    // queued for it waits in the replay buffer for the next join.
    finish_all(&flooder, &requests).await;
    let mut frames = Vec::new();
    let notice = tokio::time::timeout(WAIT, async {
        loop {
            let text = match stalled.next().await.unwrap().unwrap() {
                Message::Text(text) => text,
                _ => continue,
            };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame.get("status").is_some() {
                break frame;
            }
            frames.push(frame);
        }
    })
    .await
    .expect("the stalled socket gets its notice");
    assert_eq!(notice["data"]["code"], "auth.token_revoked");
    let (delivered, finished) = ids(&frames);
    let again = Session::connect(&server.ws_url()).await.unwrap();
    again.join(&other.authorization_token).await.unwrap();
    let mut replayed = 0;
    for r in &requests {
        if !finished.contains(&r.command_id) {
            again.wait_command(&r.command_id, WAIT).await.unwrap();
        }
        if !delivered.contains(&r.request_id) {
            assert_eq!(again.events_for(&r.request_id).len(), 1, "{}", r.request_id);
            replayed += 1;
        }
    }
    println!(
        "stalled socket: {} deliveries before its notice, {replayed} replayed",
        delivered.len()
    );
}
