//! Directories through `privicore-client` against the real server (docs/api/directory.md):
//! registration, meta, managed users and the effects of their status, invitations and their
//! notification, the member reads, every endpoint's error keys, the §1.3 permission table
//! (every action × every standing), and isolation between directories.

mod common;

use common::*;
use privicore_client::{ClientError, CommandOutcome};
use serde_json::{Value, json};

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    api_code(result)
}

#[tokio::test]
async fn register_retrieve_list_and_meta() {
    let server = TestServer::start().await;
    let alice = provision(&server, "dir-owner").await;
    let dir = directory(&alice, "Acme Finance").await;

    let record = alice.api.retrieve_directory(&dir).await.unwrap();
    assert_eq!(record["directoryId"], dir.as_str());
    assert_eq!(record["ownerProfileId"], alice.profile_id.as_str());
    assert_eq!(record["ownerUsername"], alice.username.as_str());
    assert_eq!(record["myRole"], "owner");
    assert_eq!(record["myStatus"], "active");
    assert_eq!(record["meta"], json!({ "costCenter": "FIN-01" }));
    assert_eq!(record["counts"]["users"], 1);

    // Names are unique per owner, case-insensitively.
    let again = alice
        .api
        .register_directory(json!({ "name": "acme finance" }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&again.command_id).await,
        "directory.name_taken"
    );
    let other = directory(&alice, "Acme Legal").await;

    let owned = alice.api.owned_directories("").await.unwrap();
    assert_eq!(owned["meta"]["total"], 2);
    assert_eq!(
        owned["items"][0]["directoryId"],
        other.as_str(),
        "newest first"
    );
    let filtered = alice
        .api
        .owned_directories("?filters[name]=Acme%20F*")
        .await
        .unwrap();
    assert_eq!(ids(&filtered, "directoryId"), vec![dir.clone()]);

    // Meta: merged, a null removes a key; or replaced.
    let merged = alice
        .api
        .store_directory_meta(&dir, json!({ "region": "EU", "costCenter": null }), false)
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&merged.command_id).await["meta"],
        json!({ "region": "EU" })
    );
    let replaced = alice
        .api
        .store_directory_meta(&dir, json!({ "a": 1 }), true)
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&replaced.command_id).await["meta"],
        json!({ "a": 1 })
    );
    assert_eq!(
        alice.api.retrieve_directory(&dir).await.unwrap()["meta"],
        json!({ "a": 1 })
    );

    // Bad input: 422 with the spec's keys.
    let big = json!({ "x": "y".repeat(64 * 1024) });
    assert_eq!(
        code(
            alice
                .api
                .store_directory_meta(&dir, big.clone(), false)
                .await
        ),
        (422, "directory.invalid_meta".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .store_directory_meta(&dir, json!([1, 2]), false)
                .await
        ),
        (422, "directory.invalid_meta".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .register_directory(json!({ "name": "Big", "meta": big }))
                .await
        ),
        (422, "directory.invalid_meta".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .register_directory(json!({ "description": "x" }))
                .await
        ),
        (422, "validation.missing_field".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .register_directory(json!({ "name": "n".repeat(101) }))
                .await
        ),
        (422, "directory.invalid_name".into())
    );
    assert_eq!(
        code(alice.api.retrieve_directory(&alice.profile_id).await),
        (404, "directory.not_found".into())
    );
    assert_eq!(
        code(alice.api.retrieve_directory("not-a-uuid").await),
        (422, "validation.invalid_format".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .store_directory_meta(&alice.profile_id, json!({}), false)
                .await
        ),
        (404, "directory.not_found".into())
    );
}

#[tokio::test]
async fn owned_directories_are_limited() {
    // The limit is a setting (20 by default).
    let server = TestServer::start_with(|s| s.directories.owned_per_profile = 3).await;
    let alice = provision(&server, "dir-limit").await;
    for i in 0..3 {
        directory(&alice, &format!("D{i}")).await;
    }
    let over = alice
        .api
        .register_directory(json!({ "name": "D3" }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&over.command_id).await,
        "directory.limit_reached"
    );
}

