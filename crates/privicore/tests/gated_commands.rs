//! Gated commands through `privicore-client` against the real server
//! (docs/api/voting-and-policy.md §1.5, §1.6, §2, §6): a held command runs once its pools
//! approve and fails with its §2.4 key otherwise; strategies at their edges; several pools;
//! policy and authenticator changes mid-vote; attempts; forged MACs over HTTP and the device
//! bus; restart mid-vote; cross-profile isolation. Deadlines move on a `ManualClock`.

mod common;

use common::*;
use privicore_client::{Accepted, Client, CommandOutcome, KeyPair};
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use privicore_storage_device::{Bundle, Link, WebSocketLink, connect_websocket};
use privicore_wire::SignedPublicKey;
use privicore_wire::bus::{self, Envelope, kind};
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

async fn configuration(p: &Provisioned, body: Value) {
    let accepted = p.api.register_voting_configuration(body).await.unwrap();
    p.ok(&accepted.command_id).await;
}

/// Registers and activates a policy of `template` on `events`, voting with `config`.
async fn policy(
    p: &Provisioned,
    name: &str,
    template: &str,
    events: &[&str],
    config: &str,
) -> String {
    let registered = p
        .api
        .register_policy(json!({
            "name": name, "policyTemplateId": template, "applyingEventIds": events,
            "configuration": { "scope": "profile" }, "votingConfigurationId": config,
        }))
        .await
        .unwrap();
    p.ok(&registered.command_id).await;
    let activated = p.api.activate_policy(name).await.unwrap();
    p.ok(&activated.command_id).await;
    registered.command_id
}

/// Waits for a `command_status: 1` event of `command` satisfying `want`; its body.
async fn progress(p: &Provisioned, command: &str, want: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        if let Some(e) = p
            .session
            .events_for(command)
            .into_iter()
            .rev()
            .find(|e| e["command_status"] == 1 && want(&e["body"]))
        {
            return e["body"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "no matching progress for {command}: {:?}",
        p.session.events_for(command)
    );
}

/// The device's open ballot of `pool` (waits for it).
async fn ballot(device: &Client, pool: &str) -> String {
    for _ in 0..300 {
        let list = device.pending_ballots().await.unwrap();
        if let Some(b) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["poolId"] == pool)
        {
            return b["ballotId"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no ballot of {pool}");
}

async fn vote(device: &Client, ballot: &str, decision: &str) -> Value {
    device
        .cast_vote(json!({ "ballotId": ballot, "decision": decision }))
        .await
        .unwrap()
}

fn final_of(p: &Provisioned, command: &str) -> Option<Value> {
    p.session
        .events_for(command)
        .into_iter()
        .find(|e| e["command_status"] == 2 || e["command_status"] == 3)
}

async fn token_status(p: &Provisioned, token: &str) -> Value {
    let list = p
        .api
        .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
        .await
        .unwrap();
    list["items"][0]["status"].clone()
}

/// Reserves and exchanges a token, then waits until the exchange is held for `pools` pools:
/// the token, the accepted exchange and the pool ids.
async fn held_exchange(p: &Provisioned, pools: usize) -> (String, Accepted, Vec<String>) {
    let token = reserve(p).await;
    let exchanged = p
        .api
        .exchange_data(&token, &random_payload(40))
        .await
        .unwrap();
    let body = progress(p, &exchanged.command_id, |b| {
        b["pools"].as_array().is_some_and(|a| a.len() == pools)
    })
    .await;
    let ids = body["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["poolId"].as_str().unwrap().to_owned())
        .collect();
    (token, exchanged, ids)
}

/// Reserves a token; its id.
async fn reserve(p: &Provisioned) -> String {
    let reserved = p
        .api
        .reserve_token_space("/finance/2026", None)
        .await
        .unwrap();
    p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_gated_exchange_waits_for_its_vote_runs_when_approved_and_gives_the_reservation_back_when_rejected()
 {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "gate-exchange").await;
    p.attach_devices(&["vault"]).await;
    let phone = p.authenticator("phone").await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1 })).await;
    let policy_id = policy(&p, "exchange-approval", "1", &["101"], "approvers").await;
    let device = device_client(&server, &p, &phone).await;

    // Approved: the exchange is held, then runs, and the data can be fetched.
    let token = reserve(&p).await;
    let data = random_payload(54);
    let exchanged = p.api.exchange_data(&token, &data).await.unwrap();
    let body = progress(&p, &exchanged.command_id, |_| true).await;
    assert_eq!(body["state"], "awaiting_vote");
    let pool = body["pools"][0]["poolId"].as_str().unwrap().to_owned();
    assert_eq!(body["pools"][0]["policyId"], policy_id.as_str());
    assert_eq!(body["pools"][0]["eventId"], "101");
    assert_eq!(body["pools"][0]["outstanding"], 1);
    assert!(body["pools"][0]["deadline"].is_string());
    assert_eq!(token_status(&p, &token).await, "exchanging");
    let b = ballot(&device, &pool).await;
    assert_eq!(vote(&device, &b, "yes").await["poolStatus"], "approved");
    let result = p.ok(&exchanged.command_id).await;
    assert_eq!(result["token"], token.as_str());
    assert_eq!(p.fetch(&token).await, data);

    // Rejected: §2.4 key, no data, and the reservation is handed back as after any failed
    // exchange (reserved again, so a new exchange may follow).
    let token = reserve(&p).await;
    let exchanged = p
        .api
        .exchange_data(&token, &random_payload(40))
        .await
        .unwrap();
    let body = progress(&p, &exchanged.command_id, |_| true).await;
    let pool = body["pools"][0]["poolId"].as_str().unwrap().to_owned();
    // While held the token stays as acceptance left it.
    assert_eq!(token_status(&p, &token).await, "exchanging");
    let b = ballot(&device, &pool).await;
    assert_eq!(vote(&device, &b, "no").await["poolStatus"], "rejected");
    assert_eq!(p.failure(&exchanged.command_id).await, "voting.rejected");
    assert_eq!(token_status(&p, &token).await, "reserved");
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["status"], "rejected");
    assert_eq!(status["failureKey"], "voting.rejected");
}

