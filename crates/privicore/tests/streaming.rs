//! Streaming through the upstream and downstream listeners (docs/api/data-tokens.md §3.4,
//! §3.5 stream branch, §3.6, §4): round trips, the inline delivery limit, single use and
//! expiry of the values, failed uploads handing the reservation back, and the error keys.
//! Expiry moves on a `ManualClock`; nothing sleeps through a deadline.

mod common;

use common::*;
use privicore_client::{Client, ClientError};
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fast_payload(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    bytes
}

async fn server_with_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| s.clock = Some(c)).await;
    (server, clock)
}

/// A reservation ready for upload: the token and its temporary-token answer.
async fn reserve(p: &Provisioned) -> (String, Value) {
    let reserved = p.api.reserve_token_space("/streams", None).await.unwrap();
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

fn url(temporary: &Value) -> String {
    temporary["streamUrl"].as_str().unwrap().to_owned()
}

/// Long enough for tens of MiB to reach every device of a debug build.
const LARGE_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// Uploads `data` to a fresh reservation and waits for the exchange; the token.
async fn upload(p: &Provisioned, data: &[u8], with_length: bool) -> String {
    let (token, temporary) = reserve(p).await;
    let len = with_length.then_some(data.len() as u64);
    let accepted = p
        .api
        .upload_stream(&url(&temporary), std::io::Cursor::new(data.to_vec()), len)
        .await
        .unwrap();
    assert_eq!(accepted.token, token);
    assert_eq!(accepted.stored_size, data.len() as u64);
    let result = p
        .session
        .wait_command(&accepted.command_id, LARGE_WAIT)
        .await
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(result["version"], 1);
    assert_eq!(result["storedSize"], data.len() as u64);
    token
}

/// Requests the data and waits for its result; the result and the delivery events.
async fn request(p: &Provisioned, token: &str) -> (Value, Vec<Value>) {
    let (result, events, _) = request_with_id(p, token).await;
    (result, events)
}

/// Like `request`, with the command id.
async fn request_with_id(p: &Provisioned, token: &str) -> (Value, Vec<Value>, String) {
    let request = p.api.request_data(token).await.unwrap();
    let result = p.ok(&request.command_id).await;
    let events = p.session.events_for(&request.request_id);
    (result, events, request.command_id)
}

/// The download URL of a stream delivery (and checks the event order of §4.3).
fn download_url(events: &[Value]) -> String {
    assert_eq!(events[0]["type"], "X-DPT-CAB-REQUEST-ID");
    assert_eq!(events[0]["output_type"], 1);
    assert_eq!(events[1]["type"], "STREAM-READY");
    assert_eq!(events[1]["streamUrl"], events[0]["body"]);
    events[0]["body"].as_str().unwrap().to_owned()
}

/// The URL split into the listener's base and the path with its query.
fn split(url: &str) -> (String, String) {
    let at = url.find("/?").unwrap();
    (url[..at].to_owned(), url[at..].to_owned())
}

/// One raw HTTP/1.1 exchange: `head` (without the final blank line), then `body`; with
/// `half_close` the write side is shut afterwards. The answer's status and JSON body.
async fn raw(addr: SocketAddr, head: &str, body: &[u8], half_close: bool) -> (u16, Value) {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let _ = socket.write_all(body).await;
    if half_close {
        let _ = socket.shutdown().await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// The path and query of a stream URL.
fn target(url: &str) -> String {
    split(url).1
}

/// Waits until §3.2 shows another upload value than `old` (a failed upload hands the
/// reservation back in the background once its connection is gone).
async fn fresh_value(p: &Provisioned, reservation: &str, old: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(temporary) = p.api.temporary_data_token(reservation).await
            && temporary["stream"] != old
        {
            return temporary;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reservation was not handed back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_64_mib_payload_round_trips_through_both_listeners() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-big").await;
    alice.attach_devices(&["a", "b"]).await;
    let data = fast_payload(64 << 20);
    let token = upload(&alice, &data, true).await;
    let (result, events, command_id) = request_with_id(&alice, &token).await;
    assert_eq!(result["outputType"], 1);
    assert_eq!(result["storedSize"], data.len() as u64);
    assert!(result["expiresAt"].is_string());
    assert_eq!(events[1]["expiresAt"], result["expiresAt"]);
    let url = download_url(&events);
    assert!(url.starts_with(&format!(
        "http://{}/?auth=D-",
        server.running().downstream_addr
    )));
    // Delivery, then readiness, then the final status.
    let frames = alice.session.frames();
    let at = |pred: &dyn Fn(&Value) -> bool| frames.iter().position(pred).unwrap();
    let delivered =
        at(&|f| f["data"]["type"] == "X-DPT-CAB-REQUEST-ID" && f["data"]["token"] == token);
    let ready = at(&|f| f["data"]["type"] == "STREAM-READY");
    let done = at(&|f| f["data"]["id"] == command_id && f["data"]["command_status"] == 2);
    assert!(
        delivered < ready && ready < done,
        "{delivered} {ready} {done}"
    );
    let mut out = Vec::new();
    let written = alice.api.download_stream(&url, &mut out).await.unwrap();
    assert_eq!(written, data.len() as u64);
    assert!(out == data, "the download differs from the upload");
}

#[tokio::test]
async fn payloads_on_both_sides_of_the_inline_delivery_limit() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-edge").await;
    alice.attach_devices(&["a"]).await;
    for (len, how) in [(65_535, "upload"), (65_536, "inline"), (65_537, "chunked")] {
        let data = fast_payload(len);
        let token = match how {
            "upload" => upload(&alice, &data, true).await,
            "chunked" => upload(&alice, &data, false).await,
            _ => alice.store("/streams", &data).await,
        };
        let (result, events) = request(&alice, &token).await;
        let streamed = len > 65_536;
        assert_eq!(result["outputType"], u8::from(streamed), "{len}");
        assert_eq!(result["expiresAt"].is_null(), !streamed, "{len}");
        let delivered = if streamed {
            let mut out = Vec::new();
            alice
                .api
                .download_stream(&download_url(&events), &mut out)
                .await
                .unwrap();
            out
        } else {
            assert_eq!(events[0]["output_type"], 0);
            assert_eq!(events.len(), 1, "no STREAM-READY inline");
            alice.fetch(&token).await
        };
        assert!(delivered == data, "{len} bytes came back different");
    }
}

#[tokio::test]
async fn a_download_answers_the_contract_headers_once() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-headers").await;
    alice.attach_devices(&["a"]).await;
    let data = fast_payload(3 * 1024 * 1024 + 5);
    let token = upload(&alice, &data, false).await;
    let (_, events) = request(&alice, &token).await;
    let (base, path) = split(&download_url(&events));
    let listener = Client::new(&base);
    let res = listener.get(&path).await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("application/octet-stream"));
    assert_eq!(res.header("content-length"), Some(&*data.len().to_string()));
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.header("content-disposition"),
        Some(&*format!("attachment; filename=\"{token}.bin\""))
    );
    assert_eq!(res.header("x-dpt-data-token"), Some(token.as_str()));
    assert_eq!(res.header("x-dpt-data-version"), Some("1"));
    assert!(res.body == data);
    // Single use: the value was consumed with the headers.
    let again = listener.get(&path).await.unwrap();
    assert_eq!(
        (again.status, again.error_code().as_deref()),
        (401, Some("stream.invalid_auth"))
    );
}

