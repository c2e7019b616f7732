//! Data token endpoints, their error keys, replication and retrieval behaviour.

mod common;

use base64::Engine as _;
use common::*;
use privicore_client::CommandOutcome;
use serde_json::json;

#[tokio::test]
async fn reservation_and_exchange_errors() {
    let server = TestServer::start().await;
    let alice = provision(&server, "tok-err").await;
    alice.attach_devices(&["d1"]).await;

    for (body, code) in [
        (json!({}), "validation.missing_field"),
        (
            json!({ "context": "bad\u{1}context" }),
            "data_token.invalid_context",
        ),
        (
            json!({ "context": "x".repeat(513) }),
            "data_token.invalid_context",
        ),
        (
            json!({ "context": "/a", "ttl": 0 }),
            "validation.out_of_range",
        ),
        (
            json!({ "context": "/a", "ttl": 61 }),
            "validation.out_of_range",
        ),
        (
            json!({ "context": "/a", "ttl": 1.5 }),
            "validation.invalid_type",
        ),
        (
            json!({ "context": "/a", "meta": [1] }),
            "data_token.invalid_meta",
        ),
    ] {
        let res = alice
            .api
            .post_json("/data-token/reserve-token-space", body.clone())
            .await
            .unwrap();
        assert_eq!(res.error_code().as_deref(), Some(code), "{body}");
        assert_eq!(res.status, 422);
    }
    // Bracket notation for meta works in forms.
    let res = alice
        .api
        .post_form(
            "/data-token/reserve-token-space",
            &[("context", "/f"), ("meta[type]", "invoice")],
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202);

    let reserved = alice
        .api
        .reserve_token_space("/finance/2026", Some(5))
        .await
        .unwrap();
    let reservation = alice.ok(&reserved.command_id).await;
    assert_eq!(reservation["tokenSpaceRequestId"], reserved.command_id);
    assert_eq!(reservation["context"], "/finance/2026");
    let token = reservation["token"].as_str().unwrap().to_owned();
    let temp = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    assert_eq!(temp["token"], token);
    let stream = temp["stream"].as_str().unwrap();
    assert!(stream.starts_with("U-") && stream.len() == 45);
    assert_eq!(
        temp["streamUrl"],
        format!(
            "{}/?auth={stream}",
            temp["streamUrl"]
                .as_str()
                .unwrap()
                .split("/?auth=")
                .next()
                .unwrap()
        )
    );
    assert!(temp["stream_server_port"].is_u64());
    assert_eq!(
        alice
            .api
            .temporary_data_token(&reserved.command_id)
            .await
            .unwrap()["stream"],
        stream,
        "stable while nothing changed"
    );

    let cases: Vec<(String, u16, &str)> = vec![
        ("***".into(), 422, "data_token.invalid_data_encoding"),
        (b64(&[0u8; 27]), 422, "data_token.data_too_short"),
        (
            b64(&vec![0u8; 1024 * 1024 + 1]),
            413,
            "data_token.payload_too_large",
        ),
    ];
    for (data, status, code) in cases {
        let res = alice
            .api
            .post_form(
                "/data-token/exchange-data-for-token",
                &[("temporaryTokenSpace", &token), ("data", &data)],
            )
            .await
            .unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (status, Some(code))
        );
    }
    let unknown = alice
        .api
        .exchange_data("dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5", &[1; 40])
        .await
        .unwrap_err();
    assert_eq!(
        (unknown.status(), unknown.code()),
        (Some(404), Some("data_token.not_found"))
    );
    let missing = alice
        .api
        .post_form(
            "/data-token/exchange-data-for-token",
            &[("temporaryTokenSpace", &token)],
        )
        .await
        .unwrap();
    assert_eq!(
        missing.error_code().as_deref(),
        Some("validation.missing_field")
    );

    // URL-safe base64 without padding is accepted.
    let data = random_payload(40);
    let urlsafe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data);
    let res = alice
        .api
        .post_form(
            "/data-token/exchange-data-for-token",
            &[("temporaryTokenSpace", &token), ("data", &urlsafe)],
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202);
    let command = res.json()["commandId"].as_str().unwrap().to_owned();
    let again = alice.api.exchange_data(&token, &data).await.unwrap_err();
    assert_eq!(
        (again.status(), again.code()),
        (Some(409), Some("data_token.already_exchanged"))
    );
    alice.ok(&command).await;
    let temp = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap_err();
    assert_eq!(
        (temp.status(), temp.code()),
        (Some(409), Some("data_token.already_exchanged"))
    );
    assert_eq!(alice.fetch(&token).await, data);

    let not_found = alice
        .api
        .temporary_data_token("019c80d5-e7d1-75f7-9e48-4ff5122cef92")
        .await
        .unwrap_err();
    assert_eq!(
        (not_found.status(), not_found.code()),
        (Some(404), Some("data_token.reservation_not_found"))
    );
}

