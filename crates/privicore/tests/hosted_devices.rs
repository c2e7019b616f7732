//! Hosted storage devices when things go wrong: a device whose data directory vanished.

mod common;

use common::*;
use privicore::hosting::REFUSED_FIRST;
use privicore_client::{Client, Session};
use privicore_domain::device::DeviceId;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The storage listing's entry for `device`.
async fn listed(api: &Client, device: &str) -> Value {
    let list = api.list_storage_devices("").await.unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceIdentifier"] == device)
        .cloned()
        .unwrap_or_else(|| panic!("{device} is listed: {list}"))
}

/// Polls the listing until `check` holds for `device`.
async fn wait_listed(api: &Client, device: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let entry = listed(api, device).await;
        if check(&entry) {
            return entry;
        }
        assert!(Instant::now() < deadline, "never reached: {entry}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_device_whose_directory_vanished_is_offline_with_missing_replicas_and_backs_off() {
    let mut server = TestServer::start().await;
    let alice = provision(&server, "vanished").await;
    let ids = alice.attach_devices(&["a", "b", "c"]).await;
    let payload = random_payload(3000);
    let token = alice.store("/vanished", &payload).await;
    alice.wait_confirmed(&token, 3).await;

    server.stop().await;
    std::fs::remove_dir_all(server.device_dir(&ids[0])).unwrap();
    server.restart().await;

    let api = server.client().with_token(&alice.token);
    // It came back with a new key: refused, offline, and what it confirmed is missing.
    let gone = wait_listed(&api, &ids[0], |d| d["replicas"]["missing"] == 1).await;
    assert_eq!(gone["online"], false, "{gone}");
    assert_eq!(gone["replicas"]["confirmed"], 0, "{gone}");
    for other in &ids[1..] {
        let entry = wait_listed(&api, other, |d| d["online"] == true).await;
        assert_eq!(entry["replicas"]["confirmed"], 1, "{entry}");
    }
    // Its next attempt waits (the schedule itself is unit-tested in `hosting::reconnect`).
    let host = server.running().host().expect("devices are hosted");
    let id: DeviceId = ids[0].parse().unwrap();
    let deadline = Instant::now() + WAIT;
    let state = loop {
        match host.state(id) {
            Some(state) if state.refusals > 0 => break state,
            _ => assert!(Instant::now() < deadline, "never refused"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(state.refusals, 1);
    assert!(state.retry_in >= Some(REFUSED_FIRST), "{state:?}");
    assert_eq!(listed(&api, &ids[0]).await["online"], false);

    // The other copies still serve the token.
    let session = Session::connect(&server.ws_url()).await.unwrap();
    session.join(&alice.token).await.unwrap();
    assert_eq!(api.fetch_payload(&session, &token).await.unwrap(), payload);

    // Reissuing the bundle clears the pinned key: the device is let in at once (no wait
    // for its back-off), and a synchronization gives it its copy again.
    api.download_device_configuration(&ids[0]).await.unwrap();
    wait_listed(&api, &ids[0], |d| d["online"] == true).await;
    let sync = api.sync_device(&ids[0], false).await.unwrap();
    let result = acked(&session, &sync.command_id).await;
    assert_eq!(result["objectsPushed"], 1, "{result}");
    let back = wait_listed(&api, &ids[0], |d| d["replicas"]["confirmed"] == 1).await;
    assert_eq!(back["replicas"]["missing"], 0, "{back}");
}
