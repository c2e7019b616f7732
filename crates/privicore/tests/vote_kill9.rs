//! A gated command across `kill -9` of the real binary mid-vote: the engine comes back
//! with the same pool, the same deadline and the vote already cast; the last vote then
//! runs the held exchange and its data reads back.

mod common;
mod engine_process;

use common::*;
use engine_process::*;
use privicore_client::{Client, RequestStatus, Session};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A client speaking with the device's bundle credentials.
async fn device_client(api_url: &str, owner: &Client, device: &str) -> Client {
    let bundle = owner.download_device_configuration(device).await.unwrap();
    Client::new(api_url)
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap()
}

/// The device's open ballot of `pool` (bounded polling).
async fn ballot(device: &Client, pool: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
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
        assert!(Instant::now() < deadline, "no ballot of {pool}: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn vote_yes(device: &Client, ballot: &str) -> Value {
    device
        .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
        .await
        .unwrap()
}

/// The first `command_status: 1` body of `command` on the socket (bounded polling).
async fn held(session: &Session, command: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(e) = session
            .events_for(command)
            .into_iter()
            .find(|e| e["command_status"] == 1)
        {
            return e["body"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{command} was not held: {:?}",
            session.events_for(command)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGKILL, no graceful anything; waits for the process to be gone.
fn kill9(mut engine: Engine) {
    let status = std::process::Command::new("kill")
        .args(["-9", &engine.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = engine.child.wait().unwrap();
    assert!(!exit.success(), "killed, not exited: {exit:?}");
}

#[tokio::test]
async fn a_held_exchange_survives_kill_9_mid_vote_with_its_deadline_and_first_vote() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = start(&data_dir, Some(ROOT_KEY));
    let p = provision_at(&first.api, &first.ws, "vote-kill9").await;
    p.attach_devices(&["vault"]).await;
    let a = p.authenticator("phone-a").await;
    let b = p.authenticator("phone-b").await;
    let accepted = p
        .api
        .register_voting_configuration(json!({
            "name": "both", "strategy": "unanimous", "timeLimit": 600,
            "numberOfAttempts": 1, "quorumSize": 2
        }))
        .await
        .unwrap();
    p.ok(&accepted.command_id).await;
    let registered = p
        .api
        .register_policy(json!({
            "name": "exchange-approval", "policyTemplateId": "1", "applyingEventIds": ["101"],
            "configuration": { "scope": "profile" }, "votingConfigurationId": "both",
        }))
        .await
        .unwrap();
    p.ok(&registered.command_id).await;
    let activated = p.api.activate_policy("exchange-approval").await.unwrap();
    p.ok(&activated.command_id).await;

    // Reserve and exchange: held for the vote.
    let reserved = p
        .api
        .reserve_token_space("/finance/2026", None)
        .await
        .unwrap();
    let token = p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = random_payload(77);
    let exchanged = p.api.exchange_data(&token, &data).await.unwrap();
    let body = held(&p.session, &exchanged.command_id).await;
    assert_eq!(body["state"], "awaiting_vote", "{body}");
    assert_eq!(body["pools"][0]["outstanding"], 2, "{body}");
    let pool = body["pools"][0]["poolId"].as_str().unwrap().to_owned();

    // The first authenticator votes yes; the pool stays open.
    let device_a = device_client(&first.api, &p.api, &a).await;
    let ballot_a = ballot(&device_a, &pool).await;
    assert_eq!(vote_yes(&device_a, &ballot_a).await["poolStatus"], "open");
    let before = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(before["status"], "open", "{before}");
    assert_eq!(before["attempts"][0]["yes"], 1, "{before}");
    let deadline = before["attempts"][0]["deadline"].clone();
    assert!(deadline.is_string(), "{before}");
    assert_eq!(
        p.api.request_status(&exchanged.command_id).await.unwrap(),
        RequestStatus::Started
    );

    // kill -9 mid-vote, then start again on the same data directory.
    let token_auth = p.token.clone();
    drop(p.session);
    kill9(first);
    let second = start(&data_dir, Some(ROOT_KEY));
    let api = Client::new(&second.api).with_token(&token_auth);
    let session = Session::connect(&second.ws).await.unwrap();
    session.join(&token_auth).await.unwrap();

    let after = api.check_pool_status(&pool).await.unwrap();
    assert_eq!(after["status"], "open", "{after}");
    assert_eq!(after["attempts"][0]["deadline"], deadline, "{after}");
    assert_eq!(after["attempts"][0]["yes"], 1, "first vote kept: {after}");
    assert_eq!(
        api.request_status(&exchanged.command_id).await.unwrap(),
        RequestStatus::Started,
        "still held"
    );

    // The second authenticator approves: the exchange runs.
    wait_online(&api, 1).await;
    let device_b = device_client(&second.api, &api, &b).await;
    let ballot_b = ballot(&device_b, &pool).await;
    assert_eq!(
        vote_yes(&device_b, &ballot_b).await["poolStatus"],
        "approved"
    );
    // The final event on the socket, or request-status: whichever tells first.
    let wait_until = Instant::now() + WAIT;
    let outcome = loop {
        if let Some(e) = session
            .events_for(&exchanged.command_id)
            .into_iter()
            .find(|e| e["command_status"] == 2 || e["command_status"] == 3)
        {
            break e;
        }
        match api.request_status(&exchanged.command_id).await.unwrap() {
            RequestStatus::Started => {}
            other => break json!({ "requestStatus": format!("{other:?}") }),
        }
        assert!(Instant::now() < wait_until, "the exchange did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    match api.request_status(&exchanged.command_id).await.unwrap() {
        RequestStatus::Succeeded(_) => {}
        other => panic!("approved exchange did not succeed: {other:?} ({outcome})"),
    }
    assert_eq!(
        api.fetch_payload(&session, &token).await.unwrap(),
        data,
        "the original bytes"
    );
    let status = api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["status"], "approved", "{status}");
    drop(session);
    terminate(second);
}
