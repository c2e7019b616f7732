//! Device and storage endpoints, their state rules and error keys.

mod common;

use common::*;
use privicore_client::CommandOutcome;
use serde_json::json;

#[tokio::test]
async fn device_onboarding_listing_and_state_rules() {
    let server = TestServer::start().await;
    let alice = provision(&server, "dev").await;
    let requested = alice.api.request_device("nas-1").await.unwrap();
    let created = alice.ok(&requested.command_id).await;
    assert_eq!(created["deviceName"], "nas-1");
    assert_eq!(created["status"], "pending");
    let id = created["deviceIdentifier"].as_str().unwrap().to_owned();
    assert_ne!(
        id, requested.command_id,
        "the identifier is not the command id"
    );

    let looked_up = alice
        .api
        .retrieve_unique_identifier(&requested.command_id)
        .await
        .unwrap();
    assert_eq!(
        looked_up,
        json!({ "deviceIdentifier": id, "deviceName": "nas-1", "status": "pending" })
    );

    // The bundle is refused until approval.
    let err = alice
        .api
        .download_device_configuration(&id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("device.not_approved"))
    );
    // Storage needs an approved device.
    let early = alice.api.register_storage(&id).await.unwrap();
    assert_eq!(
        alice.outcome(&early.command_id).await,
        CommandOutcome::Failed("device.not_approved".into())
    );

    let pending = alice
        .api
        .list_devices("?filters[status]=pending")
        .await
        .unwrap();
    assert_eq!(pending["meta"]["total"], 1);
    assert_eq!(pending["items"][0]["deviceIdentifier"], id);
    assert_eq!(pending["items"][0]["online"], false);

    let approved = alice.api.approve_device(&id).await.unwrap();
    let result = alice.ok(&approved.command_id).await;
    assert_eq!(result["status"], "approved");
    let again = alice.api.approve_device(&id).await.unwrap();
    assert_eq!(
        alice.outcome(&again.command_id).await,
        CommandOutcome::Failed("device.invalid_state".into())
    );
    assert_eq!(
        alice
            .api
            .retrieve_unique_identifier(&requested.command_id)
            .await
            .unwrap()["status"],
        "approved"
    );

    let meta = alice
        .api
        .configure_device_meta(json!({ "deviceIdentifier": id, "name": "nas-one", "description": "rack b", "meta": { "rack": "b2" } }))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&meta.command_id).await,
        json!({ "deviceIdentifier": id, "name": "nas-one", "description": "rack b", "meta": { "rack": "b2" } })
    );
    for (body, code) in [
        (json!({ "deviceIdentifier": id }), "validation.no_changes"),
        (
            json!({ "deviceIdentifier": id, "name": "" }),
            "validation.no_changes",
        ),
        (
            json!({ "deviceIdentifier": id, "name": "x".repeat(101) }),
            "device.invalid_name",
        ),
        (
            json!({ "deviceIdentifier": id, "meta": { "k": 1 } }),
            "device.invalid_meta",
        ),
    ] {
        let err = alice.api.configure_device_meta(body).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(422), Some(code)));
    }

    let registered = alice.api.register_storage(&id).await.unwrap();
    let roles = alice.ok(&registered.command_id).await;
    assert_eq!(roles["roles"], json!(["storage"]));
    let twice = alice.api.register_storage(&id).await.unwrap();
    assert_eq!(
        alice.outcome(&twice.command_id).await,
        CommandOutcome::Failed("storage.already_registered".into())
    );

    let by_role = alice
        .api
        .list_devices("?filters[role]=storage&filters[name]=nas-*")
        .await
        .unwrap();
    assert_eq!(by_role["meta"]["total"], 1);
    let none = alice.api.list_devices("?filters[role]=none").await.unwrap();
    assert_eq!(none["meta"]["total"], 0);

    // The hosted device comes online.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = alice
            .api
            .list_storage_devices("?filters[online]=true")
            .await
            .unwrap();
        if list["meta"]["total"] == 1 {
            let item = &list["items"][0];
            assert_eq!(item["deviceIdentifier"], id);
            assert_eq!(
                item["replicas"],
                json!({ "confirmed": 0, "pending": 0, "missing": 0 })
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hosted device never came online"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let device = &alice.api.list_devices("").await.unwrap()["items"][0];
    assert!(
        device["publicKey"]
            .as_str()
            .unwrap()
            .starts_with("31420500"),
        "key pinned from hello"
    );

    let removed_role = alice.api.remove_storage(&id, false).await.unwrap();
    assert_eq!(alice.ok(&removed_role.command_id).await["roles"], json!([]));
    let not_storage = alice.api.remove_storage(&id, false).await.unwrap();
    assert_eq!(
        alice.outcome(&not_storage.command_id).await,
        CommandOutcome::Failed("storage.not_registered".into())
    );

    let removed = alice.api.remove_device(&id, false).await.unwrap();
    let result = alice.ok(&removed.command_id).await;
    assert_eq!(result["status"], "removed");
    let err = alice
        .api
        .download_device_configuration(&id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("device.inactive"))
    );
    let after = alice.api.remove_device(&id, false).await.unwrap();
    assert_eq!(
        alice.outcome(&after.command_id).await,
        CommandOutcome::Failed("device.invalid_state".into())
    );
    assert_eq!(
        alice.api.list_devices("").await.unwrap()["meta"]["total"],
        0,
        "removed devices are hidden by default"
    );
    assert_eq!(
        alice
            .api
            .list_devices("?filters[status]=all")
            .await
            .unwrap()["meta"]["total"],
        1
    );
}

