//! An upload cut off by `kill -9` of the real binary: its token was left `exchanging`
//! without a command (an upload's command is recorded only once its body is complete), and
//! the next start hands the reservation back, so a new upload can follow.

mod common;
mod engine_process;

use common::*;
use engine_process::*;
use privicore_client::Client;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn spool_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| entries.count())
}

async fn status(api: &Client, token: &str) -> serde_json::Value {
    api.list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap()["items"][0]["status"]
        .clone()
}

#[tokio::test]
async fn an_upload_cut_off_by_kill_9_is_handed_back_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = start(&data_dir, Some(ROOT_KEY));
    let p = provision_at(&first.api, &first.ws, "stream-kill9").await;
    p.attach_devices(&["vault"]).await;
    let reserved = p.api.reserve_token_space("/crash", None).await.unwrap();
    let token = p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = p
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    let url = temporary["streamUrl"].as_str().unwrap();
    let (base, path) = url.split_at(url.find("/?").unwrap());
    let mut socket = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        4 << 20
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&random_payload(1 << 20)).await.unwrap();
    let deadline = Instant::now() + WAIT;
    while status(&p.api, &token).await != "exchanging" {
        assert!(Instant::now() < deadline, "the upload did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // On the embedded store the first chunk is in the upload's spool file, which no row
    // names yet (PostgreSQL keeps spooled chunks in the database).
    let files = !common::on_postgres();
    let spool = data_dir.join("privicore.db.spool");
    while files && spool_files(&spool) == 0 {
        assert!(Instant::now() < deadline, "nothing was spooled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = first.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    drop(first);
    drop(socket);

    let second = start(&data_dir, Some(ROOT_KEY));
    let api = Client::new(&second.api).with_token(&p.token);
    assert_eq!(status(&api, &token).await, "reserved");
    if files {
        assert_eq!(
            spool_files(&spool),
            0,
            "the cut-off upload's file is removed"
        );
    }
    let fresh = api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    assert_ne!(fresh["stream"], temporary["stream"]);
    // The fresh value takes a whole upload on the new listener.
    let session = privicore_client::Session::connect(&second.ws)
        .await
        .unwrap();
    session.join(&p.token).await.unwrap();
    let data = random_payload(3 << 20);
    let accepted = api
        .upload_stream(
            fresh["streamUrl"].as_str().unwrap(),
            std::io::Cursor::new(data.clone()),
            Some(data.len() as u64),
        )
        .await
        .unwrap();
    let result = acked(&session, &accepted.command_id).await;
    assert_eq!(result["storedSize"], data.len() as u64);
    assert_eq!(api.fetch_payload(&session, &token).await.unwrap(), data);
}

/// §3.10 shape B with `stream: true`; the command id and the upload URL's path and query.
async fn streamed_update(api: &Client, token: &str, file_name: &str) -> (String, String) {
    let res = api
        .post_json(
            "/data-token/update-data-token",
            serde_json::json!({ "dataToken": token, "stream": true,
                                "meta": { "file": { "fileName": file_name } } }),
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202, "{}", res.json());
    let body = res.json();
    let url = body["streamUrl"].as_str().unwrap();
    (
        body["commandId"].as_str().unwrap().to_owned(),
        url[url.find("/?").unwrap()..].to_owned(),
    )
}

/// A profile's client and socket on the engine as it runs now.
async fn reconnect(server: &TestServer, token: &str) -> (Client, privicore_client::Session) {
    let api = server.client().with_token(token);
    let session = server.session().await;
    session.join(token).await.unwrap();
    (api, session)
}

fn upstream(server: &TestServer) -> Client {
    Client::new(&format!("http://{}", server.running().upstream_addr))
}

#[tokio::test]
async fn a_streamed_replacement_waiting_for_its_upload_survives_a_restart() {
    let clock = std::sync::Arc::new(privicore_domain::time::ManualClock::new(
        privicore_domain::Timestamp::now(),
    ));
    let with_clock = |clock: &std::sync::Arc<privicore_domain::time::ManualClock>| {
        let clock = clock.clone();
        move |s: &mut privicore::config::Settings| s.clock = Some(clock)
    };
    let mut server = TestServer::start_with(with_clock(&clock)).await;
    let p = provision(&server, "replace-restart").await;
    p.attach_devices(&["vault"]).await;
    let first = random_payload(100_000);
    let (kept, late, lapsed) = (
        p.store("/kept", &first).await,
        p.store("/late", &first).await,
        p.store("/lapsed", &first).await,
    );
    let (kept_id, kept_path) = streamed_update(&p.api, &kept, "v2.bin").await;
    let (late_id, late_path) = streamed_update(&p.api, &late, "late.bin").await;
    assert!(matches!(
        p.api.request_status(&kept_id).await.unwrap(),
        privicore_client::RequestStatus::Started
    ));

    server.restart_with(with_clock(&clock)).await;
    let (api, session) = reconnect(&server, &p.token).await;
    // Still one replacement at a time.
    let err = api
        .update_data_token(serde_json::json!({ "dataToken": kept, "stream": true }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("data_token.update_in_progress"));
    // The same value opens the new listener; the upload's 202 names the update command.
    let second = random_payload((2 << 20) + 5);
    let accepted = api
        .upload_stream(
            &format!("http://{}{kept_path}", server.running().upstream_addr),
            std::io::Cursor::new(second.clone()),
            Some(second.len() as u64),
        )
        .await
        .unwrap();
    assert_eq!(accepted.command_id, kept_id);
    let result = acked(&session, &kept_id).await;
    assert_eq!(result["version"], 2);
    assert_eq!(api.fetch_payload(&session, &kept).await.unwrap(), second);
    let listed = api
        .list_data_tokens(&format!("?filters[token]={kept}"))
        .await
        .unwrap();
    assert_eq!(
        listed["items"][0]["meta"]["file"]["fileName"], "v2.bin",
        "{listed}"
    );

    // A restored one still ends at its deadline.
    clock.advance(15 * 60 + 1);
    let outcome = session.wait_command(&late_id, WAIT).await.unwrap();
    assert_eq!(
        outcome,
        privicore_client::CommandOutcome::Failed("stream.not_started".into())
    );
    let res = upstream(&server)
        .send(
            reqwest::Method::POST,
            &late_path,
            privicore_client::Body::Raw {
                content_type: "application/octet-stream",
                bytes: random_payload(100),
            },
        )
        .await
        .unwrap();
    assert_eq!(res.error_code().as_deref(), Some("stream.invalid_auth"));

    // One whose deadline passes while the engine is down fails when it starts again.
    let (lapsed_id, _) = streamed_update(&api, &lapsed, "lapsed.bin").await;
    server.stop().await;
    clock.advance(15 * 60 + 1);
    server.restart_with(with_clock(&clock)).await;
    let (api, session) = reconnect(&server, &p.token).await;
    assert_eq!(
        api.poll_command(&lapsed_id, WAIT).await.unwrap(),
        privicore_client::RequestStatus::Failed("stream.not_started".into())
    );
    for token in [&late, &lapsed] {
        assert_eq!(api.fetch_payload(&session, token).await.unwrap(), first);
    }
}
