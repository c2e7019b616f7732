//! OAuth applications through `privicore-client` against the real server
//! (docs/api/oauth.md): every endpoint and error key, the code flow, code and refresh
//! token reuse, expiry on the engine clock, WebSocket delivery by application, and the
//! route-table matrix: every route × every kind of token gets the answer the table gives.

mod common;

use common::*;
use privicore_client::{Body, Client, ClientError};
use privicore_domain::Timestamp;
use privicore_domain::time::ManualClock;
use privicore_http::table::{Guard, ROUTES};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

async fn server_with_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let c = clock.clone();
    let server = TestServer::start_with(move |s| s.clock = Some(c)).await;
    (server, clock)
}

fn code(e: ClientError) -> (u16, String) {
    (e.status().unwrap_or(0), e.code().unwrap_or("-").to_owned())
}

#[tokio::test]
async fn the_code_flow_end_to_end() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-dev").await;
    let user = provision(&server, "oauth-user").await;
    let app = register(
        &server,
        &dev,
        "Invoice Sync",
        &["data-token:read", "data-token:write"],
    )
    .await;
    assert!(app.client_id.starts_with("oauth-") && app.client_id.len() == 38);
    assert_eq!(app.secret.len(), 43);

    // §3.2 is single-use; another profile is not the owner.
    let again = dev.api.retrieve_oauth_configuration(&app.id).await;
    assert_eq!(
        code(again.unwrap_err()),
        (422, "oauth.already_retrieved".into())
    );
    let foreign = user.api.retrieve_oauth_configuration(&app.id).await;
    assert_eq!(code(foreign.unwrap_err()), (403, "oauth.not_owner".into()));
    let unknown = dev
        .api
        .retrieve_oauth_configuration(&uuid::Uuid::now_v7().to_string())
        .await;
    assert_eq!(
        code(unknown.unwrap_err()),
        (404, "oauth.application_not_found".into())
    );

    // §3.3 by the consenting profile; granted = requested ∩ registered.
    let n = nonce();
    let request = user
        .api
        .request_oauth_code(&app.client_id, &n, &["all"])
        .await
        .unwrap();
    let result = user.ok(&request.command_id).await;
    assert_eq!(result["requestId"], request.command_id.as_str());
    assert_eq!(result["scope"], "data-token:read data-token:write");
    assert_eq!(result["applicationName"], "Invoice Sync");
    assert_eq!(result["redirectUri"], "https://app.example.com/cb");

    // §3.4: wrong credentials, foreign id, wrong nonce, then once.
    let bad = server
        .client()
        .with_client_credentials(&app.client_id, "wrong")
        .unwrap();
    let e = bad
        .retrieve_authorization_code(&request.command_id, &n)
        .await;
    assert_eq!(code(e.unwrap_err()), (401, "oauth.invalid_client".into()));
    let e = server
        .client()
        .retrieve_authorization_code(&request.command_id, &n)
        .await;
    assert_eq!(code(e.unwrap_err()), (401, "oauth.invalid_client".into()));
    let e = app
        .server
        .retrieve_authorization_code(&uuid::Uuid::now_v7().to_string(), &n)
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (404, "oauth.authorization_request_not_found".into())
    );
    let e = app
        .server
        .retrieve_authorization_code(&request.command_id, "n-other-nonce")
        .await;
    assert_eq!(code(e.unwrap_err()), (422, "oauth.nonce_mismatch".into()));
    let retrieved = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    let auth_code = retrieved["authorizationCode"].as_str().unwrap().to_owned();
    assert!(auth_code.starts_with("C-") && auth_code.len() == 45);
    assert_eq!(retrieved["clientId"], app.client_id.as_str());
    assert_eq!(retrieved["nonce"], n.as_str());
    let e = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.already_retrieved".into())
    );

    // §3.5.
    let e = app.server.obtain_access_token("C-unknown").await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.invalid_authorization_code".into())
    );
    let tokens = app.server.obtain_access_token(&auth_code).await.unwrap();
    let access = token_of(&tokens);
    assert!(access.starts_with("A-") && access.len() == 45);
    assert!(tokens["refreshToken"].as_str().unwrap().starts_with("R-"));
    assert_eq!(tokens["type"], "bearer");
    assert_eq!(tokens["scope"], "data-token:read data-token:write");

    // §3.7.
    let scope = server
        .client()
        .oauth_application_scope(&access)
        .await
        .unwrap();
    assert_eq!(scope["applicationId"], app.id.as_str());
    assert_eq!(scope["profileId"], user.profile_id.as_str());
    assert_eq!(
        scope["scopes"],
        json!(["data-token:read", "data-token:write"])
    );
    let e = server.client().oauth_application_scope("A-nothing").await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_access_token".into())
    );

    // §1.2: the token acts for the consenting profile, within its scope.
    let as_app = server.client().with_token(&access);
    as_app.list_data_tokens("").await.unwrap();
    let e = as_app.retrieve_profile_id().await;
    assert_eq!(code(e.unwrap_err()), (403, "oauth.scope_denied".into()));
    let e = as_app.oauth_applications("").await;
    assert_eq!(
        code(e.unwrap_err()),
        (403, "oauth.profile_token_required".into())
    );

    // §3.6 lists the developer's applications, never the secret.
    let list = dev
        .api
        .oauth_applications("?filters[name]=Invoice*")
        .await
        .unwrap();
    assert_eq!(list["meta"]["total"], 1);
    let item = &list["items"][0];
    assert_eq!(item["applicationId"], app.id.as_str());
    assert_eq!(item["configurationRetrieved"], true);
    assert_eq!(item["activeGrants"], 1);
    assert!(item.get("clientSecret").is_none());
    let none = user.api.oauth_applications("").await.unwrap();
    assert_eq!(none["meta"]["total"], 0);

    // Revocation through the revoke-token endpoint.
    as_app.revoke().await.unwrap();
    let e = as_app.list_data_tokens("").await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
}

