//! Two store instances (as two engines would hold) on one schema, racing on the same
//! rows: every race has exactly one winner and no update is lost.

use super::fresh;
use crate::{Options, PostgresStore};
use privicore_domain::audit::{AuditEntry, AuditKey, AuditKind, Sealer, verify_chain};
use privicore_domain::auth::QrToken;
use privicore_domain::command::{CommandPayload, CommandRecord, Completion, Outcome};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::idempotency::{IdempotencyKey, IdempotencySlot};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::ports::{AuditLog, MetadataStore, StoreError, conformance};
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Reason, Timestamp};
use std::sync::Arc;

const ROUNDS: usize = 20;

/// Two stores on one fresh schema, or `None` when no test server is configured.
async fn two(
    test: &str,
) -> Option<(
    crate::testing::TestSchema,
    Arc<PostgresStore>,
    Arc<PostgresStore>,
)> {
    let (schema, first) = fresh(test).await?;
    let second = PostgresStore::connect_with(
        &schema.url(),
        Options {
            max_connections: Some(4),
            ..Options::default()
        },
    )
    .await
    .expect("second store");
    Some((schema, Arc::new(first), Arc::new(second)))
}

/// Runs `race` on both stores at once and returns both results.
async fn race<T: Send + 'static, F>(
    a: &Arc<PostgresStore>,
    b: &Arc<PostgresStore>,
    race: impl Fn(Arc<PostgresStore>) -> F,
) -> (T, T)
where
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (x, y) = tokio::join!(tokio::spawn(race(a.clone())), tokio::spawn(race(b.clone())));
    (x.unwrap(), y.unwrap())
}