#[tokio::test]
async fn managed_users_password_status_and_tokens() {
    let server = TestServer::start().await;
    let alice = provision(&server, "dir-managed").await;
    let dir = directory(&alice, "Acme").await;
    let (carol_id, carol_name) = managed(&alice, &dir, "carol").await;

    // The managed user logs in with the password the directory set, and sees the directory.
    let login = server
        .client()
        .authenticate(&carol_name, PASSWORD)
        .await
        .unwrap();
    assert_eq!(login.profile_id, carol_id);
    let carol = server.client().with_token(&login.authorization_token);
    // Like anyone else, a managed user registers its own key before using the API.
    let key = carol
        .register_public_key(&privicore_client::KeyPair::generate().public().to_hex())
        .await
        .unwrap();
    assert!(matches!(
        carol.poll_command(&key.command_id, WAIT).await.unwrap(),
        privicore_client::RequestStatus::Succeeded(_)
    ));
    let info = carol.retrieve_profile_id().await.unwrap();
    assert_eq!(info.kind, "directory_user");
    let assigned = carol.assigned_directories("").await.unwrap();
    assert_eq!(assigned["items"][0]["directoryId"], dir.as_str());
    assert_eq!(assigned["items"][0]["myRole"], "member");

    // Member record, full for the owner.
    let record = alice.api.directory_profile(&dir, &carol_id).await.unwrap();
    assert_eq!(record["username"], carol_name.as_str());
    assert_eq!(record["kind"], "managed");
    assert_eq!(record["passwordSet"], true);
    assert_eq!(record["publicKeyRegistered"], true);
    assert_eq!(record["email"], "carol@acme.example");
    assert_eq!(record["attributes"], json!({ "team": "payables" }));
    assert_eq!(record["devices"]["total"], 0);
    assert!(record["lastAuthenticatedAt"].is_string());
    let users = alice.api.directory_users(&dir, "").await.unwrap();
    assert_eq!(
        ids(&users, "profileId"),
        vec![alice.profile_id.clone(), carol_id.clone()]
    );
    let info = alice.api.directory_profiles_info(&dir, "").await.unwrap();
    assert_eq!(info["totals"]["users"], 2);
    assert_eq!(info["totals"]["withoutPublicKey"], 0);
    assert_eq!(info["totals"]["withoutPassword"], 0);
    assert_eq!(info["items"][1]["passwordSet"], true);
    assert_eq!(info["items"][0]["passwordSet"], Value::Null);
    assert_eq!(info["meta"]["total"], 2);

    // Set profile password revokes the user's tokens by default.
    let set = alice
        .api
        .set_directory_user_password(&dir, &carol_id, "another-password-1", true)
        .await
        .unwrap();
    let result = alice.ok(&set.command_id).await;
    assert_eq!(result["revokedTokens"], 1);
    assert_eq!(
        code(carol.token_expiry().await),
        (401, "auth.token_revoked".into())
    );
    let login = server
        .client()
        .authenticate(&carol_name, "another-password-1")
        .await
        .unwrap();
    let carol = server.client().with_token(&login.authorization_token);
    let carol_socket = privicore_client::Session::connect(&server.ws_url())
        .await
        .unwrap();
    carol_socket.join(&login.authorization_token).await.unwrap();

    // Suspending blocks the profile: its token is refused, its socket told and closed,
    // and it cannot log in.
    let suspend = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol_id, "status": "suspended" }),
        )
        .await
        .unwrap();
    let member = alice.ok(&suspend.command_id).await;
    assert_eq!(member["status"], "suspended");
    assert_eq!(
        code(carol.token_expiry().await).1,
        "profile.inactive".to_string()
    );
    let notice = carol_socket.notice(WAIT).await.unwrap();
    assert_eq!(notice["data"]["code"], "profile.inactive");
    assert_eq!(carol_socket.closed(WAIT).await.unwrap(), Some(1008));
    assert_eq!(
        code(
            server
                .client()
                .authenticate(&carol_name, "another-password-1")
                .await
        )
        .1,
        "profile.inactive".to_string()
    );

    // Back to active: logins work again.
    let restore = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol_id, "status": "active" }),
        )
        .await
        .unwrap();
    alice.ok(&restore.command_id).await;
    server
        .client()
        .authenticate(&carol_name, "another-password-1")
        .await
        .unwrap();

    // Removed is final.
    let remove = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol_id, "status": "removed" }),
        )
        .await
        .unwrap();
    alice.ok(&remove.command_id).await;
    let back = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol_id, "status": "active" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&back.command_id).await,
        "directory.invalid_status_change"
    );

    // A key given at creation is registered: the user may use the API at once.
    let keyed = unique_username("keyed");
    let accepted = alice
        .api
        .create_directory_user(json!({
            "directoryId": dir, "username": keyed, "password": PASSWORD,
            "publicKey": privicore_client::KeyPair::generate().public().to_hex(),
        }))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&accepted.command_id).await["publicKeyRegistered"],
        true
    );
    let login = server
        .client()
        .authenticate(&keyed, PASSWORD)
        .await
        .unwrap();
    assert!(login.public_key_registered);
    let keyed_api = server.client().with_token(&login.authorization_token);
    assert_eq!(
        keyed_api.assigned_directories("").await.unwrap()["meta"]["total"],
        1
    );
    let (status, key) = code(
        alice
            .api
            .create_directory_user(
                json!({ "directoryId": dir, "username": unique_username("k"), "publicKey": "zz" }),
            )
            .await,
    );
    assert_eq!(status, 422);
    assert!(key.starts_with("public_key."), "{key}");

    // Error keys of the user endpoints.
    let (dave_id, _) = managed(&alice, &dir, "dave").await;
    let taken = alice
        .api
        .create_directory_user(json!({ "directoryId": dir, "username": carol_name }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&taken.command_id).await,
        "profile.username_taken"
    );
    for (body, expected) in [
        (
            json!({ "directoryId": dir, "username": "!bad" }),
            "profile.invalid_username",
        ),
        (
            json!({ "directoryId": dir, "username": unique_username("e"), "password": "short" }),
            "profile.password_too_short",
        ),
        (
            json!({ "directoryId": dir, "username": unique_username("e"), "email": "no-at" }),
            "directory.invalid_member_fields",
        ),
        (
            json!({ "directoryId": dir, "username": unique_username("e"), "role": "owner" }),
            "directory.invalid_member_fields",
        ),
        (
            json!({ "directoryId": dir, "username": unique_username("e"), "attributes": { "k": 1 } }),
            "directory.invalid_member_fields",
        ),
        (
            json!({ "username": unique_username("e") }),
            "validation.missing_field",
        ),
    ] {
        assert_eq!(
            code(alice.api.create_directory_user(body.clone()).await),
            (422, expected.to_string()),
            "{body}"
        );
    }
    assert_eq!(
        code(
            alice
                .api
                .create_directory_user(
                    json!({ "directoryId": alice.profile_id, "username": unique_username("e") })
                )
                .await
        ),
        (404, "directory.not_found".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .update_directory_user(json!({ "directoryId": dir, "profileId": dave_id }))
                .await
        ),
        (422, "validation.no_changes".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .update_directory_user(
                    json!({ "directoryId": dir, "profileId": dir, "displayName": "x" })
                )
                .await
        ),
        (404, "directory.user_not_found".into())
    );
    let owner = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": alice.profile_id, "displayName": "Boss" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&owner.command_id).await,
        "directory.cannot_modify_owner"
    );
    assert_eq!(
        code(
            alice
                .api
                .set_directory_user_password(&dir, &dave_id, "short", true)
                .await
        ),
        (422, "profile.password_too_short".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .set_directory_user_password(&dir, &dir, "long-enough-pass", true)
                .await
        ),
        (404, "directory.user_not_found".into())
    );
    let not_managed = alice
        .api
        .set_directory_user_password(&dir, &alice.profile_id, "long-enough-pass", true)
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&not_managed.command_id).await,
        "directory.user_not_managed"
    );
    // Clearing fields, and the record the update answers with.
    let cleared = alice
        .api
        .update_directory_user(json!({ "directoryId": dir, "profileId": dave_id, "email": "", "displayName": "Dave", "attributes": { "a": "b" } }))
        .await
        .unwrap();
    let record = alice.ok(&cleared.command_id).await;
    assert_eq!(record["email"], Value::Null);
    assert_eq!(record["displayName"], "Dave");
    assert_eq!(record["attributes"], json!({ "a": "b" }));
}

