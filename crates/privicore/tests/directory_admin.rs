//! Directory administration through `privicore-client` against the real server
//! (docs/api/directory.md): directory voting pools decided by the members' authenticators
//! (§3.17), directory authority over managed users' sync and authenticators (§1.4), the
//! invitation notice on app sockets (§1.7), the 90-day purge of removed memberships and
//! ended invitations (§1.2), and the attribution of statistics, pools and ballots to the
//! OAuth application that made them (docs/api/oauth.md §1.2).

mod common;

use common::*;
use privicore_client::{Client, ClientError, CommandOutcome};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    api_code(result)
}

/// The Basic-credentials client of `owner`'s device, its bundle read by `reader` (the
/// owner, or an admin under directory authority).
async fn device_client(server: &TestServer, reader: &Provisioned, device: &str) -> Client {
    let bundle = reader
        .api
        .download_device_configuration(device)
        .await
        .unwrap();
    server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap()
}

/// The device's open ballots of `pool`.
async fn ballots_of(device: &Client, pool: &str) -> Vec<Value> {
    device.pending_ballots().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["poolId"] == pool)
        .cloned()
        .collect()
}

/// The device's open ballots of `pool`, once there are `n` (the pool opens when its
/// command runs, after the 202).
async fn wait_ballots(device: &Client, pool: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = ballots_of(device, pool).await;
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < deadline, "no ballot of {pool}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it holds (a background worker's next round).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_directory_pool_is_decided_by_its_members_authenticators() {
    let (server, clock) = server_with_clock().await;
    let alice = provision(&server, "pool-owner").await;
    let bob = provision(&server, "pool-bob").await;
    let dave = provision(&server, "pool-dave").await;
    let eve = provision(&server, "pool-eve").await;
    let dir = directory(&alice, "Board").await;
    join(&alice, &dir, &bob, "member").await;
    join(&alice, &dir, &dave, "member").await;
    // A member without authenticators is left out of N.
    let (carol, _) = managed(&alice, &dir, "pool-carol").await;
    let elsewhere = directory(&eve, "Elsewhere").await;
    let bob_phone = bob.authenticator("bob-phone").await;
    let bob_laptop = bob.authenticator("bob-laptop").await;
    let dave_phone = dave.authenticator("dave-phone").await;
    let eve_phone = eve.authenticator("eve-phone").await;
    let bob_phone = device_client(&server, &bob, &bob_phone).await;
    let bob_laptop = device_client(&server, &bob, &bob_laptop).await;
    let dave_phone = device_client(&server, &dave, &dave_phone).await;
    let eve_phone = device_client(&server, &eve, &eve_phone).await;

    let created = alice
        .api
        .create_directory_voting_pool(json!({
            "directoryId": dir, "title": "Budget 2027", "question": "Approve the budget?",
            "quorumSize": 2, "nonce": "BUD-7",
        }))
        .await
        .unwrap();
    let pool = created.command_id.clone();
    // Every authenticator of a voter profile has a ballot.
    let on_phone = wait_ballots(&bob_phone, &pool, 1).await;
    let on_laptop = wait_ballots(&bob_laptop, &pool, 1).await;
    let status = alice.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["origin"], "directory");
    assert_eq!(status["directoryId"], dir.as_str());
    assert_eq!(status["strategy"], "consensus");
    assert_eq!(status["timeLimit"], 600);
    assert_eq!(status["status"], "open");
    // Bob and Dave vote; Carol (no authenticator) and the owner (none either) do not.
    assert_eq!(status["attempts"][0]["ballotsIssued"], 2);

    assert_eq!((on_phone.len(), on_laptop.len()), (1, 1));
    assert_eq!(on_phone[0]["origin"], "directory");
    assert_eq!(
        on_phone[0]["requestedBy"]["profileId"],
        alice.profile_id.as_str()
    );
    assert_eq!(on_phone[0]["requestedBy"]["clientId"], Value::Null);

    // Another directory's member sees nothing and votes on nothing.
    assert!(ballots_of(&eve_phone, &pool).await.is_empty());
    assert_eq!(
        code(eve.api.check_pool_status(&pool).await),
        (404, "voting.pool_not_found".into())
    );
    assert_eq!(
        code(
            eve_phone
                .cast_vote(json!({ "ballotId": on_laptop[0]["ballotId"], "decision": "no" }))
                .await
        ),
        (404, "ballot.not_found".into())
    );
    assert_eq!(
        code(
            eve.api
                .create_directory_voting_pool(
                    json!({ "directoryId": dir, "title": "t", "question": "q" })
                )
                .await
        ),
        (403, "directory.forbidden".into())
    );

    // Each of Bob's authenticators holds one open ballot.
    let listed = bob.api.list_authenticators("").await.unwrap();
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["openBallots"] == 1),
        "{listed}"
    );

    // Bob's first vote is Bob's; his other ballot is withdrawn.
    let voted = bob_phone
        .cast_vote(json!({ "ballotId": on_phone[0]["ballotId"], "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "open");
    assert!(ballots_of(&bob_laptop, &pool).await.is_empty());
    let listed = bob.api.list_authenticators("").await.unwrap();
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["openBallots"] == 0),
        "{listed}"
    );
    assert_eq!(
        code(
            bob_laptop
                .cast_vote(json!({ "ballotId": on_laptop[0]["ballotId"], "decision": "no" }))
                .await
        ),
        (409, "ballot.closed".into())
    );
    // A voter profile reads the pool; its vote names the profile.
    let seen = bob.api.check_pool_status(&pool).await.unwrap();
    let attempt = &seen["attempts"][0];
    assert_eq!(
        (attempt["yes"].clone(), attempt["outstanding"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(attempt["votes"][0]["voter"], bob.profile_id.as_str());

    let dave_ballot = wait_ballots(&dave_phone, &pool, 1).await;
    let voted = dave_phone
        .cast_vote(json!({ "ballotId": dave_ballot[0]["ballotId"], "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "approved");
    let result = alice.ok(&pool).await;
    assert_eq!(result["poolId"], pool.as_str());
    assert_eq!(result["status"], "approved");
    assert_eq!(
        (result["yes"].clone(), result["no"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(result["nonce"], "BUD-7");

    // Listed voters: one profile, rejected by its one vote.
    let listed = alice
        .api
        .create_directory_voting_pool(json!({
            "directoryId": dir, "title": "Dave only", "question": "?",
            "voterProfileIds": [dave.profile_id], "strategy": "unanimous",
        }))
        .await
        .unwrap();
    let b = wait_ballots(&dave_phone, &listed.command_id, 1).await;
    assert!(ballots_of(&bob_phone, &listed.command_id).await.is_empty());
    dave_phone
        .cast_vote(json!({ "ballotId": b[0]["ballotId"], "decision": "no" }))
        .await
        .unwrap();
    assert_eq!(alice.ok(&listed.command_id).await["status"], "rejected");

    // Nobody votes: the attempt ends at its deadline on the engine clock.
    let silent = alice
        .api
        .create_directory_voting_pool(
            json!({ "directoryId": dir, "title": "Silence", "question": "?", "timeLimit": 10 }),
        )
        .await
        .unwrap();
    assert_eq!(
        wait_ballots(&dave_phone, &silent.command_id, 1).await.len(),
        1
    );
    clock.advance(11);
    assert_eq!(alice.ok(&silent.command_id).await["status"], "expired");

    // Pools that cannot run end with the spec's keys.
    for (body, key) in [
        (
            json!({ "directoryId": dir, "title": "t", "question": "q", "voterProfileIds": [eve.profile_id] }),
            "directory.user_not_found",
        ),
        (
            json!({ "directoryId": dir, "title": "t", "question": "q", "voterProfileIds": [carol] }),
            "voting.no_eligible_authenticators",
        ),
        (
            json!({ "directoryId": dir, "title": "t", "question": "q", "quorumSize": 3 }),
            "voting.quorum_unreachable",
        ),
    ] {
        let accepted = alice
            .api
            .create_directory_voting_pool(body.clone())
            .await
            .unwrap();
        assert_eq!(alice.failure(&accepted.command_id).await, key, "{body}");
    }

    // Request errors.
    let base = json!({ "directoryId": dir, "title": "t", "question": "q" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, expected) in [
        (
            json!({ "directoryId": dir, "question": "q" }),
            (422, "validation.missing_field"),
        ),
        (
            with("strategy", json!("majority")),
            (422, "voting.invalid_strategy"),
        ),
        (
            with("strategy", json!("minimum_percentage")),
            (422, "voting.invalid_percentage"),
        ),
        (
            with("percentageRequired", json!(101)),
            (422, "voting.invalid_percentage"),
        ),
        (
            with("quorumSize", json!(0)),
            (422, "voting.invalid_quorum_size"),
        ),
        (
            with("quorumSize", json!(10_001)),
            (422, "voting.invalid_quorum_size"),
        ),
        (
            with("timeLimit", json!(9)),
            (422, "voting.invalid_time_limit"),
        ),
        (
            with("numberOfAttempts", json!(11)),
            (422, "voting.invalid_attempts"),
        ),
        (
            with("title", json!("x".repeat(121))),
            (422, "voting.invalid_title"),
        ),
        (
            with("question", json!("x".repeat(2001))),
            (422, "voting.invalid_question"),
        ),
        (
            with("directoryId", json!(carol)),
            (404, "directory.not_found"),
        ),
        (
            with("directoryId", json!(elsewhere)),
            (403, "directory.forbidden"),
        ),
    ] {
        assert_eq!(
            code(alice.api.create_directory_voting_pool(body.clone()).await),
            (expected.0, expected.1.to_string()),
            "{body}"
        );
    }
    assert_eq!(
        code(bob.api.create_directory_voting_pool(base.clone()).await),
        (403, "directory.forbidden".into())
    );
}

#[tokio::test]
async fn directory_authority_reaches_managed_users_sync_and_authenticators() {
    let server = TestServer::start().await;
    let alice = provision(&server, "reach-owner").await;
    let ann = provision(&server, "reach-admin").await;
    let mike = provision(&server, "reach-member").await;
    let eve = provision(&server, "reach-other").await;
    let dir = directory(&alice, "Reach").await;
    join(&alice, &dir, &ann, "admin").await;
    join(&alice, &dir, &mike, "member").await;
    let (carol, _) = managed(&alice, &dir, "reach-carol").await;
    let created = alice
        .api
        .create_profile_device(
            json!({ "directoryId": dir, "profileId": carol, "deviceName": "carol-key" }),
        )
        .await
        .unwrap();
    let key = alice.ok(&created.command_id).await["deviceIdentifier"]
        .as_str()
        .unwrap()
        .to_owned();

    // Verified authenticator endpoints: an admin registers and removes the role.
    for outsider in [&mike, &eve] {
        assert_eq!(
            code(outsider.api.register_authenticator(&key).await),
            (403, "device.not_owner".into())
        );
    }
    let registered = ann.api.register_authenticator(&key).await.unwrap();
    let result = ann.ok(&registered.command_id).await;
    assert_eq!(result["roles"], json!(["authenticator"]));
    assert_eq!(
        code(mike.api.remove_authenticator(&key, false).await),
        (403, "device.not_owner".into())
    );
    let removed = ann.api.remove_authenticator(&key, false).await.unwrap();
    assert_eq!(ann.ok(&removed.command_id).await["roles"], json!([]));

    // Synchronize device: the admin syncs the managed user's storage device.
    let storage = ann
        .api
        .add_storage_device_to_profile(&dir, &carol, &key)
        .await
        .unwrap();
    ann.ok(&storage.command_id).await;
    for outsider in [&mike, &eve] {
        assert_eq!(
            code(outsider.api.sync_device(&key, false).await),
            (403, "device.not_owner".into())
        );
    }
    // The hosted device connects shortly after its registration.
    let deadline = Instant::now() + WAIT;
    let synced = loop {
        let accepted = ann.api.sync_device(&key, false).await.unwrap();
        match ann.outcome(&accepted.command_id).await {
            CommandOutcome::Failed(k) if k == "storage.device_offline" => {
                assert!(Instant::now() < deadline, "the device never came online");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    assert!(matches!(synced, CommandOutcome::Succeeded(_)), "{synced:?}");

    // A removed managed user's devices leave the directory's authority.
    let gone = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol, "status": "removed" }),
        )
        .await
        .unwrap();
    alice.ok(&gone.command_id).await;
    assert_eq!(
        code(ann.api.sync_device(&key, false).await),
        (403, "device.not_owner".into())
    );
    assert_eq!(
        code(ann.api.register_authenticator(&key).await),
        (403, "device.not_owner".into())
    );
}

#[tokio::test]
async fn the_invitation_notice_reaches_app_sockets_holding_directory_manage() {
    let server = TestServer::start().await;
    let alice = provision(&server, "notice-owner").await;
    let bob = provision(&server, "notice-bob").await;
    let dir = directory(&alice, "Notices").await;
    let manager = register(&server, &bob, "Directory manager", &["all"]).await;
    let devices = register(&server, &bob, "Device manager", &["all"]).await;
    let manage = token_of(&grant(&bob, &manager, &["directory:manage"]).await);
    let other = token_of(&grant(&bob, &devices, &["device:manage"]).await);
    let with_scope = server.session().await;
    with_scope.join(&manage).await.unwrap();
    let without = server.session().await;
    without.join(&other).await.unwrap();

    let invited = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": bob.username }))
        .await
        .unwrap();
    alice.ok(&invited.command_id).await;
    let (socket, id) = (&with_scope, &invited.command_id);
    eventually(
        "the notice on the directory:manage socket",
        move || async move {
            socket
                .events_for(id)
                .iter()
                .any(|e| e["type"] == "DIRECTORY-INVITATION")
        },
    )
    .await;
    // The other application's socket gets its own later command, and never the notice
    // published before it.
    let later = server
        .client()
        .with_token(&other)
        .request_device("later")
        .await
        .unwrap();
    without.wait_command(&later.command_id, WAIT).await.unwrap();
    assert!(
        without
            .frames()
            .iter()
            .all(|f| f["data"]["type"] != "DIRECTORY-INVITATION"),
        "{:?}",
        without.frames()
    );
    // And the profile's own socket has it, as before.
    let own = &bob.session;
    eventually("the notice on the profile socket", move || async move {
        !own.events_for(id).is_empty()
    })
    .await;
}

/// A fresh profile token for `p` (its earlier one expired on the engine clock).
async fn relogin(server: &TestServer, p: &Provisioned) -> Client {
    let auth = server
        .client()
        .authenticate(&p.username, PASSWORD)
        .await
        .unwrap();
    server.client().with_token(&auth.authorization_token)
}

#[tokio::test]
async fn removed_memberships_and_ended_invitations_are_purged_after_90_days() {
    let clock = std::sync::Arc::new(privicore_domain::time::ManualClock::new(
        privicore_domain::Timestamp::now(),
    ));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| {
        s.clock = Some(c);
        s.directories.purge_interval_ms = 20;
    })
    .await;
    let day = 24 * 3600;
    let alice = provision(&server, "purge-owner").await;
    let bob = provision(&server, "purge-leaver").await;
    let carol = provision(&server, "purge-decliner").await;
    let dave = provision(&server, "purge-pending").await;
    let erin = provision(&server, "purge-stayer").await;
    let dir = directory(&alice, "History").await;
    join(&alice, &dir, &bob, "member").await;
    join(&alice, &dir, &erin, "member").await;
    let (gone, gone_name) = managed(&alice, &dir, "purge-managed").await;
    for (who, status) in [
        (bob.profile_id.clone(), "removed"),
        (gone.clone(), "removed"),
    ] {
        let a = alice
            .api
            .update_directory_user(
                json!({ "directoryId": dir, "profileId": who, "status": status }),
            )
            .await
            .unwrap();
        alice.ok(&a.command_id).await;
    }
    let declined = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": carol.username }))
        .await
        .unwrap();
    alice.ok(&declined.command_id).await;
    let d = carol
        .api
        .process_invitation(&declined.command_id, "decline")
        .await
        .unwrap();
    carol.ok(&d.command_id).await;
    // Dave's invitation stays unanswered: it ends when it expires, 7 days on.
    let pending = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": dave.username }))
        .await
        .unwrap();
    alice.ok(&pending.command_id).await;

    let removed = |api: Client, dir: String| async move {
        api.directory_users(&dir, "?filters[status]=removed")
            .await
            .unwrap()["meta"]["total"]
            .as_u64()
            .unwrap()
    };
    let invitations = |api: Client, dir: String| async move {
        api.directory_invites(&format!("?directoryId={dir}&filters[status]=all"))
            .await
            .unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["invitationId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(removed(alice.api.clone(), dir.clone()).await, 2);
    assert_eq!(invitations(alice.api.clone(), dir.clone()).await.len(), 4);

    // 89 days on, everything is still kept (the purge runs every 20 ms). Profile tokens
    // live hours: the owner logs in again after each step of the clock.
    clock.advance(day * 89);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let api = relogin(&server, &alice).await;
    assert_eq!(removed(api.clone(), dir.clone()).await, 2);
    assert_eq!(invitations(api.clone(), dir.clone()).await.len(), 4);

    // Past 90 days: removed memberships and processed invitations go; Dave's, which
    // expired on day 7, has 6 days left.
    clock.advance(day * 2);
    let api = relogin(&server, &alice).await;
    eventually("removed memberships purged", || {
        let count = removed(api.clone(), dir.clone());
        async move { count.await == 0 }
    })
    .await;
    eventually("processed invitations purged", || {
        let left = invitations(api.clone(), dir.clone());
        async move { left.await.len() == 1 }
    })
    .await;
    assert_eq!(
        invitations(api.clone(), dir.clone()).await,
        vec![pending.command_id.clone()]
    );
    clock.advance(day * 7);
    let api = relogin(&server, &alice).await;
    eventually("the expired invitation purged", || {
        let left = invitations(api.clone(), dir.clone());
        async move { left.await.is_empty() }
    })
    .await;

    // Active members and the owner stay; the removed managed user stays blocked.
    let users = api.directory_users(&dir, "").await.unwrap();
    assert_eq!(users["meta"]["total"], 2);
    assert_eq!(
        code(api.directory_profile(&dir, &bob.profile_id).await),
        (404, "directory.user_not_found".into())
    );
    assert_eq!(
        code(server.client().authenticate(&gone_name, PASSWORD).await),
        (403, "profile.inactive".into())
    );
}

#[tokio::test]
async fn transactions_pools_and_ballots_of_an_access_token_are_attributed_to_its_application() {
    let server = TestServer::start().await;
    let alice = provision(&server, "attr-owner").await;
    let bob = provision(&server, "attr-voter").await;
    alice.attach_devices(&["attr-storage"]).await;
    let app = register(&server, &alice, "Reports", &["all"]).await;
    let access = token_of(
        &grant(
            &alice,
            &app,
            &[
                "data-token:read",
                "data-token:write",
                "voting:vote",
                "directory:manage",
            ],
        )
        .await,
    );
    let as_app = server.client().with_token(&access);
    let app_socket = server.session().await;
    app_socket.join(&access).await.unwrap();

    // Statistics: the profile sees every exchange; the application its own, and the
    // report names it.
    alice.store("/attr/profile", &random_payload(64)).await;
    as_app
        .store_payload(&app_socket, "/attr/app", &random_payload(64))
        .await
        .unwrap();
    let mine = alice.api.token_statistics("").await.unwrap();
    assert_eq!(mine["totals"]["exchanged"], 2);
    assert_eq!(mine["applicationId"], Value::Null);
    assert_eq!(mine["clientId"], Value::Null);
    let theirs = as_app.token_statistics("").await.unwrap();
    assert_eq!(theirs["totals"]["exchanged"], 1);
    assert_eq!(theirs["applicationId"], app.id.as_str());
    assert_eq!(theirs["clientId"], app.client_id.as_str());

    // A directory pool opened with the access token: its snapshot and ballots carry the
    // application and its client id.
    let dir = directory(&alice, "Attributed").await;
    join(&alice, &dir, &bob, "member").await;
    let phone = bob.authenticator("attr-phone").await;
    let phone = device_client(&server, &bob, &phone).await;
    let pool = as_app
        .create_directory_voting_pool(json!({ "directoryId": dir, "title": "t", "question": "q" }))
        .await
        .unwrap()
        .command_id;
    let ballot = wait_ballots(&phone, &pool, 1).await.remove(0);
    assert_eq!(ballot["requestedBy"]["applicationId"], app.id.as_str());
    assert_eq!(ballot["requestedBy"]["clientId"], app.client_id.as_str());
    let status = as_app.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["requestedBy"]["applicationId"], app.id.as_str());
    assert_eq!(status["requestedBy"]["clientId"], app.client_id.as_str());
    phone
        .cast_vote(json!({ "ballotId": ballot["ballotId"], "decision": "yes" }))
        .await
        .unwrap();
    // The outcome goes to the application's socket (its command).
    match app_socket.wait_command(&pool, WAIT).await.unwrap() {
        CommandOutcome::Succeeded(r) => assert_eq!(r["status"], "approved"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn member_and_device_limits_and_password_rules_of_managed_users() {
    let server = TestServer::start_with(|s| {
        s.directories.members_per_directory = 3;
        s.devices.per_profile = 1;
    })
    .await;
    let alice = provision(&server, "limits-owner").await;
    let bob = provision(&server, "limits-invitee").await;
    let dir = directory(&alice, "Small").await;
    let (carol, _) = managed(&alice, &dir, "limits-carol").await;

    // Password rules of Create Directory User (profile-and-keys.md §2.1).
    let username = unique_username("limits-pw");
    for (password, key) in [
        (username.clone(), "profile.password_equals_username"),
        ("p".repeat(1025), "profile.password_too_long"),
    ] {
        assert_eq!(
            code(
                alice
                    .api
                    .create_directory_user(
                        json!({ "directoryId": dir, "username": username, "password": password })
                    )
                    .await
            ),
            (422, key.to_string())
        );
    }

    // Device limit of the managed user; a pending device cannot take storage.
    let pending = alice
        .api
        .create_profile_device(
            json!({ "directoryId": dir, "profileId": carol, "deviceName": "first", "approve": false }),
        )
        .await
        .unwrap();
    let device = alice.ok(&pending.command_id).await["deviceIdentifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = alice
        .api
        .create_profile_device(
            json!({ "directoryId": dir, "profileId": carol, "deviceName": "second" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&second.command_id).await,
        "device.limit_reached"
    );
    let storage = alice
        .api
        .add_storage_device_to_profile(&dir, &carol, &device)
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&storage.command_id).await,
        "device.not_approved"
    );

    // Three members at most (the owner counts): a third joins, a fourth does not.
    let invited = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": bob.username }))
        .await
        .unwrap();
    alice.ok(&invited.command_id).await;
    managed(&alice, &dir, "limits-dave").await;
    let fourth = alice
        .api
        .create_directory_user(
            json!({ "directoryId": dir, "username": unique_username("limits-x") }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&fourth.command_id).await,
        "directory.user_limit_reached"
    );
    let accepted = bob
        .api
        .process_invitation(&invited.command_id, "accept")
        .await
        .unwrap();
    assert_eq!(
        bob.failure(&accepted.command_id).await,
        "directory.user_limit_reached"
    );
}

#[tokio::test]
async fn a_directory_pool_survives_a_restart() {
    let mut server = TestServer::start().await;
    let alice = provision(&server, "kept-pool-owner").await;
    let bob = provision(&server, "kept-pool-voter").await;
    let dir = directory(&alice, "Kept").await;
    join(&alice, &dir, &bob, "member").await;
    let mut credentials = Vec::new();
    for name in ["kept-phone", "kept-laptop"] {
        let id = bob.authenticator(name).await;
        let bundle = bob.api.download_device_configuration(&id).await.unwrap();
        credentials.push((
            bundle["client-id"].as_str().unwrap().to_owned(),
            bundle["client-secret"].as_str().unwrap().to_owned(),
        ));
    }
    let device = |server: &TestServer, i: usize| {
        server
            .client()
            .with_device_credentials(&credentials[i].0, &credentials[i].1)
            .unwrap()
    };
    let pool = alice
        .api
        .create_directory_voting_pool(
            json!({ "directoryId": dir, "title": "Kept", "question": "?" }),
        )
        .await
        .unwrap()
        .command_id;
    wait_ballots(&device(&server, 0), &pool, 1).await;

    server.restart().await;
    let api = server.client().with_token(&alice.token);
    let status = api.check_pool_status(&pool).await.unwrap();
    assert_eq!(
        (status["status"].clone(), status["directoryId"].clone()),
        (json!("open"), json!(dir))
    );
    let (phone, laptop) = (device(&server, 0), device(&server, 1));
    let on_laptop = wait_ballots(&laptop, &pool, 1).await;
    let on_phone = wait_ballots(&phone, &pool, 1).await;
    let voted = phone
        .cast_vote(json!({ "ballotId": on_phone[0]["ballotId"], "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "approved");
    assert_eq!(
        code(
            laptop
                .cast_vote(json!({ "ballotId": on_laptop[0]["ballotId"], "decision": "yes" }))
                .await
        ),
        (409, "ballot.closed".into())
    );
    match api.poll_command(&pool, WAIT).await.unwrap() {
        privicore_client::RequestStatus::Succeeded(Some(result)) => {
            assert_eq!(result["status"], "approved")
        }
        other => panic!("{other:?}"),
    }
}
