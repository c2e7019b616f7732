//! Data tokens: every field reads back, and the states move only as allowed.

use super::*;

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
pub(super) async fn a_data_token_reads_back_field_for_field(store: &dyn MetadataStore) {
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
    apply_data(store, DataEffect::CreateDataToken(t.clone())).await;
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

pub(super) async fn data_tokens_move_through_their_states(store: &dyn MetadataStore) {
    let p = stored_profile(store, "token-states").await;
    let t = token_of(&p, "/finance/2026");
    let now = Timestamp::now();
    apply_data(store, DataEffect::CreateDataToken(t.clone())).await;
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
    apply_data(
        store,
        DataEffect::BeginExchange {
            token: t.token.clone(),
            at: now,
        },
    )
    .await;
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

    apply_data(
        store,
        DataEffect::CommitVersion {
            token: t.token.clone(),
            version: 1,
            stored_size: 54,
            at: now,
        },
    )
    .await;
    apply_data(
        store,
        DataEffect::SetFileMeta {
            token: t.token.clone(),
            file: Some(json!({"fileName": "a.PDF", "extension": "PDF"})),
            context: None,
            at: now,
        },
    )
    .await;
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
    apply_data(store, DataEffect::CreateDataToken(expiring.clone())).await;
    assert_eq!(
        store.expired_reservations(now, 10).await.unwrap(),
        vec![expiring.token.clone()]
    );
    apply_data(
        store,
        DataEffect::ExpireReservation {
            token: expiring.token.clone(),
            at: now,
        },
    )
    .await;
    assert_eq!(
        store
            .data_token(&expiring.token)
            .await
            .unwrap()
            .unwrap()
            .status,
        TokenStatus::Expired
    );

    apply_data(
        store,
        DataEffect::DeleteDataToken {
            token: t.token.clone(),
            at: now,
        },
    )
    .await;
    let deleted = store.data_token(&t.token).await.unwrap().unwrap();
    assert_eq!(deleted.status, TokenStatus::Deleted);
    assert!(deleted.meta_file.is_none(), "metadata is erased");
}

/// A reservation becomes active in one step, once: a second activation, or one of a
/// token no longer reserved, conflicts and writes nothing.
pub(super) async fn a_reservation_activates_in_one_step(store: &dyn MetadataStore) {
    let p = stored_profile(store, "token-activate").await;
    let t = token_of(&p, "/activate");
    apply_data(store, DataEffect::CreateDataToken(t.clone())).await;
    let now = Timestamp::now();
    let activate = || {
        data(DataEffect::ActivateReservation {
            token: t.token.clone(),
            version: 1,
            stored_size: 77,
            at: now,
        })
    };
    store.apply(&[activate()], None).await.unwrap();
    let read = store.data_token(&t.token).await.unwrap().unwrap();
    assert_eq!(
        (read.status, read.version, read.stored_size),
        (TokenStatus::Active, Some(1), Some(77))
    );
    assert!(read.expires_at.is_none() && read.upload_salt.is_none());

    let refused = store
        .apply(
            &[
                data(DataEffect::SetRiskMeta {
                    token: t.token.clone(),
                    risk: Some(json!({"classification": "secret"})),
                    at: now,
                }),
                activate(),
            ],
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Conflict(crate::Reason::DataTokenAlreadyExchanged)
    ));
    let after = store.data_token(&t.token).await.unwrap().unwrap();
    assert!(after.meta_risk.is_none(), "the refused write left nothing");
}
