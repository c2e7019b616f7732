//! Commands, profiles, authorization and QR tokens, the engine key.

use super::*;
use secrecy::ExposeSecret;

pub(super) async fn commands_finish_exactly_once(store: &dyn MetadataStore) {
    let id = CommandId::new();
    let cmd = CommandRecord::new(
        id,
        id.into(),
        None,
        CommandPayload::RegisterPublicKey {
            public_key: "k".into(),
        },
    );
    store.insert_command(&cmd, &[]).await.unwrap();
    assert!(is_unfinished(store, id).await);
    let done = Completion {
        command_id: id,
        outcome: Outcome::Succeeded(json!({"ok": true})),
        finished_at: Timestamp::now(),
    };
    store.apply(&[], Some(&done)).await.unwrap();
    let read = store.command(id).await.unwrap().unwrap();
    assert!(matches!(
        read.state,
        CommandState::Finished { outcome: Outcome::Succeeded(ref v), .. } if v == &json!({"ok": true})
    ));
    assert!(!is_unfinished(store, id).await);
    assert!(
        store.apply(&[], Some(&done)).await.is_err(),
        "a command finishes only once"
    );
    // The purge keeps what finished after its bound and what is still pending.
    let pending_id = CommandId::new();
    store
        .insert_command(
            &CommandRecord::new(pending_id, pending_id.into(), None, cmd.payload.clone()),
            &[],
        )
        .await
        .unwrap();
    store
        .purge_finished_commands(Timestamp::now().plus_seconds(-60))
        .await
        .unwrap();
    assert!(store.command(id).await.unwrap().is_some());
    let purged = store
        .purge_finished_commands(Timestamp::now().plus_seconds(1))
        .await
        .unwrap();
    assert!(purged >= 1);
    assert!(store.command(id).await.unwrap().is_none());
    assert!(is_unfinished(store, pending_id).await);
}

async fn is_unfinished(store: &dyn MetadataStore, id: CommandId) -> bool {
    store
        .unfinished_commands()
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == id)
}

/// A command executed at acceptance is stored with its outcome in one write.
pub(super) async fn commands_can_be_inserted_finished(store: &dyn MetadataStore) {
    let id = CommandId::new();
    let mut cmd = CommandRecord::new(
        id,
        id.into(),
        None,
        CommandPayload::RegisterPublicKey {
            public_key: "k".into(),
        },
    );
    cmd.state = CommandState::Finished {
        outcome: Outcome::Failed("validation.invalid_format".into()),
        finished_at: Timestamp::now(),
    };
    store.insert_command(&cmd, &[]).await.unwrap();
    let read = store.command(id).await.unwrap().unwrap();
    assert!(matches!(
        read.state,
        CommandState::Finished { outcome: Outcome::Failed(ref k), .. } if k == "validation.invalid_format"
    ));
    assert!(!is_unfinished(store, id).await);
}

pub(super) async fn usernames_are_unique_case_insensitively(store: &dyn MetadataStore) {
    let alice = stored_profile(store, "Alice@Example.com").await;
    let found = store
        .profile_by_username("alice@example.COM")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(found.username, "Alice@Example.com");

    // A failed effect rolls back the completion recorded with it.
    let id = CommandId::new();
    store
        .insert_command(
            &CommandRecord::new(
                id,
                id.into(),
                None,
                CommandPayload::RegisterPublicKey {
                    public_key: "k".into(),
                },
            ),
            &[],
        )
        .await
        .unwrap();
    let completion = Completion {
        command_id: id,
        outcome: Outcome::Succeeded(json!({})),
        finished_at: Timestamp::now(),
    };
    let err = store
        .apply(
            &[Effect::CreateProfile(profile("alice@example.com"))],
            Some(&completion),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken));
    assert!(matches!(
        store.command(id).await.unwrap().unwrap().state,
        CommandState::Pending
    ));
}

