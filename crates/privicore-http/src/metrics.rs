//! `GET /metrics` in the Prometheus text format (docs/metrics.md), and the edge's own
//! measurements. The recorder is process-wide (the `metrics` facade has one): engines
//! started in one process share it, which only tests do.

use crate::client_ip::ClientIp;
use crate::routes::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Seconds: from a cached read (~50 µs) to a slow replication (tens of seconds).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Requests a group commit holds.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder once; every later call returns the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "privicore_store_commit_batch_size".into(),
                    ),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only ours");
        }
        // Histograms buffer samples until upkeep folds them in; without scrapes they
        // would grow.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("starting the metrics upkeep thread");
        handle
    })
}

/// Who may read `/metrics`: loopback clients, and anyone showing the operator's token.
fn allowed(state: &AppState, client: Option<&ClientIp>, headers: &HeaderMap) -> bool {
    if client.is_some_and(|ClientIp(ip)| ip.is_loopback()) {
        return true;
    }
    let Some(expected) = &state.edge.metrics_token else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(expected.as_bytes())))
}

pub async fn render(State(state): State<AppState>, req: Request) -> Response {
    if !allowed(&state, req.extensions().get::<ClientIp>(), req.headers()) {
        let mut refused = crate::error::ApiError(
            privicore_domain::Error::new(privicore_domain::Reason::AuthInvalidToken)
                .with_message("/metrics answers loopback clients, or a bearer metrics token."),
        )
        .into_response();
        refused
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
        return refused;
    }
    state.engine.refresh_gauges().await;
    let text = install().render();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The route label: the matched pattern, interned as the table's `&'static str` so no
/// request allocates it; anything unmatched is one label.
fn route_label(req: &Request) -> &'static str {
    static PATTERNS: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| {
        crate::routes::table::ROUTES
            .iter()
            .map(|r| (r.path, r.path))
            .chain([("/metrics", "/metrics")])
            .collect()
    });
    req.extensions()
        .get::<MatchedPath>()
        .and_then(|m| PATTERNS.get(m.as_str()).copied())
        .unwrap_or("unmatched")
}

/// Taken before the request runs; recorded with the answer.
pub struct RequestTimer {
    route: &'static str,
    method: &'static str,
    started: Instant,
}

impl RequestTimer {
    pub fn start(req: &Request) -> Self {
        let method = match *req.method() {
            axum::http::Method::GET => "GET",
            axum::http::Method::POST => "POST",
            axum::http::Method::HEAD => "HEAD",
            axum::http::Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        Self {
            route: route_label(req),
            method,
            started: Instant::now(),
        }
    }

    pub fn finish(self, response: &Response) {
        let status = status_label(response.status());
        metrics::counter!(
            "privicore_http_requests_total",
            "route" => self.route,
            "method" => self.method,
            "status" => status,
        )
        .increment(1);
        metrics::histogram!(
            "privicore_http_request_duration_seconds",
            "route" => self.route,
            "method" => self.method,
        )
        .record(self.started.elapsed());
    }
}

/// Status codes as static labels (the codes this edge answers with; others share one).
fn status_label(status: StatusCode) -> &'static str {
    // Built once; the few hundred bytes stay for the process's life.
    static LABELS: LazyLock<HashMap<u16, &'static str>> = LazyLock::new(|| {
        (100u16..600)
            .map(|code| (code, &*Box::leak(code.to_string().into_boxed_str())))
            .collect()
    });
    LABELS.get(&status.as_u16()).copied().unwrap_or("other")
}

/// Counts an open client WebSocket session while it lives.
pub struct SessionGauge(());

impl SessionGauge {
    pub fn open() -> Self {
        metrics::gauge!("privicore_websocket_sessions").increment(1.0);
        Self(())
    }
}

impl Drop for SessionGauge {
    fn drop(&mut self) {
        metrics::gauge!("privicore_websocket_sessions").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_their_codes() {
        assert_eq!(status_label(StatusCode::ACCEPTED), "202");
        assert_eq!(status_label(StatusCode::SERVICE_UNAVAILABLE), "503");
    }
}