#[tokio::test]
async fn registration_and_request_errors() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-errors").await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "redirectUri": "https://a.example/cb", "scopes": ["all"] }),
            "validation.missing_field",
        ),
        (
            json!({ "name": "x", "scopes": ["all"] }),
            "validation.missing_field",
        ),
        (
            json!({ "name": "x", "redirectUri": "https://a.example/cb" }),
            "validation.missing_field",
        ),
        (
            json!({ "name": "x", "redirectUri": "http://a.example/cb", "scopes": ["all"] }),
            "oauth.invalid_redirect_uri",
        ),
        (
            json!({ "name": "x", "redirectUri": "https://a.example/cb#f", "scopes": ["all"] }),
            "oauth.invalid_redirect_uri",
        ),
        (
            json!({ "name": "x", "redirectUri": "https://a.example/cb", "scopes": ["all", "root"] }),
            "oauth.invalid_scope",
        ),
        (
            json!({ "name": "x".repeat(101), "redirectUri": "https://a.example/cb", "scopes": ["all"] }),
            "validation.out_of_range",
        ),
        (
            json!({ "name": "x", "description": "d".repeat(501), "redirectUri": "https://a.example/cb", "scopes": ["all"] }),
            "validation.out_of_range",
        ),
    ];
    for (body, expected) in cases {
        let res = dev
            .api
            .post_json("/profile/oauth-application-register", body.clone())
            .await
            .unwrap();
        assert_eq!(res.status, 422, "{body}");
        assert_eq!(res.error_code().as_deref(), Some(expected), "{body}");
    }
    // Comma-separated scopes in a form are accepted.
    let res = dev
        .api
        .post_form(
            "/profile/oauth-application-register",
            &[
                ("name", "Native"),
                ("redirectUri", "com.example.app:/cb"),
                ("scopes", "profile:read,voting:vote"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(res.status, 202);
    let id = res.json()["commandId"].as_str().unwrap().to_owned();
    dev.ok(&id).await;

    // The name is unique per profile, case-insensitively: a failed command.
    let dup = dev
        .api
        .register_oauth_application("NATIVE", "http://localhost:9/cb", &["all"])
        .await
        .unwrap();
    let outcome = dev.outcome(&dup.command_id).await;
    assert_eq!(
        outcome,
        privicore_client::CommandOutcome::Failed("oauth.application_name_taken".into())
    );

    let config = dev.api.retrieve_oauth_configuration(&id).await.unwrap();
    let client_id = config["clientId"].as_str().unwrap();

    // §3.3 errors.
    let e = dev
        .api
        .request_oauth_code("oauth-0000", &nonce(), &["all"])
        .await;
    assert_eq!(code(e.unwrap_err()), (404, "oauth.unknown_client".into()));
    let e = dev
        .api
        .request_oauth_code(client_id, "short", &["all"])
        .await;
    assert_eq!(code(e.unwrap_err()), (422, "oauth.invalid_nonce".into()));
    let e = dev
        .api
        .request_oauth_code(client_id, &nonce(), &["nope"])
        .await;
    assert_eq!(code(e.unwrap_err()), (422, "oauth.invalid_scope".into()));
    let denied = dev
        .api
        .request_oauth_code(client_id, &nonce(), &["device:manage"])
        .await
        .unwrap();
    assert_eq!(
        dev.outcome(&denied.command_id).await,
        privicore_client::CommandOutcome::Failed("oauth.scope_denied".into())
    );
    let n = nonce();
    let first = dev
        .api
        .request_oauth_code(client_id, &n, &["all"])
        .await
        .unwrap();
    dev.ok(&first.command_id).await;
    let again = dev
        .api
        .request_oauth_code(client_id, &n, &["all"])
        .await
        .unwrap();
    assert_eq!(
        dev.outcome(&again.command_id).await,
        privicore_client::CommandOutcome::Failed("oauth.nonce_reused".into())
    );
    // A single `scope` key with a space-separated list.
    let spaced = dev
        .api
        .get(&format!(
            "/profile/oauth-application-request-authorization-code?client_id={client_id}&nonce={}&scope=profile%3Aread+voting%3Avote",
            nonce()
        ))
        .await
        .unwrap();
    assert_eq!(spaced.status, 202);
    let result = dev.ok(spaced.json()["commandId"].as_str().unwrap()).await;
    assert_eq!(result["scopes"], json!(["profile:read", "voting:vote"]));
}

#[tokio::test]
async fn a_reused_code_revokes_its_grant() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-code").await;
    let app = register(&server, &dev, "Code", &["all"]).await;
    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["data-token:read"])
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    let c = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    let c = c["authorizationCode"].as_str().unwrap();
    // Another application's credentials cannot exchange it.
    let other = register(&server, &dev, "Other", &["all"]).await;
    let e = other.server.obtain_access_token(c).await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.invalid_authorization_code".into())
    );
    let tokens = app.server.obtain_access_token(c).await.unwrap();
    let as_app = server.client().with_token(&token_of(&tokens));
    as_app.list_data_tokens("").await.unwrap();
    let e = app.server.obtain_access_token(c).await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.invalid_authorization_code".into())
    );
    let e = as_app.list_data_tokens("").await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_grant() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-refresh").await;
    let app = register(&server, &dev, "Refresh", &["data-token:read"]).await;
    let first = grant(&dev, &app, &["data-token:read"]).await;
    let (a1, r1) = (
        token_of(&first),
        first["refreshToken"].as_str().unwrap().to_owned(),
    );
    let client = server.client();

    let e = client.refresh_access_token(&a1, "R-unknown").await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_refresh_token".into())
    );
    let e = client
        .post_form(
            "/oauth-application/refresh-access-token",
            &[("refresh_token", &r1)],
        )
        .await
        .unwrap();
    assert_eq!(
        (e.status, e.error_code().as_deref()),
        (401, Some("oauth.invalid_access_token"))
    );

    // An unknown access token, and a live one of another grant.
    let e = client.refresh_access_token("A-unknown", &r1).await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_access_token".into())
    );
    let other = grant(&dev, &app, &["data-token:read"]).await;
    let e = client.refresh_access_token(&token_of(&other), &r1).await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_refresh_token".into())
    );

    let second = client.refresh_access_token(&a1, &r1).await.unwrap();
    let (a2, r2) = (
        token_of(&second),
        second["refreshToken"].as_str().unwrap().to_owned(),
    );
    assert_ne!(a1, a2);
    assert_eq!(second["scope"], "data-token:read");
    // The old access token is revoked at once; the new one works.
    let e = client.with_token(&a1).list_data_tokens("").await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
    client.with_token(&a2).list_data_tokens("").await.unwrap();

    // Presenting the consumed refresh token again revokes the whole grant, and the socket
    // joined with its access token is told.
    let socket = server.session().await;
    socket.join(&a2).await.unwrap();
    let e = client.refresh_access_token(&a2, &r1).await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.refresh_token_reused".into())
    );
    let e = client.with_token(&a2).list_data_tokens("").await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
    let notice = socket.notice(WAIT).await.unwrap();
    assert_eq!(notice["data"]["code"], "auth.token_revoked", "{notice}");
    let e = client.refresh_access_token(&a2, &r2).await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_access_token".into())
    );
}

