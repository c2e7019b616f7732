//! Directory helpers (docs/api/directory.md): a directory, a joined member, a managed user,
//! and a device's ballot of a pool.

use super::{PASSWORD, Provisioned, TestServer, WAIT, unique_username};
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use serde_json::json;
use std::sync::Arc;

/// The real server on the engine's manual clock.
pub async fn server_with_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| s.clock = Some(c)).await;
    (server, clock)
}

/// Registers a directory owned by `p`; its id.
pub async fn directory(p: &Provisioned, name: &str) -> String {
    let accepted = p
        .api
        .register_directory(json!({ "name": name, "meta": { "costCenter": "FIN-01" } }))
        .await
        .unwrap();
    let result = p.ok(&accepted.command_id).await;
    assert_eq!(result["directoryId"], accepted.command_id.as_str());
    assert_eq!(result["name"], name);
    accepted.command_id
}

/// Invites `who` (by username) with `role`, and has them accept; the invitation id.
pub async fn join(owner: &Provisioned, dir: &str, who: &Provisioned, role: &str) -> String {
    let accepted = owner
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": who.username, "role": role }))
        .await
        .unwrap();
    owner.ok(&accepted.command_id).await;
    let processed = who
        .api
        .process_invitation(&accepted.command_id, "accept")
        .await
        .unwrap();
    let result = who.ok(&processed.command_id).await;
    assert_eq!(result["status"], "accepted");
    accepted.command_id
}

/// Creates a managed user with a password; its profile id and username.
pub async fn managed(owner: &Provisioned, dir: &str, prefix: &str) -> (String, String) {
    let username = unique_username(prefix);
    let accepted = owner
        .api
        .create_directory_user(json!({
            "directoryId": dir, "username": username, "password": PASSWORD,
            "displayName": "Carol", "email": "carol@acme.example", "attributes": { "team": "payables" },
        }))
        .await
        .unwrap();
    let result = owner.ok(&accepted.command_id).await;
    assert_eq!(result["profileId"], accepted.command_id.as_str());
    assert_eq!(result["kind"], "managed");
    assert_eq!(result["role"], "member");
    assert_eq!(result["passwordSet"], true);
    (accepted.command_id, username)
}

/// The device's open ballot of `pool` (waits for it).
pub async fn ballot_of(device: &privicore_client::Client, pool: &str) -> String {
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
