//! Public keys: generation, the signed-format checks, the key requirement, the CAB key.

mod common;

use common::*;
use privicore_client::{KeyPair, SignedPublicKey};

#[tokio::test]
async fn generate_keys_returns_a_matching_pair_without_caching() {
    let server = TestServer::start().await;
    let res = server.client().get("/generate-keys").await.unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let body = res.json();
    let private = body["private"].as_str().unwrap();
    let public = body["public"].as_str().unwrap();
    assert_eq!(private.len(), 64);
    let pair = KeyPair::from_private_hex(private).unwrap();
    assert_eq!(pair.public().to_hex(), public);
    SignedPublicKey::parse(public).unwrap();
}

#[tokio::test]
async fn generate_keys_can_be_switched_off() {
    let server = TestServer::start_with(|s| s.keys.generate_endpoint_enabled = false).await;
    let res = server.client().get("/generate-keys").await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (404, Some("request.unknown_route"))
    );
}

#[tokio::test]
async fn signed_key_errors_in_order() {
    let server = TestServer::start().await;
    let username = unique_username("keys");
    let (_, token) = register_and_login(&server, &username).await;
    let api = server.client().with_token(&token);
    let good = KeyPair::generate().public().to_hex();
    let cases = [
        (good[..198].to_owned(), "public_key.invalid_format"),
        (format!("{}zz", &good[..198]), "public_key.invalid_format"),
        (
            format!("41{}", &good[2..]),
            "public_key.unsupported_version",
        ),
        (
            format!(
                "{}{}",
                &good[..198],
                if good.ends_with('0') { "11" } else { "00" }
            ),
            "public_key.invalid_digest",
        ),
        (
            SignedPublicKey::from_x25519(&[0; 32]).to_hex(),
            "public_key.weak_key",
        ),
    ];
    for (key, code) in cases {
        let err = api.register_public_key(&key).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(422), Some(code)), "{key}");
    }
    let missing = api
        .post_form("/public-key/register-public-key", &[])
        .await
        .unwrap();
    assert_eq!(
        missing.error_code().as_deref(),
        Some("validation.missing_field")
    );
    // Upper-case input is accepted and normalised.
    let accepted = api.register_public_key(&good.to_uppercase()).await.unwrap();
    let status = api.poll_command(&accepted.command_id, WAIT).await.unwrap();
    let privicore_client::RequestStatus::Succeeded(Some(result)) = status else {
        panic!("{status:?}")
    };
    assert_eq!(result["publicKey"], good);
}

#[tokio::test]
async fn endpoints_require_a_public_key_except_the_exempt_ones() {
    let server = TestServer::start().await;
    let username = unique_username("nokey");
    let (profile_id, token) = register_and_login(&server, &username).await;
    let api = server.client().with_token(&token);

    for res in [
        api.get("/public-key/retrieve-public-key").await.unwrap(),
        api.post_form("/profile/generate-token-qr", &[])
            .await
            .unwrap(),
        api.post_form(
            "/profile/change-password",
            &[
                ("currentPassword", PASSWORD),
                ("newPassword", "new-password-1"),
            ],
        )
        .await
        .unwrap(),
    ] {
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (403, Some("profile.public_key_required"))
        );
    }
    // Exempt: retrieve profile id, token expiry, request status, joinChannel, reauthorize, revoke.
    assert!(
        !api.retrieve_profile_id()
            .await
            .unwrap()
            .public_key_registered
    );
    api.token_expiry().await.unwrap();
    api.request_status(&profile_id).await.unwrap();
    let session = server.session().await;
    session.join(&token).await.unwrap();
    let grant = api.reauthorize(None).await.unwrap();
    server
        .client()
        .with_token(&grant.authorization_token)
        .revoke()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_cab_key_is_public_and_well_formed() {
    let server = TestServer::start().await;
    let cab = server
        .client()
        .with_token("T-ignored")
        .cab_public_key()
        .await
        .unwrap();
    SignedPublicKey::parse(&cab.public_key).unwrap();
    assert!(cab.key_id.starts_with("cab-"));
    assert!(cab.created_at.ends_with("+00:00"));
}