#[tokio::test]
async fn invitations_notify_list_process_and_expire() {
    let (server, clock) = server_with_clock().await;
    let alice = provision(&server, "dir-inviter").await;
    let bob = provision(&server, "dir-invitee").await;
    let dir = directory(&alice, "Acme Finance").await;

    let invited = alice
        .api
        .invite_to_directory(
            json!({ "directoryId": dir, "profileId": bob.profile_id, "message": "Welcome" }),
        )
        .await
        .unwrap();
    let result = alice.ok(&invited.command_id).await;
    assert_eq!(result["invitationId"], invited.command_id.as_str());
    assert_eq!(result["invitedProfileId"], bob.profile_id.as_str());
    assert_eq!(result["role"], "member");

    // §1.7: the invitee's socket is told; the inviter's is not.
    let notification = bob.session.events_for(&invited.command_id);
    let notification = match notification.first() {
        Some(n) => n.clone(),
        None => {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                if let Some(n) = bob.session.events_for(&invited.command_id).first() {
                    break n.clone();
                }
                assert!(std::time::Instant::now() < deadline, "no notification");
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(notification["type"], "DIRECTORY-INVITATION");
    assert_eq!(notification["directoryId"], dir.as_str());
    assert_eq!(notification["directoryName"], "Acme Finance");
    assert_eq!(notification["role"], "member");
    assert_eq!(notification["invitedBy"], alice.username.as_str());
    assert!(
        alice
            .session
            .events_for(&invited.command_id)
            .iter()
            .all(|e| e["type"] != "DIRECTORY-INVITATION")
    );

    // Lists: the directory's (owner) and mine (invitee).
    let of_directory = alice
        .api
        .directory_invites(&format!("?directoryId={dir}"))
        .await
        .unwrap();
    assert_eq!(
        ids(&of_directory, "invitationId"),
        vec![invited.command_id.clone()]
    );
    let mine = bob.api.directory_invites("").await.unwrap();
    let item = &mine["items"][0];
    assert_eq!(item["invitationId"], invited.command_id.as_str());
    assert_eq!(item["directoryName"], "Acme Finance");
    assert_eq!(item["invitedBy"]["username"], alice.username.as_str());
    assert_eq!(item["message"], "Welcome");
    assert_eq!(item["status"], "pending");
    assert_eq!(
        alice.api.directory_invites("").await.unwrap()["meta"]["total"],
        0
    );

    // Invite errors.
    let pending = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": bob.username }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&pending.command_id).await,
        "directory.invitation_pending"
    );
    let me = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": alice.username }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&me.command_id).await,
        "directory.cannot_invite_self"
    );
    let nobody = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": unique_username("ghost") }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&nobody.command_id).await,
        "directory.invitee_not_found"
    );
    assert_eq!(
        code(
            alice
                .api
                .invite_to_directory(json!({ "directoryId": dir, "username": bob.username, "profileId": bob.profile_id }))
                .await
        ),
        (422, "validation.ambiguous_shape".into())
    );
    assert_eq!(
        code(
            alice
                .api
                .invite_to_directory(json!({ "directoryId": dir }))
                .await
        ),
        (422, "validation.ambiguous_shape".into())
    );

    // Process errors: someone else's invitation, a bad decision.
    assert_eq!(
        code(
            alice
                .api
                .process_invitation(&invited.command_id, "accept")
                .await
        ),
        (404, "directory.invitation_not_found".into())
    );
    assert_eq!(
        code(
            bob.api
                .process_invitation(&invited.command_id, "maybe")
                .await
        ),
        (422, "directory.invalid_decision".into())
    );

    // Accept: an invited membership.
    let accepted = bob
        .api
        .process_invitation(&invited.command_id, "accept")
        .await
        .unwrap();
    let result = bob.ok(&accepted.command_id).await;
    assert_eq!(result["status"], "accepted");
    assert_eq!(result["directoryId"], dir.as_str());
    let again = bob
        .api
        .process_invitation(&invited.command_id, "decline")
        .await
        .unwrap();
    assert_eq!(
        bob.failure(&again.command_id).await,
        "directory.invitation_not_pending"
    );
    let record = bob
        .api
        .directory_profile(&dir, &bob.profile_id)
        .await
        .unwrap();
    assert_eq!(record["kind"], "invited");
    assert_eq!(record["passwordSet"], Value::Null);
    assert_eq!(record["email"], Value::Null, "limited for members");
    let member_view = bob.api.directory_users(&dir, "").await.unwrap();
    assert_eq!(member_view["items"][0]["devices"], Value::Null);
    let already = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": bob.username }))
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&already.command_id).await,
        "directory.already_member"
    );
    let assigned = bob.api.assigned_directories("").await.unwrap();
    assert_eq!(assigned["items"][0]["myRole"], "member");
    assert_eq!(
        alice.api.retrieve_directory(&dir).await.unwrap()["counts"]["invitedUsers"],
        1
    );

    // Decline, and expiry after 7 days on the engine clock.
    let carol = provision(&server, "dir-late").await;
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
    assert_eq!(carol.ok(&d.command_id).await["status"], "declined");
    let late = alice
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": carol.username }))
        .await
        .unwrap();
    alice.ok(&late.command_id).await;
    clock.advance(7 * 24 * 3600 + 1);
    // The tokens expired with the week; a fresh login answers.
    let login = server
        .client()
        .authenticate(&carol.username, PASSWORD)
        .await
        .unwrap();
    let carol_api = server.client().with_token(&login.authorization_token);
    let expired = carol_api
        .process_invitation(&late.command_id, "accept")
        .await
        .unwrap();
    assert_eq!(
        carol_api
            .poll_command(&expired.command_id, WAIT)
            .await
            .unwrap(),
        privicore_client::RequestStatus::Failed("directory.invitation_expired".into())
    );
    let login = server
        .client()
        .authenticate(&alice.username, PASSWORD)
        .await
        .unwrap();
    let alice_api = server.client().with_token(&login.authorization_token);
    let listed = alice_api
        .directory_invites(&format!("?directoryId={dir}&filters[status]=expired"))
        .await
        .unwrap();
    assert_eq!(ids(&listed, "invitationId"), vec![late.command_id.clone()]);
    let all = alice_api
        .directory_invites(&format!("?directoryId={dir}&filters[status]=all"))
        .await
        .unwrap();
    assert_eq!(all["meta"]["total"], 3);
}