fn data(effect: DataEffect) -> Effect {
    effect.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_moving_one_token_have_one_winner() {
    let Some((_schema, a, b)) = two("two_engines_moving_one_token_have_one_winner").await else {
        return;
    };
    let profile = conformance::stored_profile(a.as_ref(), "racer").await;
    for _ in 0..ROUNDS {
        let token = conformance::token_of(&profile, "/race");
        let name = token.token.clone();
        a.apply(&[data(DataEffect::CreateDataToken(token))], None)
            .await
            .unwrap();
        let (x, y) = race(&a, &b, |store| {
            let name = name.clone();
            async move {
                store
                    .apply(
                        &[data(DataEffect::BeginExchange {
                            token: name,
                            at: Timestamp::now(),
                        })],
                        None,
                    )
                    .await
            }
        })
        .await;
        let conflicts = [&x, &y]
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(StoreError::Conflict(Reason::DataTokenAlreadyExchanged))
                )
            })
            .count();
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        assert_eq!(conflicts, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_finished_by_one_engine_only() {
    let Some((_schema, a, b)) = two("a_command_is_finished_by_one_engine_only").await else {
        return;
    };
    let profile = ProfileId(CommandId::new().0);
    for _ in 0..ROUNDS {
        let id = CommandId::new();
        let record = CommandRecord::new(
            id,
            profile,
            None,
            CommandPayload::RegisterPublicKey {
                public_key: "k".into(),
            },
        );
        a.insert_command(&record, &[]).await.unwrap();
        let (x, y) = race(&a, &b, |store| async move {
            let done = Completion {
                command_id: id,
                outcome: Outcome::Failed("racer".into()),
                finished_at: Timestamp::now(),
            };
            store.apply(&[], Some(&done)).await
        })
        .await;
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
        assert!(b.unfinished_commands().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_claimed_by_one_engine_only() {
    let Some((_schema, a, b)) = two("an_idempotency_key_is_claimed_by_one_engine_only").await
    else {
        return;
    };
    let key = IdempotencyKey::parse("race-1").unwrap();
    for round in 0..ROUNDS {
        let slot = IdempotencySlot::new(
            Some(ProfileId(CommandId::new().0)),
            &format!("/race/{round}"),
            &key,
        );
        let (x, y) = race(&a, &b, |store| {
            let slot = slot.clone();
            async move {
                let now = Timestamp::now();
                store
                    .claim_idempotency_slot(
                        &slot,
                        b"body",
                        now,
                        now.plus_seconds(-86_400),
                        now.plus_seconds(-60),
                    )
                    .await
                    .unwrap()
            }
        })
        .await;
        let claimed = [&x, &y].iter().filter(|r| r.is_none()).count();
        assert_eq!(claimed, 1, "{x:?} {y:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_hits_from_two_engines_are_all_counted() {
    let Some((_schema, a, b)) = two("counter_hits_from_two_engines_are_all_counted").await else {
        return;
    };
    let now = Timestamp::now();
    let hits = |store: Arc<PostgresStore>| async move {
        for _ in 0..50 {
            store.hit_counter("login:race", now, 900).await.unwrap();
        }
    };
    futures_join_all(
        [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .map(|store| tokio::spawn(hits(store))),
    )
    .await;
    let counter = a.counter("login:race", now).await.unwrap().unwrap();
    assert_eq!(counter.count, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reservation_cap_holds_across_engines() {
    let Some((_schema, a, b)) = two("the_reservation_cap_holds_across_engines").await else {
        return;
    };
    let profile = conformance::stored_profile(a.as_ref(), "capped").await;
    let reserve = |store: Arc<PostgresStore>| {
        let profile = profile.clone();
        async move {
            let mut made = 0;
            for _ in 0..10 {
                let effects = [
                    data(DataEffect::CapOutstandingReservations {
                        profile_id: profile.id,
                        limit: 7,
                    }),
                    data(DataEffect::CreateDataToken(conformance::token_of(
                        &profile, "/cap",
                    ))),
                ];
                match store.apply(&effects, None).await {
                    Ok(_) => made += 1,
                    Err(StoreError::Conflict(Reason::DataTokenTooManyReservations)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            made
        }
    };
    let (x, y) = race(&a, &b, reserve).await;
    assert_eq!(x + y, 7, "{x} + {y} reservations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_token_is_taken_once_across_engines() {
    let Some((_schema, a, b)) = two("a_qr_token_is_taken_once_across_engines").await else {
        return;
    };
    let profile = conformance::stored_profile(a.as_ref(), "qr").await;
    for round in 0..ROUNDS {
        let hash = TokenHash::of(&format!("qr-{round}"));
        a.apply(
            &[Effect::PutQrToken(QrToken {
                hash,
                profile_id: profile.id,
                expires_at: Timestamp::now().plus_seconds(60),
            })],
            None,
        )
        .await
        .unwrap();
        let (x, y) = race(&a, &b, |store| async move {
            store.take_qr_token(&hash, Timestamp::now()).await.unwrap()
        })
        .await;
        assert_eq!([&x, &y].iter().filter(|t| t.is_some()).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_appends_from_two_engines_form_one_chain() {
    let Some((_schema, a, b)) = two("audit_appends_from_two_engines_form_one_chain").await else {
        return;
    };
    let key = Arc::new(AuditKey::new([5; 32]));
    let append = |store: Arc<PostgresStore>| {
        let key = key.clone();
        async move {
            for i in 0..ROUNDS {
                let sealer = Sealer {
                    key: key.clone(),
                    at: Timestamp::now(),
                    seen: 0,
                };
                let entry = AuditEntry::new(
                    AuditKind::PolicyActivated,
                    "profile:p",
                    format!("policy:{i}"),
                    "active",
                );
                store
                    .append_audit(&sealer, &[entry], &[], None)
                    .await
                    .unwrap();
            }
        }
    };
    race(&a, &b, append).await;
    let records = a.audit_records(0, 1000).await.unwrap();
    assert_eq!(records.len(), 2 * ROUNDS);
    let head = b.audit_head().await.unwrap();
    verify_chain(&key, &records, head.as_ref()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_starting_at_once_migrate_once_and_agree_on_one_engine_key() {
    let Some((schema, first)) =
        fresh("engines_starting_at_once_migrate_once_and_agree_on_one_engine_key").await
    else {
        return;
    };
    first.close().await;
    // Start from an empty schema again, then open four stores at once.
    let url = schema.url();
    crate::testing::drop_schema(&url_base(&url), &schema.name)
        .await
        .unwrap();
    crate::testing::create_schema(&url_base(&url), &schema.name)
        .await
        .unwrap();
    let opened = futures_join_all((0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let store = PostgresStore::connect_with(
                &url,
                Options {
                    max_connections: Some(2),
                    ..Options::default()
                },
            )
            .await
            .expect("opened while others migrate");
            let key = store
                .ensure_engine_key(&EngineKeyRecord::generate(Timestamp::now()))
                .await
                .unwrap();
            store.close().await;
            key.public_key
        })
    }))
    .await;
    assert!(opened.windows(2).all(|w| w[0] == w[1]), "{opened:?}");
}

fn url_base(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}
