//! Governance decisions are recorded in the audit log before they take effect; a decision
//! whose record cannot be written is not carried out and fails with `audit.unavailable`.

use async_trait::async_trait;
use privicore_bus_local::{LocalBus, LocalDeviceBus};
use privicore_domain::audit::{
    AuditEntry, AuditKey, AuditKind, AuditRecord, SealedHead, Sealer, verify_chain,
};
use privicore_domain::auth::{Access, Caller};
use privicore_domain::command::Completion;
use privicore_domain::device::DeviceStatus;
use privicore_domain::effect::Effect;
use privicore_domain::envelope::{Kek, KeyRing};
use privicore_domain::password::HashCost;
use privicore_domain::ports::{AuditLog, MetadataStore, StoreError};
use privicore_domain::time::ManualClock;
use privicore_domain::{CommandId, Timestamp};
use privicore_engine::{Adapters, CommandStatus, Credentials, Engine, EngineConfig, EngineSecrets};
use privicore_store_sqlite::SqliteStore;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const AUDIT_KEY: [u8; 32] = [5; 32];
const PASSWORD: &str = "correct-horse-battery";

/// The SQLite store's audit log, made to refuse appends on demand.
struct Flaky {
    store: Arc<SqliteStore>,
    refuse: AtomicBool,
}

#[async_trait]
impl AuditLog for Flaky {
    async fn append_audit(
        &self,
        sealer: &Sealer,
        entries: &[AuditEntry],
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the audit device is full".into()));
        }
        self.store
            .append_audit(sealer, entries, effects, completion)
            .await
    }

    async fn audit_head(&self) -> Result<Option<SealedHead>, StoreError> {
        self.store.audit_head().await
    }

    async fn audit_records(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit_records(after, limit).await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.store.audit_tail(n).await
    }
}

async fn start(
    store: Arc<SqliteStore>,
    audit: Arc<dyn AuditLog>,
    key: [u8; 32],
    clock: Arc<ManualClock>,
) -> Arc<Engine> {
    let adapters = Adapters {
        store,
        bus: Arc::new(LocalBus::default()),
        devices: Arc::new(LocalDeviceBus::default()),
        keyring: KeyRing::new(Kek::generate("k").unwrap(), vec![]),
        engine_key: None,
        secrets: EngineSecrets::new([1; 32], [2; 32]).with_audit_key(key),
        host: None,
        audit,
    };
    let config = EngineConfig {
        hash_cost: HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        clock,
        ..EngineConfig::default()
    };
    Engine::start(adapters, config).await.unwrap()
}

fn localhost() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

async fn settled(engine: &Engine, id: CommandId, caller: Option<&Caller>) -> CommandStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match engine.command_status(id, caller).await.unwrap() {
            CommandStatus::Started => {}
            done => return done,
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command did not finish"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn caller(engine: &Engine, username: &str) -> Caller {
    let id = engine
        .register_profile(username, PASSWORD, localhost())
        .await
        .unwrap();
    assert!(matches!(
        settled(engine, id, None).await,
        CommandStatus::Succeeded(_)
    ));
    let auth = engine
        .authenticate(
            Credentials::Password {
                username: username.into(),
                password: PASSWORD.into(),
            },
            localhost(),
        )
        .await
        .unwrap();
    engine
        .authorize(Some(auth.token.expose()), Access::any().key_exempt())
        .await
        .unwrap()
}

fn failed(status: CommandStatus) -> String {
    match status {
        CommandStatus::Failed(key) => key,
        other => panic!("the command should have failed: {other:?}"),
    }
}

