//! Flow 1 of docs/api/flows.md end to end, the async command model, and request-status.

mod common;

use common::*;
use privicore_client::{CommandOutcome, RequestStatus, Session};
use serde_json::json;

#[tokio::test]
async fn provision_a_profile_as_flows_md_describes() {
    let server = TestServer::start().await;
    let alice = provision(&server, "alice").await;
    let me = alice.api.retrieve_profile_id().await.unwrap();
    assert!(me.public_key_registered);
    assert_eq!(me.profile_id, alice.profile_id);
    assert_eq!(me.username, alice.username);
    assert_eq!(me.kind, "user");
    let key = alice.api.retrieve_public_key().await.unwrap();
    assert_eq!(key.public_key, alice.keys.public().to_hex());
}

#[tokio::test]
async fn the_registration_event_is_replayed_to_the_first_join() {
    let server = TestServer::start().await;
    let username = unique_username("replay");
    let (profile_id, token) = register_and_login(&server, &username).await;
    let session = server.session().await;
    session.join(&token).await.unwrap();
    let outcome = session.wait_command(&profile_id, WAIT).await.unwrap();
    assert_eq!(
        outcome,
        CommandOutcome::Succeeded(json!({ "profileId": profile_id, "username": username }))
    );
    // Delivered once: a second socket joining later does not get it again.
    let second = server.session().await;
    second.join(&token).await.unwrap();
    second.ping().await.unwrap();
    assert!(second.events_for(&profile_id).is_empty());
}

#[tokio::test]
async fn a_taken_username_fails_the_command_asynchronously() {
    let server = TestServer::start().await;
    let api = server.client();
    let username = unique_username("taken");
    register_and_login(&server, &username).await;
    let again = api
        .register_profile(&username.to_uppercase(), PASSWORD)
        .await
        .unwrap();
    let status = api.poll_command(&again.command_id, WAIT).await.unwrap();
    assert_eq!(
        status,
        RequestStatus::Failed("profile.username_taken".into())
    );
}

#[tokio::test]
async fn request_status_answers_by_state_and_caller() {
    let server = TestServer::start().await;
    let alice = provision(&server, "status").await;
    let accepted = alice
        .api
        .register_public_key(&alice.keys.public().to_hex())
        .await
        .unwrap();
    let result = alice
        .session
        .wait_command(&accepted.command_id, WAIT)
        .await
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(
        result["replaced"], true,
        "registering again replaces the key"
    );

    // The owner sees the result, anonymous callers only the state, GET works too.
    let path = format!("/request-status/{}", accepted.command_id);
    let owner = alice.api.post_json(&path, json!({})).await.unwrap();
    assert_eq!(owner.status, 200);
    assert_eq!(owner.json(), json!(["succeeded", result]));
    assert_eq!(
        owner.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let anonymous = server.client().get(&path).await.unwrap();
    assert_eq!(
        (anonymous.status, anonymous.json()),
        (200, json!(["succeeded"]))
    );
    let upper = server
        .client()
        .get(
            &path
                .to_uppercase()
                .replace("/REQUEST-STATUS/", "/request-status/"),
        )
        .await
        .unwrap();
    assert_eq!(upper.status, 200, "command ids are case-insensitive");

    // Another profile's token cannot read it.
    let bob = provision(&server, "status-bob").await;
    let foreign = bob.api.post_json(&path, json!({})).await.unwrap();
    assert_eq!(
        (foreign.status, foreign.error_code().as_deref()),
        (404, Some("command.not_found"))
    );

    let unknown = server
        .client()
        .get("/request-status/019c80d5-d7c0-76bb-95c4-43d783e8efcb")
        .await
        .unwrap();
    assert_eq!(
        (unknown.status, unknown.error_code().as_deref()),
        (404, Some("command.not_found"))
    );
    let malformed = server
        .client()
        .get("/request-status/not-a-uuid")
        .await
        .unwrap();
    assert_eq!(malformed.status, 422);
    assert_eq!(
        malformed.error_code().as_deref(),
        Some("validation.invalid_format")
    );

    let bad_token = server
        .client()
        .with_token("T-nope")
        .post_json(&path, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (bad_token.status, bad_token.error_code().as_deref()),
        (401, Some("auth.invalid_token"))
    );
}

#[tokio::test]
async fn every_event_reaches_every_socket_of_the_profile() {
    let server = TestServer::start().await;
    let alice = provision(&server, "fanout").await;
    let on_api_listener = Session::connect(&server.api_ws_url()).await.unwrap();
    on_api_listener.join(&alice.token).await.unwrap();
    let accepted = alice
        .api
        .register_public_key(&alice.keys.public().to_hex())
        .await
        .unwrap();
    for session in [&alice.session, &on_api_listener] {
        let outcome = session
            .wait_command(&accepted.command_id, WAIT)
            .await
            .unwrap();
        assert!(matches!(outcome, CommandOutcome::Succeeded(_)));
    }
    // Another profile's socket sees nothing of it.
    let bob = provision(&server, "fanout-bob").await;
    bob.session.ping().await.unwrap();
    assert!(bob.session.events_for(&accepted.command_id).is_empty());
}

#[tokio::test]
async fn accepted_commands_are_durable_before_the_202() {
    let server = TestServer::start().await;
    let api = server.client();
    // Each 202 is immediately visible to request-status (persisted before the answer).
    for n in 0..20 {
        let accepted = api
            .register_profile(&unique_username(&format!("durable{n}")), PASSWORD)
            .await
            .unwrap();
        let status = api.request_status(&accepted.command_id).await.unwrap();
        assert!(matches!(
            status,
            RequestStatus::Started | RequestStatus::Succeeded(None)
        ));
    }
}