/// The standings of §1.3 as the permission test builds them.
const STANDINGS: [&str; 6] = [
    "owner",
    "admin",
    "member",
    "invitee",
    "outsider",
    "suspended",
];

/// docs/api/directory.md §1.3, written out independently of the domain's table: for each
/// action the standings allowed.
const SPEC: &[(&str, &[&str])] = &[
    ("read", &["owner", "admin", "member"]),
    ("retrieve_own_profile", &["owner", "admin", "member"]),
    ("retrieve_other_profile", &["owner", "admin"]),
    ("manage_users", &["owner", "admin"]),
    ("update_other_user", &["owner", "admin"]),
    ("change_role", &["owner"]),
    ("list_directory_invites", &["owner", "admin"]),
    ("report", &["owner", "admin"]),
    ("store_meta", &["owner", "admin"]),
    ("manage_devices", &["owner", "admin"]),
    ("list_devices", &["owner", "admin"]),
    ("create_voting_pool", &["owner", "admin"]),
    // Run last: they change the caller's standing.
    ("answer_invitation", &["invitee"]),
    ("leave", &["admin", "member"]),
];

struct Cast {
    /// A managed member every update targets.
    target: String,
    /// Pending invitation of the invitee.
    invitation: String,
}

/// What the call of `action` by `who` answered: `Ok` when allowed (202 or 200 and no
/// permission failure), `Err(key)` when refused.
async fn attempt(cast: &Cast, dir: &str, who: &Provisioned, action: &str) -> Result<(), String> {
    let api = &who.api;
    let refused = |e: ClientError| Err(e.code().unwrap_or_default().to_owned());
    let accepted = match action {
        "read" => return api.retrieve_directory(dir).await.map(drop).or_else(refused),
        "retrieve_own_profile" => {
            return api
                .directory_profile(dir, &who.profile_id)
                .await
                .map(drop)
                .or_else(refused);
        }
        "retrieve_other_profile" => {
            return api
                .directory_profile(dir, &cast.target)
                .await
                .map(drop)
                .or_else(refused);
        }
        "list_directory_invites" => {
            return api
                .directory_invites(&format!("?directoryId={dir}"))
                .await
                .map(drop)
                .or_else(refused);
        }
        "report" => {
            return api
                .directory_profiles_info(dir, "")
                .await
                .map(drop)
                .or_else(refused);
        }
        "manage_users" => {
            api.invite_to_directory(
                json!({ "directoryId": dir, "username": unique_username("nobody") }),
            )
            .await
        }
        "update_other_user" => {
            api.update_directory_user(
                json!({ "directoryId": dir, "profileId": cast.target, "displayName": "T" }),
            )
            .await
        }
        "change_role" => {
            api.update_directory_user(
                json!({ "directoryId": dir, "profileId": cast.target, "role": "member" }),
            )
            .await
        }
        "store_meta" => {
            api.store_directory_meta(dir, json!({ "k": "v" }), false)
                .await
        }
        "manage_devices" => {
            api.create_profile_device(
                json!({ "directoryId": dir, "profileId": cast.target, "deviceName": "perm-device" }),
            )
            .await
        }
        "list_devices" => {
            return api
                .directory_devices(dir, "")
                .await
                .map(drop)
                .or_else(refused);
        }
        // Nobody in the cast has an authenticator: an allowed pool fails to start
        // (voting.no_eligible_authenticators), which shows the permission was granted.
        "create_voting_pool" => {
            api.create_directory_voting_pool(
                json!({ "directoryId": dir, "title": "Permission", "question": "?" }),
            )
            .await
        }
        "answer_invitation" => api.process_invitation(&cast.invitation, "decline").await,
        "leave" => {
            api.update_directory_user(
                json!({ "directoryId": dir, "profileId": who.profile_id, "status": "removed" }),
            )
            .await
        }
        other => panic!("unknown action {other}"),
    };
    let accepted = match accepted {
        Ok(a) => a,
        Err(e) => return refused(e),
    };
    match who.outcome(&accepted.command_id).await {
        CommandOutcome::Succeeded(_) => Ok(()),
        // Permission failures found when the command ran count as refusals; business
        // failures (an unknown invitee) show the permission was granted.
        CommandOutcome::Failed(key)
            if key == "directory.forbidden" || key == "directory.cannot_modify_owner" =>
        {
            Err(key)
        }
        CommandOutcome::Failed(_) => Ok(()),
    }
}

