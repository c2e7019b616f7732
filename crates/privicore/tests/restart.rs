//! The real binary, stopped and started again on the same data directory: request-status
//! answers the same outcomes and the CAB key is the same key.

mod common;
mod engine_process;

use common::*;
use engine_process::Engine;
use privicore_client::{Client, RequestStatus};
use std::path::Path;
use std::time::{Duration, Instant};

fn start_binary(data_dir: &Path) -> Engine {
    start_binary_with(data_dir, &[])
}

fn start_binary_with(data_dir: &Path, extra: &[&str]) -> Engine {
    engine_process::start_with(data_dir, None, extra)
}

fn terminate(engine: Engine) {
    let exit = engine_process::terminate(engine);
    assert!(exit.success(), "graceful shutdown exits cleanly: {exit:?}");
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
    let key_result = acked(&session, &key_cmd.command_id).await;
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

fn kill_hard(mut engine: Engine) {
    engine.child.kill().unwrap();
    engine.child.wait().unwrap();
}

/// Flow 1 against a running binary: a profile with a joined socket and a key.
async fn profile_on(engine: &Engine, prefix: &str) -> (Client, privicore_client::Session) {
    let p = provision_at(&engine.api, &engine.ws, prefix).await;
    (p.api, p.session)
}

#[tokio::test]
async fn acknowledged_exchanges_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let first = start_binary(dir.path());
    let (me, session) = profile_on(&first, "kill9").await;
    for name in ["a", "b", "c"] {
        me.attach_storage_device(&session, name).await.unwrap();
    }
    let mut stored = Vec::new();
    for i in 0..60 {
        let data = random_payload(200 + i);
        let (token, result) = me.store_payload(&session, "/durable", &data).await.unwrap();
        assert_eq!(result["version"], 1);
        stored.push((token, data));
    }
    // Right after the last ack: no graceful anything.
    drop(session);
    kill_hard(first);

    let second = start_binary(dir.path());
    let api = Client::new(&second.api).with_token(me.token().unwrap());
    let session = privicore_client::Session::connect(&second.ws)
        .await
        .unwrap();
    session.join(me.token().unwrap()).await.unwrap();
    // Hosted devices reconnect on their own; wait until one is online.
    wait_online(&api, 1).await;
    for (token, data) in &stored {
        assert_eq!(
            &api.fetch_payload(&session, token).await.unwrap(),
            data,
            "{token}"
        );
    }
    terminate(second);
}

#[tokio::test]
async fn a_storage_device_can_run_as_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_binary_with(dir.path(), &["--host-devices", "false"]);
    let (me, session) = profile_on(&engine, "external").await;
    let external = onboard_external(&me, &session, dir.path(), "nas-external").await;
    let id = external.id.clone();
    let device_dir = external.data_dir.clone();
    let mut device_process = device_process(&external.bundle, &device_dir);
    let registered = me.register_storage(&id).await.unwrap();
    acked(&session, &registered.command_id).await;
    wait_online(&me, 1).await;
    let data = random_payload(5000);
    let (token, result) = me
        .store_payload(&session, "/external", &data)
        .await
        .unwrap();
    assert_eq!(result["replicas"]["confirmed"], 1);
    assert_eq!(me.fetch_payload(&session, &token).await.unwrap(), data);
    assert!(held_on_device(&device_dir, &token));
    device_process.kill().unwrap();
    device_process.wait().unwrap();
    terminate(engine);
}

fn cli(config: &Path, args: &[&str]) -> String {
    run_privicore(args, &[("PRIVICORE_CLI_CONFIG", config)])
}

