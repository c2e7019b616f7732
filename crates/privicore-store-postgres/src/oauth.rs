//! OAuth rows: applications, authorization requests, grants and used refresh tokens; and
//! the effects that write them.

use crate::data::{Paged, push_match};
use crate::db::{self, is_unique_violation, unavailable};
use crate::rows::{self, Col};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::oauth::{Application, AuthRequest, Grant, OauthEffect, name_key};
use privicore_domain::ports::StoreError;
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Reason, Timestamp};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use uuid::Uuid;

fn hash(r: &PgRow, column: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(&r.col::<String>(column)?)
        .ok_or_else(|| StoreError::Corrupt(format!("unreadable {column}")))
}

fn opt_hash(r: &PgRow, column: &str) -> Result<Option<TokenHash>, StoreError> {
    match r.col::<Option<String>>(column)? {
        None => Ok(None),
        Some(_) => hash(r, column).map(Some),
    }
}

fn scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn application(r: &PgRow) -> Result<Application, StoreError> {
    Ok(Application {
        id: rows::uuid(&r.col::<String>("id")?)?,
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        name: r.col("name")?,
        description: r.col("description")?,
        client_id: r.col("client_id")?,
        secret_hash: opt_hash(r, "secret_hash")?,
        redirect_uri: r.col("redirect_uri")?,
        scopes: scopes(&r.col::<String>("scopes")?),
        created_at: Timestamp(r.col("created_at")?),
        configuration_retrieved_at: rows::ts(r, "configuration_retrieved_at")?,
    })
}

fn listed(r: &PgRow) -> Result<(Application, u64), StoreError> {
    Ok((application(r)?, r.col::<i64>("active_grants")? as u64))
}

fn request(r: &PgRow) -> Result<AuthRequest, StoreError> {
    Ok(AuthRequest {
        id: CommandId(rows::uuid(&r.col::<String>("id")?)?),
        application_id: rows::uuid(&r.col::<String>("application_id")?)?,
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        nonce: r.col("nonce")?,
        scopes: scopes(&r.col::<String>("scopes")?),
        expires_at: Timestamp(r.col("expires_at")?),
        code_hash: opt_hash(r, "code_hash")?,
        exchanged_at: rows::ts(r, "exchanged_at")?,
        grant_id: r
            .col::<Option<String>>("grant_id")?
            .map(|g| rows::uuid(&g))
            .transpose()?,
    })
}

fn grant(r: &PgRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: rows::uuid(&r.col::<String>("id")?)?,
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        application_id: rows::uuid(&r.col::<String>("application_id")?)?,
        scopes: scopes(&r.col::<String>("scopes")?),
        access_hash: hash(r, "access_hash")?,
        refresh_hash: hash(r, "refresh_hash")?,
        refresh_expires_at: Timestamp(r.col("refresh_expires_at")?),
        created_at: Timestamp(r.col("created_at")?),
        revoked_at: rows::ts(r, "revoked_at")?,
    })
}

pub async fn application_by_id(
    c: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Application>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM oauth_applications WHERE id = $1").bind(id.to_string()),
        application,
    )
    .await
}

pub async fn application_by_client(
    c: &mut PgConnection,
    client_id: &str,
) -> Result<Option<Application>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM oauth_applications WHERE client_id = $1").bind(client_id),
        application,
    )
    .await
}

pub async fn applications(
    c: &mut PgConnection,
    profile: ProfileId,
    name: Option<&Match>,
    page: Page,
) -> Result<(Vec<(Application, u64)>, u64), StoreError> {
    Paged {
        table: "oauth_applications",
        columns: "*, (SELECT COUNT(*) FROM oauth_grants g \
                  WHERE g.application_id = oauth_applications.id AND g.revoked_at IS NULL) \
                  AS active_grants",
        tie_break: "id",
        page,
    }
    .run(
        c,
        |q| {
            q.push(" WHERE profile_id = ").bind(profile.to_string());
            if let Some(m) = name {
                push_match(q, "name", m);
            }
        },
        listed,
    )
    .await
}

pub async fn request_by_id(
    c: &mut PgConnection,
    id: CommandId,
) -> Result<Option<AuthRequest>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM oauth_requests WHERE id = $1").bind(id.to_string()),
        request,
    )
    .await
}

pub async fn request_by_code(
    c: &mut PgConnection,
    code: &TokenHash,
) -> Result<Option<AuthRequest>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM oauth_requests WHERE code_hash = $1").bind(code.to_hex()),
        request,
    )
    .await
}

pub async fn nonce_used(
    c: &mut PgConnection,
    application: Uuid,
    nonce: &str,
) -> Result<bool, StoreError> {
    Ok(db::count(
        c,
        sqlx::query("SELECT COUNT(*) FROM oauth_requests WHERE application_id = $1 AND nonce = $2")
            .bind(application.to_string())
            .bind(nonce),
    )
    .await?
        > 0)
}

