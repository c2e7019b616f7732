//! The real binary, stopped and started again on the same data directory: request-status
//! answers the same outcomes and the CAB key is the same key.

mod common;

use common::*;
use privicore_client::{Client, RequestStatus};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Engine {
    child: Child,
    api: String,
    ws: String,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // A failed test must not leave the engine running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_binary(data_dir: &Path) -> Engine {
    let endpoints = data_dir.join("run/endpoints.json");
    let _ = std::fs::remove_file(&endpoints);
    let child = Command::new(env!("CARGO_BIN_EXE_privicore"))
        .args([
            "serve",
            "--api-port",
            "0",
            "--ws-port",
            "0",
            "--log-format",
            "json",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .env("PRIVICORE_REGISTRATIONS_PER_HOUR", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the privicore binary starts");
    // Owned at once, so a failed start still stops the process (Drop).
    let mut engine = Engine {
        child,
        api: String::new(),
        ws: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&endpoints) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            engine.api = v["api"].as_str().unwrap().to_owned();
            engine.ws = v["ws"].as_str().unwrap().to_owned();
            return engine;
        }
        assert!(Instant::now() < deadline, "the engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(mut engine: Engine) {
    let status = Command::new("kill")
        .args(["-TERM", &engine.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = engine.child.try_wait().unwrap() {
            assert!(exit.success(), "graceful shutdown exits cleanly: {exit:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn outcomes_and_the_cab_key_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_binary(dir.path());
    let api = Client::new(&first.api);
    let cab_before = api.cab_public_key().await.unwrap();

    let username = unique_username("restart");
    let registered = api.register_profile(&username, PASSWORD).await.unwrap();
    api.poll_command(&registered.command_id, WAIT)
        .await
        .unwrap();
    let taken = api.register_profile(&username, PASSWORD).await.unwrap();
    api.poll_command(&taken.command_id, WAIT).await.unwrap();
    let token = api
        .authenticate(&username, PASSWORD)
        .await
        .unwrap()
        .authorization_token;
    let me = api.with_token(&token);
    let session = privicore_client::Session::connect(&first.ws).await.unwrap();
    session.join(&token).await.unwrap();
    let keys = privicore_client::KeyPair::generate();
    let key_cmd = me
        .register_public_key(&keys.public().to_hex())
        .await
        .unwrap();
    let key_result = session
        .wait_command(&key_cmd.command_id, WAIT)
        .await
        .unwrap()
        .result()
        .unwrap();
    drop(session);
    terminate(first);

    let second = start_binary(dir.path());
    let api = Client::new(&second.api);
    assert_eq!(
        api.cab_public_key().await.unwrap().public_key,
        cab_before.public_key
    );
    assert_eq!(
        api.cab_public_key().await.unwrap().key_id,
        cab_before.key_id
    );
    assert_eq!(
        api.request_status(&registered.command_id).await.unwrap(),
        RequestStatus::Succeeded(None)
    );
    assert_eq!(
        api.request_status(&taken.command_id).await.unwrap(),
        RequestStatus::Failed("profile.username_taken".into())
    );
    let me = api.with_token(&token);
    assert_eq!(
        me.request_status(&key_cmd.command_id).await.unwrap(),
        RequestStatus::Succeeded(Some(key_result))
    );
    assert!(
        me.retrieve_profile_id()
            .await
            .unwrap()
            .public_key_registered,
        "tokens survive too"
    );
    terminate(second);
}
