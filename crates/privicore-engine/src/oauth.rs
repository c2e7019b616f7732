//! OAuth applications (docs/api/oauth.md): registration and code requests as commands;
//! configuration, code retrieval, token exchange, refresh and scope reads as synchronous
//! calls. Secrets (client secret, code, access and refresh tokens) exist in clear only in
//! the answer that hands them out; the store keeps their SHA-256 digests.

use crate::engine::{Core, Engine};
use crate::pipeline::execute::Plan;
use privicore_domain::auth::{AuthToken, Caller, TokenOwner};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::effect::Effect;
use privicore_domain::event::BusEvent;
use privicore_domain::oauth::{
    self, ACCESS_TTL_SECONDS, Application, CODE_TTL_SECONDS, Grant, OauthEffect,
    REFRESH_TTL_SECONDS,
};
use privicore_domain::ports::StoreError;
use privicore_domain::secret::{Secret, TokenHash};
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use privicore_wire::TokenKind;
use serde_json::{Value, json};
use uuid::Uuid;

/// Register OAuth Application, as sent (§3.1); the edge parsed the scope list.
#[derive(Debug, Clone)]
pub struct ApplicationInput {
    pub name: String,
    pub description: Option<String>,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// A token pair handed out by §3.5 or §3.8.
#[derive(Debug)]
pub struct IssuedTokens {
    pub client_id: String,
    pub access: Secret,
    pub refresh: Secret,
    pub scopes: Vec<String>,
    pub expires_at: Timestamp,
    pub refresh_expires_at: Timestamp,
}

fn effect(e: OauthEffect) -> Effect {
    Effect::Oauth(Box::new(e))
}

/// A conditional effect that found the state moved on answers its business key.
fn business(e: StoreError) -> Error {
    match e {
        StoreError::Conflict(reason) => reason.into(),
        other => other.into(),
    }
}

pub(crate) async fn plan(core: &Core, command: &CommandRecord) -> Result<Plan, StoreError> {
    let now = core.config.clock.now();
    match &command.payload {
        CommandPayload::RegisterOauthApplication {
            client_id,
            name,
            description,
            redirect_uri,
            scopes,
        } => {
            let application = Application {
                id: command.id.0,
                profile_id: command.profile_id,
                name: name.clone(),
                description: description.clone(),
                client_id: client_id.clone(),
                secret_hash: None,
                redirect_uri: redirect_uri.clone(),
                scopes: scopes.clone(),
                created_at: now,
                configuration_retrieved_at: None,
            };
            Ok(Plan::succeed(
                vec![effect(OauthEffect::CreateApplication(application))],
                json!({ "applicationId": command.id.to_string(), "name": name }),
            ))
        }
        CommandPayload::RequestOauthCode {
            application_id,
            client_id,
            nonce,
            scopes,
        } => {
            let Some(application) = core.store.oauth_application(*application_id).await? else {
                return Ok(Plan::fail(Reason::OauthUnknownClient));
            };
            if core.store.oauth_nonce_used(*application_id, nonce).await? {
                return Ok(Plan::fail(Reason::OauthNonceReused));
            }
            let granted = oauth::granted(&application.scopes, scopes);
            if granted.is_empty() {
                return Ok(Plan::fail(Reason::OauthScopeDenied));
            }
            let expires_at = now.plus_seconds(CODE_TTL_SECONDS);
            let request = oauth::AuthRequest {
                id: command.id,
                application_id: *application_id,
                profile_id: command.profile_id,
                nonce: nonce.clone(),
                scopes: granted.clone(),
                expires_at,
                code_hash: None,
                exchanged_at: None,
                grant_id: None,
            };
            Ok(Plan::succeed(
                vec![effect(OauthEffect::CreateRequest(request))],
                json!({
                    "requestId": command.id.to_string(),
                    "clientId": client_id,
                    "applicationName": application.name,
                    "scope": oauth::spaced(&granted),
                    "scopes": granted,
                    "redirectUri": application.redirect_uri,
                    "expiresAt": expires_at.rfc3339(),
                }),
            ))
        }
        _ => Err(StoreError::Corrupt(format!(
            "{} is not an OAuth command",
            command.payload.kind()
        ))),
    }
}

/// What the list and the configuration show of an application (never the secret).
pub fn application_json(a: &Application) -> Value {
    json!({
        "applicationId": a.id.to_string(),
        "name": a.name,
        "description": a.description,
        "clientId": a.client_id,
        "redirectUri": a.redirect_uri,
        "scopes": a.scopes,
        "configurationRetrieved": a.configuration_retrieved_at.is_some(),
        "createdAt": a.created_at.rfc3339(),
    })
}

impl Engine {
    /// §3.1.
    pub async fn register_oauth_application(
        &self,
        caller: &Caller,
        input: ApplicationInput,
    ) -> Result<CommandId, Error> {
        let name = input.name.trim().to_owned();
        if name.is_empty() {
            return Err(Error::missing("name"));
        }
        if name.chars().count() > 100 {
            return Err(Error::out_of_range("name", "1..100 characters"));
        }
        if let Some(d) = &input.description
            && d.chars().count() > 500
        {
            return Err(Error::out_of_range("description", "0..500 characters"));
        }
        if !oauth::valid_redirect_uri(&input.redirect_uri) {
            return Err(Error::new(Reason::OauthInvalidRedirectUri).with_field("redirectUri"));
        }
        let command = self.command_for(
            caller,
            CommandPayload::RegisterOauthApplication {
                client_id: oauth::new_client_id(),
                name,
                description: input.description,
                redirect_uri: input.redirect_uri,
                scopes: input.scopes,
            },
        );
        self.accept(command).await
    }

