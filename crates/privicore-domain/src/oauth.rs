//! OAuth applications, authorization requests, grants and scopes (docs/api/oauth.md).

use crate::secret::TokenHash;
use crate::{CommandId, Error, ProfileId, Reason, Timestamp};
use uuid::Uuid;

/// The scope vocabulary (docs/api/oauth.md §1.1).
pub const SCOPES: &[&str] = &[
    "all",
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

/// The scope of every directory endpoint, and of the invitation notice on app sockets.
pub const SCOPE_DIRECTORY_MANAGE: &str = "directory:manage";

/// An authorization code is retrievable and exchangeable this long after its request succeeded.
pub const CODE_TTL_SECONDS: i64 = 600;
pub const ACCESS_TTL_SECONDS: i64 = 3600;
pub const REFRESH_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// Nonces are remembered per client this long (docs/api/oauth.md §3.3); authorization
/// requests, and grants whose refresh token expired, are kept as long, then purged.
pub const KEEP_SECONDS: i64 = 30 * 24 * 3600;
/// A grant ends this long after its creation at the latest, however often it is refreshed.
pub const GRANT_MAX_SECONDS: i64 = 365 * 24 * 3600;

/// Parses scope names given as list items, each possibly a comma- or space-separated
/// list; removes duplicates, keeping the first order. Empty: `validation.missing_field`.
pub fn parse_scopes(field: &str, items: &[&str]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for name in items
        .iter()
        .flat_map(|i| i.split([',', ' ']))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !SCOPES.contains(&name) {
            return Err(Error::new(Reason::OauthInvalidScope)
                .with_field(field)
                .with_message(format!("Unknown scope {name}.")));
        }
        if !out.iter().any(|s| s == name) {
            out.push(name.to_owned());
        }
    }
    if out.is_empty() {
        return Err(Error::missing(field));
    }
    Ok(out)
}

/// The granted scope (docs/api/oauth.md §1.1): the intersection, where `all` on either
/// side stands for everything on the other.
pub fn granted(registered: &[String], requested: &[String]) -> Vec<String> {
    let all = |s: &[String]| s.iter().any(|n| n == "all");
    if all(registered) {
        return requested.to_vec();
    }
    if all(requested) {
        return registered.to_vec();
    }
    requested
        .iter()
        .filter(|s| registered.contains(s))
        .cloned()
        .collect()
}

/// Whether `scopes` include `needed` (`all` includes every scope).
pub fn holds(scopes: &[String], needed: &str) -> bool {
    scopes.iter().any(|s| s == needed || s == "all")
}

