//! Streaming limits and early answers (docs/api/data-tokens.md §1.5, §3.4, §3.6): a
//! download asked before it is ready (`stream.not_ready`, value kept), an upload longer
//! than the total duration limit, and uploads refused before their body, whose error code
//! reaches the client instead of a broken pipe. Time moves on a `ManualClock`.

mod common;

use common::*;
use privicore_client::Client;
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use privicore_wire::bus::{self, kind};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server_with_clock(
    adjust: impl FnOnce(&mut privicore::config::Settings),
) -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| {
        s.clock = Some(c);
        adjust(s);
    })
    .await;
    (server, clock)
}

/// A reservation ready for upload: the token and its temporary-token answer.
async fn reserve(p: &Provisioned) -> (String, Value) {
    let reserved = p.api.reserve_token_space("/limits", None).await.unwrap();
    let token = p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = p
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    (token, temporary)
}

fn stream_url(temporary: &Value) -> String {
    temporary["streamUrl"].as_str().unwrap().to_owned()
}

async fn token_row(p: &Provisioned, token: &str) -> Value {
    p.api
        .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap()["items"][0]
        .clone()
}

async fn wait_status(p: &Provisioned, token: &str, status: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let row = token_row(p, token).await;
        if row["status"] == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {status}: {row}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A storage device of `profile`, played by the test.
async fn raw_storage(server: &TestServer, profile: &Provisioned, name: &str) -> RawDevice {
    let device = onboard_external(&profile.api, &profile.session, server.dir.path(), name).await;
    let registered = profile.api.register_storage(&device.id).await.unwrap();
    profile.ok(&registered.command_id).await;
    RawDevice::connect(&device).await
}

/// The next message of `kind` from the engine (others, such as deletions, are skipped).
async fn next_of(device: &mut RawDevice, of: &str) -> bus::Envelope {
    loop {
        let env = device.next().await;
        if env.kind == of {
            return env;
        }
    }
}

/// Answers a fetch with the one sealed chunk the device was given.
async fn serve_fetch(device: &mut RawDevice, stored: &bus::StoreChunk) {
    let fetch: bus::Fetch = next_of(device, kind::FETCH).await.into_body().unwrap();
    assert_eq!((fetch.version, fetch.from_chunk), (stored.version, 0));
    let chunk = bus::FetchChunk {
        fetch_id: fetch.fetch_id,
        token: stored.token.clone(),
        version: stored.version,
        chunk_index: 0,
        chunk_count: 1,
        data: stored.data.clone(),
    };
    device.send(kind::FETCH_CHUNK, chunk).await;
}

#[tokio::test]
async fn a_download_before_stream_ready_is_refused_not_ready_and_keeps_its_value() {
    let (server, clock) = server_with_clock(|s| s.storage.host_devices = false).await;
    let alice = Arc::new(provision(&server, "not-ready").await);
    let mut device = raw_storage(&server, &alice, "slow").await;

    // Version 1, then a replacement the device does not confirm yet: the request queues
    // behind it in the token's lane, so its download URL goes out before the device
    // delivered anything.
    let storing = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.store("/slow", &random_payload(100_000)).await })
    };
    let first: bus::StoreChunk = next_of(&mut device, kind::STORE_CHUNK)
        .await
        .into_body()
        .unwrap();
    device.claim_stored(&first).await;
    let token = storing.await.unwrap();
    let second_data = random_payload(150_000);
    let replaced = alice
        .api
        .update_data_token(serde_json::json!({ "dataToken": token, "data": b64(&second_data) }))
        .await
        .unwrap();
    let second: bus::StoreChunk = next_of(&mut device, kind::STORE_CHUNK)
        .await
        .into_body()
        .unwrap();
    assert_eq!(second.version, 2);
    let request = alice.api.request_data(&token).await.unwrap();
    device.claim_stored(&second).await;
    alice.ok(&replaced.command_id).await;

    // The URL is out; the device sits on the engine's fetch.
    let deadline = std::time::Instant::now() + WAIT;
    let url = loop {
        if let Some(event) = alice.session.events_for(&request.request_id).first() {
            assert_eq!(event["output_type"], 1);
            break event["body"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no download URL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let at = url.find("/?").unwrap();
    let down = Client::new(&url[..at]);
    let path = url[at..].to_owned();
    let early = {
        let (down, path) = (down.clone(), path.clone());
        tokio::spawn(async move { down.get(&path).await.unwrap() })
    };
    // 30 s pass on the engine clock while the download waits (again, should the request
    // have arrived after a move).
    let mut early = early;
    let answer = loop {
        clock.advance(31);
        if let Ok(answer) = tokio::time::timeout(Duration::from_secs(2), &mut early).await {
            break answer.unwrap();
        }
    };
    assert_eq!(
        (answer.status, answer.error_code().as_deref()),
        (503, Some("stream.not_ready"))
    );
    assert_eq!(answer.header("retry-after"), Some("2"));

    // Ready once the device delivers the first chunk; the same value then downloads.
    serve_fetch(&mut device, &second).await;
    let result = alice.ok(&request.command_id).await;
    assert_eq!(result["outputType"], 1);
    let events = alice.session.events_for(&request.request_id);
    assert_eq!(events[1]["type"], "STREAM-READY");
    let downloading = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            alice.api.download_stream(&url, &mut out).await.unwrap();
            out
        })
    };
    serve_fetch(&mut device, &second).await;
    let out = downloading.await.unwrap();
    assert!(out == second_data, "the download differs from version 2");
}