#[tokio::test]
async fn a_later_command_on_a_held_resource_waits_behind_it() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "gate-order").await;
    p.attach_devices(&["vault"]).await;
    let phone = p.authenticator("phone").await;
    let token = p.store("/finance/2026", &random_payload(30)).await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1 })).await;
    policy(&p, "deletion-approval", "3", &["301"], "approvers").await;
    let device = device_client(&server, &p, &phone).await;

    let deleted = p.api.delete_data(&token).await.unwrap();
    let body = progress(&p, &deleted.command_id, |_| true).await;
    let pool = body["pools"][0]["poolId"].as_str().unwrap().to_owned();
    // A read of the same token accepted after the held delete does not overtake it.
    let request = p.api.request_data(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        final_of(&p, &request.command_id).is_none(),
        "the read overtook the held delete"
    );
    // The token stays readable-looking (active) while its delete is held.
    assert_eq!(token_status(&p, &token).await, "active");
    let b = ballot(&device, &pool).await;
    vote(&device, &b, "yes").await;
    p.ok(&deleted.command_id).await;
    assert_eq!(p.failure(&request.command_id).await, "data_token.not_found");
}

/// Three authenticators and manual votes with each strategy at an edge.
#[tokio::test]
async fn each_strategy_decides_at_its_edges_through_the_server() {
    let (server, clock) = server_with_clock().await;
    let p = provision(&server, "gate-strategies").await;
    let a = p.authenticator("a").await;
    let b = p.authenticator("b").await;
    let c = p.authenticator("c").await;
    let devs = [
        device_client(&server, &p, &a).await,
        device_client(&server, &p, &b).await,
        device_client(&server, &p, &c).await,
    ];
    configuration(&p, json!({ "name": "consensus", "strategy": "consensus", "timeLimit": 60, "numberOfAttempts": 1, "quorumSize": 2 })).await;
    configuration(&p, json!({ "name": "pct67", "strategy": "minimum_percentage", "percentageRequired": 67, "timeLimit": 60, "numberOfAttempts": 1, "numberOfAttempts": 1, "quorumSize": 3 })).await;
    configuration(&p, json!({ "name": "pct68", "strategy": "minimum_percentage", "percentageRequired": 68, "timeLimit": 60, "numberOfAttempts": 1, "numberOfAttempts": 1, "quorumSize": 3 })).await;
    configuration(&p, json!({ "name": "affirmative", "strategy": "affirmative", "timeLimit": 60, "numberOfAttempts": 1, "quorumSize": 2 })).await;
    configuration(&p, json!({ "name": "unanimous3", "strategy": "unanimous", "timeLimit": 60, "numberOfAttempts": 1, "quorumSize": 3 })).await;

    // Runs a manual vote with `votes` (None = silent) and returns the command's result.
    let (pr, dr) = (&p, &devs);
    let run = move |config: &'static str, votes: [Option<&'static str>; 3], skip: Vec<String>| {
        let (p, devs) = (pr, dr);
        async move {
            let (command, pool) = p
                .api
                .create_voting(json!({ "votingConfigurationId": config, "title": "t", "question": "q", "skipAuthenticatorDevices": skip }))
                .await
                .unwrap();
            for (i, v) in votes.iter().enumerate() {
                if let Some(v) = v {
                    let b = ballot(&devs[i], &pool).await;
                    let answer = devs[i]
                        .cast_vote(json!({ "ballotId": b, "decision": v }))
                        .await;
                    // A vote after an early decision finds the attempt closed.
                    if let Err(e) = answer {
                        assert_eq!(e.code(), Some("ballot.closed"), "{e:?}");
                    }
                }
            }
            (command, pool)
        }
    };

    // consensus, two voters, a tie: not more than half yes → rejected.
    let (command, _) = run(
        "consensus",
        [Some("yes"), Some("no"), None],
        vec![c.clone()],
    )
    .await;
    assert_eq!(p.ok(&command).await["status"], "rejected");
    // consensus, three voters: yes, no, yes → approved once the third votes.
    let (command, _) = run("consensus", [Some("yes"), Some("no"), Some("yes")], vec![]).await;
    assert_eq!(p.ok(&command).await["status"], "approved");
    // minimum_percentage: two of three is 67 % (rounded half up): 67 passes, 68 does not.
    let (command, _) = run("pct67", [Some("yes"), Some("yes"), Some("no")], vec![]).await;
    assert_eq!(p.ok(&command).await["status"], "approved");
    let (command, _) = run("pct68", [Some("yes"), Some("yes"), Some("no")], vec![]).await;
    assert_eq!(p.ok(&command).await["status"], "rejected");
    // affirmative, quorum 2: a no then a yes reaches quorum with one yes → approved.
    let (command, _) = run("affirmative", [Some("no"), Some("yes"), None], vec![]).await;
    assert_eq!(p.ok(&command).await["status"], "approved");
    // unanimous, quorum 3: two yes and one silent at the deadline → quorum not reached.
    let (command, pool) = run("unanimous3", [Some("yes"), Some("yes"), None], vec![]).await;
    assert!(final_of(&p, &command).is_none());
    clock.advance(61);
    let result = p.ok(&command).await;
    assert_eq!(result["status"], "expired");
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["attempts"][0]["status"], "no_quorum");
    assert_eq!(status["attempts"][0]["yes"], 2);
}

