//! Cross-origin access (docs/api/README.md §4.6): off unless origins are configured.

use axum::http::{HeaderName, HeaderValue, Method, Uri};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

const ALLOWED: [&str; 4] = [
    "x-dpt-authorization",
    "authorization",
    "content-type",
    "idempotency-key",
];
const EXPOSED: [&str; 5] = [
    "x-dpt-cab-id",
    "x-dpt-cab-request-id",
    "retry-after",
    "x-dpt-data-token",
    "x-dpt-data-version",
];

/// `scheme://host[:port]`, as browsers send it in `Origin`.
fn origin(text: &str) -> Option<HeaderValue> {
    let text = text.trim_end_matches('/');
    let uri: Uri = text.parse().ok()?;
    let plain = uri.scheme().is_some()
        && uri.authority().is_some()
        && uri
            .path_and_query()
            .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    plain.then(|| HeaderValue::from_str(text).ok()).flatten()
}

/// `None` when no origin is configured; `*` alone allows every origin.
pub fn layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| origin(o).ok_or_else(|| format!("not an origin (scheme://host[:port]): {o}")))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(ALLOWED.map(HeaderName::from_static))
            .expose_headers(EXPOSED.map(HeaderName::from_static))
            .max_age(Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(layer(&[]).unwrap().is_none());
        assert!(
            layer(&["https://app.example.com".into()])
                .unwrap()
                .is_some()
        );
        assert!(layer(&["http://localhost:3000/".into()]).unwrap().is_some());
        assert!(layer(&["*".into()]).unwrap().is_some());
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "https://",
        ] {
            assert!(layer(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
