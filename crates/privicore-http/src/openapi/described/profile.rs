//! Utility, Profile and Public key (docs/api/profile-and-keys.md).

use crate::openapi::model::{Described, Mode, Ty, body};
use crate::routes::table::Verb::{Get, Post};

pub static ROUTES: &[Described] = &[
    Described {
        verb: Get,
        path: "/health",
        tag: "Utility",
        summary: "Check server health",
        spec: "profile-and-keys.md §1.1",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "status": "ok",
  "version": "0.1.0",
  "time": "2026-02-21T15:33:44+00:00",
  "checks": { "database": "ok", "bus": "ok", "spool": "ok" }
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/request-status/{command_id}",
        tag: "Utility",
        summary: "Request command id status",
        spec: "profile-and-keys.md §1.2",
        mode: Mode::Sync,
        fields: &[],
        reply: None,
        errors: &["command.not_found"],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/request-status/{command_id}",
        tag: "Utility",
        summary: "Request command id status",
        spec: "profile-and-keys.md §1.2",
        mode: Mode::Sync,
        fields: &[],
        reply: None,
        errors: &["command.not_found"],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/profile/register-profile",
        tag: "Profile",
        summary: "Register new profile",
        spec: "profile-and-keys.md §2.1",
        mode: Mode::Command,
        fields: &[
            body(
                "username",
                Ty::Str,
                true,
                "3..254 characters from `A-Z a-z 0-9 . _ @ + -`; must start with a letter or digit; unique case-insensitively (stored as given, compared lowercased)",
            ),
            body("password", Ty::Str, true, "password rules above"),
        ],
        reply: Some(
            r#"{ "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb", "username": "alice@example.com" }"#,
        ),
        errors: &[
            "validation.missing_field",
            "profile.invalid_username",
            "profile.password_too_short",
            "profile.password_too_long",
            "profile.password_equals_username",
            "rate_limit.exceeded",
        ],
        async_errors: &["profile.username_taken"],
    },
    Described {
        verb: Post,
        path: "/profile/authenticate",
        tag: "Profile",
        summary: "Authenticate",
        spec: "profile-and-keys.md §2.2",
        mode: Mode::Sync,
        fields: &[
            body("username", Ty::Str, false, ""),
            body("password", Ty::Str, false, ""),
            body("qrToken", Ty::Str, false, "value from §2.5; single-use"),
        ],
        reply: Some(
            r#"{
  "authorizationToken": "T-qqEkM1kKTmxMMPSSO4dc11Qecv04MFdQTYWHeaaT6hs",
  "expiresAt": "2026-02-21T23:33:44+00:00",
  "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb",
  "publicKeyRegistered": false
}"#,
        ),
        errors: &[
            "validation.invalid_credentials_form",
            "auth.invalid_credentials",
            "auth.invalid_qr_token",
            "profile.inactive",
            "rate_limit.exceeded",
        ],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/profile/retrieve-profile-id",
        tag: "Profile",
        summary: "Retrieve profile id",
        spec: "profile-and-keys.md §2.3",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "profileId": "019c80d5-d7c0-76bb-95c4-43d783e8efcb",
  "username": "alice@example.com",
  "kind": "user",
  "publicKeyRegistered": true,
  "createdAt": "2026-02-21T15:33:44+00:00"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/profile/change-password",
        tag: "Profile",
        summary: "Change password",
        spec: "profile-and-keys.md §2.4",
        mode: Mode::Command,
        fields: &[
            body("currentPassword", Ty::Str, true, ""),
            body(
                "newPassword",
                Ty::Str,
                true,
                "password rules; must differ from `currentPassword`",
            ),
            body(
                "revokeTokens",
                Ty::Bool,
                false,
                "`false` `true` revokes every other authorization token of the profile and every OAuth grant of the profile",
            ),
        ],
        reply: None,
        errors: &[
            "profile.password_too_short",
            "profile.password_too_long",
            "profile.password_equals_username",
            "profile.password_unchanged",
        ],
        async_errors: &[
            "profile.invalid_current_password",
            "voting.rejected",
            "voting.expired",
        ],
    },
    Described {
        verb: Post,
        path: "/profile/generate-token-qr",
        tag: "Profile",
        summary: "Generate qr token for authorization",
        spec: "profile-and-keys.md §2.5",
        mode: Mode::Sync,
        fields: &[body("ttl", Ty::Int, false, "120 30..600")],
        reply: Some(
            r#"{
  "qrToken": "Q-_K0VS409-9dE6K9W2VGVrV7THytuBbn3EDrNvjvhS3M",
  "expiresAt": "2026-02-21T15:35:44+00:00",
  "qrPayload": "privicore:qr?v=1&api=https%3A%2F%2Fapi.example.com%3A8009&token=Q-_K0VS409-9dE6K9W2VGVrV7THytuBbn3EDrNvjvhS3M"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/profile/reauthorize-authorization-token",
        tag: "Profile",
        summary: "Reauthorize authorization token",
        spec: "profile-and-keys.md §2.6",
        mode: Mode::Sync,
        fields: &[body(
            "ttl",
            Ty::Int,
            false,
            "configured token lifetime (28800) 1..2592000 (30 days)",
        )],
        reply: Some(
            r#"{
  "authorizationToken": "T-qqEkM1kKTmxMMPSSO4dc11Qecv04MFdQTYWHeaaT6hs",
  "expiresAt": "2026-02-21T23:33:44+00:00"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/profile/revoke-authorization-token",
        tag: "Profile",
        summary: "Revoke authorization token",
        spec: "profile-and-keys.md §2.7",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "revoked": true,
  "revokedAt": "2026-02-21T15:33:44+00:00"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/profile/authorization-token/expiry",
        tag: "Profile",
        summary: "Retrieve token expiry",
        spec: "profile-and-keys.md §2.8",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "expiresAt": "2026-02-21T23:33:44+00:00",
  "issuedAt": "2026-02-21T15:33:44+00:00",
  "secondsRemaining": 28800
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/generate-keys",
        tag: "Public key",
        summary: "Generate your private and public keys",
        spec: "profile-and-keys.md §3.2",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "private": "40e71048e8330b711f9572c22c7d75c3f2ef6478894adbc43030e369e6532ee5",
  "public": "31420500fbc4b73c9dfd0cd0fe078c45ca0875f6702a7a943a0048cdd10584c8e7b4e806d852b74d4a74f4453ed92c4f66d1ca0bea1af80d7123c70734503f11a58daee53fcd7b0d6f82d6ace45cabda51fea2779bbd3a556d796a653676b4c7134676e6"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Post,
        path: "/public-key/register-public-key",
        tag: "Public key",
        summary: "Register public key",
        spec: "profile-and-keys.md §3.3",
        mode: Mode::Command,
        fields: &[body("publicKey", Ty::Str, true, "signed public key, §3.1")],
        reply: None,
        errors: &[
            "public_key.invalid_format",
            "public_key.unsupported_version",
            "public_key.invalid_digest",
            "public_key.weak_key",
        ],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/public-key/retrieve-public-key",
        tag: "Public key",
        summary: "Retrieve public key",
        spec: "profile-and-keys.md §3.4",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "publicKey": "31420500…",
  "registeredAt": "2026-02-21T15:34:02+00:00"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
    Described {
        verb: Get,
        path: "/dptcab/public-key",
        tag: "Public key",
        summary: "Retrieve CAB public key",
        spec: "profile-and-keys.md §3.5",
        mode: Mode::Sync,
        fields: &[],
        reply: Some(
            r#"{
  "publicKey": "31420500…",
  "keyId": "cab-2026-01",
  "createdAt": "2026-01-05T09:00:00+00:00"
}"#,
        ),
        errors: &[],
        async_errors: &[],
    },
];
