//! Behaviour every [`MetadataStore`] adapter must show. Adapters call [`run_all`] from
//! their tests with a fresh, empty store.

use super::{MetadataStore, StoreError};
use crate::auth::{AuthToken, QrToken, TokenOwner};
use crate::command::{CommandPayload, CommandRecord, CommandState, Completion, Outcome};
use crate::data_token::{
    DataToken, EVENT_DELETED, EVENT_EXCHANGED, EVENT_REQUESTED, Match, Page, Replica, ReplicaState,
    TokenFilter, TokenStatus, TokenVersion, new_token,
};
use crate::device::{Device, DeviceCredentials, DeviceFilter, DeviceId, DeviceStatus};
use crate::effect::{DataEffect, Effect};
use crate::keys::EngineKeyRecord;
use crate::password::PasswordHash;
use crate::profile::{Profile, ProfileKind, ProfileStatus};
use crate::secret::TokenHash;
use crate::{CommandId, ProfileId, Timestamp};
use serde_json::json;

pub async fn run_all(store: &dyn MetadataStore) {
    store.ping().await.expect("ping");
    commands_finish_exactly_once(store).await;
    commands_can_be_inserted_finished(store).await;
    usernames_are_unique_case_insensitively(store).await;
    tokens_revoke_and_purge(store).await;
    qr_tokens_are_single_use(store).await;
    engine_key_is_created_once(store).await;
    devices_keep_credentials_out_of_row_updates(store).await;
    data_tokens_move_through_their_states(store).await;
    a_data_token_reads_back_field_for_field(store).await;
    replicas_spool_and_events(store).await;
    the_spool_of_a_committed_version_expires(store).await;
}

