//! `Idempotency-Key` (docs/api/README.md §4.7): a repeat with the same body gets the original 202 and
//! runs nothing; another body is a conflict; the memory is per profile, path and key.

mod common;

use common::*;
use privicore_client::{Body, Client, RequestStatus};
use reqwest::Method;

async fn reserved_total(alice: &Provisioned) -> u64 {
    alice
        .api
        .list_data_tokens("?filters[status]=reserved")
        .await
        .unwrap()["meta"]["total"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_repeated_request_is_accepted_once() {
    let server = TestServer::start().await;
    let alice = provision(&server, "idem").await;
    let retrying = alice.api.with_idempotency_key("reserve-1");

    let first = retrying.reserve_token_space("/i", None).await.unwrap();
    assert!(!first.replayed);
    alice.ok(&first.command_id).await;
    let again = retrying.reserve_token_space("/i", None).await.unwrap();
    assert_eq!(again.command_id, first.command_id, "the original reply");
    assert_eq!(again.header_id.as_deref(), Some(first.command_id.as_str()));
    assert!(again.replayed);
    assert_eq!(reserved_total(&alice).await, 1, "the repeat ran nothing");

    let other_body = retrying.reserve_token_space("/elsewhere", None).await;
    let error = other_body.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(409), Some("request.idempotency_conflict"))
    );

    // The same key on another path, or from another profile, is another request.
    let device = retrying.request_device("phone").await.unwrap();
    assert!(!device.replayed);
    alice.ok(&device.command_id).await;
    let bob = provision(&server, "idem-other").await;
    let bobs = bob
        .api
        .with_idempotency_key("reserve-1")
        .reserve_token_space("/i", None)
        .await
        .unwrap();
    assert_ne!(bobs.command_id, first.command_id);
    bob.ok(&bobs.command_id).await;
    assert_eq!(reserved_total(&alice).await, 1);
}

#[tokio::test]
async fn a_refused_request_frees_its_key() {
    let server = TestServer::start().await;
    let alice = provision(&server, "idem-refused").await;
    let retrying = alice.api.with_idempotency_key("fix-and-retry");
    let refused = retrying
        .reserve_token_space("bad\u{1}context", None)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("data_token.invalid_context"));
    let accepted = retrying.reserve_token_space("/fixed", None).await.unwrap();
    assert!(!accepted.replayed);
    alice.ok(&accepted.command_id).await;
}

#[tokio::test]
async fn keys_outside_the_format_are_refused() {
    let server = TestServer::start().await;
    let alice = provision(&server, "idem-format").await;
    for key in ["has space", &"k".repeat(65), "slash/y"] {
        let error = alice
            .api
            .with_idempotency_key(key)
            .reserve_token_space("/i", None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (Some(422), Some("validation.invalid_format")),
            "{key}"
        );
    }
    assert_eq!(reserved_total(&alice).await, 0);
}

#[tokio::test]
async fn the_same_fields_in_another_multipart_envelope_are_the_same_body() {
    let server = TestServer::start().await;
    let alice = provision(&server, "idem-multipart").await;
    let retrying = alice.api.with_idempotency_key("multipart");
    let mut ids = Vec::new();
    for boundary in ["first-boundary", "second-boundary"] {
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"context\"\r\n\r\n/m\r\n--{boundary}--\r\n"
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let res = retrying
            .send(
                Method::POST,
                "/data-token/reserve-token-space",
                Body::Raw {
                    content_type: &content_type,
                    bytes: body.into_bytes(),
                },
            )
            .await
            .unwrap();
        assert_eq!(res.status, 202);
        ids.push(res.header("x-dpt-cab-id").unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(reserved_total(&alice).await, 1);
}

#[tokio::test]
async fn a_registration_repeated_without_a_token_is_one_registration() {
    let server = TestServer::start().await;
    let username = unique_username("idem-register");
    let api = Client::new(&server.running().api_url()).with_idempotency_key("signup");
    let first = api.register_profile(&username, PASSWORD).await.unwrap();
    let again = api.register_profile(&username, PASSWORD).await.unwrap();
    assert_eq!(again.command_id, first.command_id);
    assert!(again.replayed);
    // Without the key the repeat would have been a second command failing with
    // profile.username_taken; with it, the one command succeeded.
    assert_eq!(
        api.poll_command(&again.command_id, WAIT).await.unwrap(),
        RequestStatus::Succeeded(None)
    );
    let auth = api.authenticate(&username, PASSWORD).await.unwrap();
    assert_eq!(auth.profile_id, first.command_id);
}