/// docs/api/data-tokens.md §2: at most 1,000 outstanding reservations per profile. Checked in the
/// reservation's own write, so concurrent requests cannot pass the cap together.
#[tokio::test]
async fn outstanding_reservations_are_capped_exactly() {
    let server = TestServer::start().await;
    let alice = provision(&server, "tok-cap").await;
    let api = std::sync::Arc::new(alice.api.clone());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (0, 0);
            for _ in 0..130 {
                match api.reserve_token_space("/cap", None).await {
                    Ok(_) => accepted += 1,
                    Err(e) => {
                        assert_eq!(
                            (e.status(), e.code()),
                            (Some(409), Some("data_token.too_many_reservations"))
                        );
                        refused += 1;
                    }
                }
            }
            (accepted, refused)
        }));
    }
    let (mut accepted, mut refused) = (0, 0);
    for task in tasks {
        let (a, r) = task.await.unwrap();
        accepted += a;
        refused += r;
    }
    assert_eq!((accepted, refused), (1000, 40));
}

#[tokio::test]
async fn without_storage_devices_the_exchange_fails_and_the_reservation_returns() {
    let server = TestServer::start().await;
    let alice = provision(&server, "nodev").await;
    let reserved = alice.api.reserve_token_space("/x", None).await.unwrap();
    let token = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream_before = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap()["stream"]
        .clone();
    let exchanged = alice
        .api
        .exchange_data(&token, &random_payload(64))
        .await
        .unwrap();
    assert_eq!(
        alice.outcome(&exchanged.command_id).await,
        CommandOutcome::Failed("storage.no_storage_devices".into())
    );
    let after = alice
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    assert_eq!(after["token"], token, "back to reserved");
    assert_ne!(
        after["stream"], stream_before,
        "a fresh upload value is issued"
    );
    let request = alice.api.request_data(&token).await.unwrap_err();
    assert_eq!(
        (request.status(), request.code()),
        (Some(409), Some("data_token.not_active"))
    );
}

#[tokio::test]
async fn retrieval_survives_two_of_three_devices_removed() {
    let server = TestServer::start().await;
    let alice = provision(&server, "two-gone").await;
    let devices = alice.attach_devices(&["a", "b", "c"]).await;
    let data = random_payload(3000);
    let token = alice.store("/r", &data).await;
    alice.wait_confirmed(&token, 3).await;
    for id in &devices[..2] {
        let removed = alice.api.remove_device(id, false).await.unwrap();
        alice.ok(&removed.command_id).await;
    }
    // The last one holds the only replica now: the safeguard refuses without force.
    let guarded = alice.api.remove_storage(&devices[2], false).await.unwrap();
    assert_eq!(
        alice.outcome(&guarded.command_id).await,
        CommandOutcome::Failed("storage.last_replica".into())
    );
    assert_eq!(alice.fetch(&token).await, data);
}