#[tokio::test]
async fn bundles_rotate_credentials() {
    let server = TestServer::start().await;
    let alice = provision(&server, "bundle").await;
    let requested = alice.api.request_device("phone").await.unwrap();
    let id = alice.ok(&requested.command_id).await["deviceIdentifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = alice.api.approve_device(&id).await.unwrap();
    alice.ok(&approved.command_id).await;

    let res = alice
        .api
        .post_form(
            "/device/download-device-configuration",
            &[("deviceIdentifier", &id)],
        )
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.header("content-disposition").unwrap(),
        format!("attachment; filename=\"privicore-device-{id}.json\"")
    );
    let first = res.json();
    for key in [
        "bundle-version",
        "device-identifier",
        "client-id",
        "client-secret",
        "bus",
        "rabbit-host",
        "rabbit-port",
        "rabbit-user",
        "rabbit-pass",
        "queue",
        "exchange",
        "routing-key",
        "engine-public-key",
        "engine-key-id",
        "api-url",
        "chunk-size",
        "issued-at",
    ] {
        assert!(!first[key].is_null(), "{key} missing from {first}");
    }
    assert_eq!(first["rabbit-user"], format!("device-{id}"));
    assert!(first["client-id"].as_str().unwrap().starts_with("device-"));
    let second = alice
        .api
        .get(&format!("/device/retrieve-device-configuration/{id}"))
        .await
        .unwrap()
        .json();
    assert_ne!(first["client-secret"], second["client-secret"]);
    assert_ne!(first["rabbit-pass"], second["rabbit-pass"]);
    assert_eq!(
        second["engine-public-key"],
        alice.api.cab_public_key().await.unwrap().public_key
    );
}

#[tokio::test]
async fn device_validation_and_lookups() {
    let server = TestServer::start().await;
    let alice = provision(&server, "devval").await;
    let err = alice.api.request_device("").await.unwrap_err();
    assert_eq!(err.code(), Some("validation.missing_field"));
    let err = alice
        .api
        .request_device(&"n".repeat(101))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("device.invalid_name"));
    let res = alice
        .api
        .post_form(
            "/device/request-unique-identifier",
            &[("deviceName", "x"), ("publicKey", "31")],
        )
        .await
        .unwrap();
    assert_eq!(
        res.error_code().as_deref(),
        Some("public_key.invalid_format")
    );
    let unknown = "819d67e2-bda7-49b3-87e2-5ce4f29c704a";
    let err = alice.api.approve_device(unknown).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("device.not_found"))
    );
    let err = alice.api.approve_device("not-a-uuid").await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(422), Some("validation.invalid_format"))
    );
    let err = alice
        .api
        .retrieve_unique_identifier("019c80d6-12a9-7a31-a123-b58c930e086b")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("device.request_not_found"))
    );
    let err = alice
        .api
        .list_devices("?filters[colour]=red")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(422), Some("validation.unknown_filter"))
    );
    let err = alice.api.list_devices("?perPage=101").await.unwrap_err();
    assert_eq!(err.code(), Some("validation.out_of_range"));
    let err = alice.api.list_storage_devices("?page=0").await.unwrap_err();
    assert_eq!(err.code(), Some("validation.out_of_range"));

    let rejected = alice.api.request_device("unknown-thing").await.unwrap();
    let id = alice.ok(&rejected.command_id).await["deviceIdentifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = alice.api.reject_device(&id).await.unwrap();
    assert_eq!(alice.ok(&r.command_id).await["status"], "rejected");
    let approve = alice.api.approve_device(&id).await.unwrap();
    assert_eq!(
        alice.outcome(&approve.command_id).await,
        CommandOutcome::Failed("device.invalid_state".into())
    );
}