#[tokio::test]
async fn upload_and_download_values_are_single_use_and_expire() {
    let (server, clock) = server_with_clock().await;
    let alice = provision(&server, "stream-once").await;
    alice.attach_devices(&["a"]).await;
    let data = fast_payload(100_000);
    let (_, temporary) = reserve(&alice).await;
    let accepted = alice
        .api
        .upload_stream(
            &url(&temporary),
            std::io::Cursor::new(data.clone()),
            Some(100_000),
        )
        .await
        .unwrap();
    let err = alice
        .api
        .upload_stream(
            &url(&temporary),
            std::io::Cursor::new(data.clone()),
            Some(100_000),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("stream.invalid_auth"))
    );
    alice.ok(&accepted.command_id).await;

    // A download value expires 300 s after issue, by the engine clock.
    let (_, events) = request(&alice, &accepted.token).await;
    let url_d = download_url(&events);
    clock.advance(301);
    let err = alice
        .api
        .download_stream(&url_d, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("stream.invalid_auth"))
    );
    // A fresh one works, once.
    let (_, events) = request(&alice, &accepted.token).await;
    let url_d = download_url(&events);
    let mut out = Vec::new();
    alice.api.download_stream(&url_d, &mut out).await.unwrap();
    assert!(out == data);
    let err = alice
        .api
        .download_stream(&url_d, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("stream.invalid_auth"));

    // An upload value dies with its reservation (ttl 5 minutes).
    let (_, temporary) = reserve(&alice).await;
    clock.advance(5 * 60 + 1);
    let err = alice
        .api
        .upload_stream(
            &url(&temporary),
            std::io::Cursor::new(data.clone()),
            Some(100_000),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("stream.invalid_auth"))
    );
}

