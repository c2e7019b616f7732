//! Token checks, in the order of README §3.2.

use crate::engine::Engine;
use privicore_domain::auth::{Access, AuthToken, Caller, TokenOwner};
use privicore_domain::profile::ProfileStatus;
use privicore_domain::secret::Secret;
use privicore_domain::{Error, Reason, Timestamp};

/// The raw `X-DPT-AUTHORIZATION` value; a leading `Bearer ` is tolerated.
pub fn bearer_value(header: &str) -> &str {
    let trimmed = header.trim();
    trimmed
        .strip_prefix("Bearer ")
        .or_else(|| trimmed.strip_prefix("bearer "))
        .map(str::trim_start)
        .unwrap_or(trimmed)
}

impl Engine {
    /// Authenticates the header value against `access`.
    pub async fn authorize(&self, header: Option<&str>, access: Access) -> Result<Caller, Error> {
        let value = header
            .map(bearer_value)
            .filter(|v| !v.is_empty())
            .ok_or(Reason::AuthMissingToken)?;
        let token = self.live_token(value).await?;
        let profile = self
            .store
            .profile(token.profile_id)
            .await?
            .ok_or(Reason::AuthInvalidToken)?;
        if profile.status != ProfileStatus::Active {
            return Err(Reason::ProfileInactive.into());
        }
        if let TokenOwner::App { .. } = token.owner {
            if access.profile_token_only {
                return Err(Reason::OauthProfileTokenRequired.into());
            }
            if let Some(scope) = access.scope
                && !token.scopes.iter().any(|s| s == scope)
            {
                return Err(Error::new(Reason::OauthScopeDenied)
                    .with_message(format!("This call needs the scope {scope}.")));
            }
        }
        if !access.key_exempt && profile.public_key.is_none() {
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

    async fn live_token(&self, value: &str) -> Result<AuthToken, Error> {
        let token = self
            .store
            .auth_token(&Secret::new(value).hash())
            .await?
            .ok_or(Reason::AuthInvalidToken)?;
        if token.expires_at <= Timestamp::now() {
            return Err(Reason::AuthTokenExpired.into());
        }
        if token.revoked_at.is_some() {
            return Err(Reason::AuthTokenRevoked.into());
        }
        Ok(token)
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
