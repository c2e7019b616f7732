//! `/metrics` and `/health` against the real server: counters and histograms move with a
//! store and a fetch, the session gauge follows an open WebSocket, only loopback or the
//! operator's token may scrape, and `/health` names the store when it fails.
//!
//! The recorder is process-wide, so every assertion compares before and after.

mod common;

use common::*;
use privicore_client::Client;
use std::time::Duration;

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

async fn scrape(api: &Client) -> String {
    let res = api.get("/metrics").await.unwrap();
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        res.headers
    );
    String::from_utf8(res.body).unwrap()
}

const EXCHANGE: &str = "/data-token/exchange-data-for-token";
const REQUEST: &str = "/data-token/request-data";

#[tokio::test]
async fn a_store_and_a_fetch_move_the_counters_and_histograms() {
    let server = TestServer::start().await;
    let api = server.client();
    let before = scrape(&api).await;

    let p = provision(&server, "metrics").await;
    p.attach_devices(&["m1"]).await;
    let token = p
        .store(
            "metrics/a",
            b"counted bytes, more than an IV and a tag hold",
        )
        .await;
    assert_eq!(
        p.fetch(&token).await,
        b"counted bytes, more than an IV and a tag hold"
    );

    let after = scrape(&api).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    // Requests by matched route pattern and status, never by raw path.
    assert!(
        moved(
            "privicore_http_requests_total",
            &[("route", EXCHANGE), ("status", "202")]
        ) >= 1.0
    );
    assert!(
        moved(
            "privicore_http_requests_total",
            &[("route", REQUEST), ("status", "202")]
        ) >= 1.0
    );
    assert!(!after.contains(&token), "no raw path or token in labels");
    assert!(
        moved(
            "privicore_http_request_duration_seconds_count",
            &[("route", EXCHANGE)]
        ) >= 1.0
    );
    // Acceptance → outcome, by command kind.
    for kind in ["exchange_data", "request_data", "reserve_token_space"] {
        assert!(
            moved(
                "privicore_command_duration_seconds_count",
                &[("kind", kind), ("outcome", "succeeded")]
            ) >= 1.0,
            "{kind}"
        );
    }
    assert!(
        sample(
            &after,
            "privicore_command_duration_seconds_bucket",
            &[("kind", "exchange_data"), ("le", "+Inf")]
        ) >= 1.0
    );
    // The SQLite writer's latency, one sample per write.
    assert!(moved("privicore_store_write_seconds_count", &[]) >= 3.0);
    // Read at scrape time.
    assert!(
        sample(
            &after,
            "privicore_storage_devices",
            &[("presence", "online")]
        ) >= 1.0
    );
    assert!(sample(&after, "privicore_replicas", &[("state", "confirmed")]) >= 1.0);
    for gauge in [
        "privicore_spool_bytes",
        "privicore_spool_objects",
        "privicore_command_queue_depth",
        "privicore_replica_settle_queue_depth",
        "privicore_bus_queue_depth",
        "privicore_workers_backing_off",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(gauge)),
            "{gauge} missing"
        );
    }

    // The provisioned profile's socket is open: the gauge counts it, then lets it go.
    let open = sample(&after, "privicore_websocket_sessions", &[]);
    assert!(open >= 1.0, "{open}");
    p.session.close(WAIT).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = sample(&scrape(&api).await, "privicore_websocket_sessions", &[]);
        if now <= open - 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gauge stayed at {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn only_loopback_or_the_metrics_token_may_scrape() {
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("metrics.token");
    std::fs::write(&token_file, "s3cret-scrape\n").unwrap();
    let server = TestServer::start_with(|s| {
        s.trusted_proxies = vec!["127.0.0.0/8".into()];
        s.metrics.token_file = Some(token_file.clone());
    })
    .await;
    let remote = server
        .client()
        .with_header("X-Forwarded-For", "203.0.113.9")
        .unwrap();
    let refused = remote.get("/metrics").await.unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error_code().as_deref(), Some("auth.invalid_token"));
    let wrong = remote
        .with_header("Authorization", "Bearer s3cret-scrapf")
        .unwrap()
        .get("/metrics")
        .await
        .unwrap();
    assert_eq!(wrong.status, 401);
    let allowed = remote
        .with_header("Authorization", "Bearer s3cret-scrape")
        .unwrap();
    scrape(&allowed).await;
    scrape(&server.client()).await;
}

#[tokio::test]
async fn health_is_200_when_all_is_well_and_503_naming_the_store_when_it_fails() {
    let server = TestServer::start().await;
    let api = server.client();
    let res = api.get("/health").await.unwrap();
    let body = res.json();
    assert_eq!(res.status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    for check in ["database", "bus", "spool", "devices", "workers"] {
        assert_eq!(body["checks"][check], "ok", "{check}: {body}");
    }
    assert_eq!(body["failing"], serde_json::json!([]));

    // The writer thread stops: reads would still answer, writes never would.
    server.running().store().close().await;
    let res = api.get("/health").await.unwrap();
    let body = res.json();
    assert_eq!(res.status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "down");
    assert!(
        body["failing"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("database")),
        "{body}"
    );
}
