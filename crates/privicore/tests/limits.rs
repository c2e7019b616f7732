//! Limits that cannot be turned against users (docs/api/README.md §3.5), client addresses behind
//! trusted proxies, CORS (§4.6), and page arithmetic that cannot overflow.

mod common;

use axum::http::Method;
use common::*;
use privicore::config::Settings;
use privicore::server::Server;
use privicore_client::{Body, Client, RawResponse};
use privicore_domain::CommandId;
use privicore_domain::command::CommandPayload;

fn assert_limited(res: &RawResponse) {
    assert_eq!(
        (res.status, res.error_code().as_deref()),
        (429, Some("rate_limit.exceeded")),
        "{}",
        String::from_utf8_lossy(&res.body)
    );
    let wait: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
}

fn via(api: &Client, header: &str, value: &str) -> Client {
    api.with_header(header, value).unwrap()
}

async fn login(api: &Client, username: &str, password: &str) -> RawResponse {
    api.post_form(
        "/profile/authenticate",
        &[("username", username), ("password", password)],
    )
    .await
    .unwrap()
}

async fn change_password(api: &Client, current: &str) -> RawResponse {
    api.post_form(
        "/profile/change-password",
        &[
            ("currentPassword", current),
            ("newPassword", "a-brand-new-password"),
        ],
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn change_password_guesses_count_and_lock_like_failed_logins() {
    let mut server = TestServer::start_with(|s| s.rate_limits.failed_logins_per_15min = 2).await;
    let p = provision(&server, "guess").await;
    let mut guesses = Vec::new();
    for _ in 0..2 {
        let res = change_password(&p.api, "not-the-password").await;
        assert_eq!(res.status, 202, "{}", String::from_utf8_lossy(&res.body));
        let id = res.json()["commandId"].as_str().unwrap().to_owned();
        let outcome = p.outcome(&id).await;
        assert_eq!(
            outcome.result().unwrap_err().code(),
            Some("profile.invalid_current_password")
        );
        guesses.push(id);
    }
    assert_limited(&change_password(&p.api, "not-the-password").await);
    assert_limited(&change_password(&p.api, PASSWORD).await);
    assert_limited(&login(&server.client(), &p.username, PASSWORD).await);

    // The guesses were recorded without a hash of the new password.
    server.stop().await;
    let opened = open_store(server.dir.path()).await;
    let store = opened.metadata();
    for id in guesses {
        let record = store
            .command(id.parse::<CommandId>().unwrap())
            .await
            .unwrap()
            .unwrap();
        match record.payload {
            CommandPayload::ChangePassword {
                current_password_ok,
                new_password_hash,
                ..
            } => assert_eq!(
                (current_password_ok, new_password_hash.is_none()),
                (false, true)
            ),
            other => panic!("not a password change: {}", other.kind()),
        }
    }
    opened.close().await;
}

#[tokio::test]
async fn an_attacker_locks_out_their_own_address_not_the_user() {
    let server = TestServer::start_with(|s| {
        s.rate_limits.failed_logins_per_15min = 3;
        s.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let username = unique_username("victim");
    register_and_login(&server, &username).await;
    let attacker = via(&server.client(), "X-Forwarded-For", "203.0.113.7");
    for _ in 0..3 {
        let res = login(&attacker, &username, "guess-guess-guess").await;
        assert_eq!(
            res.error_code().as_deref(),
            Some("auth.invalid_credentials")
        );
    }
    assert_limited(&login(&attacker, &username, "guess-guess-guess").await);
    assert_limited(&login(&attacker, &username, PASSWORD).await);

    let victim = via(&server.client(), "X-Forwarded-For", "198.51.100.9");
    let res = login(&victim, &username, PASSWORD).await;
    assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
    assert_limited(&login(&attacker, &username, PASSWORD).await);
}

#[tokio::test]
async fn requests_per_token_answer_429_with_retry_after() {
    let server = TestServer::start_with(|s| s.rate_limits.requests_per_token_per_minute = 3).await;
    let p = provision(&server, "busy").await;
    // Flow 1 used the token once (Register public key).
    for _ in 0..2 {
        assert_eq!(
            p.api
                .get("/profile/retrieve-profile-id")
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_limited(&p.api.get("/profile/retrieve-profile-id").await.unwrap());
    assert_limited(&p.api.get("/public-key/retrieve-public-key").await.unwrap());

    // Another token of the same profile has its own quota; health is never limited.
    let other = server
        .client()
        .authenticate(&p.username, PASSWORD)
        .await
        .unwrap();
    let api = server.client().with_token(&other.authorization_token);
    assert_eq!(
        api.get("/profile/retrieve-profile-id")
            .await
            .unwrap()
            .status,
        200
    );
    for _ in 0..5 {
        assert_eq!(p.api.get("/health").await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn unauthenticated_requests_per_address_answer_429_with_retry_after() {
    let server = TestServer::start_with(|s| s.rate_limits.unauthenticated_per_minute = 3).await;
    let api = server.client();
    for _ in 0..3 {
        assert_eq!(api.get("/dptcab/public-key").await.unwrap().status, 200);
    }
    assert_limited(&api.get("/dptcab/public-key").await.unwrap());
    // A token sent to a public endpoint does not move the request off the address.
    let with_token = api.with_token("T-not-a-real-token");
    assert_limited(
        &with_token
            .post_form(
                "/profile/register-profile",
                &[("username", "someone@example.com"), ("password", PASSWORD)],
            )
            .await
            .unwrap(),
    );
    // A token that does not authenticate counts after the fact: the address is barred.
    let res = with_token
        .get("/profile/retrieve-profile-id")
        .await
        .unwrap();
    assert_eq!(res.error_code().as_deref(), Some("auth.invalid_token"));
    assert_limited(
        &with_token
            .get("/profile/retrieve-profile-id")
            .await
            .unwrap(),
    );
    for _ in 0..5 {
        assert_eq!(api.get("/health").await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn tokens_that_do_not_authenticate_count_against_the_address() {
    let server = TestServer::start_with(|s| s.rate_limits.unauthenticated_per_minute = 2).await;
    let api = server.client().with_token("T-not-a-real-token");
    for _ in 0..3 {
        let res = api.get("/profile/retrieve-profile-id").await.unwrap();
        assert_eq!(res.error_code().as_deref(), Some("auth.invalid_token"));
    }
    assert_limited(&api.get("/profile/retrieve-profile-id").await.unwrap());
    assert_limited(&server.client().get("/dptcab/public-key").await.unwrap());
}

async fn exhaust_then_switch_address(server: &TestServer, header: &str, a: &str, b: &str) -> u16 {
    let api = server.client();
    for _ in 0..2 {
        let res = via(&api, header, a)
            .get("/dptcab/public-key")
            .await
            .unwrap();
        assert_eq!(res.status, 200);
    }
    assert_limited(
        &via(&api, header, a)
            .get("/dptcab/public-key")
            .await
            .unwrap(),
    );
    via(&api, header, b)
        .get("/dptcab/public-key")
        .await
        .unwrap()
        .status
}

#[tokio::test]
async fn forwarded_addresses_are_ignored_without_trusted_proxies() {
    let server = TestServer::start_with(|s| s.rate_limits.unauthenticated_per_minute = 2).await;
    let status =
        exhaust_then_switch_address(&server, "X-Forwarded-For", "203.0.113.1", "203.0.113.2").await;
    assert_eq!(status, 429, "a client cannot choose its address");
    let res = via(&server.client(), "Forwarded", "for=203.0.113.3")
        .get("/dptcab/public-key")
        .await
        .unwrap();
    assert_eq!(res.status, 429);
}

#[tokio::test]
async fn forwarded_addresses_are_honoured_from_trusted_proxies() {
    let server = TestServer::start_with(|s| {
        s.rate_limits.unauthenticated_per_minute = 2;
        s.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let status =
        exhaust_then_switch_address(&server, "X-Forwarded-For", "203.0.113.1", "203.0.113.2").await;
    assert_eq!(status, 200);
    let status = exhaust_then_switch_address(
        &server,
        "Forwarded",
        "for=\"[2001:db8:1::1]:4711\"",
        "for=\"[2001:db8:2::1]\"",
    )
    .await;
    assert_eq!(status, 200, "IPv6 clients are limited per /64");
}

const APP: &str = "https://app.example.com";

async fn preflight(api: &Client, origin: &str) -> RawResponse {
    api.with_header("Origin", origin)
        .unwrap()
        .with_header("Access-Control-Request-Method", "POST")
        .unwrap()
        .with_header(
            "Access-Control-Request-Headers",
            "x-dpt-authorization, content-type, idempotency-key",
        )
        .unwrap()
        .send(
            Method::OPTIONS,
            "/data-token/reserve-token-space",
            Body::Empty,
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let server = TestServer::start().await;
    let res = preflight(&server.client(), APP).await;
    assert_eq!(res.header("access-control-allow-origin"), None);
    let res = via(&server.client(), "Origin", APP)
        .get("/dptcab/public-key")
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn cors_answers_configured_origins_as_the_contract_says() {
    let server = TestServer::start_with(|s| {
        s.api.cors_origins = vec![APP.into()];
        s.rate_limits.unauthenticated_per_minute = 1;
    })
    .await;
    let res = preflight(&server.client(), APP).await;
    assert!(res.status < 300, "preflight answered {}", res.status);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    let allowed = res
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "x-dpt-authorization",
        "authorization",
        "content-type",
        "idempotency-key",
    ] {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
    assert!(
        res.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );

    let app = via(&server.client(), "Origin", APP);
    let res = app.get("/dptcab/public-key").await.unwrap();
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "x-dpt-cab-id",
        "x-dpt-cab-request-id",
        "retry-after",
        "x-dpt-data-token",
        "x-dpt-data-version",
    ] {
        assert!(exposed.contains(header), "{header} not in {exposed}");
    }
    // A 429 carries them too, so a browser can read Retry-After.
    let res = app.get("/dptcab/public-key").await.unwrap();
    assert_limited(&res);
    assert_eq!(res.header("access-control-allow-origin"), Some(APP));

    let res = preflight(&server.client(), "https://elsewhere.example.com").await;
    assert_eq!(res.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_page_whose_offset_would_overflow_is_out_of_range() {
    let server = TestServer::start().await;
    let p = provision(&server, "pages").await;
    for path in [
        "/data-token/list-data-tokens?page=9223372036854775807",
        "/device/retrieve-profile-devices?page=9223372036854775807",
        "/data-token/list-data-tokens?page=92233720368547760&perPage=100",
    ] {
        let res = p.api.get(path).await.unwrap();
        assert_eq!(
            (res.status, res.error_code().as_deref()),
            (422, Some("validation.out_of_range")),
            "{path}"
        );
        assert_eq!(res.json()["error"]["field"], "page");
    }
    let res = p
        .api
        .get("/data-token/list-data-tokens?page=92233720368547759&perPage=100")
        .await
        .unwrap();
    assert_eq!(res.status, 200, "the last page that exists is empty");
    assert_eq!(res.json()["items"].as_array().unwrap().len(), 0);
}

fn restart_settings(dir: &std::path::Path) -> Settings {
    let mut s = test_settings(dir);
    s.rate_limits.failed_logins_per_15min = 2;
    s.rate_limits.registrations_per_hour = 2;
    s
}

#[tokio::test]
async fn lockouts_and_registration_counts_survive_a_restart() {
    let mut server = TestServer::start_with(|s| *s = restart_settings(s.data_dir.as_path())).await;
    let username = unique_username("durable");
    register_and_login(&server, &username).await;
    let api = server.client();
    api.register_profile(&unique_username("durable"), PASSWORD)
        .await
        .unwrap();
    for _ in 0..2 {
        let res = login(&api, &username, "guess-guess-guess").await;
        assert_eq!(
            res.error_code().as_deref(),
            Some("auth.invalid_credentials")
        );
    }
    assert_limited(&login(&api, &username, PASSWORD).await);

    server.stop().await;
    server.server = Some(
        Server::start(&restart_settings(server.dir.path()))
            .await
            .unwrap(),
    );
    let api = server.client();
    assert_limited(&login(&api, &username, PASSWORD).await);
    assert_limited(
        &api.post_form(
            "/profile/register-profile",
            &[
                ("username", &unique_username("durable")),
                ("password", PASSWORD),
            ],
        )
        .await
        .unwrap(),
    );
}