#[tokio::test]
async fn the_permission_table_every_action_by_every_standing() {
    let server = TestServer::start().await;
    let owner = provision(&server, "perm-owner").await;
    let dir = directory(&owner, "Permissions").await;
    let (target, _) = managed(&owner, &dir, "perm-target").await;
    let admin = provision(&server, "perm-admin").await;
    join(&owner, &dir, &admin, "admin").await;
    let member = provision(&server, "perm-member").await;
    join(&owner, &dir, &member, "member").await;
    let invitee = provision(&server, "perm-invitee").await;
    let pending = owner
        .api
        .invite_to_directory(json!({ "directoryId": dir, "username": invitee.username }))
        .await
        .unwrap();
    owner.ok(&pending.command_id).await;
    let outsider = provision(&server, "perm-outsider").await;
    let suspended = provision(&server, "perm-suspended").await;
    join(&owner, &dir, &suspended, "member").await;
    let s = owner
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": suspended.profile_id, "status": "suspended" }),
        )
        .await
        .unwrap();
    owner.ok(&s.command_id).await;
    let cast = Cast {
        target,
        invitation: pending.command_id.clone(),
    };
    // In `STANDINGS` order; the owner's own membership is the target of its "leave".
    let callers = [&owner, &admin, &member, &invitee, &outsider, &suspended];
    let mut mismatches = Vec::new();
    for (action, allowed) in SPEC {
        for (standing, who) in STANDINGS.iter().zip(callers) {
            let expected = allowed.contains(standing);
            let got = attempt(&cast, &dir, who, action).await;
            let ok = match (&got, expected) {
                (Ok(()), true) => true,
                (Err(key), false) => {
                    // Refusals: 403 directory.forbidden; the owner's own membership is
                    // untouchable; an invitation addressed to someone else is not found.
                    key == "directory.forbidden"
                        || (*action == "leave" && key == "directory.cannot_modify_owner")
                        || (*action == "answer_invitation"
                            && key == "directory.invitation_not_found")
                }
                _ => false,
            };
            if !ok {
                mismatches.push(format!("{action} by {standing}: {got:?}"));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[tokio::test]
async fn directories_are_isolated() {
    let server = TestServer::start().await;
    let alice = provision(&server, "iso-a").await;
    let eve = provision(&server, "iso-e").await;
    let a = directory(&alice, "Alpha").await;
    let e = directory(&eve, "Echo").await;
    let (carol, _) = managed(&alice, &a, "iso-carol").await;

    // An owner of one directory has no rights in another.
    for result in [
        code(eve.api.retrieve_directory(&a).await),
        code(eve.api.directory_users(&a, "").await),
        code(eve.api.directory_profile(&a, &carol).await),
        code(eve.api.directory_profiles_info(&a, "").await),
        code(
            eve.api
                .directory_invites(&format!("?directoryId={a}"))
                .await,
        ),
        code(
            eve.api
                .store_directory_meta(&a, json!({ "x": 1 }), false)
                .await,
        ),
        code(
            eve.api
                .set_directory_user_password(&a, &carol, "hijacked-password", true)
                .await,
        ),
        code(
            eve.api
                .update_directory_user(
                    json!({ "directoryId": a, "profileId": carol, "status": "suspended" }),
                )
                .await,
        ),
        code(
            eve.api
                .create_directory_user(
                    json!({ "directoryId": a, "username": unique_username("x") }),
                )
                .await,
        ),
    ] {
        assert_eq!(result, (403, "directory.forbidden".into()));
    }
    // A managed user of one directory is not a user of another, even for its owner.
    assert_eq!(
        code(
            eve.api
                .set_directory_user_password(&e, &carol, "hijacked-password", true)
                .await
        ),
        (404, "directory.user_not_found".into())
    );
    assert_eq!(
        code(eve.api.directory_profile(&e, &carol).await),
        (404, "directory.user_not_found".into())
    );
    assert_eq!(
        eve.api.owned_directories("").await.unwrap()["meta"]["total"],
        1
    );
    assert_eq!(
        eve.api.assigned_directories("").await.unwrap()["meta"]["total"],
        0
    );
}

#[tokio::test]
async fn directory_authority_over_managed_users_devices() {
    let server = TestServer::start().await;
    let alice = provision(&server, "auth-owner").await;
    let bob = provision(&server, "auth-invited").await;
    let eve = provision(&server, "auth-other").await;
    let dir = directory(&alice, "Devices").await;
    let (carol, carol_name) = managed(&alice, &dir, "auth-carol").await;
    join(&alice, &dir, &bob, "member").await;
    directory(&eve, "Elsewhere").await;

    // Create profile device: the device belongs to the managed user, approved by default.
    let created = alice
        .api
        .create_profile_device(json!({ "directoryId": dir, "profileId": carol, "deviceName": "carol-laptop", "description": "desk" }))
        .await
        .unwrap();
    let result = alice.ok(&created.command_id).await;
    assert_eq!(result["profileId"], carol.as_str());
    assert_eq!(result["status"], "approved");
    assert_eq!(result["deviceName"], "carol-laptop");
    let device = result["deviceIdentifier"].as_str().unwrap().to_owned();
    let pending = alice
        .api
        .create_profile_device(json!({ "directoryId": dir, "profileId": carol, "deviceName": "carol-phone", "approve": false }))
        .await
        .unwrap();
    assert_eq!(alice.ok(&pending.command_id).await["status"], "pending");

    // §1.4: the owner downloads its bundle as if it owned the device.
    let bundle = alice
        .api
        .download_device_configuration(&device)
        .await
        .unwrap();
    assert_eq!(bundle["profile-id"], carol.as_str());
    assert_eq!(bundle["device-identifier"], device.as_str());

    // Add storage device to profile.
    let storage = alice
        .api
        .add_storage_device_to_profile(&dir, &carol, &device)
        .await
        .unwrap();
    let result = alice.ok(&storage.command_id).await;
    assert_eq!(result["roles"], json!(["storage"]));
    assert_eq!(result["profileId"], carol.as_str());
    let again = alice
        .api
        .add_storage_device_to_profile(&dir, &carol, &device)
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&again.command_id).await,
        "storage.already_registered"
    );

    // List directory devices: the managed users' devices, each with its username.
    let list = alice.api.directory_devices(&dir, "").await.unwrap();
    assert_eq!(list["meta"]["total"], 2);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["username"] == carol_name.as_str())
    );
    let storage_only = alice
        .api
        .directory_devices(&dir, "?filters[role]=storage")
        .await
        .unwrap();
    assert_eq!(ids(&storage_only, "deviceIdentifier"), vec![device.clone()]);
    assert_eq!(
        alice.api.retrieve_directory(&dir).await.unwrap()["counts"]["devices"],
        2
    );

    // An invited member's devices are never reachable; nor, from another directory, a
    // managed user's.
    let bobs = bob.approved_device("bob-laptop").await;
    assert_eq!(
        code(alice.api.download_device_configuration(&bobs).await),
        (403, "device.not_owner".into())
    );
    let for_bob = alice
        .api
        .create_profile_device(
            json!({ "directoryId": dir, "profileId": bob.profile_id, "deviceName": "x" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.failure(&for_bob.command_id).await,
        "directory.user_not_managed"
    );
    let foreign = alice
        .api
        .add_storage_device_to_profile(&dir, &carol, &bobs)
        .await
        .unwrap();
    assert_eq!(alice.failure(&foreign.command_id).await, "device.not_owner");
    assert_eq!(
        code(eve.api.download_device_configuration(&device).await),
        (403, "device.not_owner".into())
    );
    assert_eq!(
        code(eve.api.directory_devices(&dir, "").await),
        (403, "directory.forbidden".into())
    );

    // Error keys.
    for (body, expected) in [
        (
            json!({ "directoryId": dir, "profileId": carol }),
            (422, "validation.missing_field"),
        ),
        (
            json!({ "directoryId": dir, "profileId": carol, "deviceName": "n".repeat(101) }),
            (422, "device.invalid_name"),
        ),
        (
            json!({ "directoryId": dir, "profileId": dir, "deviceName": "x" }),
            (404, "directory.user_not_found"),
        ),
        (
            json!({ "directoryId": carol, "profileId": carol, "deviceName": "x" }),
            (404, "directory.not_found"),
        ),
    ] {
        assert_eq!(
            code(alice.api.create_profile_device(body.clone()).await),
            (expected.0, expected.1.to_string()),
            "{body}"
        );
    }
    assert_eq!(
        code(
            alice
                .api
                .add_storage_device_to_profile(&dir, &carol, &carol)
                .await
        ),
        (404, "device.not_found".into())
    );

    // A removed managed user's devices leave the directory's authority.
    let removed = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": carol, "status": "removed" }),
        )
        .await
        .unwrap();
    alice.ok(&removed.command_id).await;
    assert_eq!(
        code(alice.api.download_device_configuration(&device).await),
        (403, "device.not_owner".into())
    );
}

