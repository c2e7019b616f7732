//! Pools and votes through `privicore-client` against the real server
//! (docs/api/voting-and-policy.md §6): manual votes, device HTTP endpoints, their error keys,
//! deadlines on the engine clock, cross-profile isolation.

mod common;

use common::*;
use privicore_client::{Client, CommandOutcome};
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn server_with_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| s.clock = Some(c)).await;
    (server, clock)
}

/// A client speaking with the device's bundle credentials.
async fn device_client(server: &TestServer, p: &Provisioned, device: &str) -> Client {
    let bundle = p.api.download_device_configuration(device).await.unwrap();
    server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap()
}

async fn configuration(p: &Provisioned, name: &str, time_limit: i64) {
    let accepted = p
        .api
        .register_voting_configuration(json!({
            "name": name, "strategy": "unanimous", "timeLimit": time_limit,
        }))
        .await
        .unwrap();
    p.ok(&accepted.command_id).await;
}

async fn pending(device: &Client) -> Vec<Value> {
    for _ in 0..200 {
        let list = device.pending_ballots().await.unwrap();
        let items = list["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no ballot arrived");
}

#[tokio::test]
async fn a_manual_vote_is_cast_over_http_and_every_refusal_has_its_key() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "vote-http").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, "approvers", 300).await;
    let (command, pool) = p
        .api
        .create_voting(json!({
            "votingConfigurationId": "approvers",
            "title": "Hire?",
            "question": "Hire Bob as accountant?",
            "nonce": "HR-1182",
        }))
        .await
        .unwrap();
    assert_eq!(command, pool);
    let device = device_client(&server, &p, &phone).await;
    let ballots = pending(&device).await;
    assert_eq!(ballots.len(), 1);
    let ballot = ballots[0]["ballotId"].as_str().unwrap().to_owned();
    assert_eq!(ballots[0]["poolId"], pool.as_str());
    assert_eq!(ballots[0]["title"], "Hire?");
    assert_eq!(ballots[0]["origin"], "manual");

    // The pool shows one open attempt with one outstanding ballot.
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["status"], "open");
    assert_eq!(status["attempts"][0]["outstanding"], 1);
    assert_eq!(status["nonce"], "HR-1182");

    // Refusals, each with its key.
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": ballot, "decision": "maybe" }))
                .await
        ),
        (422, "ballot.invalid_decision".into())
    );
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": ballot, "decision": "yes", "mac": "Zm9yZ2Vk", "votedAt": "2026-02-21T16:08:12+00:00" }))
                .await
        ),
        (422, "ballot.invalid_mac".into())
    );
    assert_eq!(
        api_code(
            device
                .cast_vote(
                    json!({ "ballotId": "bf669ea1-d56d-4a54-9ca5-3ae6af2b4b4c", "decision": "yes" })
                )
                .await
        ),
        (404, "ballot.not_found".into())
    );
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": "not-a-uuid", "decision": "yes" }))
                .await
        ),
        (404, "ballot.not_found".into())
    );
    let stranger = server
        .client()
        .with_device_credentials("oauth-nobody", "nothing")
        .unwrap();
    assert_eq!(
        api_code(stranger.pending_ballots().await),
        (401, "device.invalid_credentials".into())
    );
    assert_eq!(
        api_code(server.client().pending_ballots().await),
        (401, "device.invalid_credentials".into())
    );

    // Another profile's authenticator can neither see nor answer the ballot, nor read the
    // pool.
    let other = provision(&server, "vote-other").await;
    let foreign = other.authenticator("foreign").await;
    let foreign_device = device_client(&server, &other, &foreign).await;
    assert!(
        foreign_device.pending_ballots().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api_code(
            foreign_device
                .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
                .await
        ),
        (404, "ballot.not_found".into())
    );
    assert_eq!(
        api_code(other.api.check_pool_status(&pool).await),
        (404, "voting.pool_not_found".into())
    );
    assert_eq!(
        api_code(p.api.check_pool_status("not-a-pool").await),
        (404, "voting.pool_not_found".into())
    );

    // The vote: one yes of one voter approves at once.
    let voted = device
        .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "approved");
    assert_eq!(voted["attempt"], 1);
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": ballot, "decision": "no" }))
                .await
        ),
        (409, "ballot.already_voted".into())
    );
    let result = p.ok(&command).await;
    assert_eq!(result["status"], "approved");
    assert_eq!(result["yes"], 1);
    assert_eq!(result["nonce"], "HR-1182");
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["status"], "approved");
    assert_eq!(status["attempts"][0]["votes"][0]["decision"], "yes");
    assert_eq!(
        status["attempts"][0]["votes"][0]["deviceIdentifier"],
        phone.as_str()
    );
    assert!(
        device.pending_ballots().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn create_voting_validates_its_input() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "vote-input").await;
    p.authenticator("phone").await;
    configuration(&p, "approvers", 300).await;
    let base = |title: &str, question: &str| json!({ "votingConfigurationId": "approvers", "title": title, "question": question });
    assert_eq!(
        api_code(p.api.create_voting(base("", "q")).await),
        (422, "validation.missing_field".into())
    );
    assert_eq!(
        api_code(p.api.create_voting(base("   ", "q")).await),
        (422, "voting.invalid_title".into())
    );
    assert_eq!(
        api_code(p.api.create_voting(base(&"t".repeat(121), "q")).await),
        (422, "voting.invalid_title".into())
    );
    assert_eq!(
        api_code(p.api.create_voting(base("t", &"q".repeat(2001))).await),
        (422, "voting.invalid_question".into())
    );
    assert_eq!(
        api_code(
            p.api
                .create_voting(
                    json!({ "votingConfigurationId": "nope", "title": "t", "question": "q" })
                )
                .await
        ),
        (404, "voting_configuration.not_found".into())
    );
    assert_eq!(
        api_code(
            p.api
                .create_voting(json!({ "title": "t", "question": "q" }))
                .await
        )
        .0,
        422
    );
}