/// A profile (not stored).
pub fn profile(name: &str) -> Profile {
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

/// A profile, stored.
pub async fn stored_profile(store: &dyn MetadataStore, name: &str) -> Profile {
    let p = profile(name);
    store
        .apply(&[Effect::CreateProfile(p.clone())], None)
        .await
        .unwrap();
    p
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
async fn commands_can_be_inserted_finished(store: &dyn MetadataStore) {
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

async fn usernames_are_unique_case_insensitively(store: &dyn MetadataStore) {
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

async fn tokens_revoke_and_purge(store: &dyn MetadataStore) {
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

async fn qr_tokens_are_single_use(store: &dyn MetadataStore) {
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

fn data(effect: DataEffect) -> Effect {
    effect.into()
}

fn device_of(profile: &Profile, name: &str) -> Device {
    Device {
        id: DeviceId::new(),
        profile_id: profile.id,
        request_command_id: CommandId::new(),
        name: name.into(),
        description: None,
        status: DeviceStatus::Approved,
        roles: vec!["storage".into()],
        public_key: None,
        meta: serde_json::Map::new(),
        credentials: None,
        created_at: Timestamp::now(),
        approved_at: Some(Timestamp::now()),
        removed_at: None,
        configuration_issued_at: None,
        storage_registered_at: Some(Timestamp::now()),
        last_sync: None,
    }
}

async fn devices_keep_credentials_out_of_row_updates(store: &dyn MetadataStore) {
    let p = stored_profile(store, "device-owner").await;
    let mut d = device_of(&p, "nas-1");
    store
        .apply(&[data(DataEffect::SaveDevice(d.clone()))], None)
        .await
        .unwrap();
    let creds = DeviceCredentials {
        client_id: "device-0123".into(),
        client_secret: TokenHash::of("secret"),
        bus_password: TokenHash::of("bus"),
    };
    store
        .apply(
            &[data(DataEffect::RotateDeviceCredentials {
                device_id: d.id,
                credentials: creds.clone(),
                at: Timestamp::now(),
            })],
            None,
        )
        .await
        .unwrap();
    store
        .apply(
            &[data(DataEffect::PinDeviceKey {
                device_id: d.id,
                public_key: "31420500aa".into(),
            })],
            None,
        )
        .await
        .unwrap();
    // A command's row update from before the rotation does not bring old values back.
    d.name = "renamed".into();
    store
        .apply(&[data(DataEffect::SaveDevice(d.clone()))], None)
        .await
        .unwrap();
    let read = store.device(d.id).await.unwrap().unwrap();
    assert_eq!(read.name, "renamed");
    assert_eq!(read.credentials, Some(creds));
    assert_eq!(read.public_key.as_deref(), Some("31420500aa"));
    assert_eq!(
        store
            .device_by_client_id("device-0123")
            .await
            .unwrap()
            .unwrap()
            .id,
        d.id
    );
    assert_eq!(
        store
            .device_by_request(d.request_command_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        d.id
    );
    let storage = store.storage_devices(Some(p.id)).await.unwrap();
    assert_eq!(storage.len(), 1);
    let (page, total) = store
        .list_devices(
            p.id,
            &DeviceFilter {
                name: Some("ren".into()),
                name_prefix: true,
                ..DeviceFilter::default()
            },
            Page {
                page: 1,
                per_page: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 1));
    store
        .apply(
            &[data(DataEffect::ClearDeviceCredentials { device_id: d.id })],
            None,
        )
        .await
        .unwrap();
    assert!(
        store
            .device(d.id)
            .await
            .unwrap()
            .unwrap()
            .credentials
            .is_none()
    );
    assert_eq!(store.count_live_devices(p.id).await.unwrap(), 1);
}

/// A reservation of `profile` (not stored).
pub fn token_of(profile: &Profile, context: &str) -> DataToken {
    DataToken {
        token: new_token(),
        profile_id: profile.id,
        application_id: None,
        reserve_command_id: CommandId::new(),
        status: TokenStatus::Reserved,
        context: context.into(),
        expires_at: Some(Timestamp::now().plus_seconds(60)),
        upload_salt: Some(TokenHash::of("salt")),
        version: None,
        stored_size: None,
        meta_file: None,
        meta_risk: None,
        meta_data: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

/// Every column, set to a value of its own, comes back in its own field by every read.
async fn a_data_token_reads_back_field_for_field(store: &dyn MetadataStore) {
    let p = stored_profile(store, "token-fields").await;
    let t = DataToken {
        application_id: Some(CommandId::new().0),
        status: TokenStatus::Active,
        version: Some(3),
        stored_size: Some(1234),
        meta_file: Some(json!({"fileName": "a.pdf", "extension": "pdf"})),
        meta_risk: Some(json!({"classification": "secret"})),
        meta_data: Some(json!({"type": "invoice"})),
        created_at: Timestamp(1_700_000_001),
        updated_at: Timestamp(1_700_000_002),
        ..token_of(&p, "/fields")
    };
    store
        .apply(&[data(DataEffect::CreateDataToken(t.clone()))], None)
        .await
        .unwrap();
    let expected = format!("{t:?}");
    let by_token = store.data_token(&t.token).await.unwrap().unwrap();
    assert_eq!(format!("{by_token:?}"), expected);
    let by_reservation = store
        .data_token_by_reservation(t.reserve_command_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format!("{by_reservation:?}"), expected);
    let filter = TokenFilter {
        statuses: vec![TokenStatus::Active],
        ..TokenFilter::default()
    };
    let (listed, total) = store
        .list_data_tokens(
            p.id,
            &filter,
            Page {
                page: 1,
                per_page: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(total, 1);
    assert_eq!(format!("{:?}", listed[0]), expected);
}

async fn data_tokens_move_through_their_states(store: &dyn MetadataStore) {
    let p = stored_profile(store, "token-states").await;
    let t = token_of(&p, "/finance/2026");
    let now = Timestamp::now();
    store
        .apply(&[data(DataEffect::CreateDataToken(t.clone()))], None)
        .await
        .unwrap();
    // The cap counts the outstanding reservation and refuses the write that would pass it.
    let cap = |limit| {
        data(DataEffect::CapOutstandingReservations {
            profile_id: p.id,
            limit,
        })
    };
    store.apply(&[cap(2)], None).await.unwrap();
    let over = store
        .apply(
            &[
                cap(1),
                data(DataEffect::CreateDataToken(token_of(&p, "/over"))),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        over.business_reason(),
        Some(crate::Reason::DataTokenTooManyReservations)
    );
    assert_eq!(
        store
            .data_token_by_reservation(t.reserve_command_id)
            .await
            .unwrap()
            .unwrap()
            .token,
        t.token
    );

    // Begin twice: the second conflicts and rolls back everything given with it.
    store
        .apply(
            &[data(DataEffect::BeginExchange {
                token: t.token.clone(),
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    let err = store
        .apply(
            &[
                data(DataEffect::SetFileMeta {
                    token: t.token.clone(),
                    file: Some(json!({"fileName": "x"})),
                    context: None,
                    at: now,
                }),
                data(DataEffect::BeginExchange {
                    token: t.token.clone(),
                    at: now,
                }),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict(crate::Reason::DataTokenAlreadyExchanged)
    ));
    assert!(
        store
            .data_token(&t.token)
            .await
            .unwrap()
            .unwrap()
            .meta_file
            .is_none()
    );

    store
        .apply(
            &[data(DataEffect::CommitVersion {
                token: t.token.clone(),
                version: 1,
                stored_size: 54,
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    store
        .apply(
            &[data(DataEffect::SetFileMeta {
                token: t.token.clone(),
                file: Some(json!({"fileName": "a.PDF", "extension": "PDF"})),
                context: None,
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    let read = store.data_token(&t.token).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.version, read.stored_size),
        (TokenStatus::Active, Some(1), Some(54))
    );
    let page = Page {
        page: 1,
        per_page: 10,
    };
    let total = |filter: TokenFilter| async move {
        store.list_data_tokens(p.id, &filter, page).await.unwrap().1
    };
    assert_eq!(total(TokenFilter::default()).await, 1);
    assert_eq!(
        total(TokenFilter {
            context: Some(Match::Prefix("/finance/".into())),
            ..TokenFilter::default()
        })
        .await,
        1
    );
    assert_eq!(
        total(TokenFilter {
            extension: Some(Match::ExactNoCase("pdf".into())),
            ..TokenFilter::default()
        })
        .await,
        1
    );
    assert_eq!(
        total(TokenFilter {
            context: Some(Match::Exact("/finance".into())),
            ..TokenFilter::default()
        })
        .await,
        0
    );

    let expiring = DataToken {
        expires_at: Some(now.plus_seconds(-1)),
        ..token_of(&p, "/soon")
    };
    store
        .apply(&[data(DataEffect::CreateDataToken(expiring.clone()))], None)
        .await
        .unwrap();
    assert_eq!(
        store.expired_reservations(now, 10).await.unwrap(),
        vec![expiring.token.clone()]
    );
    store
        .apply(
            &[data(DataEffect::ExpireReservation {
                token: expiring.token.clone(),
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .data_token(&expiring.token)
            .await
            .unwrap()
            .unwrap()
            .status,
        TokenStatus::Expired
    );

    store
        .apply(
            &[data(DataEffect::DeleteDataToken {
                token: t.token.clone(),
                at: now,
            })],
            None,
        )
        .await
        .unwrap();
    let deleted = store.data_token(&t.token).await.unwrap().unwrap();
    assert_eq!(deleted.status, TokenStatus::Deleted);
    assert!(deleted.meta_file.is_none(), "metadata is erased");
}

async fn a_spool_is_dropped_once_no_replica_is_pending(store: &dyn MetadataStore, p: &Profile) {
    let t = token_of(p, "/settled");
    let device = DeviceId::new();
    let replica = |state| {
        data(DataEffect::SetReplica(Replica {
            token: t.token.clone(),
            version: 1,
            device_id: device,
            state,
        }))
    };
    let drop = || {
        data(DataEffect::DropSettledSpool {
            token: t.token.clone(),
            version: 1,
        })
    };
    store
        .apply(
            &[
                data(DataEffect::CreateDataToken(t.clone())),
                data(DataEffect::PutSpool {
                    token: t.token.clone(),
                    version: 1,
                    chunks: vec![vec![7; 4]],
                }),
                replica(ReplicaState::Pending),
            ],
            None,
        )
        .await
        .unwrap();
    store.apply(&[drop()], None).await.unwrap();
    assert!(
        store.spool(&t.token, 1).await.unwrap().is_some(),
        "kept while a replica is pending"
    );
    store
        .apply(&[replica(ReplicaState::Confirmed), drop()], None)
        .await
        .unwrap();
    assert_eq!(store.spool(&t.token, 1).await.unwrap(), None);
}

/// Stores the token `t` with `version` (header row) and its spool `chunks`.
async fn store_spooled(
    store: &dyn MetadataStore,
    t: &DataToken,
    version: TokenVersion,
    chunks: Vec<Vec<u8>>,
) {
    let spool = DataEffect::PutSpool {
        token: t.token.clone(),
        version: version.version,
        chunks,
    };
    store
        .apply(
            &[
                data(DataEffect::CreateDataToken(t.clone())),
                data(DataEffect::PutTokenVersion(version)),
                data(spool),
            ],
            None,
        )
        .await
        .unwrap();
}

async fn replicas_spool_and_events(store: &dyn MetadataStore) {
    let p = stored_profile(store, "replicas").await;
    let t = token_of(&p, "/r");
    let (a, b) = (DeviceId::new(), DeviceId::new());
    let now = Timestamp::now();
    let version = TokenVersion {
        token: t.token.clone(),
        version: 1,
        header: vec![1, 2, 3],
        digest: "ab".into(),
        total_size: 54,
        chunk_count: 1,
        committed: false,
    };
    store_spooled(store, &t, version.clone(), vec![vec![9; 70]]).await;
    assert_eq!(
        store
            .token_version(&t.token, 1)
            .await
            .unwrap()
            .unwrap()
            .header,
        vec![1, 2, 3]
    );
    assert_eq!(
        store.spool(&t.token, 1).await.unwrap(),
        Some(vec![vec![9; 70]])
    );

    // A confirmation that arrives before the row exists is kept; adding it later keeps it.
    store
        .apply(
            &[data(DataEffect::ConfirmReplica {
                token: t.token.clone(),
                version: 1,
                device_id: a,
            })],
            None,
        )
        .await
        .unwrap();
    let pending = |d| {
        data(DataEffect::AddReplica(Replica {
            token: t.token.clone(),
            version: 1,
            device_id: d,
            state: ReplicaState::Pending,
        }))
    };
    store.apply(&[pending(a), pending(b)], None).await.unwrap();
    let counts = store.replica_counts(&t.token, 1).await.unwrap();
    assert_eq!((counts.confirmed, counts.pending), (1, 1));
    let missing = DataEffect::TransitionReplica {
        token: t.token.clone(),
        version: 1,
        device_id: a,
        from: vec![ReplicaState::Confirmed],
        to: ReplicaState::Missing,
    };
    assert_eq!(store.apply(&[data(missing)], None).await.unwrap(), vec![1]);
    assert_eq!(store.replica_counts(&t.token, 1).await.unwrap().missing, 1);
    assert_eq!(store.device_replicas(b).await.unwrap().len(), 1);

    // Only replicas being deleted are forgotten when a device confirms a deletion.
    store
        .apply(
            &[data(DataEffect::DropReplicas {
                token: t.token.clone(),
                device_id: b,
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.device_replicas(b).await.unwrap().len(), 1);
    store
        .apply(
            &[data(DataEffect::SetReplica(Replica {
                token: t.token.clone(),
                version: 1,
                device_id: b,
                state: ReplicaState::Deleting,
            }))],
            None,
        )
        .await
        .unwrap();
    store
        .apply(
            &[data(DataEffect::DropReplicas {
                token: t.token.clone(),
                device_id: b,
            })],
            None,
        )
        .await
        .unwrap();
    assert!(store.device_replicas(b).await.unwrap().is_empty());
    store
        .apply(&[data(DataEffect::DetachReplicas { device_id: a })], None)
        .await
        .unwrap();
    assert_eq!(
        store.replicas(&t.token, None).await.unwrap()[0].state,
        ReplicaState::Detached
    );

    store
        .apply(
            &[data(DataEffect::DropSpool {
                token: t.token.clone(),
                version: 1,
            })],
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.spool(&t.token, 1).await.unwrap(), None);
    a_spool_is_dropped_once_no_replica_is_pending(store, &p).await;

    let event = |kind, context: &str| {
        data(DataEffect::CountEvent {
            profile_id: p.id,
            kind,
            context: context.into(),
            at: now,
        })
    };
    store
        .apply(
            &[
                event(EVENT_EXCHANGED, "/a/1"),
                event(EVENT_REQUESTED, "/a/2"),
                event(EVENT_DELETED, "/b"),
            ],
            None,
        )
        .await
        .unwrap();
    let all = store
        .event_counts(p.id, now, now.plus_seconds(1), None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let some = store
        .event_counts(
            p.id,
            now,
            now.plus_seconds(1),
            Some(&Match::Prefix("/a/".into())),
        )
        .await
        .unwrap();
    assert_eq!(some.len(), 2);
    assert!(
        store
            .event_counts(p.id, now.plus_seconds(1), now.plus_seconds(2), None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_spool_of_a_committed_version_expires(store: &dyn MetadataStore) {
    let p = stored_profile(store, "spool-retention").await;
    let t = token_of(&p, "/retention");
    let version = TokenVersion {
        token: t.token.clone(),
        version: 1,
        header: vec![1],
        digest: "cd".into(),
        total_size: 4,
        chunk_count: 1,
        committed: false,
    };
    store_spooled(store, &t, version, vec![vec![5; 4]]).await;
    // Other tests' copies may be purged too: only this token's spool is looked at.
    let later = Timestamp::now().plus_seconds(10);
    store.purge_spool(later).await.unwrap();
    assert!(
        store.spool(&t.token, 1).await.unwrap().is_some(),
        "an uncommitted version keeps its spool"
    );
    store
        .apply(
            &[data(DataEffect::CommitVersion {
                token: t.token.clone(),
                version: 1,
                stored_size: 4,
                at: Timestamp::now(),
            })],
            None,
        )
        .await
        .unwrap();
    store
        .purge_spool(Timestamp::now().plus_seconds(-3600))
        .await
        .unwrap();
    assert!(
        store.spool(&t.token, 1).await.unwrap().is_some(),
        "spooled too recently"
    );
    assert!(store.purge_spool(later).await.unwrap() >= 1);
    assert_eq!(store.spool(&t.token, 1).await.unwrap(), None);
}
