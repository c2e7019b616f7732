//! The failure keys of storage and devices: a write without quorum, replacements and
//! deletions racing an unfinished write, no authenticating copy, offline devices, the
//! device limit, hellos the device bus refuses, and synchronizations that overlap or stall.

mod common;

use common::*;
use privicore_client::{ClientError, CommandOutcome, KeyPair};
use privicore_storage_device::{Link, connect_websocket};
use privicore_wire::bus::{self, Envelope, kind};
use serde_json::json;

fn conflict(error: ClientError, code: &str) {
    assert_eq!(
        (error.status(), error.code()),
        (Some(409), Some(code)),
        "{error}"
    );
}

/// Devices run as processes (none is started here), and writes give up after 2 s.
async fn engine_without_hosted_devices() -> TestServer {
    TestServer::start_with(|s| {
        s.storage.host_devices = false;
        s.storage.commit_timeout_seconds = 2;
    })
    .await
}

#[tokio::test]
async fn a_write_without_quorum_fails_and_the_token_is_busy_until_then() {
    let server = engine_without_hosted_devices().await;
    let alice = provision(&server, "no-quorum").await;
    alice.attach_devices(&["never-started"]).await;
    let reserved = alice.api.reserve_token_space("/q", None).await.unwrap();
    let token = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    let exchanged = alice
        .api
        .exchange_data(&token, &random_payload(64))
        .await
        .unwrap();

    // While the exchange waits for its quorum, the token can be neither deleted nor replaced.
    conflict(
        alice.api.delete_data(&token).await.unwrap_err(),
        "data_token.busy",
    );
    let replace = json!({ "dataToken": token, "data": b64(&random_payload(64)) });
    conflict(
        alice.api.update_data_token(replace).await.unwrap_err(),
        "data_token.not_active",
    );

    assert_eq!(
        alice.outcome(&exchanged.command_id).await,
        CommandOutcome::Failed("storage.write_failed".into())
    );
    let after = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    assert_eq!(
        after["token"], token,
        "back to reserved, ready for another try"
    );
}

#[tokio::test]
async fn a_second_replacement_waits_for_the_first() {
    let server = engine_without_hosted_devices().await;
    let alice = provision(&server, "replace-race").await;
    let device = onboard_external(&alice.api, &alice.session, server.dir.path(), "proc").await;
    let registered = alice.api.register_storage(&device.id).await.unwrap();
    alice.ok(&registered.command_id).await;
    let mut process = device_process(&device.bundle, &device.data_dir);
    wait_online(&alice.api, 1).await;
    let original = random_payload(200);
    let token = alice.store("/r", &original).await;
    process.kill().unwrap();
    process.wait().unwrap();
    wait_offline(&alice.api, 1).await;

    let first = alice
        .api
        .update_data_token(json!({ "dataToken": token, "data": b64(&random_payload(200)) }))
        .await
        .unwrap();
    conflict(
        alice
            .api
            .update_data_token(json!({ "dataToken": token, "data": b64(&random_payload(200)) }))
            .await
            .unwrap_err(),
        "data_token.update_in_progress",
    );
    conflict(
        alice.api.delete_data(&token).await.unwrap_err(),
        "data_token.busy",
    );
    assert_eq!(
        alice.outcome(&first.command_id).await,
        CommandOutcome::Failed("storage.write_failed".into())
    );

    // The failed replacement left version 1 current.
    let mut process = device_process(&device.bundle, &device.data_dir);
    wait_online(&alice.api, 1).await;
    assert_eq!(alice.fetch(&token).await, original);
    process.kill().unwrap();
    process.wait().unwrap();
}

#[tokio::test]
async fn no_authenticating_copy_is_data_unavailable() {
    let server = TestServer::start().await;
    let alice = provision(&server, "all-damaged").await;
    let devices = alice.attach_devices(&["a", "b", "c"]).await;
    let token = alice.store("/d", &random_payload(500)).await;
    alice.wait_confirmed(&token, 3).await;
    for device in &devices {
        damage_on_device(&server.device_dir(device), &token);
    }
    let request = alice.api.request_data(&token).await.unwrap();
    assert_eq!(
        alice.outcome(&request.command_id).await,
        CommandOutcome::Failed("storage.data_unavailable".into())
    );
    let storage = alice.api.list_storage_devices("").await.unwrap();
    for item in storage["items"].as_array().unwrap() {
        assert_eq!(item["replicas"]["missing"], 1, "{storage}");
    }
}

#[tokio::test]
async fn synchronizing_an_offline_device_fails() {
    let server = engine_without_hosted_devices().await;
    let alice = provision(&server, "sync-offline").await;
    let devices = alice.attach_devices(&["asleep"]).await;
    let sync = alice.api.sync_device(&devices[0], false).await.unwrap();
    assert_eq!(
        alice.outcome(&sync.command_id).await,
        CommandOutcome::Failed("storage.device_offline".into())
    );
}

#[tokio::test]
async fn the_device_limit_counts_devices_not_removed() {
    let server = TestServer::start_with(|s| s.devices.per_profile = 2).await;
    let alice = provision(&server, "limit").await;
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let requested = alice.api.request_device(name).await.unwrap();
        let device = alice.ok(&requested.command_id).await;
        ids.push(device["deviceIdentifier"].as_str().unwrap().to_owned());
    }
    let third = alice.api.request_device("three").await.unwrap();
    assert_eq!(
        alice.outcome(&third.command_id).await,
        CommandOutcome::Failed("device.limit_reached".into())
    );
    let removed = alice.api.remove_device(&ids[0], false).await.unwrap();
    alice.ok(&removed.command_id).await;
    let again = alice.api.request_device("three").await.unwrap();
    alice.ok(&again.command_id).await;
}

