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
    // The first chunk is in the upload's spool file; no row names it yet.
    let spool = data_dir.join("privicore.db.spool");
    while spool_files(&spool) == 0 {
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
    assert_eq!(
        spool_files(&spool),
        0,
        "the cut-off upload's file is removed"
    );
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