#[tokio::test]
async fn an_upload_cut_off_halfway_hands_the_reservation_back() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-cut").await;
    alice.attach_devices(&["a"]).await;
    let reserved = alice.api.reserve_token_space("/cut", None).await.unwrap();
    let token = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    let old = temporary["stream"].as_str().unwrap().to_owned();
    let upstream = server.running().upstream_addr;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}",
        target(&url(&temporary)),
        3 << 20
    );
    // Half of the announced bytes, then the client stops sending.
    let (status, body) = raw(upstream, &head, &fast_payload(3 << 19), true).await;
    assert_eq!((status, code(&body)), (400, "stream.incomplete"));
    // Nothing of it is visible: the token is reserved again, with a fresh value.
    let temporary = fresh_value(&alice, &reserved.command_id, &old).await;
    let listed = alice
        .api
        .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["status"], "reserved");
    let err = alice.api.request_data(&token).await.unwrap_err();
    assert_eq!(err.code(), Some("data_token.not_active"));
    // The old value is dead; the fresh one takes the whole payload.
    let data = fast_payload(3 << 20);
    let (status, body) = raw(upstream, &head, &data, false).await;
    assert_eq!((status, code(&body)), (401, "stream.invalid_auth"));
    let accepted = alice
        .api
        .upload_stream(
            &url(&temporary),
            std::io::Cursor::new(data.clone()),
            Some(3 << 20),
        )
        .await
        .unwrap();
    alice.ok(&accepted.command_id).await;
    assert!(alice.fetch(&token).await == data);
}

