use super::SqliteStore;
use privicore_domain::ports::conformance;

/// A fresh store in a directory that lives as long as the returned guard.
async fn temp_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn sqlite_store_meets_the_port_contract() {
    let (_dir, store) = temp_store().await;
    conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test]
async fn sqlite_store_meets_the_audit_port_contract() {
    let (_dir, store) = temp_store().await;
    conformance::run_audit(&store).await;
    store.close().await;
}

/// The engine never changes or removes a record; the triggers refuse it, and a reader
/// beside the store sees the chain as written.
#[tokio::test]
async fn audit_records_are_append_only_and_readable_beside_the_store() {
    use privicore_domain::Timestamp;
    use privicore_domain::audit::{AuditEntry, AuditKey, AuditKind, verify_chain};
    use privicore_domain::ports::AuditLog;
    let (dir, store) = temp_store().await;
    let path = dir.path().join("meta.db");
    assert!(
        super::AuditReader::open(&path)
            .unwrap()
            .unwrap()
            .head()
            .unwrap()
            .is_none()
    );
    let key = std::sync::Arc::new(AuditKey::new([9; 32]));
    for i in 0..3 {
        let entry = AuditEntry::new(
            AuditKind::PolicyActivated,
            "profile:p",
            format!("policy:{i}"),
            "active",
        );
        let sealer = privicore_domain::audit::Sealer {
            key: key.clone(),
            at: Timestamp::from_unix(i),
            seen: 0,
        };
        store
            .append_audit(&sealer, &[entry], &[], None)
            .await
            .unwrap();
    }
    let head = store.audit_head().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE audit_log SET outcome = 'inactive' WHERE seq = 2",
        "DELETE FROM audit_log WHERE seq = 3",
    ] {
        let error = conn.execute(sql, []).unwrap_err().to_string();
        assert!(error.contains("append-only"), "{error}");
    }
    let reader = super::AuditReader::open(&path).unwrap().unwrap();
    let (records, stored_head) = reader
        .snapshot(|r| Ok((r.records(0, 10)?, r.head()?)))
        .unwrap();
    assert_eq!(stored_head, head);
    verify_chain(&key, &records, stored_head.as_ref()).unwrap();
    assert_eq!(reader.tail(1).unwrap()[0].seq, 3);
    store.close().await;
}

#[tokio::test]
async fn data_survives_reopening() {
    use privicore_domain::Timestamp;
    use privicore_domain::keys::EngineKeyRecord;
    use privicore_domain::ports::MetadataStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let key = store
        .ensure_engine_key(&EngineKeyRecord::generate(Timestamp::now()))
        .await
        .unwrap();
    store.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        reopened.engine_key().await.unwrap().unwrap().public_key,
        key.public_key
    );
}

#[tokio::test]
async fn a_database_migrated_by_earlier_builds_is_not_migrated_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Earlier builds knew the first three migrations; the rest must still run.
        for sql in &super::db::MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (1, 1), (2, 1), (3, 1);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    conformance::run_all(&store).await;
    store.close().await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, super::db::MIGRATIONS.len());
}

/// Under writes that never pause, passive checkpoints alone never reach the end of the
/// log; the log must still start over instead of growing for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_steady_writes() {
    use privicore_domain::effect::{DataEffect, Effect};
    use privicore_domain::ports::MetadataStore;
    use privicore_domain::{ProfileId, Timestamp};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..800 {
                    let event = Effect::Data(Box::new(DataEffect::CountEvent {
                        profile_id: ProfileId(uuid::Uuid::new_v4()),
                        kind: "exchanged",
                        context: "/steady/writes/with/a/longer/context/to/fill/pages".into(),
                        at: Timestamp::now(),
                        application_id: None,
                    }));
                    store.apply(&[event], None).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    // The WAL header's checkpoint sequence number counts the times the log started over.
    let header = std::fs::read(dir.path().join("meta.db-wal")).unwrap();
    let restarts = u32::from_be_bytes(header[12..16].try_into().unwrap());
    assert!(restarts >= 1, "the log never started over");
    let probe = rusqlite::Connection::open(&path).unwrap();
    let frames = super::db::checkpoint(&probe, "PASSIVE").unwrap();
    // A loose bound: how far the log runs past the restart threshold depends on timing.
    assert!(frames < 16_384, "the WAL holds {frames} frames");
    store.close().await;
}