pub async fn live_grants(c: &mut PgConnection, profile: ProfileId) -> Result<u64, StoreError> {
    db::count(
        c,
        sqlx::query(
            "SELECT COUNT(*) FROM oauth_grants WHERE profile_id = $1 AND revoked_at IS NULL",
        )
        .bind(profile.to_string()),
    )
    .await
}

pub async fn purge(c: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    let requests = db::exec(
        &mut *c,
        sqlx::query("DELETE FROM oauth_requests WHERE expires_at < $1").bind(before.unix()),
    )
    .await?;
    let used = db::exec(
        &mut *c,
        sqlx::query(
            "DELETE FROM oauth_used_refresh WHERE grant_id IN
               (SELECT id FROM oauth_grants WHERE refresh_expires_at < $1)",
        )
        .bind(before.unix()),
    )
    .await?;
    let grants = db::exec(
        c,
        sqlx::query("DELETE FROM oauth_grants WHERE refresh_expires_at < $1").bind(before.unix()),
    )
    .await?;
    Ok(requests + used + grants)
}

pub async fn grant_by_id(c: &mut PgConnection, id: Uuid) -> Result<Option<Grant>, StoreError> {
    db::one(
        c,
        sqlx::query("SELECT * FROM oauth_grants WHERE id = $1").bind(id.to_string()),
        grant,
    )
    .await
}

/// The grant whose current refresh token is `refresh` (`false`), or that once had it and
/// rotated it away (`true`).
pub async fn grant_by_refresh(
    c: &mut PgConnection,
    refresh: &TokenHash,
) -> Result<Option<(Grant, bool)>, StoreError> {
    if let Some(g) = db::one(
        &mut *c,
        sqlx::query("SELECT * FROM oauth_grants WHERE refresh_hash = $1").bind(refresh.to_hex()),
        grant,
    )
    .await?
    {
        return Ok(Some((g, false)));
    }
    Ok(db::one(
        c,
        sqlx::query(
            "SELECT g.* FROM oauth_used_refresh u JOIN oauth_grants g ON g.id = u.grant_id \
             WHERE u.hash = $1",
        )
        .bind(refresh.to_hex()),
        grant,
    )
    .await?
    .map(|g| (g, true)))
}

fn conflict_if_none(changed: u64, reason: Reason) -> Result<u64, StoreError> {
    if changed == 0 {
        Err(StoreError::Conflict(reason))
    } else {
        Ok(changed)
    }
}

async fn revoke_access(
    c: &mut PgConnection,
    access: &TokenHash,
    at: Timestamp,
) -> Result<u64, StoreError> {
    db::exec(
        c,
        sqlx::query(
            "UPDATE auth_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL",
        )
        .bind(at.unix())
        .bind(access.to_hex()),
    )
    .await
}

fn unique_or(e: sqlx::Error, reason: Reason) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(reason)
    } else {
        unavailable(e)
    }
}

