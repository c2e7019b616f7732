//! A storage device may confirm only replicas it was asked to store for the token's
//! profile: confirmations of another profile's token, or of a token stored before the
//! device joined, change nothing.

mod common;

use common::*;
use privicore_client::Client;
use privicore_wire::bus::{self, kind};
use std::sync::Arc;

/// A storage device of `profile`, played by the test.
async fn raw_storage(server: &TestServer, profile: &Provisioned, name: &str) -> RawDevice {
    let device = onboard_external(&profile.api, &profile.session, server.dir.path(), name).await;
    let registered = profile.api.register_storage(&device.id).await.unwrap();
    profile.ok(&registered.command_id).await;
    RawDevice::connect(&device).await
}

/// The storage listing's replica counts of `device`.
async fn replicas_of(api: &Client, device: &str) -> serde_json::Value {
    let list = api.list_storage_devices("").await.unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceIdentifier"] == device)
        .map(|d| d["replicas"].clone())
        .unwrap_or_else(|| panic!("{device} is listed: {list}"))
}

async fn token_replicas(profile: &Provisioned, token: &str) -> serde_json::Value {
    let list = profile
        .api
        .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap();
    list["items"][0]["replicas"].clone()
}

#[tokio::test]
async fn confirmations_of_objects_a_device_was_not_asked_for_change_nothing() {
    let server = TestServer::start_with(|s| s.storage.host_devices = false).await;
    let alice = Arc::new(provision(&server, "asked").await);
    let bob = provision(&server, "stranger").await;
    let mut mine = raw_storage(&server, &alice, "mine").await;
    let mut strangers = raw_storage(&server, &bob, "strangers").await;

    // Alice stores; only her device is asked.
    let storing = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.store("/asked", &random_payload(64)).await })
    };
    let chunk = mine.next().await;
    assert_eq!(chunk.kind, kind::STORE_CHUNK);
    let chunk: bus::StoreChunk = chunk.into_body().unwrap();

    // Bob's device claims the object (right digest and all) while the exchange waits for
    // its quorum: not counted.
    strangers.claim_stored(&chunk).await;
    strangers.fence().await;
    assert!(
        !storing.is_finished(),
        "a stranger's confirmation met the quorum"
    );
    mine.claim_stored(&chunk).await;
    let token = storing.await.unwrap();
    assert_eq!(token, chunk.token);

    // After the commit, from the store's side.
    strangers.claim_stored(&chunk).await;
    strangers.fence().await;
    // A device of the same profile that joined after the token was stored.
    let mut late = raw_storage(&server, &alice, "late").await;
    late.claim_stored(&chunk).await;
    late.fence().await;

    let replicas = token_replicas(&alice, &token).await;
    assert_eq!(replicas["confirmed"], 1, "{replicas}");
    assert_eq!(replicas["pending"], 0, "{replicas}");
    assert_eq!(replicas_of(&bob.api, &strangers.id).await["confirmed"], 0);
    assert_eq!(replicas_of(&alice.api, &late.id).await["confirmed"], 0);
    assert_eq!(replicas_of(&alice.api, &mine.id).await["confirmed"], 1);
}
