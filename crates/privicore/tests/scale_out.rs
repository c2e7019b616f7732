//! Two engines on one PostgreSQL database (skipped, and said so, without
//! `PRIVICORE_TEST_POSTGRES_URL`): what one accepted, the other sees and honours.

mod common;
mod engine_process;

use common::*;
use engine_process::copy_dir;
use privicore_client::Client;
use privicore_store_postgres::testing::{TestSchema, test_url};

/// Two in-process engines sharing one fresh schema; the second runs with a copy of the
/// first's keys (docs/deployment.md: engines on one database share their keys).
async fn two_engines(test: &str) -> Option<(TestSchema, TestServer, TestServer)> {
    let server = test_url(test)?;
    let schema = TestSchema::create(&server).await.unwrap();
    let url = schema.url();
    let first = TestServer::start_with(|s| s.database_url = Some(url.clone())).await;
    let keys = first.dir.path().join("keys");
    let second = TestServer::start_with(|s| {
        copy_dir(&keys, &s.data_dir.join("keys"));
        s.database_url = Some(url.clone());
    })
    .await;
    Some((schema, first, second))
}

#[tokio::test]
async fn a_profile_made_on_one_engine_works_on_the_other() {
    let Some((_schema, first, second)) =
        two_engines("a_profile_made_on_one_engine_works_on_the_other").await
    else {
        return;
    };
    let p = provision(&first, "two-engines").await;
    let other = Client::new(&second.running().api_url());
    let key = other
        .with_token(&p.token)
        .retrieve_public_key()
        .await
        .unwrap();
    assert_eq!(
        key.public_key,
        p.keys.public().to_hex(),
        "the token and key"
    );
    let again = other.authenticate(&p.username, PASSWORD).await.unwrap();
    assert_eq!(again.profile_id, p.profile_id);
    assert!(again.public_key_registered);
    assert_eq!(
        first.client().cab_public_key().await.unwrap().public_key,
        other.cab_public_key().await.unwrap().public_key,
        "one engine key for both"
    );
}

#[tokio::test]
async fn an_idempotency_key_is_remembered_across_engines() {
    let Some((_schema, first, second)) =
        two_engines("an_idempotency_key_is_remembered_across_engines").await
    else {
        return;
    };
    let alice = provision(&first, "two-engines-idem").await;
    let accepted = alice
        .api
        .with_idempotency_key("reserve-1")
        .reserve_token_space("/i", None)
        .await
        .unwrap();
    alice.ok(&accepted.command_id).await;
    let on_second = Client::new(&second.running().api_url()).with_token(&alice.token);
    let repeated = on_second
        .with_idempotency_key("reserve-1")
        .reserve_token_space("/i", None)
        .await
        .unwrap();
    assert_eq!(
        repeated.command_id, accepted.command_id,
        "the original reply"
    );
    assert!(repeated.replayed);
    let listed = on_second
        .list_data_tokens("?filters[status]=reserved")
        .await
        .unwrap();
    assert_eq!(listed["meta"]["total"], 1, "the repeat ran nothing");
}