#[tokio::test]
async fn upstream_errors_answer_the_contract_keys() {
    let (server, clock) = server_with_clock_and(|s| s.streams.upload_max_bytes = 2 << 20).await;
    let alice = provision(&server, "stream-errors").await;
    alice.attach_devices(&["a"]).await;
    let upstream = server.running().upstream_addr;
    let up = Client::new(&format!("http://{upstream}"));
    let octets = |bytes: Vec<u8>| privicore_client::Body::Raw {
        content_type: "application/octet-stream",
        bytes,
    };
    let (_, temporary) = reserve(&alice).await;
    let good = target(&url(&temporary));

    for (path, code_) in [
        ("/".to_owned(), "stream.invalid_auth"),
        ("/?auth=U-short".to_owned(), "stream.invalid_auth"),
        (
            format!("/?auth=U-{}", "A".repeat(43)),
            "stream.invalid_auth",
        ),
    ] {
        let res = up
            .send(reqwest::Method::POST, &path, octets(vec![0; 40]))
            .await
            .unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some(code_)),
            "{path}"
        );
    }
    let res = up.get(&good).await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (405, Some("request.method_not_allowed"))
    );
    assert_eq!(res.header("allow"), Some("POST"));
    let res = up
        .send(reqwest::Method::POST, "/upload", octets(vec![0; 40]))
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (404, Some("request.unknown_route"))
    );
    let res = up
        .send(
            reqwest::Method::POST,
            &good,
            privicore_client::Body::Raw {
                content_type: "text/plain",
                bytes: vec![0; 40],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (415, Some("request.unsupported_media_type"))
    );
    // `Expect: 100-continue` with an unusable value gets its answer without sending a byte.
    let head = format!(
        "POST /?auth=U-{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue",
        "B".repeat(43)
    );
    let (status, body) = raw(upstream, &head, b"", false).await;
    assert_eq!((status, code(&body)), (401, "stream.invalid_auth"));
    // A declared length over the limit is refused before any byte is read.
    let head = format!(
        "POST {good} HTTP/1.1\r\nHost: x\r\nContent-Length: {}",
        (2 << 20) + 1
    );
    let (status, body) = raw(upstream, &head, b"", false).await;
    assert_eq!((status, code(&body)), (413, "stream.too_large"));
    let res = up
        .send(reqwest::Method::POST, &good, octets(vec![0; 27]))
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (422, Some("data_token.data_too_short"))
    );
    // None of these consumed the value; a chunked body over the limit does (and hands the
    // reservation back).
    let err = alice
        .api
        .upload_stream(
            &url(&temporary),
            std::io::Cursor::new(fast_payload((2 << 20) + 10)),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(413), Some("stream.too_large"))
    );

    // A body that stops arriving: 408 once the engine clock says it was idle too long.
    let (_, temporary) = reserve(&alice).await;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 100",
        target(&url(&temporary))
    );
    let mut socket = tokio::net::TcpStream::connect(upstream).await.unwrap();
    socket
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    socket.write_all(&[7; 50]).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}}") {
                break;
            }
        }
    };
    let advance = async {
        // The upload is under way (its value consumed) before the clock moves.
        let token = temporary["token"].as_str().unwrap();
        while alice
            .api
            .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
            .await
            .unwrap()["items"][0]["status"]
            != "exchanging"
        {
            tokio::task::yield_now().await;
        }
        clock.advance(61);
    };
    tokio::time::timeout(WAIT, async { tokio::join!(read, advance) })
        .await
        .unwrap();
    let (status, body) = parse_answer(&answer);
    assert_eq!((status, code(&body)), (408, "stream.idle_timeout"));
}

async fn server_with_clock_and(
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

#[tokio::test]
async fn downstream_errors_answer_the_contract_keys() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-down").await;
    alice.attach_devices(&["a"]).await;
    let down = Client::new(&format!("http://{}", server.running().downstream_addr));
    for path in [
        "/",
        "/?auth=D-nope",
        &format!("/?auth=D-{}", "A".repeat(43)),
    ] {
        let res = down.get(path).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (401, Some("stream.invalid_auth")),
            "{path}"
        );
    }
    let res = down
        .send(
            reqwest::Method::POST,
            "/?auth=D-x",
            privicore_client::Body::Empty,
        )
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (405, Some("request.method_not_allowed"))
    );
    assert_eq!(res.header("allow"), Some("GET"));
    let res = down.get("/file?auth=D-x").await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (404, Some("request.unknown_route"))
    );

    // A version superseded after the request.
    let token = upload(&alice, &fast_payload(200_000), true).await;
    let (_, events) = request(&alice, &token).await;
    let superseded = download_url(&events);
    let replaced = alice
        .api
        .update_data_token(
            serde_json::json!({ "dataToken": token, "data": b64(&fast_payload(70_000)) }),
        )
        .await
        .unwrap();
    alice.ok(&replaced.command_id).await;
    let err = alice
        .api
        .download_stream(&superseded, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("stream.data_superseded"))
    );

    // A token deleted after the request.
    let (_, events) = request(&alice, &token).await;
    let gone = download_url(&events);
    let deleted = alice.api.delete_data(&token).await.unwrap();
    alice.ok(&deleted.command_id).await;
    let err = alice
        .api
        .download_stream(&gone, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.not_found"))
    );
}

