//! Request logging an operator can keep: every request gets an id (`x-request-id`, taken
//! from the client when it sends one, else a fresh UUID, and echoed in the answer), carried
//! by a span so that every line logged while serving it names it. The request and answer
//! lines themselves are DEBUG: at the default INFO level a busy engine logs only lifecycle
//! and decisions. Lines carry method, path and status only: no query, headers or bodies.

use axum::Router;
use axum::extract::Request;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// Wraps `router` with request ids and the request span.
pub fn layer(router: Router) -> Router {
    // The last layer added runs first: the id is set before the span reads it, and
    // copied to the answer after the handler.
    router
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .extensions()
                        .get::<RequestId>()
                        .and_then(|id| id.header_value().to_str().ok())
                        .unwrap_or("-");
                    // INFO, although the request lines are DEBUG: the INFO and WARN lines
                    // of the request must carry the id at the default level too.
                    tracing::info_span!("request", id = %id, method = %req.method(), path = %req.uri().path())
                })
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    /// Collects formatted log output in memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(capture: &Capture) -> Vec<String> {
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    async fn serve_one(level: &str, id: Option<&str>) -> (Vec<String>, String) {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = layer(Router::new().route(
            "/thing",
            get(|| async {
                tracing::info!("a decision");
                "ok"
            }),
        ));
        let mut request = Request::builder().uri("/thing?secret=s3cr3t");
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        let answer = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let echoed = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        (lines_of(&capture), echoed)
    }

    #[tokio::test]
    async fn request_lines_are_debug_and_every_line_names_the_request() {
        let (lines, id) = serve_one("debug", None).await;
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        let tagged = format!("id={id}");
        assert!(lines.len() >= 3, "{lines:#?}");
        for line in &lines {
            assert!(line.contains(&tagged), "line without the id: {line}");
            assert!(!line.contains("s3cr3t"), "query in the log: {line}");
        }
        let request_lines: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("processing request"))
            .collect();
        assert_eq!(request_lines.len(), 2, "{lines:#?}");
        assert!(request_lines.iter().all(|l| l.contains("DEBUG")));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("INFO") && l.contains("a decision"))
        );
    }

    #[tokio::test]
    async fn at_info_only_decisions_are_logged_still_with_the_id() {
        let (lines, id) = serve_one("info", Some("client-chosen-1")).await;
        assert_eq!(id, "client-chosen-1", "the client's id is kept and echoed");
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("a decision") && lines[0].contains("id=client-chosen-1"));
    }
}