    /// An application of the caller's profile, once its registration succeeded.
    async fn owned_application(&self, caller: &Caller, id: Uuid) -> Result<Application, Error> {
        let application = self
            .store
            .oauth_application(id)
            .await?
            .ok_or(Reason::OauthApplicationNotFound)?;
        if application.profile_id != caller.profile_id {
            return Err(Reason::OauthNotOwner.into());
        }
        Ok(application)
    }

    /// §3.2: single use; the secret is generated now and only its digest kept.
    pub async fn oauth_configuration(
        &self,
        caller: &Caller,
        application_id: Uuid,
    ) -> Result<(Application, Secret), Error> {
        let application = self.owned_application(caller, application_id).await?;
        if application.configuration_retrieved_at.is_some() {
            return Err(Reason::OauthAlreadyRetrieved.into());
        }
        let secret = Secret::new(privicore_wire::generate_secret());
        self.store
            .apply(
                &[effect(OauthEffect::RetrieveConfiguration {
                    application_id,
                    secret_hash: secret.hash(),
                    at: self.config.clock.now(),
                })],
                None,
            )
            .await
            .map_err(business)?;
        Ok((application, secret))
    }

    /// §3.6.
    pub async fn oauth_applications(
        &self,
        caller: &Caller,
        name: Option<Match>,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (rows, total) = self
            .store
            .oauth_applications(caller.profile_id, name.as_ref(), page)
            .await?;
        let items = rows
            .into_iter()
            .map(|(a, grants)| {
                let mut item = application_json(&a);
                item["activeGrants"] = json!(grants);
                item
            })
            .collect();
        Ok((items, total))
    }

    /// §3.3: the caller is the consenting profile.
    pub async fn request_oauth_code(
        &self,
        caller: &Caller,
        client_id: &str,
        nonce: &str,
        scopes: Vec<String>,
    ) -> Result<CommandId, Error> {
        if !oauth::valid_nonce(nonce) {
            return Err(Error::new(Reason::OauthInvalidNonce).with_field("nonce"));
        }
        let application = self
            .store
            .oauth_application_by_client(client_id)
            .await?
            .ok_or(Reason::OauthUnknownClient)?;
        let command = self.command_for(
            caller,
            CommandPayload::RequestOauthCode {
                application_id: application.id,
                client_id: application.client_id,
                nonce: nonce.to_owned(),
                scopes,
            },
        );
        self.accept(command).await
    }