#[tokio::test]
async fn the_cli_stores_and_fetches_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_binary(dir.path());
    let config = dir.path().join("cli").join("profile.json");
    let username = unique_username("cli");
    let created = cli(
        &config,
        &[
            "profile",
            "create",
            "--username",
            &username,
            "--password",
            PASSWORD,
            "--api",
            &engine.api,
            "--ws",
            &engine.ws,
        ],
    );
    assert!(created.contains("created"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the profile file holds secrets");
    }
    let attached = cli(&config, &["devices", "attach", "--count", "3"]);
    assert_eq!(attached.lines().count(), 3);
    let original = dir.path().join("report.txt");
    let content = random_payload(10_000);
    std::fs::write(&original, &content).unwrap();
    let token = cli(&config, &["store", original.to_str().unwrap()])
        .trim()
        .to_owned();
    assert!(token.starts_with("dtk-"), "{token}");
    let copy = dir.path().join("copy.txt");
    cli(&config, &["fetch", &token, "-o", copy.to_str().unwrap()]);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    // The engine only ever saw ciphertext: the plaintext is nowhere in its data directory.
    let probe = &content[100..140];
    let mut stack = vec![dir.path().join("devices"), dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path == original || path == copy {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                // Regular files only: the operator socket lives in `run/`.
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes.windows(probe.len()).any(|w| w == probe),
                    "plaintext in {}",
                    path.display()
                );
            }
        }
    }
    // The stored file carries its metadata.
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let api = Client::new(&engine.api);
    let auth = api
        .authenticate(profile["username"].as_str().unwrap(), PASSWORD)
        .await
        .unwrap();
    let list = api
        .with_token(&auth.authorization_token)
        .list_data_tokens("")
        .await
        .unwrap();
    assert_eq!(list["items"][0]["meta"]["file"]["fileName"], "report.txt");
    assert_eq!(list["items"][0]["meta"]["file"]["size"], 10_000);
    terminate(engine);
}

/// A device requested, approved and given its bundle file, ready to run as a process.
/// Two device processes; one goes offline while data is stored and deleted, comes back,
/// catches up, and a synchronization confirms it holds exactly what it should.
#[tokio::test]
async fn an_offline_device_catches_up_and_synchronizes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_binary_with(dir.path(), &["--host-devices", "false"]);
    let (me, session) = profile_on(&engine, "offline").await;
    let mut devices = Vec::new();
    for name in ["steady", "flaky"] {
        let external = onboard_external(&me, &session, dir.path(), name).await;
        let registered = me.register_storage(&external.id).await.unwrap();
        acked(&session, &registered.command_id).await;
        devices.push((external.id, external.bundle, external.data_dir));
    }
    let mut steady = device_process(&devices[0].1, &devices[0].2);
    let mut flaky = device_process(&devices[1].1, &devices[1].2);
    wait_online(&me, 2).await;

    let (doomed, _) = me
        .store_payload(&session, "/o", &random_payload(100))
        .await
        .unwrap();
    flaky.kill().unwrap();
    flaky.wait().unwrap();
    // Stored and deleted while the flaky device is away.
    let mut kept = Vec::new();
    for _ in 0..3 {
        let data = random_payload(300);
        let (token, result) = me.store_payload(&session, "/o", &data).await.unwrap();
        assert_eq!(result["replicas"]["confirmed"], 1);
        kept.push((token, data));
    }
    let deleted = me.delete_data(&doomed).await.unwrap();
    acked(&session, &deleted.command_id).await;

    let mut flaky = device_process(&devices[1].1, &devices[1].2);
    wait_online(&me, 2).await;
    let sync = me.sync_device(&devices[1].0, true).await.unwrap();
    let result = acked(&session, &sync.command_id).await;
    assert_eq!(result["objectsChecked"], 3, "{result}");
    assert_eq!(result["objectsUnavailable"], 0, "{result}");
    // Whatever the catch-up did not already deliver, the sync pushed; the deleted token is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while held_on_device(&devices[1].2, &doomed) {
        assert!(
            Instant::now() < deadline,
            "the deletion never reached the device"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (token, _) in &kept {
        assert!(
            held_on_device(&devices[1].2, token),
            "{token} missing on the device that was offline"
        );
    }
    // Without the steady device, the one that was offline serves everything.
    steady.kill().unwrap();
    steady.wait().unwrap();
    let removed = me.remove_storage(&devices[0].0, true).await.unwrap();
    acked(&session, &removed.command_id).await;
    for (token, data) in &kept {
        assert_eq!(&me.fetch_payload(&session, token).await.unwrap(), data);
    }
    flaky.kill().unwrap();
    flaky.wait().unwrap();
    terminate(engine);
}
