//! OAuth applications (docs/api/oauth.md).

use crate::openapi::model::{Described, Mode, Ty, body, query};
use crate::routes::table::Verb::{Get, Post};

pub static ROUTES: &[Described] = &[
    Described {
        verb: Post,
        path: "/profile/oauth-application-register",
        tag: "OAuth Application",
        summary: "Register OAuth Application",
        spec: "oauth.md §3.1",
        mode: Mode::Command,
        fields: &[
            body(
                "name",
                Ty::Str,
                true,
                "1..100 characters; unique among the profile's applications (case-insensitive)",
            ),
            body(
                "redirectUri",
                Ty::Str,
                true,
                "absolute URI, at most 2048 characters, no fragment; scheme `https`, or `http` only for hosts `localhost`, `127.0.0.1`, `[::1]`; custom schemes (`com.example.app:/cb`) allowed for native apps",
            ),
            body(
                "scopes",
                Ty::Arr,
                true,
                "at least one; §1.1 vocabulary; duplicates removed",
            ),
            body("description", Ty::Str, false, "0..500 characters"),
        ],
        reply: Some(
            r#"{ "applicationId": "019c80d6-4d92-7c4d-961c-0016ccc857fb", "name": "Invoice Sync" }"#,
        ),
        errors: &[
            "validation.missing_field",
            "oauth.invalid_redirect_uri",
            "oauth.invalid_scope",
            "validation.out_of_range",
        ],
        async_errors: &["oauth.application_name_taken"],
    },
    Described {
        verb: Post,
        path: "/profile/retrieve-oauth-application-configuration",
        tag: "OAuth Application",
        summary: "Retrieve OAuth app configuration",
        spec: "oauth.md §3.2",
        mode: Mode::Sync,
        fields: &[body(
            "applicationId",
            Ty::Uuid,
            true,
            "the register command id",
        )],
        reply: Some(
            r#"{
  "applicationId": "019c80d6-4d92-7c4d-961c-0016ccc857fb",
  "name": "Invoice Sync",
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "clientSecret": "8ssiIiv1px_tWrIYHbRiaeHbe9AlsG7RcbR96e0NP5k",
  "redirectUri": "https://invoices.example.com/privicore/callback",
  "scopes": ["data-token:read", "data-token:write"],
  "createdAt": "2026-02-21T15:40:02+00:00"
}"#,
        ),
        errors: &[
            "oauth.application_not_found",
            "oauth.not_owner",
            "oauth.already_retrieved",
        ],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/profile/oauth-application-request-authorization-code",
        tag: "OAuth Application",
        summary: "Request OAuth app authorization code",
        spec: "oauth.md §3.3",
        mode: Mode::Command,
        fields: &[
            query(
                "client_id",
                Ty::Str,
                true,
                "an existing application's `clientId`",
            ),
            query(
                "nonce",
                Ty::Str,
                true,
                "8..128 characters from `A-Z a-z 0-9 . _ ~ -`; never reused with the same `client_id`",
            ),
            query(
                "scope[]",
                Ty::Str,
                true,
                "at least one scope; a single `scope` key with a comma- or space-separated list is also accepted",
            ),
        ],
        reply: Some(
            r#"{
  "requestId": "019c80d6-52ed-7113-89d9-9267c4123f7a",
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "applicationName": "Invoice Sync",
  "scope": "data-token:read data-token:write",
  "scopes": ["data-token:read", "data-token:write"],
  "redirectUri": "https://invoices.example.com/privicore/callback",
  "expiresAt": "2026-02-21T15:52:10+00:00"
}"#,
        ),
        errors: &[
            "oauth.unknown_client",
            "oauth.invalid_nonce",
            "oauth.invalid_scope",
        ],
        async_errors: &["oauth.nonce_reused", "oauth.scope_denied"],
    },
    Described {
        verb: Get,
        path: "/profile/retrieve-oauth-application-list",
        tag: "OAuth Application",
        summary: "OAuth application list",
        spec: "oauth.md §3.6",
        mode: Mode::Sync,
        fields: &[
            query("page", Ty::Int, false, "1 README §9"),
            query("perPage", Ty::Int, false, "25 1..100"),
            query(
                "filters[name]",
                Ty::Str,
                false,
                "exact match; trailing `*` = prefix match",
            ),
        ],
        reply: Some(
            r#"{
  "items": [
    {
      "applicationId": "019c80d6-4d92-7c4d-961c-0016ccc857fb",
      "name": "Invoice Sync",
      "description": null,
      "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
      "redirectUri": "https://invoices.example.com/privicore/callback",
      "scopes": ["data-token:read", "data-token:write"],
      "configurationRetrieved": true,
      "activeGrants": 1,
      "createdAt": "2026-02-21T15:40:02+00:00"
    }
  ],
  "meta": { "page": 1, "perPage": 25, "total": 1 }
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/oauth-application/retrieve-authorization-code",
        tag: "OAuth Application",
        summary: "Retrieve OAuth app authorization code",
        spec: "oauth.md §3.4",
        mode: Mode::Sync,
        fields: &[
            body(
                "id",
                Ty::Uuid,
                true,
                "the `requestId` (request-code command id)",
            ),
            body(
                "nonce",
                Ty::Str,
                true,
                "byte-for-byte the nonce sent in §3.3",
            ),
        ],
        reply: Some(
            r#"{
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "nonce": "n-7f3a9c2e41",
  "authorizationCode": "C-p58ZsE0YKIlBaLpJTicZTj2nHHozDUQXkXTsgEgbUcQ",
  "expiresAt": "2026-02-21T15:52:10+00:00"
}"#,
        ),
        errors: &[
            "oauth.invalid_client",
            "oauth.authorization_request_not_found",
            "oauth.authorization_request_pending",
            "oauth.nonce_mismatch",
            "oauth.authorization_code_expired",
            "oauth.already_retrieved",
        ],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/oauth-application/obtain-access-token",
        tag: "OAuth Application",
        summary: "Obtain OAuth app access token",
        spec: "oauth.md §3.5",
        mode: Mode::Sync,
        fields: &[body("authorization_code", Ty::Str, true, "from §3.4")],
        reply: Some(
            r#"{
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "token": "A-cW5_GS6HNKRytq5fDUjgRPSNfgyKB0Pkn7Ig-OJrbqc",
  "refreshToken": "R-nZ0ooxGi1wIM-ukH0YZPv00y0lUm3-SEdYmO69OJX_w",
  "type": "bearer",
  "scope": "data-token:read data-token:write",
  "expiresAt": "2026-02-21T16:45:00+00:00",
  "refreshTokenExpiresAt": "2026-03-23T15:45:00+00:00"
}"#,
        ),
        errors: &[
            "oauth.invalid_client",
            "oauth.invalid_authorization_code",
            "oauth.authorization_code_expired",
        ],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/oauth-application/refresh-access-token",
        tag: "OAuth Application",
        summary: "Refresh OAuth app access token",
        spec: "oauth.md §3.8",
        mode: Mode::Sync,
        fields: &[body(
            "refresh_token",
            Ty::Str,
            true,
            "the refresh token paired with the presented access token",
        )],
        reply: None,
        errors: &[
            "oauth.invalid_access_token",
            "oauth.invalid_refresh_token",
            "oauth.refresh_token_expired",
            "oauth.refresh_token_reused",
        ],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/oauth-application/retrieve-oauth-application-scope",
        tag: "OAuth Application",
        summary: "Retrieve OAuth application scope",
        spec: "oauth.md §3.7",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "applicationId": "019c80d6-4d92-7c4d-961c-0016ccc857fb",
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb",
  "scope": "data-token:read data-token:write",
  "scopes": ["data-token:read", "data-token:write"],
  "expiresAt": "2026-02-21T16:45:00+00:00"
}"#,
        ),
        errors: &["oauth.invalid_access_token"],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/oauth-application/retrieve-oauth-application-scope",
        tag: "OAuth Application",
        summary: "Retrieve OAuth application scope",
        spec: "oauth.md §3.7",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "applicationId": "019c80d6-4d92-7c4d-961c-0016ccc857fb",
  "clientId": "oauth-039d9087df51df5face4dd6ab0a5b8a9",
  "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb",
  "scope": "data-token:read data-token:write",
  "scopes": ["data-token:read", "data-token:write"],
  "expiresAt": "2026-02-21T16:45:00+00:00"
}"#,
        ),
        errors: &["oauth.invalid_access_token"],
        async_errors: &[],
    },
];