#[tokio::test]
async fn two_policies_must_both_approve_and_one_rejection_cancels_the_other() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "gate-two").await;
    p.attach_devices(&["vault"]).await;
    let phone = p.authenticator("phone").await;
    let device = device_client(&server, &p, &phone).await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1 })).await;
    policy(&p, "first", "1", &["101"], "approvers").await;
    policy(&p, "second", "1", &["101"], "approvers").await;

    // Both approve → the exchange runs; after the first approval it is still held.
    let (_, exchanged, pools) = held_exchange(&p, 2).await;
    let b0 = ballot(&device, &pools[0]).await;
    assert_eq!(vote(&device, &b0, "yes").await["poolStatus"], "approved");
    progress(&p, &exchanged.command_id, |b| {
        b["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["status"] == "approved")
    })
    .await;
    assert!(final_of(&p, &exchanged.command_id).is_none());
    let b1 = ballot(&device, &pools[1]).await;
    vote(&device, &b1, "yes").await;
    p.ok(&exchanged.command_id).await;

    // One rejects → the command fails and the other pool is cancelled, its ballot withdrawn.
    let (_, exchanged, pools) = held_exchange(&p, 2).await;
    let b1 = ballot(&device, &pools[1]).await;
    let b0 = ballot(&device, &pools[0]).await;
    assert_eq!(vote(&device, &b1, "no").await["poolStatus"], "rejected");
    assert_eq!(p.failure(&exchanged.command_id).await, "voting.rejected");
    let other = p.api.check_pool_status(&pools[0]).await.unwrap();
    assert_eq!(other["status"], "cancelled");
    assert_eq!(other["attempts"][0]["status"], "cancelled");
    assert!(
        device.pending_ballots().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        api_code(
            device
                .cast_vote(json!({ "ballotId": b0, "decision": "yes" }))
                .await
        ),
        (409, "ballot.closed".into())
    );
}