#[tokio::test]
async fn a_decision_whose_record_cannot_be_written_is_not_carried_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let flaky = Arc::new(Flaky {
        store: store.clone(),
        refuse: AtomicBool::new(false),
    });
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_800_000_000)));
    let engine = start(store.clone(), flaky.clone(), AUDIT_KEY, clock.clone()).await;
    let me = caller(&engine, "auditor@example.com").await;
    let public_key = privicore_wire::KeyPair::generate().public().to_hex();

    // Public key registration: refused while the audit log refuses, done once it accepts.
    flaky.refuse.store(true, Ordering::SeqCst);
    let id = engine.register_public_key(&me, &public_key).await.unwrap();
    assert_eq!(
        failed(settled(&engine, id, Some(&me)).await),
        "audit.unavailable"
    );
    let profile = store.profile(me.profile_id).await.unwrap().unwrap();
    assert!(profile.public_key.is_none(), "the key was not registered");
    assert!(engine.audit_tail(10).await.unwrap().is_empty());

    flaky.refuse.store(false, Ordering::SeqCst);
    let id = engine.register_public_key(&me, &public_key).await.unwrap();
    assert!(matches!(
        settled(&engine, id, Some(&me)).await,
        CommandStatus::Succeeded(_)
    ));
    let records = engine.audit_tail(10).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].kind, AuditKind::PublicKeyRegistered);
    assert_eq!(records[0].at, Timestamp::from_unix(1_800_000_000));
    assert_eq!(records[0].actor, format!("profile:{}", me.profile_id));
    assert_eq!(records[0].outcome, "registered");
    assert!(records[0].details.contains(&id.to_string()));

    // Device approval: the same.
    let request = engine
        .request_device(&me, "phone", None, None)
        .await
        .unwrap();
    settled(&engine, request, Some(&me)).await;
    let device = engine
        .retrieve_device_identifier(&me, &request.to_string())
        .await
        .unwrap();
    flaky.refuse.store(true, Ordering::SeqCst);
    let id = engine
        .approve_device(&me, &device.id.to_string())
        .await
        .unwrap();
    assert_eq!(
        failed(settled(&engine, id, Some(&me)).await),
        "audit.unavailable"
    );
    let stored = store.device(device.id).await.unwrap().unwrap();
    assert_eq!(stored.status, DeviceStatus::Pending, "not approved");

    flaky.refuse.store(false, Ordering::SeqCst);
    clock.advance(60);
    let id = engine
        .approve_device(&me, &device.id.to_string())
        .await
        .unwrap();
    assert!(matches!(
        settled(&engine, id, Some(&me)).await,
        CommandStatus::Succeeded(_)
    ));
    assert_eq!(
        store.device(device.id).await.unwrap().unwrap().status,
        DeviceStatus::Approved
    );

    // Removal too.
    flaky.refuse.store(true, Ordering::SeqCst);
    let id = engine
        .remove_device(&me, &device.id.to_string(), false)
        .await
        .unwrap();
    assert_eq!(
        failed(settled(&engine, id, Some(&me)).await),
        "audit.unavailable"
    );
    assert_eq!(
        store.device(device.id).await.unwrap().unwrap().status,
        DeviceStatus::Approved
    );
    flaky.refuse.store(false, Ordering::SeqCst);
    let id = engine
        .remove_device(&me, &device.id.to_string(), false)
        .await
        .unwrap();
    settled(&engine, id, Some(&me)).await;

    let records = engine.audit_records(0, 100).await.unwrap();
    let kinds: Vec<_> = records.iter().map(|r| r.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::PublicKeyRegistered,
            AuditKind::DeviceApproved,
            AuditKind::DeviceRemoved
        ]
    );
    assert_eq!(records[1].subject, format!("device:{}", device.id));
    assert_eq!(records[1].at, Timestamp::from_unix(1_800_000_060));
    let key = AuditKey::new(AUDIT_KEY);
    let head = store.audit_head().await.unwrap();
    let summary = verify_chain(&key, &records, head.as_ref()).unwrap();
    assert_eq!(summary.records, 3);
    engine.shutdown().await;
}

#[tokio::test]
async fn concurrent_appends_form_one_chain_that_neither_a_wipe_nor_another_key_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(1_800_000_000)));
    let engine = start(store.clone(), store.clone(), AUDIT_KEY, clock.clone()).await;
    let mut appends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let engine = engine.clone();
        appends.spawn(async move {
            engine
                .audit_append(
                    AuditEntry::new(
                        AuditKind::VoteCast,
                        format!("device:{i}"),
                        "ballot:b",
                        "yes",
                    )
                    .with_details(serde_json::json!({ "channel": "bus" })),
                )
                .await
                .unwrap()
                .seq
        });
    }
    let mut seqs = Vec::new();
    while let Some(seq) = appends.join_next().await {
        seqs.push(seq.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
    let records = engine.audit_records(0, 100).await.unwrap();
    let head = store.audit_head().await.unwrap();
    verify_chain(&AuditKey::new(AUDIT_KEY), &records, head.as_ref()).unwrap();
    engine.shutdown().await;

    // Everything wiped behind a running engine's back (records and head): it does not
    // start a new chain as if nothing had been there.
    let engine = start(store.clone(), store.clone(), AUDIT_KEY, clock.clone()).await;
    let copy = dir.path().join("copy.db");
    {
        let db = rusqlite::Connection::open(dir.path().join("meta.db")).unwrap();
        db.execute("VACUUM INTO ?", [copy.to_str().unwrap()])
            .unwrap();
        db.execute_batch(
            "DROP TRIGGER audit_log_append_only_delete; DELETE FROM audit_log; DELETE FROM audit_head;",
        )
        .unwrap();
    }
    let error = engine
        .audit_append(AuditEntry::new(
            AuditKind::PolicyDeleted,
            "profile:p",
            "policy:x",
            "deleted",
        ))
        .await
        .unwrap_err();
    assert_eq!(error.reason.code(), "audit.unavailable");
    assert!(engine.audit_tail(1).await.unwrap().is_empty());
    engine.shutdown().await;
    store.close().await;
    let store = Arc::new(SqliteStore::open(&copy).await.unwrap());

    // An engine with another key finds a head it cannot verify and records nothing.
    let other = start(store.clone(), store.clone(), [6; 32], clock).await;
    let error = other
        .audit_append(AuditEntry::new(
            AuditKind::PolicyActivated,
            "profile:p",
            "policy:x",
            "active",
        ))
        .await
        .unwrap_err();
    assert_eq!(error.reason.code(), "audit.unavailable");
    assert_eq!(store.audit_head().await.unwrap(), head);
    other.shutdown().await;
}
