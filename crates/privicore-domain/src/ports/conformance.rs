//! Behaviour every [`MetadataStore`] adapter must show. Adapters call [`run_all`] from
//! their tests with a fresh, empty store.

use super::{MetadataStore, StoreError};
use crate::auth::{AuthToken, QrToken, TokenOwner};
use crate::command::{CommandPayload, CommandRecord, CommandState, Completion, Outcome};
use crate::effect::Effect;
use crate::keys::EngineKeyRecord;
use crate::password::PasswordHash;
use crate::profile::{Profile, ProfileKind, ProfileStatus};
use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Timestamp};
use serde_json::json;

pub async fn run_all(store: &dyn MetadataStore) {
    store.ping().await.expect("ping");
    commands_finish_exactly_once(store).await;
    usernames_are_unique_case_insensitively(store).await;
    tokens_revoke_and_purge(store).await;
    qr_tokens_are_single_use(store).await;
    engine_key_is_created_once(store).await;
}

fn profile(name: &str) -> Profile {
    Profile {
        id: ProfileId(CommandId::new().0),
        username: name.to_owned(),
        kind: ProfileKind::User,
        status: ProfileStatus::Active,
        password_hash: Some(PasswordHash::from_phc("$argon2id$fake".into())),
        public_key: None,
        created_at: Timestamp::now(),
    }
}

async fn commands_finish_exactly_once(store: &dyn MetadataStore) {
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
    assert!(
        store
            .unfinished_commands()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
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
    assert!(
        !store
            .unfinished_commands()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
    assert!(
        store.apply(&[], Some(&done)).await.is_err(),
        "a command finishes only once"
    );
    let purged = store
        .purge_finished_commands(Timestamp::now().plus_seconds(1))
        .await
        .unwrap();
    assert!(purged >= 1);
    assert!(store.command(id).await.unwrap().is_none());
}

async fn usernames_are_unique_case_insensitively(store: &dyn MetadataStore) {
    let alice = profile("Alice@Example.com");
    store
        .apply(&[Effect::CreateProfile(alice.clone())], None)
        .await
        .unwrap();
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

async fn tokens_revoke_and_purge(store: &dyn MetadataStore) {
    let p = profile("token-owner");
    store
        .apply(&[Effect::CreateProfile(p.clone())], None)
        .await
        .unwrap();
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

async fn qr_tokens_are_single_use(store: &dyn MetadataStore) {
    let p = profile("qr-owner");
    store
        .apply(&[Effect::CreateProfile(p.clone())], None)
        .await
        .unwrap();
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

async fn engine_key_is_created_once(store: &dyn MetadataStore) {
    assert!(store.engine_key().await.unwrap().is_none());
    let first = EngineKeyRecord::generate(Timestamp::now());
    let stored = store.ensure_engine_key(&first).await.unwrap();
    assert_eq!(stored.public_key, first.public_key);
    let second = EngineKeyRecord::generate(Timestamp::now());
    let still = store.ensure_engine_key(&second).await.unwrap();
    assert_eq!(still.public_key, first.public_key);
    assert!(still.key_pair().is_some());
}
