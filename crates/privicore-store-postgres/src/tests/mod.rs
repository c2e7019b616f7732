use super::{Options, PostgresStore};
use crate::testing::{TestSchema, test_url};
use privicore_domain::ports::conformance;

/// A store in a schema of its own, or `None` when no test server is configured.
async fn fresh(test: &str) -> Option<(TestSchema, PostgresStore)> {
    let url = test_url(test)?;
    let schema = TestSchema::create(&url).await.expect("test schema");
    let store = PostgresStore::connect_with(
        &schema.url(),
        Options {
            max_connections: Some(4),
            ..Options::default()
        },
    )
    .await
    .expect("store");
    Some((schema, store))
}

#[tokio::test]
async fn postgres_store_meets_the_port_contract() {
    let Some((_schema, store)) = fresh("postgres_store_meets_the_port_contract").await else {
        return;
    };
    conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_store_meets_the_audit_port_contract() {
    let Some((_schema, store)) = fresh("postgres_store_meets_the_audit_port_contract").await else {
        return;
    };
    conformance::run_audit(&store).await;
    store.close().await;
}

mod concurrency;