pub(super) async fn tokens_revoke_and_purge(store: &dyn MetadataStore) {
    let p = stored_profile(store, "token-owner").await;
    let now = Timestamp::now();
    let token = |name: &str, expires: i64| AuthToken {
        hash: TokenHash::of(name),
        profile_id: p.id,
        owner: TokenOwner::Profile,
        scopes: vec![],
        issued_at: now,
        expires_at: now.plus_seconds(expires),
        revoked_at: None,
    };
    store
        .apply(
            &[
                Effect::InsertAuthToken(token("keep", 60)),
                Effect::InsertAuthToken(token("other-1", 60)),
                Effect::InsertAuthToken(token("other-2", 60)),
                Effect::InsertAuthToken(token("old", -10)),
            ],
            None,
        )
        .await
        .unwrap();
    let read = store
        .auth_token(&TokenHash::of("keep"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.profile_id, p.id);
    assert_eq!(read.owner, TokenOwner::Profile);
    assert_eq!(
        store
            .count_live_tokens(p.id, Some(&TokenHash::of("keep")), now)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.count_live_tokens(p.id, None, now).await.unwrap(), 3);
    let counts = store
        .apply(
            &[Effect::RevokeProfileTokens {
                profile_id: p.id,
                keep: Some(TokenHash::of("keep")),
                at: now,
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(counts, vec![2]);
    assert!(
        store
            .auth_token(&TokenHash::of("other-1"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .auth_token(&TokenHash::of("keep"))
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    let counts = store
        .apply(
            &[Effect::RevokeAuthToken {
                hash: TokenHash::of("keep"),
                at: now,
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(counts, vec![1]);
    assert!(store.purge_expired_tokens(now).await.unwrap() >= 1);
    assert!(
        store
            .auth_token(&TokenHash::of("old"))
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn qr_tokens_are_single_use(store: &dyn MetadataStore) {
    let p = stored_profile(store, "qr-owner").await;
    let now = Timestamp::now();
    let qr = |name: &str| {
        Effect::PutQrToken(QrToken {
            hash: TokenHash::of(name),
            profile_id: p.id,
            expires_at: now.plus_seconds(60),
        })
    };
    store.apply(&[qr("first")], None).await.unwrap();
    store.apply(&[qr("second")], None).await.unwrap();
    assert_eq!(
        store
            .take_qr_token(&TokenHash::of("first"), now)
            .await
            .unwrap(),
        None,
        "replaced"
    );
    assert_eq!(
        store
            .take_qr_token(&TokenHash::of("second"), now)
            .await
            .unwrap(),
        Some(p.id)
    );
    assert_eq!(
        store
            .take_qr_token(&TokenHash::of("second"), now)
            .await
            .unwrap(),
        None,
        "used"
    );
    store.apply(&[qr("late")], None).await.unwrap();
    assert_eq!(
        store
            .take_qr_token(&TokenHash::of("late"), now.plus_seconds(61))
            .await
            .unwrap(),
        None,
        "expired"
    );
}

pub(super) async fn engine_key_is_created_once(store: &dyn MetadataStore) {
    assert!(store.engine_key().await.unwrap().is_none());
    let first = EngineKeyRecord::generate(Timestamp::now());
    let stored = store.ensure_engine_key(&first).await.unwrap();
    assert_eq!(stored.public_key, first.public_key);
    let second = EngineKeyRecord::generate(Timestamp::now());
    let still = store.ensure_engine_key(&second).await.unwrap();
    assert_eq!(still.public_key, first.public_key);
    assert!(still.key_pair().is_some());
    store
        .replace_engine_private_key(&still.key_id, "sealed:v1:abc")
        .await
        .unwrap();
    let replaced = store.engine_key().await.unwrap().unwrap();
    assert_eq!(replaced.private_hex.expose_secret(), "sealed:v1:abc");
    assert_eq!(replaced.public_key, first.public_key);
}