#[tokio::test]
async fn codes_and_tokens_expire_on_the_engine_clock() {
    let (server, clock) = server_with_clock().await;
    let dev = provision(&server, "oauth-clock").await;
    let app = register(&server, &dev, "Clock", &["all"]).await;

    // A code not retrieved within 600 s.
    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["profile:read"])
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    clock.advance(601);
    let e = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.authorization_code_expired".into())
    );

    // A code retrieved but exchanged too late.
    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["profile:read"])
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    let c = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    clock.advance(601);
    let e = app
        .server
        .obtain_access_token(c["authorizationCode"].as_str().unwrap())
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (422, "oauth.authorization_code_expired".into())
    );

    // An access token after 3600 s; refreshing it is the normal case.
    let tokens = grant(&dev, &app, &["profile:read"]).await;
    let access = token_of(&tokens);
    let as_app = server.client().with_token(&access);
    as_app.retrieve_profile_id().await.unwrap();
    clock.advance(3601);
    let e = as_app.retrieve_profile_id().await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_expired".into()));
    let e = server.client().oauth_application_scope(&access).await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_access_token".into())
    );
    let refreshed = server
        .client()
        .refresh_access_token(&access, tokens["refreshToken"].as_str().unwrap())
        .await
        .unwrap();
    server
        .client()
        .with_token(&token_of(&refreshed))
        .retrieve_profile_id()
        .await
        .unwrap();

    // A refresh token after 30 days.
    clock.advance(30 * 24 * 3600 + 1);
    let e = server
        .client()
        .refresh_access_token(
            &token_of(&refreshed),
            refreshed["refreshToken"].as_str().unwrap(),
        )
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.refresh_token_expired".into())
    );
}

