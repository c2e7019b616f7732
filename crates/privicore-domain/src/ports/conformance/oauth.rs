//! OAuth applications, authorization requests and grants: the single-use steps hold under
//! the store's conditional writes.

use super::*;
use crate::Reason;
use crate::data_token::Page;
use crate::oauth::{Application, AuthRequest, Grant, OauthEffect};
use crate::ports::StoreError;
use uuid::Uuid;

fn oauth(effect: OauthEffect) -> Effect {
    Effect::Oauth(Box::new(effect))
}

fn conflict(result: Result<Vec<u64>, StoreError>) -> Reason {
    match result {
        Err(StoreError::Conflict(reason)) => reason,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn application(profile: &Profile, name: &str) -> Application {
    Application {
        id: Uuid::now_v7(),
        profile_id: profile.id,
        name: name.to_owned(),
        description: None,
        client_id: crate::oauth::new_client_id(),
        secret_hash: None,
        redirect_uri: "https://app.example.com/cb".into(),
        scopes: vec!["data-token:read".into()],
        created_at: Timestamp::now(),
        configuration_retrieved_at: None,
    }
}

fn access_token(grant: &Grant, hash: TokenHash) -> AuthToken {
    AuthToken {
        hash,
        profile_id: grant.profile_id,
        owner: TokenOwner::App {
            application_id: grant.application_id,
        },
        scopes: grant.scopes.clone(),
        issued_at: Timestamp::now(),
        expires_at: Timestamp::now().plus_seconds(3600),
        revoked_at: None,
    }
}

pub(super) async fn oauth_steps_are_single_use(store: &dyn MetadataStore) {
    let dev = stored_profile(store, &format!("oauth-dev-{}", CommandId::new())).await;
    let user = stored_profile(store, &format!("oauth-user-{}", CommandId::new())).await;
    let app = application(&dev, "Invoice Sync");
    store
        .apply(&[oauth(OauthEffect::CreateApplication(app.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.oauth_application(app.id).await.unwrap(),
        Some(app.clone())
    );
    assert_eq!(
        store
            .oauth_application_by_client(&app.client_id)
            .await
            .unwrap(),
        Some(app.clone())
    );
    let same_name = application(&dev, "INVOICE sync");
    assert_eq!(
        conflict(
            store
                .apply(&[oauth(OauthEffect::CreateApplication(same_name))], None)
                .await
        ),
        Reason::OauthApplicationNameTaken
    );
    // Another profile may use the name.
    store
        .apply(
            &[oauth(OauthEffect::CreateApplication(application(
                &user,
                "Invoice Sync",
            )))],
            None,
        )
        .await
        .unwrap();

    // The configuration is read once.
    let secret = TokenHash::of("secret");
    let retrieve = || {
        oauth(OauthEffect::RetrieveConfiguration {
            application_id: app.id,
            secret_hash: secret,
            at: Timestamp::now(),
        })
    };
    store.apply(&[retrieve()], None).await.unwrap();
    assert_eq!(
        conflict(store.apply(&[retrieve()], None).await),
        Reason::OauthAlreadyRetrieved
    );
    let read = store.oauth_application(app.id).await.unwrap().unwrap();
    assert_eq!(read.secret_hash, Some(secret));
    assert!(read.configuration_retrieved_at.is_some());

    // A nonce is used once per application.
    let request = AuthRequest {
        id: CommandId::new(),
        application_id: app.id,
        profile_id: user.id,
        nonce: "n-12345678".into(),
        scopes: vec!["data-token:read".into()],
        expires_at: Timestamp::now().plus_seconds(600),
        code_hash: None,
        exchanged_at: None,
        grant_id: None,
    };
    store
        .apply(&[oauth(OauthEffect::CreateRequest(request.clone()))], None)
        .await
        .unwrap();
    assert!(store.oauth_nonce_used(app.id, "n-12345678").await.unwrap());
    assert!(!store.oauth_nonce_used(app.id, "n-other-one").await.unwrap());
    let reused = AuthRequest {
        id: CommandId::new(),
        ..request.clone()
    };
    assert_eq!(
        conflict(
            store
                .apply(&[oauth(OauthEffect::CreateRequest(reused))], None)
                .await
        ),
        Reason::OauthNonceReused
    );

    // The code is retrieved once, then found by its digest.
    let code = TokenHash::of("C-code");
    let retrieve_code = || {
        oauth(OauthEffect::RetrieveCode {
            request_id: request.id,
            code_hash: code,
        })
    };
    store.apply(&[retrieve_code()], None).await.unwrap();
    assert_eq!(
        conflict(store.apply(&[retrieve_code()], None).await),
        Reason::OauthAlreadyRetrieved
    );
    assert_eq!(
        store
            .oauth_request_by_code(&code)
            .await
            .unwrap()
            .map(|r| r.id),
        Some(request.id)
    );

    // The code is exchanged once; the grant and its access token commit together.
    let grant = Grant {
        id: Uuid::now_v7(),
        profile_id: user.id,
        application_id: app.id,
        scopes: request.scopes.clone(),
        access_hash: TokenHash::of("A-1"),
        refresh_hash: TokenHash::of("R-1"),
        refresh_expires_at: Timestamp::now().plus_seconds(30 * 24 * 3600),
        created_at: Timestamp::now(),
        revoked_at: None,
    };
    let exchange = || {
        [
            oauth(OauthEffect::ExchangeCode {
                request_id: request.id,
                grant: grant.clone(),
                at: Timestamp::now(),
            }),
            Effect::InsertAuthToken(access_token(&grant, grant.access_hash)),
        ]
    };
    store.apply(&exchange(), None).await.unwrap();
    assert_eq!(
        conflict(store.apply(&exchange(), None).await),
        Reason::OauthInvalidAuthorizationCode
    );
    let exchanged = store.oauth_request(request.id).await.unwrap().unwrap();
    assert_eq!(exchanged.grant_id, Some(grant.id));
    assert!(exchanged.exchanged_at.is_some());
    assert_eq!(
        store
            .oauth_grant_by_refresh(&grant.refresh_hash)
            .await
            .unwrap(),
        Some((grant.clone(), false))
    );
    let (listed, total) = store
        .oauth_applications(
            dev.id,
            Some(&Match::Prefix("Invoice".into())),
            Page {
                page: 1,
                per_page: 25,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(listed[0].0.id, app.id);
    assert_eq!(listed[0].1, 1, "one live grant");
    assert_eq!(store.oauth_live_grants(user.id).await.unwrap(), 1);

    // A rotation consumes the refresh token and revokes the old access token.
    let rotate = |old: &str, new: &str| {
        oauth(OauthEffect::RotateGrant {
            grant_id: grant.id,
            old_refresh: TokenHash::of(old),
            access_hash: TokenHash::of(&format!("A-{new}")),
            refresh_hash: TokenHash::of(&format!("R-{new}")),
            refresh_expires_at: Timestamp::now().plus_seconds(60),
            at: Timestamp::now(),
        })
    };
    let second = access_token(&grant, TokenHash::of("A-2"));
    store
        .apply(&[rotate("R-1", "2"), Effect::InsertAuthToken(second)], None)
        .await
        .unwrap();
    let old = store.auth_token(&grant.access_hash).await.unwrap().unwrap();
    assert!(old.revoked_at.is_some(), "the old access token is revoked");
    let (rotated, used) = store
        .oauth_grant_by_refresh(&TokenHash::of("R-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(used);
    assert_eq!(rotated.access_hash, TokenHash::of("A-2"));
    assert_eq!(
        conflict(store.apply(&[rotate("R-1", "3")], None).await),
        Reason::OauthRefreshTokenReused
    );

    // Revoking the grant revokes its current access token; revoking the profile's grants
    // reaches the rest.
    store
        .apply(
            &[oauth(OauthEffect::RevokeGrant {
                grant_id: grant.id,
                at: Timestamp::now(),
            })],
            None,
        )
        .await
        .unwrap();
    let current = store
        .auth_token(&TokenHash::of("A-2"))
        .await
        .unwrap()
        .unwrap();
    assert!(current.revoked_at.is_some());
    assert_eq!(store.oauth_live_grants(user.id).await.unwrap(), 0);
    let (g, _) = store
        .oauth_grant_by_refresh(&TokenHash::of("R-2"))
        .await
        .unwrap()
        .unwrap();
    assert!(g.revoked_at.is_some());
    let none = store
        .apply(
            &[oauth(OauthEffect::RevokeProfileGrants {
                profile_id: user.id,
                at: Timestamp::now(),
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(none, vec![0]);

    // The purge keeps what is younger than its bound, then drops requests, the grant and
    // its used refresh tokens.
    let kept = store
        .purge_oauth(Timestamp::now().plus_seconds(-3600))
        .await
        .unwrap();
    assert_eq!(kept, 0);
    assert!(store.oauth_request(request.id).await.unwrap().is_some());
    let purged = store
        .purge_oauth(Timestamp::now().plus_seconds(31 * 24 * 3600))
        .await
        .unwrap();
    assert!(purged >= 3, "purged {purged}");
    assert!(store.oauth_request(request.id).await.unwrap().is_none());
    assert!(!store.oauth_nonce_used(app.id, "n-12345678").await.unwrap());
    assert!(store.oauth_grant(grant.id).await.unwrap().is_none());
    assert!(
        store
            .oauth_grant_by_refresh(&TokenHash::of("R-1"))
            .await
            .unwrap()
            .is_none()
    );
}