    /// The application these Basic client credentials name; `oauth.invalid_client` for
    /// any mismatch (compared as digests, in constant time).
    async fn client(&self, client_id: &str, secret: &Secret) -> Result<Application, Error> {
        let application = self
            .store
            .oauth_application_by_client(client_id)
            .await?
            .ok_or(Reason::OauthInvalidClient)?;
        match application.secret_hash {
            Some(stored) if stored == secret.hash() => Ok(application),
            _ => Err(Reason::OauthInvalidClient.into()),
        }
    }

    /// §3.4: the code is made now and handed out once.
    pub async fn retrieve_oauth_code(
        &self,
        client_id: &str,
        secret: &Secret,
        request_id: &str,
        nonce: &str,
    ) -> Result<(String, Secret, Timestamp), Error> {
        let application = self.client(client_id, secret).await?;
        let not_found = || Error::new(Reason::OauthAuthorizationRequestNotFound);
        let id: CommandId = request_id.trim().parse().map_err(|_| not_found())?;
        let Some(request) = self.store.oauth_request(id).await? else {
            // Still running (or held for a vote), or failed.
            return match self.store.command(id).await? {
                Some(c)
                    if matches!(c.state, privicore_domain::command::CommandState::Pending)
                        && matches!(&c.payload, CommandPayload::RequestOauthCode { application_id, .. } if *application_id == application.id) =>
                {
                    Err(Reason::OauthAuthorizationRequestPending.into())
                }
                _ => Err(not_found()),
            };
        };
        if request.application_id != application.id {
            return Err(not_found());
        }
        if !privicore_domain::secret::secrets_equal(request.nonce.as_bytes(), nonce.as_bytes()) {
            return Err(Reason::OauthNonceMismatch.into());
        }
        if request.expires_at <= self.config.clock.now() {
            return Err(Reason::OauthAuthorizationCodeExpired.into());
        }
        if request.code_hash.is_some() {
            return Err(Reason::OauthAlreadyRetrieved.into());
        }
        let code = Secret::generate(TokenKind::AuthorizationCode);
        self.store
            .apply(
                &[effect(OauthEffect::RetrieveCode {
                    request_id: id,
                    code_hash: code.hash(),
                })],
                None,
            )
            .await
            .map_err(business)?;
        Ok((application.client_id, code, request.expires_at))
    }

    /// A fresh access token of `grant`, as stored.
    fn access_token(grant: &Grant, access: &Secret, now: Timestamp) -> AuthToken {
        AuthToken {
            hash: access.hash(),
            profile_id: grant.profile_id,
            owner: TokenOwner::App {
                application_id: grant.application_id,
            },
            scopes: grant.scopes.clone(),
            issued_at: now,
            expires_at: now.plus_seconds(ACCESS_TTL_SECONDS),
            revoked_at: None,
        }
    }

    /// Revokes a grant and its access token: in the store, in the auth cache, and on the
    /// sockets joined with the token (which are told `auth.token_revoked`).
    async fn revoke_grant(&self, grant_id: Uuid) -> Result<(), Error> {
        self.store
            .apply(
                &[effect(OauthEffect::RevokeGrant {
                    grant_id,
                    at: self.config.clock.now(),
                })],
                None,
            )
            .await?;
        // Read back once revoked: no rotation can follow, so this is the token the store
        // revoked, even if a rotation ran between the caller's read and this write.
        let Some(grant) = self.store.oauth_grant(grant_id).await? else {
            return Ok(());
        };
        self.auth_cache.forget_token(&grant.access_hash);
        let notice = BusEvent::TokenEnded {
            token: grant.access_hash,
            code: Reason::AuthTokenRevoked.code().into(),
        };
        if let Err(error) = self.bus.publish(notice).await {
            tracing::warn!(%error, "could not announce a revoked grant");
        }
        Ok(())
    }