#[tokio::test]
async fn changes_mid_vote_deactivation_removal_and_exhausted_attempts() {
    let (server, clock) = server_with_clock().await;
    let p = provision(&server, "gate-changes").await;
    p.attach_devices(&["vault"]).await;
    let phone = p.authenticator("phone").await;
    let tablet = p.authenticator("tablet").await;
    let dp = device_client(&server, &p, &phone).await;
    let dt = device_client(&server, &p, &tablet).await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 60, "deviceIdentifiers": [phone], "numberOfAttempts": 2 })).await;
    policy(&p, "exchange-approval", "1", &["101"], "approvers").await;

    // A policy deactivated while its pool is open: the pool runs to its end.
    let (_, exchanged, pools) = held_exchange(&p, 1).await;
    let pool = pools[0].clone();
    let off = p.api.deactivate_policy("exchange-approval").await.unwrap();
    p.ok(&off.command_id).await;
    let b = ballot(&dp, &pool).await;
    vote(&dp, &b, "yes").await;
    p.ok(&exchanged.command_id).await;
    let on = p.api.activate_policy("exchange-approval").await.unwrap();
    p.ok(&on.command_id).await;

    // Attempts exhausted: the first expires, the second opens with a fresh ballot, a vote on
    // the first is refused (closed), and the second expires too.
    let (token, exchanged, pools) = held_exchange(&p, 1).await;
    let pool = pools[0].clone();
    let first = ballot(&dp, &pool).await;
    clock.advance(61);
    progress(&p, &exchanged.command_id, |b| b["pools"][0]["attempt"] == 2).await;
    assert_eq!(
        api_code(
            dp.cast_vote(json!({ "ballotId": first, "decision": "yes" }))
                .await
        ),
        (409, "ballot.closed".into())
    );
    let second = ballot(&dp, &pool).await;
    assert_ne!(second, first);
    clock.advance(61);
    assert_eq!(p.failure(&exchanged.command_id).await, "voting.expired");
    assert_eq!(token_status(&p, &token).await, "reserved");
    assert_eq!(
        api_code(
            dp.cast_vote(json!({ "ballotId": second, "decision": "yes" }))
                .await
        ),
        (409, "ballot.closed".into())
    );

    // Authenticator role removed mid-vote: its ballot stays valid (§4.8) and its late vote
    // counts. Removing it is refused while an active policy needs it (§1.6), unless forced.
    let (_, exchanged, pools) = held_exchange(&p, 1).await;
    let pool = pools[0].clone();
    let b = ballot(&dp, &pool).await;
    let refused = p.api.remove_authenticator(&phone, false).await.unwrap();
    assert_eq!(
        p.failure(&refused.command_id).await,
        "authenticator.required_by_active_policy"
    );
    let removed = p.api.remove_authenticator(&phone, true).await.unwrap();
    p.ok(&removed.command_id).await;
    assert_eq!(vote(&dp, &b, "yes").await["poolStatus"], "approved");
    p.ok(&exchanged.command_id).await;

    // A device removed mid-vote (credentials revoked): its ballot is withdrawn, the quorum
    // can no longer be reached and the command fails; the device removal itself is refused
    // while an active policy needs it, unless forced.
    let again = p.api.register_authenticator(&phone).await.unwrap();
    p.ok(&again.command_id).await;
    let (_, exchanged, pools) = held_exchange(&p, 1).await;
    let pool = pools[0].clone();
    ballot(&dp, &pool).await;
    let refused = p.api.remove_device(&phone, false).await.unwrap();
    assert_eq!(
        p.failure(&refused.command_id).await,
        "authenticator.required_by_active_policy"
    );
    let removed = p.api.remove_device(&phone, true).await.unwrap();
    p.ok(&removed.command_id).await;
    assert_eq!(
        p.failure(&exchanged.command_id).await,
        "voting.no_eligible_authenticators"
    );
    // The tablet never had a ballot (not in the configuration).
    assert!(
        dt.pending_ballots().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// An authenticator speaking the device bus over WebSocket with its bundle.
struct BusVoter {
    id: String,
    key: [u8; 32],
    public: String,
    bundle: Bundle,
    link: WebSocketLink,
}

impl BusVoter {
    /// Connects with the device's bundle (downloading a bundle issues new credentials, so
    /// the caller downloads it once for both the bus and HTTP).
    async fn connect(bundle: &Value, device: &str) -> Self {
        let bundle = Bundle::from_json(&bundle.to_string()).unwrap();
        let keys = KeyPair::generate();
        let engine = SignedPublicKey::parse(&bundle.engine_public_key).unwrap();
        let key = bus::channel_key(&keys.diffie_hellman(&engine), &bundle.device_identifier);
        let link = Self::link(&bundle).await;
        let mut voter = Self {
            id: device.to_owned(),
            key,
            public: keys.public().to_hex(),
            bundle,
            link,
        };
        voter.hello().await;
        voter
    }

    async fn link(bundle: &Bundle) -> WebSocketLink {
        connect_websocket(
            &bundle.embedded_bus_url(),
            &bundle.rabbit_user,
            &bundle.rabbit_pass,
        )
        .await
        .unwrap()
    }

    /// A new connection with the same key, and its welcome.
    async fn reconnect(&mut self) {
        self.link = Self::link(&self.bundle).await;
        self.hello().await;
    }

    async fn send(
        &mut self,
        kind: &str,
        body: impl serde::Serialize + Send + Sync + 'static,
    ) -> String {
        let env = Envelope::new(kind, &self.id, None, body);
        let id = env.message_id.clone();
        self.link.send(env).await.unwrap();
        id
    }

    async fn next(&mut self) -> Envelope {
        loop {
            let env = tokio::time::timeout(WAIT, self.link.recv())
                .await
                .expect("the engine sends")
                .expect("open");
            if env.kind != kind::ACK {
                return env;
            }
        }
    }

    /// Hello, then the welcome (ballots may come right after it).
    async fn hello(&mut self) {
        let hello = bus::Hello {
            public_key: self.public.clone(),
            software: bus::Software {
                name: "test-authenticator".into(),
                version: "1".into(),
            },
            roles: vec!["authenticator".into()],
            capacity: bus::Capacity {
                bytes_used: 0,
                bytes_free: 0,
            },
            object_count: 0,
        };
        self.send(kind::HELLO, hello).await;
        loop {
            let env = self.next().await;
            if env.kind == kind::WELCOME {
                return;
            }
            assert_ne!(env.kind, kind::REJECTED, "{}", env.to_text());
        }
    }

    async fn issue(&mut self) -> bus::ballots::Issue {
        loop {
            let env = self.next().await;
            if env.kind == bus::ballots::ISSUE {
                return env.into_body().unwrap();
            }
        }
    }

    /// Sends a vote and returns its `ballot.vote_result`.
    async fn vote(&mut self, vote: bus::ballots::Vote) -> bus::ballots::VoteResult {
        let id = self.send(bus::ballots::VOTE, vote).await;
        loop {
            let env = self.next().await;
            if env.kind == bus::ballots::VOTE_RESULT && env.correlation_id.as_deref() == Some(&id) {
                return env.into_body().unwrap();
            }
        }
    }
}

#[tokio::test]
async fn ballots_over_the_device_bus_verify_both_ways_and_stay_within_their_profile() {
    let (server, _clock) = server_with_clock().await;
    let p = provision(&server, "gate-bus").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1 })).await;
    let bundle = p.api.download_device_configuration(&phone).await.unwrap();
    let mut voter = BusVoter::connect(&bundle, &phone).await;
    let (command, pool) = p
        .api
        .create_voting(
            json!({ "votingConfigurationId": "approvers", "title": "Hire?", "question": "Bob?" }),
        )
        .await
        .unwrap();
    // A verified ballot arrives while connected …
    let issue = voter.issue().await;
    assert_eq!(issue.pool_id, pool);
    assert!(issue.verifies(&voter.key));
    assert!(!issue.verifies(&[7u8; 32]));
    // … and again after every welcome.
    voter.reconnect().await;
    let again = voter.issue().await;
    assert_eq!(again.ballot_id, issue.ballot_id);
    assert!(again.verifies(&voter.key));

    // A forged HTTP MAC, then a forged bus MAC: refused, nothing counted.
    let http = server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();
    let at = "2026-02-21T16:08:12+00:00";
    assert_eq!(
        api_code(http.cast_vote(json!({ "ballotId": issue.ballot_id, "decision": "yes", "votedAt": at, "mac": bus::ballots::Vote::signed(&[9u8; 32], &issue.ballot_id, "yes", at).mac })).await),
        (422, "ballot.invalid_mac".into())
    );
    let forged = bus::ballots::Vote::signed(&[9u8; 32], &issue.ballot_id, "yes", at);
    let result = voter.vote(forged).await;
    assert!(!result.accepted);
    assert_eq!(result.error.as_deref(), Some("ballot.invalid_mac"));
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["attempts"][0]["outstanding"], 1);

    // Another profile's authenticator can never vote on this ballot, over the bus or HTTP.
    let other = provision(&server, "gate-bus-other").await;
    let foreign = other.authenticator("foreign").await;
    let foreign_bundle = other
        .api
        .download_device_configuration(&foreign)
        .await
        .unwrap();
    let mut stranger = BusVoter::connect(&foreign_bundle, &foreign).await;
    let now = Timestamp::now().rfc3339();
    let result = stranger
        .vote(bus::ballots::Vote::signed(
            &stranger.key,
            &issue.ballot_id,
            "yes",
            &now,
        ))
        .await;
    assert!(!result.accepted);
    assert_eq!(result.error.as_deref(), Some("ballot.not_found"));
    let foreign_http = server
        .client()
        .with_device_credentials(
            foreign_bundle["client-id"].as_str().unwrap(),
            foreign_bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();
    assert_eq!(
        api_code(
            foreign_http
                .cast_vote(json!({ "ballotId": issue.ballot_id, "decision": "yes" }))
                .await
        ),
        (404, "ballot.not_found".into())
    );
    assert_eq!(
        api_code(other.api.check_pool_status(&pool).await),
        (404, "voting.pool_not_found".into())
    );

    // A valid vote is accepted; a second is already_voted.
    let now = Timestamp::now().rfc3339();
    let result = voter
        .vote(bus::ballots::Vote::signed(
            &voter.key,
            &issue.ballot_id,
            "yes",
            &now,
        ))
        .await;
    assert!(result.accepted, "{result:?}");
    assert_eq!(result.pool_status.as_deref(), Some("approved"));
    let result = voter
        .vote(bus::ballots::Vote::signed(
            &voter.key,
            &issue.ballot_id,
            "no",
            &now,
        ))
        .await;
    assert!(!result.accepted);
    assert_eq!(result.error.as_deref(), Some("ballot.already_voted"));
    assert_eq!(p.ok(&command).await["status"], "approved");
}