#[tokio::test]
async fn an_upload_longer_than_six_hours_is_refused_and_leaves_nothing() {
    // Idle time is no limit here, so only the total duration can end the upload.
    let (server, clock) = server_with_clock(|s| s.streams.upload_idle_seconds = 7 * 3600).await;
    let alice = provision(&server, "six-hours").await;
    alice.attach_devices(&["a"]).await;
    let reserved = alice
        .api
        .reserve_token_space("/limits", None)
        .await
        .unwrap();
    let reservation = reserved.command_id.clone();
    let token = alice.ok(&reservation).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = alice.api.temporary_data_token(&reservation).await.unwrap();
    let (mut source, body) = tokio::io::duplex(64 * 1024);
    let uploading = {
        let api = alice.api.clone();
        let url = stream_url(&temporary);
        tokio::spawn(async move { api.upload_stream(&url, body, Some(1000)).await })
    };
    source.write_all(&[7; 100]).await.unwrap();
    wait_status(&alice, &token, "exchanging").await;
    // Five hours in, bytes still arrive and the upload goes on.
    clock.advance(5 * 3600);
    source.write_all(&[7; 100]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!uploading.is_finished(), "refused before six hours");
    clock.advance(3600);
    source.write_all(&[7; 100]).await.unwrap();
    let err = tokio::time::timeout(WAIT, uploading)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(408), Some("stream.idle_timeout"))
    );
    // Nothing was stored: the reservation ran out meanwhile, so the token went to
    // `expired`, which no listing shows, and lookups say so (§1.1).
    let deadline = std::time::Instant::now() + WAIT;
    while !token_row(&alice, &token).await.is_null() {
        assert!(std::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = alice.api.request_data(&token).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.not_found"))
    );
    let err = alice
        .api
        .temporary_data_token(&reservation)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.reservation_expired"))
    );
}

/// Several threads, so that the client keeps writing while the engine answers and closes
/// (on one thread the answer always won the race and hid the broken pipe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_refused_before_its_body_reports_the_engine_code() {
    let (server, _clock) = server_with_clock(|_| {}).await;
    let alice = provision(&server, "early").await;
    alice.attach_devices(&["a"]).await;
    let upstream = server.running().upstream_addr;
    let big = 512u64 << 20;

    // A value the engine never issued: 401 before a byte of the 512 MiB is sent, every time.
    let unknown = format!("http://{upstream}/?auth=U-{}", "Q".repeat(43));
    for _ in 0..10 {
        let err = alice
            .api
            .upload_stream(&unknown, tokio::io::repeat(7).take(big), Some(big))
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(401), Some("stream.invalid_auth")),
            "{err:?}"
        );
    }
    // A declared length over the limit, and a chunked body, likewise.
    let (token, temporary) = reserve(&alice).await;
    let too_big = 11u64 << 30;
    let err = alice
        .api
        .upload_stream(
            &stream_url(&temporary),
            tokio::io::repeat(7).take(too_big),
            Some(too_big),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(413), Some("stream.too_large")),
        "{err:?}"
    );
    assert_eq!(token_row(&alice, &token).await["status"], "reserved");

    // The engine answers `100 Continue` to a usable value before it reads the body.
    let at = stream_url(&temporary).find("/?").unwrap();
    let path = stream_url(&temporary)[at..].to_owned();
    let mut socket = tokio::net::TcpStream::connect(upstream).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(WAIT, socket.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed before 100 Continue");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    socket.write_all(&random_payload(40)).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upload_without_spool_room_reports_spool_full() {
    let server = TestServer::start_with(|s| s.streams.spool_reserve_bytes = u64::MAX).await;
    let alice = provision(&server, "early-full").await;
    alice.attach_devices(&["a"]).await;
    let (token, temporary) = reserve(&alice).await;
    let big = 512u64 << 20;
    // The value is not consumed: each attempt gets the same answer.
    for _ in 0..5 {
        let err = alice
            .api
            .upload_stream(
                &stream_url(&temporary),
                tokio::io::repeat(1).take(big),
                Some(big),
            )
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(503), Some("stream.spool_full")),
            "{err:?}"
        );
    }
    assert_eq!(token_row(&alice, &token).await["status"], "reserved");
}