/// The pool holding `command` (waits for its `command_status: 1` event naming one).
async fn holding_pool(p: &Provisioned, command: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(e) = p
            .session
            .events_for(command)
            .into_iter()
            .find(|e| e["command_status"] == 1 && e["body"]["pools"][0]["poolId"].is_string())
        {
            return e["body"]["pools"][0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{command} never held");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn template_10_holds_directory_commands_of_its_directory_until_approved() {
    let (server, _clock) = server_with_clock().await;
    let alice = provision(&server, "gate-dir").await;
    let dir = directory(&alice, "Gated").await;
    let other = directory(&alice, "Ungated").await;
    let phone = alice.authenticator("phone").await;
    let configured = alice
        .api
        .register_voting_configuration(
            json!({ "name": "admins", "strategy": "unanimous", "timeLimit": 300 }),
        )
        .await
        .unwrap();
    alice.ok(&configured.command_id).await;
    let registered = alice
        .api
        .register_policy(json!({
            "name": "directory-approval", "policyTemplateId": "10", "applyingEventIds": ["1001", "1004"],
            "configuration": { "scope": "profile", "directoryId": dir }, "votingConfigurationId": "admins",
        }))
        .await
        .unwrap();
    alice.ok(&registered.command_id).await;
    let activated = alice
        .api
        .activate_policy("directory-approval")
        .await
        .unwrap();
    alice.ok(&activated.command_id).await;
    let bundle = alice
        .api
        .download_device_configuration(&phone)
        .await
        .unwrap();
    let device = server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();

    // Held, then created once the authenticator approves.
    let username = unique_username("gated-user");
    let created = alice
        .api
        .create_directory_user(
            json!({ "directoryId": dir, "username": username, "password": PASSWORD }),
        )
        .await
        .unwrap();
    let pool = holding_pool(&alice, &created.command_id).await;
    assert_eq!(pool["eventId"], "1001");
    let pool_id = pool["poolId"].as_str().unwrap().to_owned();
    let status = alice.api.check_pool_status(&pool_id).await.unwrap();
    assert_eq!(status["status"], "open");
    let b = ballot_of(&device, &pool_id).await;
    let voted = device
        .cast_vote(json!({ "ballotId": b, "decision": "yes" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "approved");
    let user = alice.ok(&created.command_id).await["profileId"]
        .as_str()
        .unwrap()
        .to_owned();

    // Rejected: the update fails with the voting key and changes nothing.
    let update = alice
        .api
        .update_directory_user(
            json!({ "directoryId": dir, "profileId": user, "status": "suspended" }),
        )
        .await
        .unwrap();
    let pool = holding_pool(&alice, &update.command_id).await;
    assert_eq!(pool["eventId"], "1004");
    let b = ballot_of(&device, pool["poolId"].as_str().unwrap()).await;
    device
        .cast_vote(json!({ "ballotId": b, "decision": "no" }))
        .await
        .unwrap();
    assert_eq!(alice.failure(&update.command_id).await, "voting.rejected");
    assert_eq!(
        alice.api.directory_profile(&dir, &user).await.unwrap()["status"],
        "active"
    );

    // Another directory's commands are not held by this policy.
    let free = alice
        .api
        .create_directory_user(json!({ "directoryId": other, "username": unique_username("free") }))
        .await
        .unwrap();
    alice.ok(&free.command_id).await;
}

/// `privicore directory create|invite|users|devices`, the binary against the real server.
#[tokio::test]
async fn the_cli_manages_a_directory() {
    let server = TestServer::start().await;
    let (api, ws) = (server.running().api_url(), server.ws_url());
    let file = server.dir.path().join("cli-directory.json");
    let username = unique_username("dir-cli");
    let bob = provision(&server, "dir-cli-bob").await;
    let bob_name = bob.username.clone();
    let (directory, users, devices) = tokio::task::spawn_blocking(move || {
        let env = [("PRIVICORE_CLI_CONFIG", file.as_path())];
        run_privicore(
            &[
                "profile",
                "create",
                "--username",
                &username,
                "--password",
                PASSWORD,
                "--api",
                &api,
                "--ws",
                &ws,
            ],
            &env,
        );
        let created: Value = serde_json::from_str(&run_privicore(
            &[
                "directory",
                "create",
                "--name",
                "CLI Team",
                "--description",
                "made by the CLI",
            ],
            &env,
        ))
        .unwrap();
        let directory = created["directoryId"].as_str().unwrap().to_owned();
        let invited: Value = serde_json::from_str(&run_privicore(
            &[
                "directory",
                "invite",
                "--directory",
                &directory,
                "--username",
                &bob_name,
            ],
            &env,
        ))
        .unwrap();
        assert_eq!(invited["role"], "member");
        let users: Value = serde_json::from_str(&run_privicore(
            &["directory", "users", "--directory", &directory],
            &env,
        ))
        .unwrap();
        let devices: Value = serde_json::from_str(&run_privicore(
            &["directory", "devices", "--directory", &directory],
            &env,
        ))
        .unwrap();
        (directory, users, devices)
    })
    .await
    .unwrap();
    assert_eq!(users["meta"]["total"], 1, "the owner");
    assert_eq!(users["items"][0]["role"], "owner");
    assert_eq!(devices["meta"]["total"], 0);
    let mine = bob.api.directory_invites("").await.unwrap();
    assert_eq!(mine["items"][0]["directoryId"], directory.as_str());
    assert_eq!(mine["items"][0]["directoryName"], "CLI Team");
}