/// The space-separated form of token responses.
pub fn spaced(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// `oauth-` + 32 lowercase hex characters.
pub fn new_client_id() -> String {
    format!("oauth-{}", Uuid::new_v4().simple())
}

/// docs/api/oauth.md §3.3: 8..128 characters from `A-Z a-z 0-9 . _ ~ -`.
pub fn valid_nonce(nonce: &str) -> bool {
    (8..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

/// docs/api/oauth.md §3.1: absolute, no fragment, at most 2048 characters; `https`, `http`
/// for loopback hosts only, or a custom scheme (`com.example.app:/cb`).
pub fn valid_redirect_uri(uri: &str) -> bool {
    if uri.is_empty()
        || uri.len() > 2048
        || uri.contains('#')
        || uri.chars().any(char::is_whitespace)
    {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return false;
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" | "http" => {
            let Some(authority) = rest.strip_prefix("//") else {
                return false;
            };
            let authority = authority.split(['/', '?']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if host.starts_with('[') {
                host.split_inclusive(']').next().unwrap_or("")
            } else {
                host.split(':').next().unwrap_or("")
            };
            if host.is_empty() {
                return false;
            }
            scheme.eq_ignore_ascii_case("https")
                || matches!(
                    host.to_ascii_lowercase().as_str(),
                    "localhost" | "127.0.0.1" | "[::1]"
                )
        }
        // A custom scheme names a native app; it needs a path after it.
        _ => scheme.contains('.') && !rest.is_empty(),
    }
}

/// A registered application; `applicationId` is the register command's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: Uuid,
    pub profile_id: ProfileId,
    pub name: String,
    pub description: Option<String>,
    pub client_id: String,
    /// Set when the configuration is retrieved (the only time the secret exists in clear).
    pub secret_hash: Option<TokenHash>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub configuration_retrieved_at: Option<Timestamp>,
}

/// The case-insensitive key under which application names are unique per profile.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A consenting profile's request for an authorization code; its id is the command id.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthRequest {
    pub id: CommandId,
    pub application_id: Uuid,
    pub profile_id: ProfileId,
    pub nonce: String,
    pub scopes: Vec<String>,
    pub expires_at: Timestamp,
    /// Digest of the code, once retrieved.
    pub code_hash: Option<TokenHash>,
    pub exchanged_at: Option<Timestamp>,
    /// The grant its exchange created.
    pub grant_id: Option<Uuid>,
}

/// What a successful code exchange creates: a (profile, application) grant holding the
/// current token pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: Uuid,
    pub profile_id: ProfileId,
    pub application_id: Uuid,
    pub scopes: Vec<String>,
    pub access_hash: TokenHash,
    pub refresh_hash: TokenHash,
    pub refresh_expires_at: Timestamp,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl Grant {
    /// The end of the grant's life, whatever its refreshes.
    pub fn ends_at(&self) -> Timestamp {
        self.created_at.plus_seconds(GRANT_MAX_SECONDS)
    }
}

/// Changes to OAuth state; the conditional ones fail with `StoreError::Conflict` (and
/// roll the transaction back) when the state moved on.
#[derive(Debug, Clone)]
pub enum OauthEffect {
    /// Conflict `oauth.application_name_taken` when the profile has the name.
    CreateApplication(Application),
    /// Records the secret's digest; conflict `oauth.already_retrieved` when done before.
    RetrieveConfiguration {
        application_id: Uuid,
        secret_hash: TokenHash,
        at: Timestamp,
    },
    /// Conflict `oauth.nonce_reused` when the nonce was used with the application.
    CreateRequest(AuthRequest),
    /// Records the code's digest; conflict `oauth.already_retrieved` when done before.
    RetrieveCode {
        request_id: CommandId,
        code_hash: TokenHash,
    },
    /// Marks the request exchanged and creates the grant; conflict
    /// `oauth.invalid_authorization_code` when it was exchanged before.
    ExchangeCode {
        request_id: CommandId,
        grant: Grant,
        at: Timestamp,
    },
    /// Replaces the grant's token pair and consumes `old_refresh`; conflict
    /// `oauth.refresh_token_reused` when `old_refresh` is no longer the current one.
    RotateGrant {
        grant_id: Uuid,
        old_refresh: TokenHash,
        access_hash: TokenHash,
        refresh_hash: TokenHash,
        refresh_expires_at: Timestamp,
        at: Timestamp,
    },
    /// Revokes the grant and its current access token.
    RevokeGrant { grant_id: Uuid, at: Timestamp },
    /// Revokes every live grant of the profile and their access tokens (Change password
    /// with `revokeTokens`).
    RevokeProfileGrants {
        profile_id: ProfileId,
        at: Timestamp,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn granted_scope_is_the_intersection_with_all_as_everything() {
        assert_eq!(
            granted(&v(&["data-token:read"]), &v(&["all"])),
            v(&["data-token:read"])
        );
        assert_eq!(
            granted(&v(&["all"]), &v(&["device:manage"])),
            v(&["device:manage"])
        );
        assert_eq!(
            granted(
                &v(&["data-token:read", "policy:manage"]),
                &v(&["policy:manage", "voting:vote"])
            ),
            v(&["policy:manage"])
        );
        assert!(granted(&v(&["data-token:read"]), &v(&["voting:vote"])).is_empty());
    }

    #[test]
    fn scopes_parse_from_lists_and_separated_strings() {
        assert_eq!(
            parse_scopes(
                "scopes",
                &["data-token:read,data-token:write", "data-token:read"]
            )
            .unwrap(),
            v(&["data-token:read", "data-token:write"])
        );
        assert_eq!(
            parse_scopes("scope", &["all profile:read"]).unwrap(),
            v(&["all", "profile:read"])
        );
        assert_eq!(
            parse_scopes("scopes", &["nope"]).unwrap_err().reason,
            Reason::OauthInvalidScope
        );
        assert_eq!(
            parse_scopes("scopes", &[" , "]).unwrap_err().reason,
            Reason::ValidationMissingField
        );
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://invoices.example.com/privicore/callback",
            "http://localhost:8080/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:9000/cb",
            "com.example.app:/cb",
        ] {
            assert!(valid_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "",
            "/relative",
            "http://example.com/cb",
            "https://example.com/cb#frag",
            "https:///nohost",
            "notauri",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }

    #[test]
    fn nonces() {
        assert!(valid_nonce("n-7f3a9c2e41"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("has space in it"));
        assert!(!valid_nonce(&"a".repeat(129)));
    }
}
