//! Every error key of the foundation, and bad input of every kind: the answer is always
//! the JSON envelope with a 4xx, never a 5xx.

mod common;

use common::*;
use privicore_client::Body;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn authentication_errors() {
    let server = TestServer::start().await;
    let api = server.client();
    let missing = api.get("/profile/retrieve-profile-id").await.unwrap();
    assert_eq!(
        (missing.status, missing.error_code().as_deref()),
        (401, Some("auth.missing_token"))
    );
    let invalid = api
        .with_token("T-unknown")
        .get("/profile/retrieve-profile-id")
        .await
        .unwrap();
    assert_eq!(
        (invalid.status, invalid.error_code().as_deref()),
        (401, Some("auth.invalid_token"))
    );
    let body = invalid.json();
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["field"].is_null());

    let username = unique_username("creds");
    register_and_login(&server, &username).await;
    let wrong = api
        .authenticate(&username, "wrong-password-1")
        .await
        .unwrap_err();
    assert_eq!(
        (wrong.status(), wrong.code()),
        (Some(401), Some("auth.invalid_credentials"))
    );
    let unknown = api
        .authenticate("nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("auth.invalid_credentials"));
    let only_user = api
        .post_form("/profile/authenticate", &[("username", "a")])
        .await
        .unwrap();
    assert_eq!(
        only_user.error_code().as_deref(),
        Some("validation.missing_field")
    );
    assert_eq!(only_user.json()["error"]["field"], "password");
}

#[tokio::test]
async fn an_unfinished_registration_cannot_log_in() {
    let server = TestServer::start().await;
    let username = unique_username("early");
    let api = server.client();
    let accepted = api.register_profile(&username, PASSWORD).await.unwrap();
    // Either still registering (401) or done; never anything else.
    match api.authenticate(&username, PASSWORD).await {
        Ok(auth) => assert_eq!(auth.profile_id, accepted.command_id),
        Err(e) => assert_eq!(e.code(), Some("auth.invalid_credentials")),
    }
}

#[tokio::test]
async fn registration_validation() {
    let server = TestServer::start().await;
    let api = server.client();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("password", PASSWORD)],
            "validation.missing_field",
            "username",
        ),
        (
            &[("username", "valid-name")],
            "validation.missing_field",
            "password",
        ),
        (
            &[("username", ""), ("password", PASSWORD)],
            "validation.missing_field",
            "username",
        ),
        (
            &[("username", "-bad"), ("password", PASSWORD)],
            "profile.invalid_username",
            "username",
        ),
        (
            &[("username", "ab"), ("password", PASSWORD)],
            "profile.invalid_username",
            "username",
        ),
        (
            &[("username", "has space"), ("password", PASSWORD)],
            "profile.invalid_username",
            "username",
        ),
        (
            &[("username", "valid-name"), ("password", "short")],
            "profile.password_too_short",
            "password",
        ),
        (
            &[("username", "valid-name-1"), ("password", "VALID-NAME-1")],
            "profile.password_equals_username",
            "password",
        ),
    ];
    for (form, code, field) in cases {
        let res = api
            .post_form("/profile/register-profile", form)
            .await
            .unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (422, Some(*code)),
            "{form:?}"
        );
        assert_eq!(res.json()["error"]["field"], *field);
    }
    let long = "p".repeat(1025);
    let res = api
        .post_form(
            "/profile/register-profile",
            &[("username", "valid-name"), ("password", &long)],
        )
        .await
        .unwrap();
    assert_eq!(
        res.error_code().as_deref(),
        Some("profile.password_too_long")
    );
    let typed = api
        .post_json(
            "/profile/register-profile",
            serde_json::json!({"username": 42, "password": PASSWORD}),
        )
        .await
        .unwrap();
    assert_eq!(
        (typed.status, typed.error_code().as_deref()),
        (422, Some("validation.invalid_type"))
    );
}