#[tokio::test]
async fn a_corrupted_copy_is_skipped_marked_missing_and_repaired_by_sync() {
    let server = TestServer::start().await;
    let alice = provision(&server, "corrupt").await;
    let devices = alice.attach_devices(&["a", "b"]).await;
    let data = random_payload(500);
    let token = alice.store("/c", &data).await;
    alice.wait_confirmed(&token, 2).await;
    // Damage every stored copy but one: the engine must still return the right bytes.
    let damaged = &devices[0];
    damage_on_device(&server.device_dir(damaged), &token);
    // Ask until the damaged device has been tried (equal candidates are tried in random order).
    for _ in 0..40 {
        assert_eq!(alice.fetch(&token).await, data);
        let storage = alice.api.list_storage_devices("").await.unwrap();
        let missing: u64 = storage["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["replicas"]["missing"].as_u64().unwrap())
            .sum();
        if missing == 1 {
            break;
        }
    }
    let storage = alice.api.list_storage_devices("").await.unwrap();
    let item = storage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceIdentifier"] == *damaged)
        .unwrap()
        .clone();
    assert_eq!(item["replicas"]["missing"], 1, "{storage}");

    let sync = alice.api.sync_device(damaged, true).await.unwrap();
    let result = alice.ok(&sync.command_id).await;
    assert_eq!(result["syncId"], sync.command_id);
    assert_eq!(result["objectsChecked"], 1);
    assert_eq!(result["objectsRepaired"], 1, "{result}");
    alice.wait_confirmed(&token, 2).await;
    // With the healthy copy removed, the repaired one alone serves the data.
    let removed = alice.api.remove_device(&devices[1], true).await.unwrap();
    alice.ok(&removed.command_id).await;
    assert_eq!(alice.fetch(&token).await, data);
}

#[tokio::test]
async fn a_late_device_is_backfilled_by_synchronization() {
    let server = TestServer::start().await;
    let alice = provision(&server, "backfill").await;
    let first = alice.attach_devices(&["early"]).await;
    let mut stored = Vec::new();
    for _ in 0..3 {
        let data = random_payload(100);
        let token = alice.store("/b", &data).await;
        stored.push((token, data));
    }
    let late = alice.attach_devices(&["late"]).await;
    let sync = alice.api.sync_device(&late[0], false).await.unwrap();
    let result = alice.ok(&sync.command_id).await;
    assert_eq!(
        (
            result["objectsChecked"].as_u64(),
            result["objectsPushed"].as_u64()
        ),
        (Some(3), Some(3)),
        "{result}"
    );
    assert_eq!(result["objectsUnavailable"], 0);
    let storage = alice.api.list_storage_devices("").await.unwrap();
    let late_item = storage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceIdentifier"] == late[0])
        .unwrap()
        .clone();
    assert_eq!(late_item["lastSync"]["syncId"], sync.command_id);
    assert_eq!(late_item["lastSync"]["status"], "succeeded");
    assert!(late_item["lastSync"]["finishedAt"].is_string());
    let early_item = storage["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["deviceIdentifier"] == first[0])
        .unwrap()
        .clone();
    assert!(
        early_item["lastSync"].is_null(),
        "null before the first synchronization"
    );
    let again = alice.api.sync_device(&late[0], false).await.unwrap();
    assert_eq!(
        alice.ok(&again.command_id).await["objectsPushed"],
        0,
        "safe to repeat"
    );
    let removed = alice.api.remove_device(&first[0], true).await.unwrap();
    alice.ok(&removed.command_id).await;
    for (token, data) in stored {
        assert_eq!(alice.fetch(&token).await, data);
    }
    let unknown = alice
        .api
        .sync_device("819d67e2-bda7-49b3-87e2-5ce4f29c704a", false)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("device.not_found"));
    let removed_sync = alice.api.sync_device(&first[0], false).await.unwrap();
    assert_eq!(
        alice.outcome(&removed_sync.command_id).await,
        CommandOutcome::Failed("storage.not_registered".into())
    );
}

#[tokio::test]
async fn delete_reaches_every_device() {
    let server = TestServer::start().await;
    let alice = provision(&server, "delete").await;
    let devices = alice.attach_devices(&["a", "b", "c"]).await;
    let token = alice.store("/d", &random_payload(64)).await;
    alice.wait_confirmed(&token, 3).await;
    let deleted = alice.api.delete_data(&token).await.unwrap();
    let result = alice.ok(&deleted.command_id).await;
    assert_eq!(result["token"], token);
    assert_eq!(result["devicesNotified"], 3);
    let err = alice.api.request_data(&token).await.unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(404), Some("data_token.not_found"))
    );
    let deadline = std::time::Instant::now() + WAIT;
    for device in &devices {
        while held_on_device(&server.device_dir(device), &token) {
            assert!(
                std::time::Instant::now() < deadline,
                "device kept a deleted object"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // A reservation can be cancelled too; an unknown token cannot be deleted.
    let reserved = alice.api.reserve_token_space("/d", None).await.unwrap();
    let t2 = alice.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancel = alice.api.delete_data(&t2).await.unwrap();
    assert_eq!(alice.ok(&cancel.command_id).await["devicesNotified"], 0);
    let err = alice.api.delete_data(&t2).await.unwrap_err();
    assert_eq!(err.code(), Some("data_token.not_found"));
}

#[tokio::test]
async fn listing_filters_and_pagination() {
    let server = TestServer::start().await;
    let alice = provision(&server, "list").await;
    alice.attach_devices(&["a"]).await;
    let mut tokens = Vec::new();
    for (context, file, ext) in [
        ("/finance/2026", "a.pdf", "PDF"),
        ("/finance/2025", "b.txt", "txt"),
        ("/hr", "c.pdf", "pdf"),
    ] {
        let token = alice.store(context, &random_payload(30)).await;
        alice
            .api
            .configure_file_meta(json!({ "token": token, "fileName": file, "extension": ext }))
            .await
            .unwrap();
        tokens.push(token);
    }
    let risk = alice
        .api
        .configure_risk_meta(
            json!({ "token": tokens[2], "classification": "Confidential", "retentionDays": "365" }),
        )
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&risk.command_id).await,
        json!({ "token": tokens[2], "information_security_risk": { "classification": "Confidential", "label": null, "handling": null, "retentionDays": "365" } })
    );
    let reserved = alice
        .api
        .reserve_token_space("/finance/open", None)
        .await
        .unwrap();
    alice.ok(&reserved.command_id).await;

    let total = |q: &str| {
        let api = alice.api.clone();
        let q = q.to_owned();
        async move {
            api.list_data_tokens(&q).await.unwrap()["meta"]["total"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(total("").await, 3);
    assert_eq!(total("?filters[status]=all").await, 4);
    assert_eq!(total("?filters[status]=reserved").await, 1);
    assert_eq!(total("?filters[context]=/finance/*").await, 2);
    assert_eq!(total("?filters[context]=/finance/2026").await, 1);
    assert_eq!(total("?filters[meta.file.extension]=pdf").await, 2);
    assert_eq!(total("?filters[meta.file.fileName]=a.*").await, 1);
    assert_eq!(
        total("?filters[meta.information_security_risk.classification]=confidential").await,
        1
    );
    assert_eq!(total(&format!("?filters[token]={}", tokens[1])).await, 1);
    let page = alice
        .api
        .list_data_tokens("?perPage=2&page=2")
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["meta"], json!({ "page": 2, "perPage": 2, "total": 3 }));
    let newest = alice.api.list_data_tokens("?perPage=1").await.unwrap();
    assert_eq!(newest["items"][0]["token"], tokens[2], "newest first");
    let reserved_item = &alice
        .api
        .list_data_tokens("?filters[status]=reserved")
        .await
        .unwrap()["items"][0];
    assert!(
        reserved_item["expiresAt"].is_string()
            && reserved_item["version"].is_null()
            && reserved_item["storedSize"].is_null()
    );
    for q in ["?filters[nope]=1", "?perPage=0", "?perPage=101", "?page=0"] {
        let err = alice.api.list_data_tokens(q).await.unwrap_err();
        assert_eq!(err.status(), Some(422), "{q}");
    }
}

#[tokio::test]
async fn update_shapes_and_replacement() {
    let server = TestServer::start().await;
    let alice = provision(&server, "update").await;
    alice.attach_devices(&["a", "b"]).await;
    let first = random_payload(50);
    let token = alice.store("/u", &first).await;

    let a = alice
        .api
        .update_data_token(json!({ "token": token, "fileName": "new.pdf", "context": "/moved" }))
        .await
        .unwrap();
    assert_eq!(
        alice.ok(&a.command_id).await,
        json!({ "token": token, "version": 1, "storedSize": 50 })
    );
    let item = &alice
        .api
        .list_data_tokens("?filters[context]=/moved")
        .await
        .unwrap()["items"][0];
    assert_eq!(item["meta"]["file"]["fileName"], "new.pdf");

    let second = random_payload(80);
    let b = alice
        .api
        .post_json("/data-token/update-data", json!({ "dataToken": token, "data": b64(&second), "meta": { "data": { "type": "invoice" } } }))
        .await
        .unwrap();
    assert_eq!(b.status, 202);
    let result = alice.ok(b.json()["commandId"].as_str().unwrap()).await;
    assert_eq!(
        result,
        json!({ "token": token, "version": 2, "storedSize": 80 })
    );
    assert_eq!(alice.fetch(&token).await, second);
    assert_eq!(
        alice
            .api
            .list_data_tokens("?filters[meta.data.type]=invoice")
            .await
            .unwrap()["meta"]["total"],
        1
    );

    for (body, code) in [
        (
            json!({ "token": token, "dataToken": token }),
            "validation.ambiguous_shape",
        ),
        (json!({ "fileName": "x" }), "validation.ambiguous_shape"),
        (json!({ "token": token }), "validation.no_changes"),
        (json!({ "dataToken": token }), "validation.no_changes"),
        (
            json!({ "dataToken": token, "data": "AAAA", "stream": true }),
            "validation.ambiguous_shape",
        ),
    ] {
        let err = alice.api.update_data_token(body.clone()).await.unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (Some(422), Some(code)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn request_data_answers_with_both_ids_and_delivers_inline() {
    let server = TestServer::start().await;
    let alice = provision(&server, "request").await;
    alice.attach_devices(&["a"]).await;
    let data = random_payload(54);
    let token = alice.store("/finance/2026", &data).await;
    let request = alice.api.request_data(&token).await.unwrap();
    assert_eq!(
        request.header_command_id.as_deref(),
        Some(request.command_id.as_str())
    );
    assert_eq!(
        request.header_request_id.as_deref(),
        Some(request.request_id.as_str())
    );
    assert_ne!(request.command_id, request.request_id);
    let result = alice.ok(&request.command_id).await;
    assert_eq!(
        result,
        json!({ "requestId": request.request_id, "token": token, "version": 1, "outputType": 0, "storedSize": 54, "expiresAt": null })
    );
    let delivery = alice.session.events_for(&request.request_id).remove(0);
    assert_eq!(delivery["output_type"], 0);
    assert_eq!(delivery["data_context"], "/finance/2026");
    assert_eq!(delivery["commandId"], request.command_id);
    assert_eq!(delivery["size"], 54);
    assert_eq!(delivery["body"], b64(&data));
    // The delivery arrives before the final status.
    let frames = alice.session.frames();
    let pos = |pred: &dyn Fn(&serde_json::Value) -> bool| frames.iter().position(pred).unwrap();
    let delivered = pos(&|f| f["data"]["id"] == request.request_id);
    let acked = pos(&|f| f["data"]["id"] == request.command_id && f["data"]["command_status"] == 2);
    assert!(delivered < acked);
}

#[tokio::test]
async fn statistics_count_successful_operations() {
    let server = TestServer::start().await;
    let alice = provision(&server, "stats").await;
    alice.attach_devices(&["a"]).await;
    let token = alice.store("/s", &random_payload(40)).await;
    alice.fetch(&token).await;
    alice
        .api
        .configure_file_meta(json!({ "token": token, "fileName": "f" }))
        .await
        .unwrap();
    let deleted = alice.api.delete_data(&token).await.unwrap();
    alice.ok(&deleted.command_id).await;
    let stats = alice
        .api
        .token_statistics("?interval=hour&from=2020-01-01T00:00:00Z&to=2020-01-01T05:00:00Z")
        .await
        .unwrap();
    assert_eq!(stats["items"].as_array().unwrap().len(), 5);
    let now = alice.api.token_statistics("").await.unwrap();
    assert_eq!(now["interval"], "day");
    assert_eq!(
        now["totals"],
        json!({ "exchanged": 1, "requested": 1, "updated": 1, "deleted": 1 })
    );
    assert_eq!(now["items"].as_array().unwrap().len(), 31);
    let alias = alice
        .api
        .get("/data-token/statistics?filters[context]=/other")
        .await
        .unwrap()
        .json();
    assert_eq!(alias["totals"]["exchanged"], 0);
    for (q, code) in [
        (
            "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "statistics.invalid_range",
        ),
        (
            "?interval=hour&from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z",
            "statistics.range_too_large",
        ),
        ("?interval=week", "validation.invalid_format"),
        ("?from=yesterday", "validation.invalid_format"),
    ] {
        let err = alice.api.token_statistics(q).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(422), Some(code)), "{q}");
    }
}

#[tokio::test]
async fn client_ciphertext_never_reaches_the_disk() {
    let server = TestServer::start().await;
    let alice = provision(&server, "at-rest").await;
    alice.attach_devices(&["a", "b", "c"]).await;
    let mut payloads = Vec::new();
    for size in [64, 4096, 70_000] {
        let data = random_payload(size);
        let token = alice.store("/secret", &data).await;
        alice.wait_confirmed(&token, 3).await;
        payloads.push(data);
    }
    let mut files = Vec::new();
    let mut stack = vec![server.dir.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                // Regular files only: the operator socket lives in `run/`.
                files.push(std::fs::read(&path).unwrap());
            }
        }
    }
    assert!(files.len() > 5);
    for data in &payloads {
        // Any 32-byte window of the client ciphertext, raw or base64, would betray it.
        let probe = &data[7..39];
        let encoded = b64(&data[..48]);
        for bytes in &files {
            assert!(
                !bytes.windows(probe.len()).any(|w| w == probe),
                "client bytes found on disk"
            );
            assert!(
                !bytes
                    .windows(encoded.len())
                    .any(|w| w == encoded.as_bytes()),
                "client base64 found on disk"
            );
        }
    }
}

/// A request-data accepted while a replacement of the same token is still queued runs after
/// it (docs/api/README.md §7.5), although request-data otherwise runs at acceptance.
#[tokio::test]
async fn request_data_waits_for_a_queued_replacement() {
    let server = TestServer::start().await;
    let alice = provision(&server, "order").await;
    alice.attach_devices(&["a", "b", "c"]).await;
    let token = alice.store("/o", &random_payload(40)).await;
    for round in 0..5 {
        let next = random_payload(60 + round);
        let replaced = alice
            .api
            .post_json(
                "/data-token/update-data",
                json!({ "dataToken": token, "data": b64(&next) }),
            )
            .await
            .unwrap();
        assert_eq!(replaced.status, 202);
        // No wait for the replacement's ack: acceptance order alone decides.
        assert_eq!(alice.fetch(&token).await, next, "round {round}");
        alice
            .ok(replaced.json()["commandId"].as_str().unwrap())
            .await;
    }
}

/// Concurrent exchanges of one reservation: exactly one is stored, the others are refused
/// at once (409 `data_token.already_exchanged`, never accepted and failed later), and the
/// token returns the winner's bytes with all three replicas confirmed.
#[tokio::test]
async fn concurrent_exchanges_of_one_token_store_exactly_one() {
    let server = TestServer::start().await;
    let alice = provision(&server, "race").await;
    alice.attach_devices(&["a", "b", "c"]).await;
    for round in 0..4 {
        let reserved = alice.api.reserve_token_space("/race", None).await.unwrap();
        let token = alice.ok(&reserved.command_id).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let payloads: Vec<Vec<u8>> = (0..6).map(|i| random_payload(40 + i)).collect();
        let attempts = payloads.iter().map(|p| alice.api.exchange_data(&token, p));
        let answers = futures_util::future::join_all(attempts).await;
        let mut winners = Vec::new();
        for (payload, answer) in payloads.iter().zip(answers) {
            match answer {
                Ok(accepted) => match alice.outcome(&accepted.command_id).await {
                    CommandOutcome::Succeeded(_) => winners.push(payload.clone()),
                    CommandOutcome::Failed(key) => panic!("round {round}: accepted, then {key}"),
                },
                Err(e) => assert_eq!(
                    (e.status(), e.code()),
                    (Some(409), Some("data_token.already_exchanged")),
                    "round {round}"
                ),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        alice.wait_confirmed(&token, 3).await;
        assert_eq!(alice.fetch(&token).await, winners[0], "round {round}");
    }
}

/// Retrieval first asks the devices its hint names (those that confirmed the commit, and
/// later confirmations); when none of them delivers, it falls back to the replica rows.
/// Either way, with both copies of the commit damaged, it finds the one a synchronization
/// added later.
#[tokio::test]
async fn retrieval_finds_a_copy_added_after_the_commit() {
    let server = TestServer::start().await;
    let alice = provision(&server, "holders").await;
    let first = alice.attach_devices(&["one", "two"]).await;
    let data = random_payload(200);
    let token = alice.store("/h", &data).await;
    alice.wait_confirmed(&token, 2).await;
    assert_eq!(alice.fetch(&token).await, data);

    let late = alice.attach_devices(&["three"]).await;
    let sync = alice.api.sync_device(&late[0], false).await.unwrap();
    assert_eq!(alice.ok(&sync.command_id).await["objectsPushed"], 1);
    for device in &first {
        damage_on_device(&server.device_dir(device), &token);
    }
    assert_eq!(alice.fetch(&token).await, data);
    // A damaged holder that was asked is marked missing once. Whether one was asked at all
    // depends on the order: the synchronized copy's confirmation joins the retrieval hint
    // (replica-settle), so the third device may be asked first and deliver.
    let storage = alice.api.list_storage_devices("").await.unwrap();
    let missing: Vec<(String, u64)> = storage["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let id = d["deviceIdentifier"].as_str().unwrap().to_owned();
            (id, d["replicas"]["missing"].as_u64().unwrap())
        })
        .collect();
    let asked_holders = missing
        .iter()
        .filter(|(id, _)| first.contains(id))
        .map(|(_, count)| *count)
        .collect::<Vec<_>>();
    assert!(asked_holders.iter().all(|c| *c <= 1), "{storage}");
    for (id, count) in &missing {
        if !first.contains(id) {
            assert_eq!(
                *count, 0,
                "the copy that delivered is not missing: {storage}"
            );
        }
    }
    assert_eq!(alice.fetch(&token).await, data);
}