#[tokio::test]
async fn a_download_switches_devices_mid_stream_and_aborts_when_none_can_deliver() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-switch").await;
    let devices = alice.attach_devices(&["a", "b"]).await;
    let data = fast_payload(3 << 20);
    let token = upload(&alice, &data, true).await;
    alice.wait_confirmed(&token, 2).await;
    // One copy loses its last chunk: the other device continues from that index.
    damage_on_device(&server.device_dir(&devices[0]), &token);
    let (_, events) = request(&alice, &token).await;
    let mut out = Vec::new();
    alice
        .api
        .download_stream(&download_url(&events), &mut out)
        .await
        .unwrap();
    assert!(out == data);
    // With both copies damaged the first chunks still go out, then the connection drops.
    damage_on_device(&server.device_dir(&devices[1]), &token);
    let (_, events) = request(&alice, &token).await;
    let mut out = Vec::new();
    let err = alice
        .api
        .download_stream(&download_url(&events), &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(out.len() < data.len());
    assert!(out[..] == data[..out.len()]);
}

/// §3.10 shape B with `stream: true`: the update command's id and the upload values.
async fn streamed_update(p: &Provisioned, token: &str, meta: Value) -> (String, Value) {
    let res = p
        .api
        .post_json(
            "/data-token/update-data-token",
            serde_json::json!({ "dataToken": token, "stream": true, "meta": meta }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202, "{}", res.json());
    let body = res.json();
    let id = body["commandId"].as_str().unwrap().to_owned();
    assert_eq!(res.header("x-dpt-cab-id"), Some(id.as_str()));
    assert!(body["stream"].as_str().unwrap().starts_with("U-"));
    assert_eq!(
        body["streamUrl"],
        format!(
            "{}/?auth={}",
            body["streamUrl"]
                .as_str()
                .unwrap()
                .split("/?")
                .next()
                .unwrap(),
            body["stream"].as_str().unwrap()
        )
    );
    assert!(body["expiresAt"].is_string());
    (id, body)
}

#[tokio::test]
async fn a_streamed_replacement_becomes_version_2_and_a_failed_one_leaves_version_1() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stream-replace").await;
    alice.attach_devices(&["a"]).await;
    let first = fast_payload(2 << 20);
    let token = upload(&alice, &first, true).await;

    // A replacement cut off halfway fails its command; version 1 stays served.
    let (id, values) = streamed_update(&alice, &token, Value::Null).await;
    let err = alice
        .api
        .update_data_token(serde_json::json!({ "dataToken": token, "stream": true }))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("data_token.update_in_progress"))
    );
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: {}",
        target(&url(&values)),
        4 << 20
    );
    let (status, body) = raw(
        server.running().upstream_addr,
        &head,
        &fast_payload(3 << 20),
        true,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "stream.incomplete"));
    let outcome = alice.outcome(&id).await;
    assert_eq!(
        outcome,
        privicore_client::CommandOutcome::Failed("stream.incomplete".into())
    );
    assert!(alice.fetch(&token).await == first);
    let listed = alice
        .api
        .list_data_tokens(&format!("?filters[token]={token}"))
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["version"], 1);

    // The next one goes through: the upload's 202 names the update command.
    let second = fast_payload((3 << 20) + 7);
    let meta = serde_json::json!({ "file": { "fileName": "v2.bin" } });
    let (id, values) = streamed_update(&alice, &token, meta).await;
    let accepted = alice
        .api
        .upload_stream(&url(&values), std::io::Cursor::new(second.clone()), None)
        .await
        .unwrap();
    assert_eq!(accepted.command_id, id);
    assert_eq!(accepted.token, token);
    let result = alice.ok(&id).await;
    assert_eq!(result["version"], 2);
    assert_eq!(result["storedSize"], second.len() as u64);
    assert!(alice.fetch(&token).await == second);
    let listed = alice
        .api
        .list_data_tokens(&format!("?filters[token]={token}"))
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["version"], 2);
    // The value was single-use.
    let err = alice
        .api
        .upload_stream(&url(&values), std::io::Cursor::new(second), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("stream.invalid_auth"));
}