#[tokio::test]
async fn encodings_and_sizes() {
    let server = TestServer::start().await;
    let api = server.client();
    let path = "/profile/register-profile";
    let raw = |ct: &'static str, bytes: Vec<u8>| Body::Raw {
        content_type: ct,
        bytes,
    };
    let cases = [
        (
            raw("text/plain", b"x".to_vec()),
            415,
            "request.unsupported_media_type",
        ),
        (
            raw("application/json", b"{".to_vec()),
            400,
            "request.malformed",
        ),
        (
            raw("application/json", b"[]".to_vec()),
            400,
            "request.malformed",
        ),
        (
            raw("application/x-www-form-urlencoded", b"a=%FF".to_vec()),
            400,
            "request.malformed",
        ),
        (
            raw("multipart/form-data; boundary=x", b"garbage".to_vec()),
            400,
            "request.malformed",
        ),
        (
            raw(
                "application/x-www-form-urlencoded",
                vec![b'a'; 2 * 1024 * 1024 + 1],
            ),
            413,
            "request.too_large",
        ),
    ];
    for (body, status, code) in cases {
        let res = api.send(Method::POST, path, body).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (status, Some(code))
        );
    }
    let long_query = format!("/health?{}", "q".repeat(8 * 1024 + 1));
    let res = api.get(&long_query).await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (413, Some("request.too_large"))
    );
    let res = api
        .with_token(&"T".repeat(17 * 1024))
        .get("/profile/retrieve-profile-id")
        .await
        .unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (413, Some("request.too_large"))
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused() {
    let server = TestServer::start().await;
    let addr = server.server.as_ref().unwrap().api_addr;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = "POST /profile/register-profile HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        let header = format!("{:x}\r\n", chunk.len());
        if stream.write_all(header.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("request.too_large"));
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let server = TestServer::start().await;
    let api = server.client();
    let res = api.get("/no/such/route").await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (404, Some("request.unknown_route"))
    );
    let res = api.post_form("/health", &[]).await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (405, Some("request.method_not_allowed"))
    );
    assert!(res.header("allow").unwrap().contains("GET"));
    let res = api.get("/profile/register-profile").await.unwrap();
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("POST"));
    let res = api.get("/ws").await.unwrap();
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (400, Some("request.malformed"))
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let server = TestServer::start_with(|s| {
        s.rate_limits.registrations_per_hour = 2;
        s.rate_limits.failed_logins_per_15min = 2;
    })
    .await;
    let api = server.client();
    let username = unique_username("limited");
    register_and_login(&server, &username).await;
    api.register_profile(&unique_username("limited"), PASSWORD)
        .await
        .unwrap();
    let err = api
        .register_profile(&unique_username("limited"), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(429), Some("rate_limit.exceeded"))
    );
    let res = api
        .post_form(
            "/profile/register-profile",
            &[("username", "another-name"), ("password", PASSWORD)],
        )
        .await
        .unwrap();
    assert!(res.header("retry-after").unwrap().parse::<u64>().unwrap() > 0);

    for _ in 0..2 {
        let e = api
            .authenticate(&username, "wrong-password-1")
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("auth.invalid_credentials"));
    }
    let e = api.authenticate(&username, PASSWORD).await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("rate_limit.exceeded"),
        "locked even with the right password"
    );
    // Health is never limited (its status may say `degraded` on a nearly full disk).
    for _ in 0..5 {
        assert_eq!(api.get("/health").await.unwrap().status, 200);
    }
}

const POSTS: &[&str] = &[
    "/profile/register-profile",
    "/profile/authenticate",
    "/profile/change-password",
    "/profile/generate-token-qr",
    "/profile/reauthorize-authorization-token",
    "/profile/authorization-token/expiry",
    "/public-key/register-public-key",
    "/request-status/019c80d5-d7c0-76bb-95c4-43d783e8efcb",
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "application/octet-stream",
    "text/html; charset=latin1",
];

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[a-zA-Z\\[\\]=&%0-9+]{0,80}".prop_map(String::into_bytes),
        "\\{(\"[a-zA-Z]{1,12}\":(\"[^\"]{0,20}\"|[0-9.e-]{1,8}|true|null|\\[\\]|\\{\\}),?){0,5}\\}"
            .prop_map(String::into_bytes),
        prop_oneof![
            Just("username".to_owned()),
            Just("password".to_owned()),
            Just("publicKey".to_owned()),
            Just("ttl".to_owned()),
            Just("newPassword".to_owned()),
            Just("revokeTokens".to_owned()),
        ]
        .prop_flat_map(|field| {
            prop_oneof![
                any::<i64>().prop_map(|n| serde_json::json!(n)),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(|f| serde_json::json!(f)),
                "\\PC{0,64}".prop_map(|s| serde_json::json!(s)),
                Just(serde_json::json!([1, "a"])),
                Just(serde_json::json!({"nested": {"deep": true}})),
            ]
            .prop_map(move |v| {
                serde_json::to_vec(&serde_json::json!({ field.clone(): v })).unwrap()
            })
        }),
    ]
}

/// Property: whatever the body, content type, route and token, the answer is below 500
/// and, when an error, is the JSON envelope with a dotted code.
#[test]
fn arbitrary_requests_never_cause_a_server_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, token) = rt.block_on(async {
        let server = TestServer::start().await;
        let alice = provision(&server, "fuzz").await;
        (server, alice.token)
    });
    let anonymous = server.client();
    let authed = server.client().with_token(&token);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(
                0..POSTS.len(),
                0..=CONTENT_TYPES.len(),
                body_strategy(),
                any::<bool>(),
            ),
            |(route, ct, body, with_token)| {
                let client = if with_token { &authed } else { &anonymous };
                let res = rt.block_on(async {
                    let body = match CONTENT_TYPES.get(ct) {
                        Some(ct) => Body::Raw {
                            content_type: ct,
                            bytes: body,
                        },
                        None if body.is_empty() => Body::Empty,
                        None => Body::Raw {
                            content_type: "",
                            bytes: body,
                        },
                    };
                    client.send(Method::POST, POSTS[route], body).await.unwrap()
                });
                prop_assert!(res.status < 500, "{} answered {}", POSTS[route], res.status);
                if res.status >= 400 {
                    let code = res.error_code().unwrap_or_default();
                    prop_assert!(code.contains('.'), "no dotted code in {:?}", res.json());
                }
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async move {
        let mut server = server;
        server.stop().await;
    });
}
