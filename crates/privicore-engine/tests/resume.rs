//! Commands persisted by a previous run resume when the engine starts, and their outcome
//! is published on the bus.

use futures_util::StreamExt;
use privicore_bus_local::{LocalBus, LocalDeviceBus};
use privicore_domain::CommandId;
use privicore_domain::command::{CommandPayload, CommandRecord, CommandState, Outcome};
use privicore_domain::envelope::{Kek, KeyRing};
use privicore_domain::event::BusEvent;
use privicore_domain::password::{HashCost, PasswordHash};
use privicore_domain::ports::{Bus, MetadataStore};
use privicore_engine::{Adapters, Engine, EngineConfig};
use privicore_store_sqlite::SqliteStore;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn unfinished_commands_resume_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let cheap = HashCost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let id = CommandId::new();
    store
        .insert_command(
            &CommandRecord::new(
                id,
                id.into(),
                None,
                CommandPayload::RegisterProfile {
                    username: "left-over@example.com".into(),
                    password_hash: PasswordHash::create("correct-horse-battery", cheap).unwrap(),
                },
            ),
            &[],
        )
        .await
        .unwrap();

    let bus = Arc::new(LocalBus::default());
    let mut events = bus.subscribe().await.unwrap();
    let adapters = Adapters {
        store: store.clone(),
        bus: bus.clone(),
        devices: Arc::new(LocalDeviceBus::default()),
        keyring: KeyRing::new(Kek::generate("k").unwrap(), vec![]),
        engine_key: None,
        secrets: privicore_engine::EngineSecrets::random(),
        host: None,
        audit: store.clone(),
    };
    let engine = Engine::start(adapters, EngineConfig::default())
        .await
        .unwrap();

    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
        .unwrap();
    let BusEvent::Profile(event) = event else {
        panic!("profile event expected")
    };
    assert_eq!(event.data["id"], id.to_string());
    assert_eq!(event.data["command_status"], 2);
    let record = store.command(id).await.unwrap().unwrap();
    assert!(matches!(
        record.state,
        CommandState::Finished {
            outcome: Outcome::Succeeded(_),
            ..
        }
    ));
    assert!(
        store
            .profile_by_username("LEFT-OVER@example.com")
            .await
            .unwrap()
            .is_some()
    );
    engine.shutdown().await;
}
