//! Token checks, in the order of docs/api/README.md §3.2.

use crate::engine::Engine;
use privicore_domain::auth::{Access, AuthToken, Caller, TokenOwner};
use privicore_domain::profile::ProfileStatus;
use privicore_domain::secret::{Secret, TokenHash};
use privicore_domain::{Error, ProfileId, Reason};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The raw `X-DPT-AUTHORIZATION` value; a leading `Bearer ` is tolerated.
pub fn bearer_value(header: &str) -> &str {
    let trimmed = header.trim();
    trimmed
        .strip_prefix("Bearer ")
        .or_else(|| trimmed.strip_prefix("bearer "))
        .map(str::trim_start)
        .unwrap_or(trimmed)
}

/// Recently checked tokens, so that a burst of calls does not read the same rows again.
/// Entries live briefly; this node forgets them at once on revoke, reauthorize, password
/// change and key registration, other nodes within the TTL.
#[derive(Default)]
pub(crate) struct AuthCache {
    entries: Mutex<HashMap<[u8; 32], Cached>>,
    /// Whether a profile was active when last read (every command checks it).
    profiles: Mutex<HashMap<ProfileId, (bool, Instant)>>,
}

#[derive(Clone)]
struct Cached {
    token: AuthToken,
    active: bool,
    has_key: bool,
    at: Instant,
}

const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX: usize = 100_000;

impl AuthCache {
    fn get(&self, hash: &TokenHash) -> Option<Cached> {
        let entries = self.entries.lock().expect("auth cache lock");
        entries
            .get(&hash.0)
            .filter(|c| c.at.elapsed() < CACHE_TTL)
            .cloned()
    }

    fn put(&self, cached: Cached) {
        let mut entries = self.entries.lock().expect("auth cache lock");
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, c| c.at.elapsed() < CACHE_TTL);
        }
        entries.insert(cached.token.hash.0, cached);
    }

    pub fn forget_token(&self, hash: &TokenHash) {
        self.entries
            .lock()
            .expect("auth cache lock")
            .remove(&hash.0);
    }

    pub fn forget_profile(&self, profile: ProfileId) {
        self.entries
            .lock()
            .expect("auth cache lock")
            .retain(|_, c| c.token.profile_id != profile);
        self.profiles
            .lock()
            .expect("auth cache lock")
            .remove(&profile);
    }

    pub fn profile_active(&self, profile: ProfileId) -> Option<bool> {
        self.profiles
            .lock()
            .expect("auth cache lock")
            .get(&profile)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(active, _)| *active)
    }

    pub fn note_profile(&self, profile: ProfileId, active: bool) {
        let mut profiles = self.profiles.lock().expect("auth cache lock");
        if profiles.len() >= CACHE_MAX {
            profiles.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
        }
        profiles.insert(profile, (active, Instant::now()));
    }
}

impl Engine {
    async fn checked_token(&self, value: &str) -> Result<Cached, Error> {
        let hash = Secret::new(value).hash();
        let cached = match self.auth_cache.get(&hash) {
            Some(c) => c,
            None => {
                let token = self
                    .store
                    .auth_token(&hash)
                    .await?
                    .ok_or(Reason::AuthInvalidToken)?;
                let profile = self
                    .store
                    .profile(token.profile_id)
                    .await?
                    .ok_or(Reason::AuthInvalidToken)?;
                let c = Cached {
                    token,
                    active: profile.status == ProfileStatus::Active,
                    has_key: profile.public_key.is_some(),
                    at: Instant::now(),
                };
                self.auth_cache.put(c.clone());
                c
            }
        };
        // A blocked profile (a suspended or removed directory user, docs/api/directory.md
        // §1.2) answers profile.inactive for every token, revoked ones included.
        if !cached.active {
            return Err(Reason::ProfileInactive.into());
        }
        if cached.token.expires_at <= self.config.clock.now() {
            return Err(Reason::AuthTokenExpired.into());
        }
        if cached.token.revoked_at.is_some() {
            return Err(Reason::AuthTokenRevoked.into());
        }
        Ok(cached)
    }

    /// Authenticates the header value against `access`.
    pub async fn authorize(&self, header: Option<&str>, access: Access) -> Result<Caller, Error> {
        let value = header
            .map(bearer_value)
            .filter(|v| !v.is_empty())
            .ok_or(Reason::AuthMissingToken)?;
        let Cached {
            token,
            active,
            has_key,
            ..
        } = self.checked_token(value).await?;
        if !active {
            return Err(Reason::ProfileInactive.into());
        }
        if let TokenOwner::App { .. } = token.owner {
            if access.profile_token_only {
                return Err(Reason::OauthProfileTokenRequired.into());
            }
            if let Some(scope) = access.scope
                && !privicore_domain::oauth::holds(&token.scopes, scope)
            {
                return Err(Error::new(Reason::OauthScopeDenied)
                    .with_message(format!("This call needs the scope {scope}.")));
            }
        }
        if !access.key_exempt && !has_key {
            return Err(Reason::ProfilePublicKeyRequired.into());
        }
        Ok(Caller {
            profile_id: token.profile_id,
            token_hash: token.hash,
            owner: token.owner,
            issued_at: token.issued_at,
            expires_at: token.expires_at,
        })
    }

    /// For `joinChannel`: any live token of an active profile; the key rule does not apply.
    pub async fn authorize_join(&self, token: &str) -> Result<Caller, Error> {
        self.authorize(Some(token), Access::any().key_exempt())
            .await
    }

    /// Joins the hub for a caller `authorize_join` admitted; an app token's socket carries
    /// its grant's scopes, which decide the events meant for a scope (README §8.5).
    pub async fn join_channel(&self, caller: &Caller) -> Result<crate::hub::Subscription, Error> {
        let scopes = match caller.owner {
            TokenOwner::Profile => Vec::new(),
            TokenOwner::App { .. } => match self.auth_cache.get(&caller.token_hash) {
                Some(c) => c.token.scopes,
                None => self
                    .store
                    .auth_token(&caller.token_hash)
                    .await?
                    .map(|t| t.scopes)
                    .unwrap_or_default(),
            },
        };
        Ok(self.hub().join_with_scopes(caller, scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_value;

    #[test]
    fn bearer_prefix_is_stripped() {
        assert_eq!(bearer_value("Bearer T-abc"), "T-abc");
        assert_eq!(bearer_value("T-abc"), "T-abc");
        assert_eq!(bearer_value("  T-abc "), "T-abc");
    }
}