#[tokio::test]
async fn a_socket_joined_with_an_access_token_sees_only_its_application() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-ws").await;
    let app = register(&server, &dev, "Sockets", &["all"]).await;
    let access = token_of(&grant(&dev, &app, &["device:manage"]).await);
    let socket = server.session().await;
    socket.join(&access).await.unwrap();

    // A command of the profile itself is not delivered to the application's socket.
    let own_id = dev
        .api
        .request_device("by-profile")
        .await
        .unwrap()
        .command_id;
    dev.outcome(&own_id).await;
    // The application's command is, and its record carries the application: the app
    // reads its own command's status, not the profile's.
    let as_app = server.client().with_token(&access);
    let app_id = as_app.request_device("by-app").await.unwrap().command_id;
    socket.wait_command(&app_id, WAIT).await.unwrap();
    let e = socket
        .wait_command(&own_id, std::time::Duration::from_millis(300))
        .await;
    assert!(
        e.is_err(),
        "the profile's own command reached the app socket"
    );
    let status = as_app
        .get(&format!("/request-status/{app_id}"))
        .await
        .unwrap();
    assert_eq!(status.status, 200, "{:?}", status.json());
    let status = as_app
        .get(&format!("/request-status/{own_id}"))
        .await
        .unwrap();
    assert_ne!(status.status, 200, "{:?}", status.json());
    // The profile's socket sees both.
    dev.outcome(&app_id).await;
}

/// What a caller holds in the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Profile,
    AppWithScope,
    AppWithoutScope,
    Expired,
    Revoked,
}

fn auth_error(code: Option<&str>) -> bool {
    code.is_some_and(|c| {
        c.starts_with("auth.") || c == "oauth.scope_denied" || c == "oauth.profile_token_required"
    })
}

