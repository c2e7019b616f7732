use super::SqliteStore;
use privicore_domain::ports::conformance;

#[tokio::test]
async fn sqlite_store_meets_the_port_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    conformance::run_all(&store).await;
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
        for sql in super::db::MIGRATIONS {
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
}
