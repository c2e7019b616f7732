//! Profile endpoints: change password, QR login, reauthorize, revoke, expiry — and the
//! WebSocket notices when a token ends.

mod common;

use common::*;
use privicore_client::CommandOutcome;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn change_password_keeps_or_revokes_tokens() {
    let server = TestServer::start().await;
    let alice = provision(&server, "pw").await;
    let other = server
        .client()
        .authenticate(&alice.username, PASSWORD)
        .await
        .unwrap();
    let other_socket = server.session().await;
    other_socket.join(&other.authorization_token).await.unwrap();

    // Without revokeTokens every token stays valid.
    let accepted = alice
        .api
        .change_password(PASSWORD, "second-password-1", false)
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
        result,
        json!({ "profileId": alice.profile_id, "revokedTokens": 0, "revokedGrants": 0 })
    );
    let err = server
        .client()
        .authenticate(&alice.username, PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("auth.invalid_credentials"));
    let other_api = server.client().with_token(&other.authorization_token);
    other_api.token_expiry().await.unwrap();

    // With revokeTokens every other token ends, and its socket is told.
    let accepted = alice
        .api
        .change_password("second-password-1", "third-password-1", true)
        .await
        .unwrap();
    let result = alice
        .session
        .wait_command(&accepted.command_id, WAIT)
        .await
        .unwrap()
        .result()
        .unwrap();
    assert_eq!(result["revokedTokens"], 1);
    let notice = other_socket.notice(WAIT).await.unwrap();
    assert_eq!(notice["status"], 401);
    assert_eq!(notice["data"]["code"], "auth.token_revoked");
    assert_eq!(
        other_api.token_expiry().await.unwrap_err().code(),
        Some("auth.token_revoked")
    );
    alice
        .api
        .token_expiry()
        .await
        .expect("the calling token stays valid");
    server
        .client()
        .authenticate(&alice.username, "third-password-1")
        .await
        .unwrap();
}

#[tokio::test]
async fn change_password_errors() {
    let server = TestServer::start().await;
    let alice = provision(&server, "pw-err").await;
    let accepted = alice
        .api
        .change_password("not-the-password", "another-password", false)
        .await
        .unwrap();
    let outcome = alice
        .session
        .wait_command(&accepted.command_id, WAIT)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        CommandOutcome::Failed("profile.invalid_current_password".into())
    );

    for (new, code) in [
        (PASSWORD, "profile.password_unchanged"),
        ("short", "profile.password_too_short"),
        (alice.username.as_str(), "profile.password_equals_username"),
    ] {
        let err = alice
            .api
            .change_password(PASSWORD, new, false)
            .await
            .unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(422), Some(code)));
    }
    let long = "x".repeat(1025);
    let err = alice
        .api
        .change_password(PASSWORD, &long, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("profile.password_too_long"));
}

#[tokio::test]
async fn qr_tokens_log_in_once() {
    let server = TestServer::start().await;
    let alice = provision(&server, "qr").await;
    let qr = alice.api.generate_qr_token(Some(60)).await.unwrap();
    assert!(qr.qr_token.starts_with("Q-") && qr.qr_token.len() == 45);
    assert!(qr.qr_payload.starts_with("privicore:qr?v=1&api="));
    assert!(qr.qr_payload.ends_with(&format!("&token={}", qr.qr_token)));

    let phone = server.client().authenticate_qr(&qr.qr_token).await.unwrap();
    assert_eq!(phone.profile_id, alice.profile_id);
    assert!(phone.public_key_registered);
    let again = server
        .client()
        .authenticate_qr(&qr.qr_token)
        .await
        .unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(401), Some("auth.invalid_qr_token"))
    );

    // A new QR token invalidates the previous one.
    let first = alice.api.generate_qr_token(None).await.unwrap();
    let second = alice.api.generate_qr_token(None).await.unwrap();
    assert_eq!(
        server
            .client()
            .authenticate_qr(&first.qr_token)
            .await
            .unwrap_err()
            .code(),
        Some("auth.invalid_qr_token")
    );
    server
        .client()
        .authenticate_qr(&second.qr_token)
        .await
        .unwrap();

    for ttl in [29, 601] {
        let err = alice.api.generate_qr_token(Some(ttl)).await.unwrap_err();
        assert_eq!(
            (err.code(), err.status()),
            (Some("validation.out_of_range"), Some(422))
        );
    }
    let both = server
        .client()
        .post_form(
            "/profile/authenticate",
            &[("qrToken", "Q-x"), ("username", "a"), ("password", "b")],
        )
        .await
        .unwrap();
    assert_eq!(
        both.error_code().as_deref(),
        Some("validation.invalid_credentials_form")
    );
    let neither = server
        .client()
        .post_form("/profile/authenticate", &[])
        .await
        .unwrap();
    assert_eq!(
        neither.error_code().as_deref(),
        Some("validation.invalid_credentials_form")
    );
}