#[tokio::test]
async fn an_unanswered_vote_expires_at_the_engine_clock_deadline_and_refuses_late_votes() {
    let (server, clock) = server_with_clock().await;
    let p = provision(&server, "vote-expiry").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, "quick", 10).await;
    let (command, pool) = p
        .api
        .create_voting(json!({ "votingConfigurationId": "quick", "title": "t", "question": "q" }))
        .await
        .unwrap();
    let device = device_client(&server, &p, &phone).await;
    let ballot = pending(&device).await[0]["ballotId"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(11);
    let result = p.ok(&command).await;
    assert_eq!(result["status"], "expired");
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
                .await
        ),
        (409, "ballot.closed".into())
    );
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["attempts"][0]["status"], "no_quorum");
    assert_eq!(status["failureKey"], "voting.expired");
}

#[tokio::test]
async fn a_vote_without_voters_fails_with_no_eligible_authenticators() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "vote-none").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, "approvers", 300).await;
    let (command, _) = p
        .api
        .create_voting(json!({
            "votingConfigurationId": "approvers", "title": "t", "question": "q",
            "skipAuthenticatorDevices": [phone],
        }))
        .await
        .unwrap();
    match p
        .session
        .wait_command(&command, common::WAIT)
        .await
        .unwrap()
    {
        CommandOutcome::Failed(key) => assert_eq!(key, "voting.no_eligible_authenticators"),
        CommandOutcome::Succeeded(v) => panic!("succeeded: {v}"),
    }
}

/// A vote is recorded in the audit log in the transaction that counts it: while the log
/// cannot be written, the vote is refused with `audit.unavailable` and not counted, and
/// the device can cast it again once the log is sound.
#[tokio::test]
async fn a_vote_whose_audit_record_cannot_be_written_is_not_counted() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "vote-audit").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, "approvers", 300).await;
    let (command, pool) = p
        .api
        .create_voting(json!({
            "votingConfigurationId": "approvers", "title": "Wire?", "question": "Wire 10k?",
        }))
        .await
        .unwrap();
    let device = device_client(&server, &p, &phone).await;
    let ballot = pending(&device).await[0]["ballotId"]
        .as_str()
        .unwrap()
        .to_owned();

    // The sealed head stops verifying under the engine's key.
    // Statements both stores understand: the MAC is kept aside, then replaced by the
    // head's hash, which is not its MAC.
    let dir = server.dir.path();
    execute_sql(
        dir,
        "CREATE TABLE saved_mac AS SELECT mac FROM audit_head WHERE id = 1",
    )
    .await;
    execute_sql(dir, "UPDATE audit_head SET mac = hash WHERE id = 1").await;
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
                .await
        ),
        (503, "audit.unavailable".into())
    );
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["status"], "open", "the vote was not counted");
    assert_eq!(status["attempts"][0]["outstanding"], 1);
    assert_eq!(
        pending(&device).await[0]["ballotId"],
        ballot.as_str(),
        "the ballot is still open to this device"
    );

    execute_sql(
        dir,
        "UPDATE audit_head SET mac = (SELECT mac FROM saved_mac) WHERE id = 1",
    )
    .await;
    let voted = device
        .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "approved");
    assert_eq!(p.ok(&command).await["status"], "approved");
}
