//! Every token and device call checks the caller's profile; another profile's resources are
//! answered as the contract says, and never with their data.

mod common;

use common::*;

#[tokio::test]
async fn profiles_cannot_reach_each_others_tokens_or_devices() {
    let server = TestServer::start().await;
    let alice = provision(&server, "iso-alice").await;
    let bob = provision(&server, "iso-bob").await;
    let devices = alice.attach_devices(&["a"]).await;
    let data = random_payload(64);
    let token = alice.store("/private", &data).await;
    let reserved = alice
        .api
        .reserve_token_space("/private", None)
        .await
        .unwrap();
    let open = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Tokens addressed by their own id: 403 not_owner.
    let forbidden = [
        bob.api.request_data(&token).await.map(|_| ()).unwrap_err(),
        bob.api.delete_data(&token).await.map(|_| ()).unwrap_err(),
        bob.api
            .exchange_data(&open, &[7; 40])
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .configure_file_meta(serde_json::json!({ "token": token, "fileName": "x" }))
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .configure_risk_meta(serde_json::json!({ "token": token, "classification": "x" }))
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .update_data_token(serde_json::json!({ "token": token, "fileName": "x" }))
            .await
            .map(|_| ())
            .unwrap_err(),
    ];
    for err in forbidden {
        assert_eq!(
            (err.status(), err.code()),
            (Some(403), Some("data_token.not_owner"))
        );
    }
    // Lookups by command id: 404, revealing nothing.
    let err = bob
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.reservation_not_found"))
    );
    let err = bob
        .api
        .request_status(&reserved.command_id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("command.not_found"))
    );

    // Devices: 403 not_owner by identifier, 404 by request command id.
    for err in [
        bob.api
            .approve_device(&devices[0])
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .register_storage(&devices[0])
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .sync_device(&devices[0], false)
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .remove_device(&devices[0], true)
            .await
            .map(|_| ())
            .unwrap_err(),
        bob.api
            .download_device_configuration(&devices[0])
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(
            (err.status(), err.code()),
            (Some(403), Some("device.not_owner"))
        );
    }
    assert_eq!(
        bob.api.list_devices("?filters[status]=all").await.unwrap()["meta"]["total"],
        0
    );
    assert_eq!(
        bob.api.list_storage_devices("").await.unwrap()["meta"]["total"],
        0
    );
    assert_eq!(
        bob.api
            .list_data_tokens("?filters[status]=all")
            .await
            .unwrap()["meta"]["total"],
        0
    );
    assert_eq!(
        bob.api
            .list_data_tokens(&format!("?filters[token]={token}"))
            .await
            .unwrap()["meta"]["total"],
        0
    );

    // Bob's socket never carried Alice's data.
    bob.session.ping().await.unwrap();
    let encoded = b64(&data);
    assert!(
        !bob.session
            .frames()
            .iter()
            .any(|f| f.to_string().contains(&encoded))
    );
    // Alice still has it.
    assert_eq!(alice.fetch(&token).await, data);
}

#[tokio::test]
async fn unused_reservations_expire() {
    let server = TestServer::start().await;
    let alice = provision(&server, "expiry").await;
    alice.attach_devices(&["a"]).await;
    let reserved = alice
        .api
        .reserve_token_space("/soon", Some(1))
        .await
        .unwrap();
    let token = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        alice
            .api
            .list_data_tokens("?filters[status]=reserved")
            .await
            .unwrap()["meta"]["total"],
        1
    );
    // One minute is the shortest reservation; the expiry worker runs every second.
    tokio::time::sleep(std::time::Duration::from_secs(62)).await;
    let err = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.reservation_expired"))
    );
    let err = alice.api.exchange_data(&token, &[1; 40]).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.reservation_expired"))
    );
    assert_eq!(
        alice
            .api
            .list_data_tokens("?filters[status]=all")
            .await
            .unwrap()["meta"]["total"],
        0
    );
}