#[tokio::test]
async fn a_streamed_replacement_whose_upload_never_starts_fails_with_not_started() {
    let (server, clock) = server_with_clock().await;
    let alice = provision(&server, "stream-late").await;
    alice.attach_devices(&["a"]).await;
    let first = fast_payload(100_000);
    let token = upload(&alice, &first, true).await;
    let (id, values) = streamed_update(&alice, &token, Value::Null).await;
    clock.advance(15 * 60 + 1);
    let outcome = alice.outcome(&id).await;
    assert_eq!(
        outcome,
        privicore_client::CommandOutcome::Failed("stream.not_started".into())
    );
    let err = alice
        .api
        .upload_stream(
            &url(&values),
            std::io::Cursor::new(fast_payload(100)),
            Some(100),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("stream.invalid_auth"));
    assert!(alice.fetch(&token).await == first);
}

#[tokio::test]
async fn an_upload_without_spool_room_is_refused_before_its_value_is_used() {
    let server = TestServer::start_with(|s| s.streams.spool_reserve_bytes = u64::MAX).await;
    let alice = provision(&server, "stream-full").await;
    alice.attach_devices(&["a"]).await;
    let (token, temporary) = reserve(&alice).await;
    let (base, path) = split(&url(&temporary));
    let res = Client::new(&base)
        .send(
            reqwest::Method::POST,
            &path,
            privicore_client::Body::Raw {
                content_type: "application/octet-stream",
                bytes: fast_payload(1000),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (503, Some("stream.spool_full"))
    );
    assert!(res.header("retry-after").is_some());
    let listed = alice
        .api
        .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["status"], "reserved");
}

/// Waits for a `command_status: 1` event of `command`; its body.
async fn held(p: &Provisioned, command: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(e) = p
            .session
            .events_for(command)
            .into_iter()
            .find(|e| e["command_status"] == 1 && e["body"]["state"] == "awaiting_vote")
        {
            return e["body"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{command} was not held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The device's open ballot of `pool` (waits for it).
async fn ballot(device: &Client, pool: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = device.pending_ballots().await.unwrap();
        if let Some(b) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["poolId"] == pool)
        {
            return b["ballotId"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no ballot of {pool}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_streamed_exchange_is_gateable_event_102() {
    let (server, _clock) = server_with_clock().await;
    let alice = provision(&server, "stream-gate").await;
    alice.attach_devices(&["vault"]).await;
    let phone = alice.authenticator("phone").await;
    let configured = alice
        .api
        .register_voting_configuration(serde_json::json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1 }))
        .await
        .unwrap();
    alice.ok(&configured.command_id).await;
    let registered = alice
        .api
        .register_policy(serde_json::json!({
            "name": "uploads", "policyTemplateId": "1", "applyingEventIds": ["102"],
            "configuration": { "scope": "profile" }, "votingConfigurationId": "approvers",
        }))
        .await
        .unwrap();
    alice.ok(&registered.command_id).await;
    let activated = alice.api.activate_policy("uploads").await.unwrap();
    alice.ok(&activated.command_id).await;
    let bundle = alice
        .api
        .download_device_configuration(&phone)
        .await
        .unwrap();
    let device = server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();

    // An inline exchange (101) is not held by this policy; an upload is.
    alice.store("/streams", &fast_payload(100)).await;
    for (decision, len) in [("yes", 2 << 20), ("no", 1 << 20)] {
        let (token, temporary) = reserve(&alice).await;
        let data = fast_payload(len);
        let accepted = alice
            .api
            .upload_stream(
                &url(&temporary),
                std::io::Cursor::new(data.clone()),
                Some(len as u64),
            )
            .await
            .unwrap();
        let body = held(&alice, &accepted.command_id).await;
        assert_eq!(body["pools"][0]["eventId"], "102");
        let pool = body["pools"][0]["poolId"].as_str().unwrap().to_owned();
        let b = ballot(&device, &pool).await;
        device
            .cast_vote(serde_json::json!({ "ballotId": b, "decision": decision }))
            .await
            .unwrap();
        let outcome = alice.outcome(&accepted.command_id).await;
        if decision == "yes" {
            assert_eq!(outcome.result().unwrap()["version"], 1);
            assert!(alice.fetch(&token).await == data);
        } else {
            assert_eq!(
                outcome,
                privicore_client::CommandOutcome::Failed("voting.rejected".into())
            );
            let listed = alice
                .api
                .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
                .await
                .unwrap();
            assert_eq!(listed["items"][0]["status"], "reserved");
        }
    }
}