    /// §3.5: a code is exchangeable once; presenting it again revokes the grant it made.
    pub async fn obtain_oauth_token(
        &self,
        client_id: &str,
        secret: &Secret,
        code: &str,
    ) -> Result<IssuedTokens, Error> {
        let application = self.client(client_id, secret).await?;
        let invalid = || Error::new(Reason::OauthInvalidAuthorizationCode);
        let request = self
            .store
            .oauth_request_by_code(&TokenHash::of(code))
            .await?
            .filter(|r| r.application_id == application.id)
            .ok_or_else(invalid)?;
        if request.exchanged_at.is_some() {
            self.revoke_leaked_code_grant(request.id).await?;
            return Err(invalid());
        }
        let now = self.config.clock.now();
        if request.expires_at <= now {
            return Err(Reason::OauthAuthorizationCodeExpired.into());
        }
        let access = Secret::generate(TokenKind::Access);
        let refresh = Secret::generate(TokenKind::Refresh);
        let grant = Grant {
            id: Uuid::now_v7(),
            profile_id: request.profile_id,
            application_id: application.id,
            scopes: request.scopes.clone(),
            access_hash: access.hash(),
            refresh_hash: refresh.hash(),
            refresh_expires_at: now.plus_seconds(REFRESH_TTL_SECONDS),
            created_at: now,
            revoked_at: None,
        };
        let token = Self::access_token(&grant, &access, now);
        let applied = self
            .store
            .apply(
                &[
                    effect(OauthEffect::ExchangeCode {
                        request_id: request.id,
                        grant: grant.clone(),
                        at: now,
                    }),
                    Effect::InsertAuthToken(token.clone()),
                ],
                None,
            )
            .await;
        if let Err(StoreError::Conflict(_)) = applied {
            // Exchanged concurrently: the same code twice.
            self.revoke_leaked_code_grant(request.id).await?;
            return Err(invalid());
        }
        applied?;
        Ok(IssuedTokens {
            client_id: application.client_id,
            access,
            refresh,
            scopes: grant.scopes,
            expires_at: token.expires_at,
            refresh_expires_at: grant.refresh_expires_at,
        })
    }

    /// A code presented after its exchange has leaked: the grant it made ends.
    async fn revoke_leaked_code_grant(&self, request: CommandId) -> Result<(), Error> {
        let grant_id = self
            .store
            .oauth_request(request)
            .await?
            .and_then(|r| r.grant_id);
        if let Some(grant_id) = grant_id {
            // Its current access token (after refreshes, not the first one) is revoked.
            self.revoke_grant(grant_id).await?;
        }
        Ok(())
    }