fn hello(device: &str, public_key: &str) -> Envelope {
    Envelope::new(
        kind::HELLO,
        device,
        None,
        bus::Hello {
            public_key: public_key.to_owned(),
            software: bus::Software {
                name: "failures-test".into(),
                version: "1".into(),
            },
            roles: vec!["storage".into()],
            capacity: bus::Capacity {
                bytes_used: 0,
                bytes_free: 1 << 30,
            },
            object_count: 0,
        },
    )
}

async fn bus_link(bundle: &privicore_storage_device::Bundle) -> impl Link + use<> {
    connect_websocket(
        &bundle.embedded_bus_url(),
        &bundle.rabbit_user,
        &bundle.rabbit_pass,
    )
    .await
    .unwrap()
}

/// The next message from the engine other than a bus acknowledgement.
async fn next_message(link: &mut impl Link) -> Envelope {
    loop {
        let env = tokio::time::timeout(WAIT, link.recv())
            .await
            .expect("the engine answers")
            .expect("the link stays open");
        if env.kind != kind::ACK {
            return env;
        }
    }
}

/// The engine's answer to one message on a fresh bus connection.
async fn answer_to(bundle: &privicore_storage_device::Bundle, message: Envelope) -> Envelope {
    let mut link = bus_link(bundle).await;
    link.send(message).await.unwrap();
    next_message(&mut link).await
}

fn bundle_of(device: &External) -> privicore_storage_device::Bundle {
    privicore_storage_device::Bundle::from_json(&std::fs::read_to_string(&device.bundle).unwrap())
        .unwrap()
}

fn rejection(env: &Envelope) -> String {
    assert_eq!(env.kind, kind::REJECTED, "{}", env.to_text());
    env.body::<bus::Reason>().unwrap().reason
}

#[tokio::test]
async fn the_device_bus_refuses_bad_credentials_versions_and_keys() {
    let server = engine_without_hosted_devices().await;
    let alice = provision(&server, "bus-refusals").await;
    let device = onboard_external(&alice.api, &alice.session, server.dir.path(), "bus").await;
    let bundle = bundle_of(&device);

    let wrong_secret = reqwest::Client::new()
        .get(format!("{}/device-bus", server.running().api_url()))
        .basic_auth(&bundle.rabbit_user, Some("not-the-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 401);
    let body: serde_json::Value = wrong_secret.json().await.unwrap();
    assert_eq!(body["error"]["code"], "device.invalid_credentials");
    assert!(
        connect_websocket(&bundle.embedded_bus_url(), &bundle.rabbit_user, "nope")
            .await
            .is_err()
    );

    let pinned = KeyPair::generate().public().to_hex();
    let mut future_version = hello(&device.id, &pinned);
    future_version.v = bus::PROTOCOL_VERSION + 1;
    assert_eq!(
        rejection(&answer_to(&bundle, future_version).await),
        "bus.unsupported_version"
    );

    let welcome = answer_to(&bundle, hello(&device.id, &pinned)).await;
    assert_eq!(welcome.kind, kind::WELCOME, "{}", welcome.to_text());
    let other = KeyPair::generate().public().to_hex();
    assert_eq!(
        rejection(&answer_to(&bundle, hello(&device.id, &other)).await),
        "device.public_key_mismatch"
    );
}

/// A device that says hello and then never answers: a second sync is refused while the
/// first waits for inventory pages, and the first is interrupted after three misses.
#[tokio::test]
async fn a_sync_runs_alone_and_a_silent_device_interrupts_it() {
    let server = TestServer::start_with(|s| {
        s.storage.host_devices = false;
        s.storage.inventory_page_timeout_seconds = 1;
    })
    .await;
    let alice = provision(&server, "silent-sync").await;
    let device = onboard_external(&alice.api, &alice.session, server.dir.path(), "mute").await;
    let registered = alice.api.register_storage(&device.id).await.unwrap();
    alice.ok(&registered.command_id).await;
    let mut link = bus_link(&bundle_of(&device)).await;
    let key = KeyPair::generate().public().to_hex();
    link.send(hello(&device.id, &key)).await.unwrap();
    // Messages queued while it was away (its new storage role) may come first.
    while next_message(&mut link).await.kind != kind::WELCOME {}
    wait_online(&alice.api, 1).await;

    let first = alice.api.sync_device(&device.id, false).await.unwrap();
    while next_message(&mut link).await.kind != kind::INVENTORY_REQUEST {}
    let second = alice.api.sync_device(&device.id, false).await.unwrap();
    assert_eq!(
        alice.outcome(&second.command_id).await,
        CommandOutcome::Failed("storage.sync_in_progress".into())
    );
    assert_eq!(
        alice.outcome(&first.command_id).await,
        CommandOutcome::Failed("storage.sync_interrupted".into())
    );
    let storage = alice.api.list_storage_devices("").await.unwrap();
    assert_eq!(
        storage["items"][0]["lastSync"]["status"], "failed",
        "{storage}"
    );
}
