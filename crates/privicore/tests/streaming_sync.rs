//! Synchronize device with objects of several chunks (docs/api/devices-and-storage.md §5.4):
//! a device that joined after an upload, or holds a damaged copy, gets the version a chunk
//! at a time from another replica, and can then serve it alone.

mod common;

use common::*;
use serde_json::Value;

/// Uploads `data` through the upstream listener to a fresh reservation; the token.
async fn upload(p: &Provisioned, data: &[u8]) -> String {
    let reserved = p.api.reserve_token_space("/sync", None).await.unwrap();
    let token = p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = p
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    let accepted = p
        .api
        .upload_stream(
            temporary["streamUrl"].as_str().unwrap(),
            std::io::Cursor::new(data.to_vec()),
            Some(data.len() as u64),
        )
        .await
        .unwrap();
    let result = p.ok(&accepted.command_id).await;
    assert_eq!(result["storedSize"], data.len() as u64);
    token
}

/// Synchronizes `device`; the result, which must be a success.
async fn sync(p: &Provisioned, device: &str, verify: bool) -> Value {
    let accepted = p.api.sync_device(device, verify).await.unwrap();
    p.ok(&accepted.command_id).await
}

/// Requests the token's data (a stream delivery) and downloads it.
async fn download(p: &Provisioned, token: &str) -> Vec<u8> {
    let request = p.api.request_data(token).await.unwrap();
    let result = p.ok(&request.command_id).await;
    assert_eq!(result["outputType"], 1);
    let events = p.session.events_for(&request.request_id);
    let url = events[0]["body"].as_str().unwrap();
    let mut out = Vec::new();
    p.api.download_stream(url, &mut out).await.unwrap();
    out
}

#[tokio::test]
async fn a_large_object_reaches_a_later_device_through_sync_and_is_served_by_it_alone() {
    let server = TestServer::start().await;
    let alice = provision(&server, "sync-large").await;
    let first = alice.attach_devices(&["a"]).await.remove(0);
    // Five chunks and a bit; the spool copy goes with the only target's confirmation, so
    // the later device can only get it from the first one.
    let data = random_payload((5 << 20) + 321);
    let token = upload(&alice, &data).await;
    alice.wait_confirmed(&token, 1).await;

    let second = alice.attach_devices(&["b"]).await.remove(0);
    assert!(!held_on_device(&server.device_dir(&second), &token));
    let result = sync(&alice, &second, false).await;
    assert_eq!(result["objectsChecked"], 1, "{result}");
    assert_eq!(result["objectsPushed"], 1, "{result}");
    assert_eq!(result["objectsUnavailable"], 0, "{result}");
    assert!(result["bytesPushed"].as_u64().unwrap() > data.len() as u64);
    assert!(held_on_device(&server.device_dir(&second), &token));
    alice.wait_confirmed(&token, 2).await;

    // A damaged copy found by a verifying sync is replaced the same way.
    damage_on_device(&server.device_dir(&second), &token);
    let result = sync(&alice, &second, true).await;
    assert_eq!(result["objectsRepaired"], 1, "{result}");
    assert_eq!(result["objectsUnavailable"], 0, "{result}");

    // The first device leaves storage: every byte now comes from the second.
    let removed = alice.api.remove_storage(&first, false).await.unwrap();
    alice.ok(&removed.command_id).await;
    let out = download(&alice, &token).await;
    assert_eq!(out.len(), data.len());
    assert!(out == data, "the copy pushed by sync differs");
}
