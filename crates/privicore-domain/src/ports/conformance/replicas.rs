//! Replicas, the spool and token events.

use super::*;

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

async fn an_upload_spools_chunk_by_chunk(store: &dyn MetadataStore, p: &Profile) {
    let t = token_of(p, "/uploaded");
    let chunk = |index: u32, byte: u8| {
        data(DataEffect::PutSpoolChunk {
            token: t.token.clone(),
            version: 1,
            index,
            sealed: vec![byte; 3],
        })
    };
    store
        .apply(
            &[data(DataEffect::CreateDataToken(t.clone())), chunk(1, 2)],
            None,
        )
        .await
        .unwrap();
    store.apply(&[chunk(0, 1)], None).await.unwrap();
    assert_eq!(
        store.spool_chunk(&t.token, 1, 0).await.unwrap(),
        Some(vec![1; 3])
    );
    assert_eq!(store.spool_chunk(&t.token, 1, 2).await.unwrap(), None);
    // Written again in place (a staged chunk replaced by its final form).
    store.apply(&[chunk(1, 9)], None).await.unwrap();
    assert_eq!(
        store.spool(&t.token, 1).await.unwrap(),
        Some(vec![vec![1; 3], vec![9; 3]])
    );
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

pub(super) async fn replicas_spool_and_events(store: &dyn MetadataStore) {
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
    // KEK rotation walks the headers and replaces each one only if it is unchanged.
    let mut found = None;
    let mut after = None;
    loop {
        let page = store.version_headers(after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.cursor);
        found = found.or(page.into_iter().find(|h| h.token == t.token));
    }
    let found = found.expect("the version's header is listed");
    assert_eq!(
        (found.version, found.header.as_slice()),
        (1, &[1, 2, 3][..])
    );
    assert!(
        !store
            .replace_version_header(&t.token, 1, &[9], &[4, 5])
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_version_header(&t.token, 1, &[1, 2, 3], &[1, 2, 3])
            .await
            .unwrap()
    );

    // A confirmation that arrives before the row exists is kept; adding it later keeps it.
    apply_data(
        store,
        DataEffect::ConfirmReplica {
            token: t.token.clone(),
            version: 1,
            device_id: a,
        },
    )
    .await;
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
    assert_eq!(apply_data(store, missing).await, vec![1]);
    assert_eq!(store.replica_counts(&t.token, 1).await.unwrap().missing, 1);
    assert_eq!(store.device_replicas(b).await.unwrap().len(), 1);

    // Only replicas being deleted are forgotten when a device confirms a deletion.
    let deletion_confirmed_by_b = || DataEffect::DropReplicas {
        token: t.token.clone(),
        device_id: b,
    };
    apply_data(store, deletion_confirmed_by_b()).await;
    assert_eq!(store.device_replicas(b).await.unwrap().len(), 1);
    apply_data(
        store,
        DataEffect::SetReplica(Replica {
            token: t.token.clone(),
            version: 1,
            device_id: b,
            state: ReplicaState::Deleting,
        }),
    )
    .await;
    apply_data(store, deletion_confirmed_by_b()).await;
    assert!(store.device_replicas(b).await.unwrap().is_empty());
    apply_data(store, DataEffect::DetachReplicas { device_id: a }).await;
    assert_eq!(
        store.replicas(&t.token, None).await.unwrap()[0].state,
        ReplicaState::Detached
    );

    apply_data(
        store,
        DataEffect::DropSpool {
            token: t.token.clone(),
            version: 1,
        },
    )
    .await;
    assert_eq!(store.spool(&t.token, 1).await.unwrap(), None);
    a_spool_is_dropped_once_no_replica_is_pending(store, &p).await;
    an_upload_spools_chunk_by_chunk(store, &p).await;

    let app = uuid::Uuid::now_v7();
    let event = |kind, context: &str, application_id| {
        data(DataEffect::CountEvent {
            profile_id: p.id,
            kind,
            context: context.into(),
            at: now,
            application_id,
        })
    };
    store
        .apply(
            &[
                event(EVENT_EXCHANGED, "/a/1", None),
                event(EVENT_REQUESTED, "/a/2", Some(app)),
                event(EVENT_DELETED, "/b", None),
            ],
            None,
        )
        .await
        .unwrap();
    let all = store
        .event_counts(p.id, now, now.plus_seconds(1), None, None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    // An application's count holds only its own transactions.
    let of_app = store
        .event_counts(p.id, now, now.plus_seconds(1), None, Some(app))
        .await
        .unwrap();
    assert_eq!(of_app, vec![(EVENT_REQUESTED.to_owned(), now)]);
    assert!(
        store
            .event_counts(
                p.id,
                now,
                now.plus_seconds(1),
                None,
                Some(uuid::Uuid::now_v7())
            )
            .await
            .unwrap()
            .is_empty()
    );
    let some = store
        .event_counts(
            p.id,
            now,
            now.plus_seconds(1),
            Some(&Match::Prefix("/a/".into())),
            None,
        )
        .await
        .unwrap();
    assert_eq!(some.len(), 2);
    assert!(
        store
            .event_counts(p.id, now.plus_seconds(1), now.plus_seconds(2), None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn the_spool_of_a_committed_version_expires(store: &dyn MetadataStore) {
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
    apply_data(
        store,
        DataEffect::CommitVersion {
            token: t.token.clone(),
            version: 1,
            stored_size: 4,
            at: Timestamp::now(),
        },
    )
    .await;
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
