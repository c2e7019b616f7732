//! Profile registration, login and token management (docs/api/profile-and-keys.md §2).

use crate::engine::Engine;
use crate::limits::logins;
use privicore_domain::auth::{
    AuthToken, Caller, MAX_TOKEN_TTL_SECONDS, QR_TTL_DEFAULT, QR_TTL_MAX, QR_TTL_MIN, QrToken,
    TokenOwner,
};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::effect::Effect;
use privicore_domain::event::BusEvent;
use privicore_domain::password::{self, HashCost, PasswordHash};
use privicore_domain::profile::{Profile, ProfileStatus, check_username, username_key};
use privicore_domain::secret::Secret;
use privicore_domain::{CommandId, Error, ProfileId, Reason, Timestamp};
use privicore_wire::TokenKind;
use std::net::IpAddr;
use std::sync::OnceLock;

/// Exactly one credential form (§2.2).
pub enum Credentials {
    Password { username: String, password: String },
    Qr(String),
}

pub struct Authenticated {
    pub token: Secret,
    pub expires_at: Timestamp,
    pub profile_id: ProfileId,
    pub public_key_registered: bool,
}

pub struct QrIssued {
    pub token: Secret,
    pub expires_at: Timestamp,
    pub payload: String,
}

pub struct TokenExpiry {
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub seconds_remaining: i64,
}

pub(crate) async fn hash_password(password: String, cost: HashCost) -> Result<PasswordHash, Error> {
    tokio::task::spawn_blocking(move || PasswordHash::create(&password, cost))
        .await
        .map_err(Error::internal)?
}

async fn verify_password(hash: PasswordHash, password: String) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .map_err(Error::internal)
}

/// Unknown usernames are checked against this hash so they take as long as wrong passwords.
fn dummy_hash(cost: HashCost) -> PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            PasswordHash::create("privicore-timing-equaliser", cost)
                .expect("hashing a constant succeeds")
        })
        .clone()
}