/// Stops the in-process engine, moves the clock on by `down` seconds while it is down, and
/// starts it again on the same data directory and clock.
async fn restart(server: &mut TestServer, clock: &Arc<ManualClock>, down: i64) {
    server.stop().await;
    clock.advance(down);
    let mut settings = test_settings(server.dir.path());
    settings.clock = Some(clock.clone());
    server.server = Some(privicore::server::Server::start(&settings).await.unwrap());
}

#[tokio::test]
async fn a_restart_mid_vote_keeps_the_pool_its_deadline_and_the_held_command() {
    let (mut server, clock) = server_with_clock().await;
    let p = provision(&server, "gate-restart").await;
    let phone = p.authenticator("phone").await;
    configuration(&p, json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 60, "numberOfAttempts": 1 })).await;
    policy(&p, "deletion-approval", "3", &["301"], "approvers").await;
    p.attach_devices(&["vault"]).await;
    let kept = p.store("/finance/2026", &random_payload(30)).await;
    let gone = p.store("/finance/2026", &random_payload(30)).await;
    let d1 = p.api.delete_data(&kept).await.unwrap();
    let pool1 = progress(&p, &d1.command_id, |_| true).await["pools"][0]["poolId"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(30);
    let d2 = p.api.delete_data(&gone).await.unwrap();
    let pool2 = progress(&p, &d2.command_id, |_| true).await["pools"][0]["poolId"]
        .as_str()
        .unwrap()
        .to_owned();
    let before1 = p.api.check_pool_status(&pool1).await.unwrap();
    let before2 = p.api.check_pool_status(&pool2).await.unwrap();

    // A plain restart: both pools resume, open, with the same deadlines.
    restart(&mut server, &clock, 0).await;
    let api = server.client().with_token(&p.token);
    let after1 = api.check_pool_status(&pool1).await.unwrap();
    let after2 = api.check_pool_status(&pool2).await.unwrap();
    assert_eq!(after1["status"], "open");
    assert_eq!(
        after1["attempts"][0]["deadline"],
        before1["attempts"][0]["deadline"]
    );
    assert_eq!(
        after2["attempts"][0]["deadline"],
        before2["attempts"][0]["deadline"]
    );

    // While down again, the first pool's deadline passes: after the start it expires and its
    // delete never runs. An approval after the restart runs the second delete.
    restart(&mut server, &clock, 31).await;
    let api = server.client().with_token(&p.token);
    let session = server.session().await;
    session.join(&p.token).await.unwrap();
    let bundle = api.download_device_configuration(&phone).await.unwrap();
    let device = server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();
    let b = ballot(&device, &pool2).await;
    // (Its final event may precede this session's join: the pool and the token tell.)
    let mut expired = Value::Null;
    for _ in 0..300 {
        expired = api.check_pool_status(&pool1).await.unwrap();
        if expired["status"] != "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(expired["status"], "expired", "{expired}");
    assert_eq!(expired["failureKey"], "voting.expired");
    assert_eq!(vote(&device, &b, "yes").await["poolStatus"], "approved");
    match session.wait_command(&d2.command_id, WAIT).await.unwrap() {
        CommandOutcome::Succeeded(_) => {}
        CommandOutcome::Failed(key) => panic!("approved delete failed: {key}"),
    }
    let list = api
        .list_data_tokens(&format!("?filters[token]={kept}&filters[status]=all"))
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "active");
}
