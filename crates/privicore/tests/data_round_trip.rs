//! The core promise: store ciphertext, keep a token, get the ciphertext back — through three
//! storage devices hosted by the engine.

mod common;

use common::*;
use serde_json::json;

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

#[tokio::test]
async fn store_and_fetch_through_three_hosted_devices() {
    let server = TestServer::start().await;
    let alice = provision(&server, "vault").await;
    for name in ["nas-1", "nas-2", "nas-3"] {
        alice
            .api
            .attach_storage_device(&alice.session, name)
            .await
            .unwrap();
    }
    let data = payload(54);
    let (token, result) = alice
        .api
        .store_payload(&alice.session, "/finance/2026", &data)
        .await
        .unwrap();
    assert!(token.starts_with("dtk-"));
    assert_eq!(result["token"], token);
    assert_eq!(result["version"], 1);
    assert_eq!(result["storedSize"], 54);
    let confirmed = result["replicas"]["confirmed"].as_u64().unwrap();
    let pending = result["replicas"]["pending"].as_u64().unwrap();
    assert!(confirmed >= 1 && confirmed + pending == 3, "{result}");

    let meta = alice
        .api
        .configure_file_meta(json!({ "token": token, "fileName": "invoice-0042.txt", "extension": ".txt", "size": 26, "path": "/" }))
        .await
        .unwrap();
    assert_eq!(meta, json!({ "token": token }));

    let fetched = alice.fetch(&token).await;
    assert_eq!(fetched, data);

    let list = alice.api.list_data_tokens("").await.unwrap();
    assert_eq!(list["meta"]["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["status"], "active");
    assert_eq!(item["meta"]["file"]["fileName"], "invoice-0042.txt");
    assert_eq!(item["meta"]["file"]["extension"], "txt");
}