pub async fn apply(c: &mut PgConnection, effect: &OauthEffect) -> Result<u64, StoreError> {
    match effect {
        OauthEffect::CreateApplication(a) => sqlx::query(
            "INSERT INTO oauth_applications (id, profile_id, name, name_key, description, client_id,
               secret_hash, redirect_uri, scopes, created_at, configuration_retrieved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(a.id.to_string())
        .bind(a.profile_id.to_string())
        .bind(&a.name)
        .bind(name_key(&a.name))
        .bind(&a.description)
        .bind(&a.client_id)
        .bind(a.secret_hash.map(|h| h.to_hex()))
        .bind(&a.redirect_uri)
        .bind(a.scopes.join(" "))
        .bind(a.created_at.unix())
        .bind(a.configuration_retrieved_at.map(|t| t.unix()))
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| unique_or(e, Reason::OauthApplicationNameTaken)),
        OauthEffect::RetrieveConfiguration {
            application_id,
            secret_hash,
            at,
        } => conflict_if_none(
            db::exec(
                c,
                sqlx::query(
                    "UPDATE oauth_applications SET secret_hash = $1, configuration_retrieved_at = $2
                     WHERE id = $3 AND configuration_retrieved_at IS NULL",
                )
                .bind(secret_hash.to_hex())
                .bind(at.unix())
                .bind(application_id.to_string()),
            )
            .await?,
            Reason::OauthAlreadyRetrieved,
        ),
        OauthEffect::CreateRequest(r) => sqlx::query(
            "INSERT INTO oauth_requests (id, application_id, profile_id, nonce, scopes, expires_at,
               code_hash, exchanged_at, grant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.id.to_string())
        .bind(r.application_id.to_string())
        .bind(r.profile_id.to_string())
        .bind(&r.nonce)
        .bind(r.scopes.join(" "))
        .bind(r.expires_at.unix())
        .bind(r.code_hash.map(|h| h.to_hex()))
        .bind(r.exchanged_at.map(|t| t.unix()))
        .bind(r.grant_id.map(|g| g.to_string()))
        .execute(c)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| unique_or(e, Reason::OauthNonceReused)),
        OauthEffect::RetrieveCode {
            request_id,
            code_hash,
        } => conflict_if_none(
            db::exec(
                c,
                sqlx::query(
                    "UPDATE oauth_requests SET code_hash = $1 WHERE id = $2 AND code_hash IS NULL",
                )
                .bind(code_hash.to_hex())
                .bind(request_id.to_string()),
            )
            .await?,
            Reason::OauthAlreadyRetrieved,
        ),
        OauthEffect::ExchangeCode {
            request_id,
            grant: g,
            at,
        } => {
            conflict_if_none(
                db::exec(
                    &mut *c,
                    sqlx::query(
                        "UPDATE oauth_requests SET exchanged_at = $1, grant_id = $2
                         WHERE id = $3 AND exchanged_at IS NULL",
                    )
                    .bind(at.unix())
                    .bind(g.id.to_string())
                    .bind(request_id.to_string()),
                )
                .await?,
                Reason::OauthInvalidAuthorizationCode,
            )?;
            db::exec(
                c,
                sqlx::query(
                    "INSERT INTO oauth_grants (id, profile_id, application_id, scopes, access_hash,
                       refresh_hash, refresh_expires_at, created_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(g.id.to_string())
                .bind(g.profile_id.to_string())
                .bind(g.application_id.to_string())
                .bind(g.scopes.join(" "))
                .bind(g.access_hash.to_hex())
                .bind(g.refresh_hash.to_hex())
                .bind(g.refresh_expires_at.unix())
                .bind(g.created_at.unix())
                .bind(g.revoked_at.map(|t| t.unix())),
            )
            .await
        }
        OauthEffect::RotateGrant {
            grant_id,
            old_refresh,
            access_hash,
            refresh_hash,
            refresh_expires_at,
            at,
        } => {
            // The SQLite adapter reads and then writes under its single writer. Here the
            // grant's row is locked first: a concurrent rotation with the same refresh
            // token waits, then finds the token rotated away and conflicts.
            let old_access = db::one(
                &mut *c,
                sqlx::query(
                    "SELECT access_hash FROM oauth_grants
                     WHERE id = $1 AND refresh_hash = $2 AND revoked_at IS NULL FOR UPDATE",
                )
                .bind(grant_id.to_string())
                .bind(old_refresh.to_hex()),
                |r| hash(r, "access_hash"),
            )
            .await?
            .ok_or(StoreError::Conflict(Reason::OauthRefreshTokenReused))?;
            db::exec(
                &mut *c,
                sqlx::query(
                    "UPDATE oauth_grants SET access_hash = $1, refresh_hash = $2, refresh_expires_at = $3
                     WHERE id = $4",
                )
                .bind(access_hash.to_hex())
                .bind(refresh_hash.to_hex())
                .bind(refresh_expires_at.unix())
                .bind(grant_id.to_string()),
            )
            .await?;
            sqlx::query("INSERT INTO oauth_used_refresh (hash, grant_id) VALUES ($1, $2)")
                .bind(old_refresh.to_hex())
                .bind(grant_id.to_string())
                .execute(&mut *c)
                .await
                .map_err(|e| unique_or(e, Reason::OauthRefreshTokenReused))?;
            revoke_access(c, &old_access, *at).await
        }
        OauthEffect::RevokeProfileGrants { profile_id, at } => {
            db::exec(
                &mut *c,
                sqlx::query(
                    "UPDATE auth_tokens SET revoked_at = $1 WHERE revoked_at IS NULL AND hash IN
                       (SELECT access_hash FROM oauth_grants WHERE profile_id = $2 AND revoked_at IS NULL)",
                )
                .bind(at.unix())
                .bind(profile_id.to_string()),
            )
            .await?;
            db::exec(
                c,
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $1 WHERE profile_id = $2 AND revoked_at IS NULL",
                )
                .bind(at.unix())
                .bind(profile_id.to_string()),
            )
            .await
        }
        OauthEffect::RevokeGrant { grant_id, at } => {
            // Locked, so a rotation cannot swap in a new access token between the read and
            // the revocation.
            let Some(g) = db::one(
                &mut *c,
                sqlx::query("SELECT * FROM oauth_grants WHERE id = $1 FOR UPDATE")
                    .bind(grant_id.to_string()),
                grant,
            )
            .await?
            else {
                return Ok(0);
            };
            revoke_access(&mut *c, &g.access_hash, *at).await?;
            db::exec(
                c,
                sqlx::query(
                    "UPDATE oauth_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(at.unix())
                .bind(grant_id.to_string()),
            )
            .await
        }
    }
}