fn ttl_in(field: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> Result<i64, Error> {
    let ttl = value.unwrap_or(default);
    if (min..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(Error::out_of_range(field, format!("{min}..{max}")))
    }
}

impl Engine {
    pub async fn register_profile(
        &self,
        username: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<CommandId, Error> {
        check_username(username)?;
        password::check_rules(username, password)?;
        logins::count_registration(
            &*self.store,
            self.config.limits.registrations_per_hour,
            client,
            Timestamp::now(),
        )
        .await?;
        let password_hash = hash_password(password.to_owned(), self.config.hash_cost).await?;
        let id = CommandId::new();
        self.accept_committed(CommandRecord::new(
            id,
            id.into(),
            None,
            CommandPayload::RegisterProfile {
                username: username.to_owned(),
                password_hash,
            },
        ))
        .await
    }

    pub async fn authenticate(
        &self,
        credentials: Credentials,
        client: IpAddr,
    ) -> Result<Authenticated, Error> {
        let profile = match credentials {
            Credentials::Password { username, password } => {
                self.check_password_login(&username, password, client)
                    .await?
            }
            Credentials::Qr(value) => {
                let hash = Secret::new(value).hash();
                let id = self
                    .store
                    .take_qr_token(&hash, Timestamp::now())
                    .await?
                    .ok_or(Reason::AuthInvalidQrToken)?;
                self.store
                    .profile(id)
                    .await?
                    .ok_or(Reason::AuthInvalidQrToken)?
            }
        };
        if profile.status != ProfileStatus::Active {
            return Err(Reason::ProfileInactive.into());
        }
        let (token, expires_at) = self
            .issue_token(profile.id, self.config.token_ttl_seconds, Vec::new())
            .await?;
        Ok(Authenticated {
            token,
            expires_at,
            profile_id: profile.id,
            public_key_registered: profile.public_key.is_some(),
        })
    }

    async fn check_password_login(
        &self,
        username: &str,
        password: String,
        client: IpAddr,
    ) -> Result<Profile, Error> {
        let key = username_key(username);
        let limit = self.config.limits.failed_logins_per_15min;
        let gate = logins::open_login(&*self.store, limit, &key, client, Timestamp::now()).await?;
        let profile = self.store.profile_by_username(username).await?;
        let hash = profile
            .as_ref()
            .and_then(|p| p.password_hash.clone())
            .unwrap_or_else(|| dummy_hash(self.config.hash_cost));
        let matches = verify_password(hash, password).await?;
        match profile {
            Some(p) if matches && p.password_hash.is_some() => {
                logins::login_succeeded(&*self.store, gate, &key, client).await?;
                Ok(p)
            }
            _ => {
                logins::login_failed(&*self.store, limit, &key, client, Timestamp::now()).await?;
                Err(Reason::AuthInvalidCredentials.into())
            }
        }
    }

    async fn issue_token(
        &self,
        profile_id: ProfileId,
        ttl_seconds: i64,
        also: Vec<Effect>,
    ) -> Result<(Secret, Timestamp), Error> {
        let token = Secret::generate(TokenKind::Profile);
        // Judged against the engine clock (access checks use it), so issued by it too.
        let now = self.config.clock.now();
        let expires_at = now.plus_seconds(ttl_seconds);
        let mut effects = vec![Effect::InsertAuthToken(AuthToken {
            hash: token.hash(),
            profile_id,
            owner: TokenOwner::Profile,
            scopes: Vec::new(),
            issued_at: now,
            expires_at,
            revoked_at: None,
        })];
        effects.extend(also);
        self.store.apply(&effects, None).await?;
        Ok((token, expires_at))
    }

    pub async fn profile_of(&self, caller: &Caller) -> Result<Profile, Error> {
        self.store
            .profile(caller.profile_id)
            .await?
            .ok_or_else(|| Reason::AuthInvalidToken.into())
    }

    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
        revoke_tokens: bool,
        client: IpAddr,
    ) -> Result<CommandId, Error> {
        let profile = self.profile_of(caller).await?;
        password::check_rules(&profile.username, new).map_err(|e| e.with_field("newPassword"))?;
        if current == new {
            return Err(Error::new(Reason::ProfilePasswordUnchanged).with_field("newPassword"));
        }
        // A wrong current password is a failed login: same counters, same lock.
        let key = username_key(&profile.username);
        let limit = self.config.limits.failed_logins_per_15min;
        let gate = logins::open_login(&*self.store, limit, &key, client, Timestamp::now()).await?;
        let stored = profile
            .password_hash
            .clone()
            .unwrap_or_else(|| dummy_hash(self.config.hash_cost));
        // Verified now so the current password is never written to the command log.
        let current_password_ok =
            profile.password_hash.is_some() && verify_password(stored, current.to_owned()).await?;
        let new_password_hash = if current_password_ok {
            logins::login_succeeded(&*self.store, gate, &key, client).await?;
            Some(hash_password(new.to_owned(), self.config.hash_cost).await?)
        } else {
            // The command fails (async, as the contract says); the new password is never
            // hashed for a guess.
            logins::login_failed(&*self.store, limit, &key, client, Timestamp::now()).await?;
            None
        };
        self.accept_committed(CommandRecord::new(
            CommandId::new(),
            caller.profile_id,
            caller.application_id(),
            CommandPayload::ChangePassword {
                current_password_ok,
                new_password_hash,
                revoke_tokens,
                keep_token: caller.token_hash,
            },
        ))
        .await
    }

    pub async fn generate_qr_token(
        &self,
        caller: &Caller,
        ttl: Option<i64>,
    ) -> Result<QrIssued, Error> {
        let ttl = ttl_in("ttl", ttl, QR_TTL_DEFAULT, QR_TTL_MIN, QR_TTL_MAX)?;
        let token = Secret::generate(TokenKind::Qr);
        let expires_at = Timestamp::now().plus_seconds(ttl);
        self.store
            .apply(
                &[Effect::PutQrToken(QrToken {
                    hash: token.hash(),
                    profile_id: caller.profile_id,
                    expires_at,
                })],
                None,
            )
            .await?;
        let payload = format!(
            "privicore:qr?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("v", "1")
                .append_pair("api", &self.config.api_public_url)
                .append_pair("token", token.expose())
                .finish()
        );
        Ok(QrIssued {
            token,
            expires_at,
            payload,
        })
    }

    /// A new token; the presented one is revoked in the same transaction.
    pub async fn reauthorize(
        &self,
        caller: &Caller,
        ttl: Option<i64>,
    ) -> Result<(Secret, Timestamp), Error> {
        let ttl = ttl_in(
            "ttl",
            ttl,
            self.config.token_ttl_seconds,
            1,
            MAX_TOKEN_TTL_SECONDS,
        )?;
        let revoke = Effect::RevokeAuthToken {
            hash: caller.token_hash,
            at: Timestamp::now(),
        };
        let issued = self
            .issue_token(caller.profile_id, ttl, vec![revoke])
            .await?;
        self.token_ended(caller).await;
        Ok(issued)
    }

    pub async fn revoke(&self, caller: &Caller) -> Result<Timestamp, Error> {
        let at = Timestamp::now();
        self.store
            .apply(
                &[Effect::RevokeAuthToken {
                    hash: caller.token_hash,
                    at,
                }],
                None,
            )
            .await?;
        self.token_ended(caller).await;
        Ok(at)
    }

    async fn token_ended(&self, caller: &Caller) {
        self.auth_cache.forget_token(&caller.token_hash);
        let notice = BusEvent::TokenEnded {
            token: caller.token_hash,
            code: Reason::AuthTokenRevoked.code().into(),
        };
        if let Err(error) = self.bus.publish(notice).await {
            tracing::warn!(%error, "could not announce a revoked token");
        }
    }

    pub fn token_expiry(&self, caller: &Caller) -> TokenExpiry {
        TokenExpiry {
            issued_at: caller.issued_at,
            expires_at: caller.expires_at,
            seconds_remaining: Timestamp::now().seconds_until(caller.expires_at).max(0),
        }
    }
}