#[tokio::test]
async fn reauthorize_replaces_the_token_and_ends_its_channel() {
    let server = TestServer::start().await;
    let alice = provision(&server, "reauth").await;
    let grant = alice.api.reauthorize(Some(3600)).await.unwrap();
    assert_ne!(grant.authorization_token, alice.token);
    let notice = alice.session.notice(WAIT).await.unwrap();
    assert_eq!(notice["data"]["message"], "authorization token ended");
    assert_eq!(notice["data"]["code"], "auth.token_revoked");
    assert_eq!(
        alice.api.token_expiry().await.unwrap_err().code(),
        Some("auth.token_revoked")
    );
    let fresh = server.client().with_token(&grant.authorization_token);
    let expiry = fresh.token_expiry().await.unwrap();
    assert!((3590..=3600).contains(&expiry.seconds_remaining));
    // The connection stays open: join again with the new token.
    alice
        .session
        .join(&grant.authorization_token)
        .await
        .unwrap();

    for ttl in [0, 2_592_001] {
        let err = fresh.reauthorize(Some(ttl)).await.unwrap_err();
        assert_eq!(err.code(), Some("validation.out_of_range"));
    }
}

#[tokio::test]
async fn expired_tokens_are_refused_and_their_channels_ended() {
    let server = TestServer::start().await;
    let alice = provision(&server, "expiry").await;
    let short = alice.api.reauthorize(Some(1)).await.unwrap();
    let socket = server.session().await;
    socket.join(&short.authorization_token).await.unwrap();
    let notice = socket.notice(Duration::from_secs(5)).await.unwrap();
    assert_eq!(notice["data"]["code"], "auth.token_expired");
    let api = server.client().with_token(&short.authorization_token);
    let err = api.token_expiry().await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("auth.token_expired"))
    );
    let err = socket.join(&short.authorization_token).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("auth.token_expired"))
    );
}

#[tokio::test]
async fn revoke_ends_only_the_presented_token() {
    let server = TestServer::start().await;
    let alice = provision(&server, "revoke").await;
    let second = server
        .client()
        .authenticate(&alice.username, PASSWORD)
        .await
        .unwrap();
    let revoked = alice.api.revoke().await.unwrap();
    assert_eq!(revoked["revoked"], true);
    assert!(revoked["revokedAt"].as_str().unwrap().ends_with("+00:00"));
    let err = alice.api.retrieve_profile_id().await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("auth.token_revoked"))
    );
    let still = server.client().with_token(&second.authorization_token);
    still.retrieve_profile_id().await.unwrap();
    let expiry = still.token_expiry().await.unwrap();
    assert!(expiry.expires_at.ends_with("+00:00") && expiry.issued_at.ends_with("+00:00"));
    assert!((28790..=28800).contains(&expiry.seconds_remaining));
}

#[tokio::test]
async fn bearer_prefix_is_tolerated() {
    let server = TestServer::start().await;
    let alice = provision(&server, "bearer").await;
    let api = server
        .client()
        .with_token(&format!("Bearer {}", alice.token));
    assert_eq!(
        api.retrieve_profile_id().await.unwrap().profile_id,
        alice.profile_id
    );
}