/// Migration 0005 rekeys versions, replicas and the spool by the token's `seq`; what a
/// database of the earlier schema held must read back the same.
#[tokio::test]
async fn token_rows_survive_rekeying_by_seq() {
    use privicore_domain::device::DeviceId;
    use privicore_domain::ports::MetadataStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let device = uuid::Uuid::new_v4();
    let tokens = [
        "dtk-0b0f7a5e-2a43-4a8e-9c1e-5d1c8f6c3a11",
        "dtk-9f6d3c2b-1e0a-4b7c-8d5e-4f3a2b1c0d99",
    ];
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &super::db::MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 4").unwrap();
        let profile = uuid::Uuid::new_v4().to_string();
        conn.execute(
            "INSERT INTO profiles (id, username, username_key, kind, status, created_at)
             VALUES (?, 'alice', 'alice', 'user', 'active', 0)",
            [&profile],
        )
        .unwrap();
        for (i, token) in tokens.iter().enumerate() {
            conn.execute(
                "INSERT INTO data_tokens (token, profile_id, reserve_command_id, status, context, version, created_at, updated_at)
                 VALUES (?, ?, ?, 'active', 'ctx', 1, 0, 0)",
                rusqlite::params![token, profile, uuid::Uuid::now_v7().to_string()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO token_versions VALUES (?, 1, ?, 'digest', 10, 1, 1)",
                rusqlite::params![token, vec![i as u8; 4]],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO replicas VALUES (?, 1, ?, 'confirmed')",
                rusqlite::params![token, device.to_string()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO spool VALUES (?, 1, 0, ?)",
                rusqlite::params![token, vec![7u8, i as u8]],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).await.unwrap();
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(
            store.data_token(token).await.unwrap().unwrap().token,
            *token
        );
        let version = store.token_version(token, 1).await.unwrap().unwrap();
        assert_eq!(
            (version.token.as_str(), version.header),
            (*token, vec![i as u8; 4])
        );
        let replicas = store.replicas(token, Some(1)).await.unwrap();
        assert_eq!(replicas.len(), 1);
        assert_eq!(replicas[0].token, *token);
        assert_eq!(
            store.spool(token, 1).await.unwrap(),
            Some(vec![vec![7u8, i as u8]])
        );
    }
    let mut held: Vec<String> = store
        .device_replicas(DeviceId(device))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.token)
        .collect();
    held.sort();
    assert_eq!(held, tokens);
    conformance::run_all(&store).await;
    store.close().await;
}

/// The token row cache answers exactly what the database holds after every kind of write,
/// including a write refused inside its transaction.
#[tokio::test]
async fn cached_token_rows_match_the_database() {
    use privicore_domain::Timestamp;
    use privicore_domain::data_token::TokenStatus;
    use privicore_domain::effect::{DataEffect, Effect};
    use privicore_domain::ports::MetadataStore;
    use serde_json::json;

    let (_dir, store) = temp_store().await;
    let profile = conformance::stored_profile(&store, "cache").await;
    let row = conformance::token_of(&profile, "/cache");
    let (token, reservation) = (row.token.clone(), row.reserve_command_id);
    let from_database = |store: &SqliteStore| {
        store
            .read(|c| {
                super::db::one(
                    c,
                    concat!(
                        "SELECT ",
                        data_token_columns!(),
                        " FROM data_tokens WHERE token = ?"
                    ),
                    [token.as_str()],
                    super::rows::data_token,
                )
            })
            .unwrap()
    };
    let at = Timestamp(1_700_000_100);
    let data = |e: DataEffect| Effect::Data(Box::new(e));
    let writes = [
        data(DataEffect::CreateDataToken(row)),
        data(DataEffect::BeginExchange {
            token: token.clone(),
            at,
        }),
        data(DataEffect::SetFileMeta {
            token: token.clone(),
            file: Some(json!({"fileName": "a.txt"})),
            context: Some("/other".into()),
            at,
        }),
        data(DataEffect::CommitVersion {
            token: token.clone(),
            version: 1,
            stored_size: 10,
            at,
        }),
        data(DataEffect::SetRiskMeta {
            token: token.clone(),
            risk: Some(json!({"level": 2})),
            at,
        }),
    ];
    for write in writes {
        store.apply(&[write], None).await.unwrap();
        let cached = store.token_rows.get(&token).expect("the write is cached");
        assert_eq!(Some(&cached), from_database(&store).as_ref());
        assert_eq!(
            store.data_token(&token).await.unwrap(),
            Some(cached.clone())
        );
        assert_eq!(
            store.data_token_by_reservation(reservation).await.unwrap(),
            Some(cached)
        );
    }
    // Refused inside its transaction (the token is no longer reserved): nothing changes,
    // and the cache answers what the database does.
    let refused = data(DataEffect::BeginExchange {
        token: token.clone(),
        at: Timestamp(1_700_000_200),
    });
    assert!(store.apply(&[refused], None).await.is_err());
    let read = store.data_token(&token).await.unwrap();
    assert_eq!(read, from_database(&store));
    assert_eq!(read.unwrap().status, TokenStatus::Active);
    store.close().await;
}

/// Migration 0007 moves commands into a table ordered by id: pending and finished
/// commands of the earlier schema read back the same.
#[tokio::test]
async fn commands_survive_reordering_by_id() {
    use privicore_domain::command::{CommandPayload, CommandRecord, CommandState, Outcome};
    use privicore_domain::ports::MetadataStore;
    use privicore_domain::{CommandId, Timestamp};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let payload = CommandPayload::RegisterPublicKey {
        public_key: "k".into(),
    };
    let (pending, finished) = (CommandId::new(), CommandId::new());
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &super::db::MIGRATIONS[..6] {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("PRAGMA user_version = 6").unwrap();
        let record = |id: CommandId| CommandRecord::new(id, id.into(), None, payload.clone());
        crate::commands::insert(&conn, &record(pending)).unwrap();
        let mut done = record(finished);
        done.state = CommandState::Finished {
            outcome: Outcome::Failed("storage.no_storage_devices".into()),
            finished_at: Timestamp::now(),
        };
        crate::commands::insert(&conn, &done).unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let unfinished = store.unfinished_commands().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, pending);
    assert!(matches!(
        store.command(finished).await.unwrap().unwrap().state,
        CommandState::Finished { outcome: Outcome::Failed(ref key), .. } if key == "storage.no_storage_devices"
    ));
    store.close().await;
}