    /// §3.8: rotates both tokens; a consumed refresh token revokes the whole grant.
    pub async fn refresh_oauth_token(
        &self,
        access: &str,
        refresh: &str,
    ) -> Result<IssuedTokens, Error> {
        let access_hash = TokenHash::of(access);
        let (grant, used) = self
            .store
            .oauth_grant_by_refresh(&TokenHash::of(refresh))
            .await?
            .ok_or(Reason::OauthInvalidRefreshToken)?;
        if used {
            return Err(self.reused(grant.id, grant.revoked_at.is_some()).await?);
        }
        if grant.revoked_at.is_some() {
            return Err(Reason::OauthInvalidAccessToken.into());
        }
        // The access token may be expired (and even purged) but not revoked, and must be
        // the grant's current one: an unknown or revoked token is refused as such, a live
        // token of another pair means the refresh token is not its partner.
        let presented = self.store.auth_token(&access_hash).await?;
        if presented.as_ref().is_some_and(|t| t.revoked_at.is_some()) {
            // A concurrent refresh with the same pair may have just rotated it: then this
            // is a second use of the refresh token, and the grant ends.
            return Err(self
                .refusal_or_reuse(refresh, Reason::OauthInvalidAccessToken)
                .await?);
        }
        if grant.access_hash != access_hash {
            return Err(match presented {
                Some(_) => Reason::OauthInvalidRefreshToken,
                None => Reason::OauthInvalidAccessToken,
            }
            .into());
        }
        let now = self.config.clock.now();
        if grant.refresh_expires_at <= now || grant.ends_at() <= now {
            return Err(Reason::OauthRefreshTokenExpired.into());
        }
        let application = self
            .store
            .oauth_application(grant.application_id)
            .await?
            .ok_or(Reason::OauthInvalidAccessToken)?;
        let new_access = Secret::generate(TokenKind::Access);
        let new_refresh = Secret::generate(TokenKind::Refresh);
        let refresh_expires_at = now.plus_seconds(REFRESH_TTL_SECONDS).min(grant.ends_at());
        let token = Self::access_token(&grant, &new_access, now);
        let rotated = self
            .store
            .apply(
                &[
                    effect(OauthEffect::RotateGrant {
                        grant_id: grant.id,
                        old_refresh: grant.refresh_hash,
                        access_hash: new_access.hash(),
                        refresh_hash: new_refresh.hash(),
                        refresh_expires_at,
                        at: now,
                    }),
                    Effect::InsertAuthToken(token.clone()),
                ],
                None,
            )
            .await;
        if let Err(StoreError::Conflict(_)) = rotated {
            // Rotated concurrently: this refresh token was used twice.
            return Err(self.reused(grant.id, false).await?);
        }
        rotated?;
        self.auth_cache.forget_token(&access_hash);
        let notice = BusEvent::TokenEnded {
            token: access_hash,
            code: Reason::AuthTokenRevoked.code().into(),
        };
        if let Err(error) = self.bus.publish(notice).await {
            tracing::warn!(%error, "could not announce a rotated access token");
        }
        Ok(IssuedTokens {
            client_id: application.client_id,
            access: new_access,
            refresh: new_refresh,
            scopes: grant.scopes,
            expires_at: token.expires_at,
            refresh_expires_at,
        })
    }

    /// `reason`, unless the refresh token has been consumed meanwhile: then the grant is
    /// revoked and the refusal says the token was reused.
    async fn refusal_or_reuse(&self, refresh: &str, reason: Reason) -> Result<Error, Error> {
        match self
            .store
            .oauth_grant_by_refresh(&TokenHash::of(refresh))
            .await?
        {
            Some((grant, true)) => self.reused(grant.id, grant.revoked_at.is_some()).await,
            _ => Ok(reason.into()),
        }
    }

    /// A refresh token presented a second time: its grant ends (unless it already has).
    async fn reused(&self, grant_id: Uuid, already_revoked: bool) -> Result<Error, Error> {
        if !already_revoked {
            self.revoke_grant(grant_id).await?;
        }
        Ok(Reason::OauthRefreshTokenReused.into())
    }

    /// §3.7: what a live access token may do.
    pub async fn oauth_scope(&self, access: &str) -> Result<Value, Error> {
        let invalid = || Error::new(Reason::OauthInvalidAccessToken);
        let token = self
            .store
            .auth_token(&TokenHash::of(access))
            .await?
            .ok_or_else(invalid)?;
        let TokenOwner::App { application_id } = token.owner else {
            return Err(invalid());
        };
        if token.revoked_at.is_some() || token.expires_at <= self.config.clock.now() {
            return Err(invalid());
        }
        let application = self
            .store
            .oauth_application(application_id)
            .await?
            .ok_or_else(invalid)?;
        Ok(json!({
            "applicationId": application_id.to_string(),
            "clientId": application.client_id,
            "profileId": token.profile_id.to_string(),
            "scope": oauth::spaced(&token.scopes),
            "scopes": token.scopes,
            "expiresAt": token.expires_at.rfc3339(),
        }))
    }
}
