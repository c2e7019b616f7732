//! The web console at `/console`: static files embedded in the binary (sources in
//! `crates/privicore-http/console/`). The page talks to the same public API as any other
//! client; these routes only hand out the files, under a strict Content-Security-Policy.

use crate::error::ApiError;
use crate::routes::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use privicore_domain::Reason;

/// `(name, content type, bytes)` of every file the console serves.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../console/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/api.js"),
    ),
    (
        "layer1.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/layer1.js"),
    ),
    (
        "events.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/events.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../console/views.js"),
    ),
];

/// `/console`, `/console/` and `/console/<file>`; merged into the API listener's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/console", get(index).fallback(not_allowed))
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }).fallback(not_allowed),
        )
        .route("/console/{file}", get(file).fallback(not_allowed))
        .with_state(state)
}

/// The API's own 405 envelope, as for any other known path.
async fn not_allowed() -> Response {
    let mut response = ApiError::from(Reason::RequestMethodNotAllowed).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    response
}

async fn index(State(state): State<AppState>) -> Response {
    serve(&state, "index.html")
}

async fn file(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    serve(&state, &name)
}

fn serve(state: &AppState, name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::from(Reason::RequestUnknownRoute).into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small and embedded: always revalidate, so a new binary's files are used at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if let Ok(csp) = HeaderValue::from_str(&policy(
        &state.engine.config().streams.downstream_public_url,
    )) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// Scripts and styles only from this origin, no inline code, no frames, no forms posted
/// anywhere. Connections go to this origin (the API and its `/ws`) and to the download
/// listener, which serves payloads above the inline delivery limit.
fn policy(downstream: &str) -> String {
    let mut connect = String::from("'self'");
    if let Some(origin) = origin(downstream) {
        connect.push(' ');
        connect.push_str(&origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of a configured base URL, when it is one (a CSP source must
/// not carry a path or characters that end the directive).
fn origin(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme = uri
        .scheme_str()
        .filter(|s| matches!(*s, "http" | "https"))?;
    let authority = uri.authority()?.as_str();
    if authority.contains('@') {
        return None;
    }
    Some(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_this_origin_and_the_download_listener() {
        let csp = policy("http://127.0.0.1:8011/some/path");
        assert!(
            csp.contains("connect-src 'self' http://127.0.0.1:8011;"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe"));
    }

    #[test]
    fn a_base_url_that_is_no_origin_adds_nothing() {
        assert_eq!(origin("not a url; script-src *"), None);
        assert_eq!(origin("ftp://example.com"), None);
        assert_eq!(origin("https://u:p@example.com"), None);
        assert_eq!(
            origin("https://dl.example.com").as_deref(),
            Some("https://dl.example.com")
        );
    }

    #[test]
    fn every_script_the_page_imports_is_served() {
        let page = FILES
            .iter()
            .map(|(_, _, b)| *b)
            .collect::<Vec<_>>()
            .join("\n");
        for (name, _, _) in FILES {
            if name.ends_with(".js") && *name != "app.js" {
                assert!(
                    page.contains(&format!("./{name}")),
                    "{name} is never imported"
                );
            }
        }
    }
}
