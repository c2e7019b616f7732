//! Authorization tokens and the access rules applied to them (docs/api/README.md §3.2).

use crate::secret::TokenHash;
use crate::{ProfileId, Timestamp};
use uuid::Uuid;

/// Default profile token lifetime: 8 hours.
pub const DEFAULT_TOKEN_TTL_SECONDS: i64 = 8 * 3600;
/// Reauthorize bounds: 1 s .. 30 days.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 30 * 24 * 3600;
/// QR token lifetime: default and bounds.
pub const QR_TTL_DEFAULT: i64 = 120;
pub const QR_TTL_MIN: i64 = 30;
pub const QR_TTL_MAX: i64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOwner {
    /// A profile token (`T-…`).
    Profile,
    /// An OAuth access token (`A-…`) of an application.
    App { application_id: Uuid },
}

/// A stored authorization token; the value itself is never stored.
#[derive(Debug, Clone)]
pub struct AuthToken {
    pub hash: TokenHash,
    pub profile_id: ProfileId,
    pub owner: TokenOwner,
    pub scopes: Vec<String>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What an endpoint asks of the caller's token.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub profile_token_only: bool,
    /// Scope an app token must hold; `None` = any valid token.
    pub scope: Option<&'static str>,
    /// Exempt from the public-key rule (docs/api/README.md §3.3).
    pub key_exempt: bool,
}

impl Access {
    pub const fn any() -> Self {
        Self {
            profile_token_only: false,
            scope: None,
            key_exempt: false,
        }
    }

    pub const fn profile_only() -> Self {
        Self {
            profile_token_only: true,
            scope: None,
            key_exempt: false,
        }
    }

    pub const fn scope(scope: &'static str) -> Self {
        Self {
            profile_token_only: false,
            scope: Some(scope),
            key_exempt: false,
        }
    }

    pub const fn key_exempt(mut self) -> Self {
        self.key_exempt = true;
        self
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub profile_id: ProfileId,
    pub token_hash: TokenHash,
    pub owner: TokenOwner,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

impl Caller {
    pub fn application_id(&self) -> Option<Uuid> {
        match self.owner {
            TokenOwner::Profile => None,
            TokenOwner::App { application_id } => Some(application_id),
        }
    }

    /// Whether this caller may read a command's outcome (docs/api/profile-and-keys.md §1.2).
    pub fn may_read_command(&self, profile: ProfileId, application: Option<Uuid>) -> bool {
        profile == self.profile_id
            && match self.owner {
                TokenOwner::Profile => true,
                TokenOwner::App { application_id } => application == Some(application_id),
            }
    }
}

/// Outstanding QR login token.
#[derive(Debug, Clone)]
pub struct QrToken {
    pub hash: TokenHash,
    pub profile_id: ProfileId,
    pub expires_at: Timestamp,
}