/// The answer the route table promises (`None`: anything but an auth error).
fn expected(guard: Guard, kind: Kind) -> Option<(u16, &'static str)> {
    let access = match guard {
        Guard::Token(a) | Guard::OptionalToken(a) => a,
        _ => return None,
    };
    match kind {
        Kind::Profile => None,
        Kind::Expired => Some((401, "auth.token_expired")),
        Kind::Revoked => Some((401, "auth.token_revoked")),
        _ if access.profile_token_only => Some((403, "oauth.profile_token_required")),
        Kind::AppWithoutScope if access.scope.is_some() => Some((403, "oauth.scope_denied")),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_answers_every_kind_of_token_as_its_table_entry_says() {
    let (server, clock) = server_with_clock().await;
    let owner = provision(&server, "oauth-matrix").await;
    let app = register(&server, &owner, "Matrix", &["all"]).await;
    let scopes = [
        "profile:read",
        "data-token:read",
        "data-token:write",
        "device:manage",
        "storage:manage",
        "authenticator:manage",
        "policy:manage",
        "voting:vote",
        "directory:manage",
    ];
    let expired = token_of(&grant(&owner, &app, &["profile:read"]).await);
    clock.advance(3601);
    let revoked = token_of(&grant(&owner, &app, &["all"]).await);
    server.client().with_token(&revoked).revoke().await.unwrap();
    let mut with = std::collections::HashMap::new();
    for s in scopes {
        with.insert(s, token_of(&grant(&owner, &app, &[s]).await));
    }
    // The revoke route ends the token it is called with: it comes last, and the profile
    // calls it (and reauthorize, which replaces the token) with tokens of their own.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|r| {
        r.path == "/profile/revoke-authorization-token"
            || r.path == "/profile/reauthorize-authorization-token"
    });
    let mut checked = 0;
    for route in routes {
        let path = route
            .path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    seg.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let needed = match route.guard {
            Guard::Token(a) | Guard::OptionalToken(a) => a.scope,
            _ => None,
        };
        for kind in [
            Kind::Profile,
            Kind::AppWithScope,
            Kind::AppWithoutScope,
            Kind::Expired,
            Kind::Revoked,
        ] {
            let token = match kind {
                Kind::Profile
                    if route.path == "/profile/revoke-authorization-token"
                        || route.path == "/profile/reauthorize-authorization-token" =>
                {
                    server
                        .client()
                        .authenticate(&owner.username, PASSWORD)
                        .await
                        .unwrap()
                        .authorization_token
                }
                Kind::Profile => owner.token.clone(),
                Kind::AppWithScope => with[needed.unwrap_or("profile:read")].clone(),
                Kind::AppWithoutScope => match needed {
                    Some("voting:vote") => with["profile:read"].clone(),
                    _ => with["voting:vote"].clone(),
                },
                Kind::Expired => expired.clone(),
                Kind::Revoked => revoked.clone(),
            };
            let client = server.client().with_token(&token);
            let body = if route.verb.method() == Method::POST {
                Body::Json(json!({}))
            } else {
                Body::Empty
            };
            let res = client.send(route.verb.method(), &path, body).await.unwrap();
            let got = res.error_code();
            match expected(route.guard, kind) {
                Some((status, key)) => assert_eq!(
                    (res.status, got.as_deref()),
                    (status, Some(key)),
                    "{:?} {} with {kind:?}",
                    route.verb,
                    route.path
                ),
                // Served (not an unknown route), not a 500, and not refused for its token.
                None => assert!(
                    !auth_error(got.as_deref())
                        && res.status != 500
                        && got.as_deref() != Some("request.unknown_route"),
                    "{:?} {} with {kind:?}: {} {:?}",
                    route.verb,
                    route.path,
                    res.status,
                    got
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * 5);
}

/// A device client with the bundle credentials of `device`.
async fn device_client(server: &TestServer, p: &Provisioned, device: &str) -> Client {
    let bundle = p.api.download_device_configuration(device).await.unwrap();
    server
        .client()
        .with_device_credentials(
            bundle["client-id"].as_str().unwrap(),
            bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap()
}

/// The device's first open ballot (waits for it).
async fn first_ballot(device: &Client) -> (String, Value) {
    for _ in 0..300 {
        let list = device.pending_ballots().await.unwrap();
        if let Some(b) = list["items"].as_array().unwrap().first() {
            return (b["ballotId"].as_str().unwrap().to_owned(), b.clone());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no ballot");
}

/// Event 602 held by a policy: the request is pending until the vote, then usable.
#[tokio::test]
async fn a_code_request_held_by_a_policy_is_pending_until_approved() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-gate").await;
    let app = register(&server, &dev, "Gated", &["all"]).await;
    let phone = dev.authenticator("phone").await;
    let configured = dev
        .api
        .register_voting_configuration(json!({
            "name": "approvers", "strategy": "unanimous", "timeLimit": 300, "numberOfAttempts": 1,
        }))
        .await
        .unwrap();
    dev.ok(&configured.command_id).await;
    let registered = dev
        .api
        .register_policy(json!({
            "name": "grant-approval", "policyTemplateId": "6", "applyingEventIds": ["602"],
            "configuration": { "clientId": app.client_id }, "votingConfigurationId": "approvers",
        }))
        .await
        .unwrap();
    dev.ok(&registered.command_id).await;
    let activated = dev.api.activate_policy("grant-approval").await.unwrap();
    dev.ok(&activated.command_id).await;
    let device = device_client(&server, &dev, &phone).await;

    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["profile:read"])
        .await
        .unwrap();
    let (ballot, shown) = first_ballot(&device).await;
    assert_eq!(shown["event"]["eventId"], "602", "{shown}");
    let e = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (409, "oauth.authorization_request_pending".into())
    );
    device
        .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    let c = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    assert!(c["authorizationCode"].as_str().unwrap().starts_with("C-"));

    // A vote the application asks for names it, with its client id.
    let tokens = app
        .server
        .obtain_access_token(c["authorizationCode"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(tokens["scope"], "profile:read");
    // (This request is held as well: approve it.)
    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["voting:vote"])
        .await
        .unwrap();
    let (ballot, _) = first_ballot(&device).await;
    device
        .cast_vote(json!({ "ballotId": ballot, "decision": "yes" }))
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    let c = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    let voter = app
        .server
        .obtain_access_token(c["authorizationCode"].as_str().unwrap())
        .await
        .unwrap();
    let as_app = server.client().with_token(&token_of(&voter));
    let (_, pool) = as_app
        .create_voting(json!({
            "votingConfigurationId": "approvers", "title": "Pay?", "question": "Pay invoice 42?",
        }))
        .await
        .unwrap();
    // The pool opens when the command runs: its ballot shows it is there.
    let (_, shown) = first_ballot(&device).await;
    assert_eq!(shown["poolId"], pool.as_str());
    let status = as_app.check_pool_status(&pool).await.unwrap();
    assert_eq!(status["requestedBy"]["applicationId"], app.id.as_str());
    assert_eq!(status["requestedBy"]["clientId"], app.client_id.as_str());
}

/// `privicore app register|list|authorize|token`, the binary against the real server.
#[tokio::test]
async fn the_cli_runs_the_code_flow() {
    let server = TestServer::start().await;
    let (api, ws) = (server.running().api_url(), server.ws_url());
    let file = server.dir.path().join("cli-profile.json");
    let username = unique_username("oauth-cli");
    let out = tokio::task::spawn_blocking(move || {
        let env = [("PRIVICORE_CLI_CONFIG", file.as_path())];
        run_privicore(
            &[
                "profile",
                "create",
                "--username",
                &username,
                "--password",
                PASSWORD,
                "--api",
                &api,
                "--ws",
                &ws,
            ],
            &env,
        );
        let config: Value = serde_json::from_str(&run_privicore(
            &[
                "app",
                "register",
                "--name",
                "CLI App",
                "--redirect-uri",
                "http://localhost:8080/cb",
                "--scopes",
                "profile:read,data-token:read",
            ],
            &env,
        ))
        .unwrap();
        let client_id = config["clientId"].as_str().unwrap().to_owned();
        let list: Value = serde_json::from_str(&run_privicore(&["app", "list"], &env)).unwrap();
        assert_eq!(list["items"][0]["clientId"], client_id.as_str());
        let authorized: Value = serde_json::from_str(&run_privicore(
            &[
                "app",
                "authorize",
                "--client-id",
                &client_id,
                "--scopes",
                "profile:read",
            ],
            &env,
        ))
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_privicore"))
            .args([
                "app",
                "token",
                "--client-id",
                &client_id,
                "--request-id",
                authorized["requestId"].as_str().unwrap(),
                "--nonce",
                authorized["nonce"].as_str().unwrap(),
                "--api",
                &api,
            ])
            .env(
                "PRIVICORE_CLIENT_SECRET",
                config["clientSecret"].as_str().unwrap(),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out["scope"], "profile:read");
    let me = server
        .client()
        .with_token(out["token"].as_str().unwrap())
        .retrieve_profile_id()
        .await
        .unwrap();
    assert!(!me.profile_id.is_empty());
}

/// Change password with `revokeTokens` ends the profile's grants too.
#[tokio::test]
async fn a_password_change_that_revokes_tokens_revokes_grants() {
    let server = TestServer::start().await;
    let user = provision(&server, "oauth-pw").await;
    let app = register(&server, &user, "Password", &["all"]).await;
    let tokens = grant(&user, &app, &["profile:read"]).await;
    let access = token_of(&tokens);
    let accepted = user
        .api
        .change_password(PASSWORD, "another-password-1", true)
        .await
        .unwrap();
    let result = user.ok(&accepted.command_id).await;
    assert_eq!(result["revokedGrants"], 1);
    let e = server
        .client()
        .with_token(&access)
        .retrieve_profile_id()
        .await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
    let e = server
        .client()
        .refresh_access_token(&access, tokens["refreshToken"].as_str().unwrap())
        .await;
    assert_eq!(
        code(e.unwrap_err()),
        (401, "oauth.invalid_access_token".into())
    );
}

/// Two exchanges of one code at once: exactly one gets tokens, and since the code was
/// presented twice, its grant is revoked all the same. Two refreshes with one refresh
/// token at once: at most one rotates, and the grant ends.
#[tokio::test]
async fn concurrent_single_use_steps_succeed_once() {
    let server = TestServer::start().await;
    let dev = provision(&server, "oauth-race").await;
    let app = register(&server, &dev, "Race", &["all"]).await;
    let n = nonce();
    let request = dev
        .api
        .request_oauth_code(&app.client_id, &n, &["profile:read"])
        .await
        .unwrap();
    dev.ok(&request.command_id).await;
    let c = app
        .server
        .retrieve_authorization_code(&request.command_id, &n)
        .await
        .unwrap();
    let c = c["authorizationCode"].as_str().unwrap();
    let (a, b) = tokio::join!(
        app.server.obtain_access_token(c),
        app.server.obtain_access_token(c)
    );
    let (won, lost): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
    assert_eq!((won.len(), lost.len()), (1, 1));
    let lost = lost.into_iter().next().unwrap().unwrap_err();
    assert_eq!(code(lost), (422, "oauth.invalid_authorization_code".into()));
    let token = token_of(won.into_iter().next().unwrap().as_ref().unwrap());
    let e = server
        .client()
        .with_token(&token)
        .retrieve_profile_id()
        .await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));

    let tokens = grant(&dev, &app, &["profile:read"]).await;
    let (access, refresh) = (token_of(&tokens), tokens["refreshToken"].as_str().unwrap());
    let client = server.client();
    let (a, b) = tokio::join!(
        client.refresh_access_token(&access, refresh),
        client.refresh_access_token(&access, refresh)
    );
    let rotated: Vec<Value> = [a, b].into_iter().filter_map(Result::ok).collect();
    assert!(rotated.len() <= 1, "{rotated:?}");
    // Whatever the interleaving, the refresh token was used twice: no pair survives.
    for pair in &rotated {
        let e = client
            .with_token(&token_of(pair))
            .retrieve_profile_id()
            .await;
        assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
    }
    let e = client.with_token(&access).retrieve_profile_id().await;
    assert_eq!(code(e.unwrap_err()), (401, "auth.token_revoked".into()));
}
