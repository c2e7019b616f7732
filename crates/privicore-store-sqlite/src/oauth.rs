//! OAuth rows (migration 0014): applications, authorization requests, grants and used
//! refresh tokens; and the effects that write them.

use crate::data::{Paged, push_match};
use crate::db::{self, is_unique_violation, unavailable};
use crate::rows::{self, Col};
use privicore_domain::data_token::{Match, Page};
use privicore_domain::oauth::{Application, AuthRequest, Grant, OauthEffect, name_key};
use privicore_domain::ports::StoreError;
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Reason, Timestamp};
use rusqlite::{Connection, Row, params};
use uuid::Uuid;

fn hash(r: &Row<'_>, column: &str) -> Result<TokenHash, StoreError> {
    TokenHash::from_hex(&r.col::<String>(column)?)
        .ok_or_else(|| StoreError::Corrupt(format!("unreadable {column}")))
}

fn opt_hash(r: &Row<'_>, column: &str) -> Result<Option<TokenHash>, StoreError> {
    match r.col::<Option<String>>(column)? {
        None => Ok(None),
        Some(_) => hash(r, column).map(Some),
    }
}

fn scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

fn application(r: &Row<'_>) -> Result<Application, StoreError> {
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
        configuration_retrieved_at: r
            .col::<Option<i64>>("configuration_retrieved_at")?
            .map(Timestamp),
    })
}

fn listed(r: &Row<'_>) -> Result<(Application, u64), StoreError> {
    Ok((application(r)?, r.col::<i64>("active_grants")? as u64))
}

fn request(r: &Row<'_>) -> Result<AuthRequest, StoreError> {
    Ok(AuthRequest {
        id: CommandId(rows::uuid(&r.col::<String>("id")?)?),
        application_id: rows::uuid(&r.col::<String>("application_id")?)?,
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        nonce: r.col("nonce")?,
        scopes: scopes(&r.col::<String>("scopes")?),
        expires_at: Timestamp(r.col("expires_at")?),
        code_hash: opt_hash(r, "code_hash")?,
        exchanged_at: r.col::<Option<i64>>("exchanged_at")?.map(Timestamp),
        grant_id: r
            .col::<Option<String>>("grant_id")?
            .map(|g| rows::uuid(&g))
            .transpose()?,
    })
}

fn grant(r: &Row<'_>) -> Result<Grant, StoreError> {
    Ok(Grant {
        id: rows::uuid(&r.col::<String>("id")?)?,
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        application_id: rows::uuid(&r.col::<String>("application_id")?)?,
        scopes: scopes(&r.col::<String>("scopes")?),
        access_hash: hash(r, "access_hash")?,
        refresh_hash: hash(r, "refresh_hash")?,
        refresh_expires_at: Timestamp(r.col("refresh_expires_at")?),
        created_at: Timestamp(r.col("created_at")?),
        revoked_at: r.col::<Option<i64>>("revoked_at")?.map(Timestamp),
    })
}

pub fn application_by_id(c: &Connection, id: Uuid) -> Result<Option<Application>, StoreError> {
    db::one(
        c,
        "SELECT * FROM oauth_applications WHERE id = ?",
        [id.to_string()],
        application,
    )
}

pub fn application_by_client(
    c: &Connection,
    client_id: &str,
) -> Result<Option<Application>, StoreError> {
    db::one(
        c,
        "SELECT * FROM oauth_applications WHERE client_id = ?",
        [client_id],
        application,
    )
}

pub fn applications(
    c: &Connection,
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
}

pub fn request_by_id(c: &Connection, id: CommandId) -> Result<Option<AuthRequest>, StoreError> {
    db::one(
        c,
        "SELECT * FROM oauth_requests WHERE id = ?",
        [id.to_string()],
        request,
    )
}

pub fn request_by_code(
    c: &Connection,
    code: &TokenHash,
) -> Result<Option<AuthRequest>, StoreError> {
    db::one(
        c,
        "SELECT * FROM oauth_requests WHERE code_hash = ?",
        [code.to_hex()],
        request,
    )
}

pub fn nonce_used(c: &Connection, application: Uuid, nonce: &str) -> Result<bool, StoreError> {
    Ok(db::count(
        c,
        "SELECT COUNT(*) FROM oauth_requests WHERE application_id = ? AND nonce = ?",
        params![application.to_string(), nonce],
    )? > 0)
}

pub fn live_grants(c: &Connection, profile: ProfileId) -> Result<u64, StoreError> {
    db::count(
        c,
        "SELECT COUNT(*) FROM oauth_grants WHERE profile_id = ? AND revoked_at IS NULL",
        [profile.to_string()],
    )
}

pub fn purge(c: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    let requests = db::exec(
        c,
        "DELETE FROM oauth_requests WHERE expires_at < ?",
        [before.unix()],
    )?;
    let used = db::exec(
        c,
        "DELETE FROM oauth_used_refresh WHERE grant_id IN
           (SELECT id FROM oauth_grants WHERE refresh_expires_at < ?)",
        [before.unix()],
    )?;
    let grants = db::exec(
        c,
        "DELETE FROM oauth_grants WHERE refresh_expires_at < ?",
        [before.unix()],
    )?;
    Ok(requests + used + grants)
}

pub fn grant_by_id(c: &Connection, id: Uuid) -> Result<Option<Grant>, StoreError> {
    db::one(
        c,
        "SELECT * FROM oauth_grants WHERE id = ?",
        [id.to_string()],
        grant,
    )
}

/// The grant whose current refresh token is `refresh` (`false`), or that once had it and
/// rotated it away (`true`).
pub fn grant_by_refresh(
    c: &Connection,
    refresh: &TokenHash,
) -> Result<Option<(Grant, bool)>, StoreError> {
    if let Some(g) = db::one(
        c,
        "SELECT * FROM oauth_grants WHERE refresh_hash = ?",
        [refresh.to_hex()],
        grant,
    )? {
        return Ok(Some((g, false)));
    }
    Ok(db::one(
        c,
        "SELECT g.* FROM oauth_used_refresh u JOIN oauth_grants g ON g.id = u.grant_id \
         WHERE u.hash = ?",
        [refresh.to_hex()],
        grant,
    )?
    .map(|g| (g, true)))
}

fn conflict_if_none(changed: u64, reason: Reason) -> Result<u64, StoreError> {
    if changed == 0 {
        Err(StoreError::Conflict(reason))
    } else {
        Ok(changed)
    }
}

fn revoke_access(c: &Connection, access: &TokenHash, at: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        c,
        "UPDATE auth_tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
        params![at.unix(), access.to_hex()],
    )
}

pub fn apply(c: &Connection, effect: &OauthEffect) -> Result<u64, StoreError> {
    match effect {
        OauthEffect::CreateApplication(a) => c
            .prepare_cached(
                "INSERT INTO oauth_applications (id, profile_id, name, name_key, description, client_id,
                   secret_hash, redirect_uri, scopes, created_at, configuration_retrieved_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    a.id.to_string(),
                    a.profile_id.to_string(),
                    a.name,
                    name_key(&a.name),
                    a.description,
                    a.client_id,
                    a.secret_hash.map(|h| h.to_hex()),
                    a.redirect_uri,
                    a.scopes.join(" "),
                    a.created_at.unix(),
                    a.configuration_retrieved_at.map(|t| t.unix()),
                ])
            })
            .map(|n| n as u64)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Reason::OauthApplicationNameTaken)
                } else {
                    unavailable(e)
                }
            }),
        OauthEffect::RetrieveConfiguration {
            application_id,
            secret_hash,
            at,
        } => conflict_if_none(
            db::exec(
                c,
                "UPDATE oauth_applications SET secret_hash = ?, configuration_retrieved_at = ?
                 WHERE id = ? AND configuration_retrieved_at IS NULL",
                params![secret_hash.to_hex(), at.unix(), application_id.to_string()],
            )?,
            Reason::OauthAlreadyRetrieved,
        ),
        OauthEffect::CreateRequest(r) => c
            .prepare_cached(
                "INSERT INTO oauth_requests (id, application_id, profile_id, nonce, scopes, expires_at,
                   code_hash, exchanged_at, grant_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.id.to_string(),
                    r.application_id.to_string(),
                    r.profile_id.to_string(),
                    r.nonce,
                    r.scopes.join(" "),
                    r.expires_at.unix(),
                    r.code_hash.map(|h| h.to_hex()),
                    r.exchanged_at.map(|t| t.unix()),
                    r.grant_id.map(|g| g.to_string()),
                ])
            })
            .map(|n| n as u64)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(Reason::OauthNonceReused)
                } else {
                    unavailable(e)
                }
            }),
        OauthEffect::RetrieveCode {
            request_id,
            code_hash,
        } => conflict_if_none(
            db::exec(
                c,
                "UPDATE oauth_requests SET code_hash = ? WHERE id = ? AND code_hash IS NULL",
                params![code_hash.to_hex(), request_id.to_string()],
            )?,
            Reason::OauthAlreadyRetrieved,
        ),
        OauthEffect::ExchangeCode {
            request_id,
            grant: g,
            at,
        } => {
            conflict_if_none(
                db::exec(
                    c,
                    "UPDATE oauth_requests SET exchanged_at = ?, grant_id = ?
                     WHERE id = ? AND exchanged_at IS NULL",
                    params![at.unix(), g.id.to_string(), request_id.to_string()],
                )?,
                Reason::OauthInvalidAuthorizationCode,
            )?;
            db::exec(
                c,
                "INSERT INTO oauth_grants (id, profile_id, application_id, scopes, access_hash,
                   refresh_hash, refresh_expires_at, created_at, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    g.id.to_string(),
                    g.profile_id.to_string(),
                    g.application_id.to_string(),
                    g.scopes.join(" "),
                    g.access_hash.to_hex(),
                    g.refresh_hash.to_hex(),
                    g.refresh_expires_at.unix(),
                    g.created_at.unix(),
                    g.revoked_at.map(|t| t.unix()),
                ],
            )
        }
        OauthEffect::RotateGrant {
            grant_id,
            old_refresh,
            access_hash,
            refresh_hash,
            refresh_expires_at,
            at,
        } => {
            let old_access = db::one(
                c,
                "SELECT access_hash FROM oauth_grants
                 WHERE id = ? AND refresh_hash = ? AND revoked_at IS NULL",
                params![grant_id.to_string(), old_refresh.to_hex()],
                |r| hash(r, "access_hash"),
            )?
            .ok_or(StoreError::Conflict(Reason::OauthRefreshTokenReused))?;
            db::exec(
                c,
                "UPDATE oauth_grants SET access_hash = ?, refresh_hash = ?, refresh_expires_at = ?
                 WHERE id = ?",
                params![
                    access_hash.to_hex(),
                    refresh_hash.to_hex(),
                    refresh_expires_at.unix(),
                    grant_id.to_string(),
                ],
            )?;
            db::exec(
                c,
                "INSERT INTO oauth_used_refresh (hash, grant_id) VALUES (?, ?)",
                params![old_refresh.to_hex(), grant_id.to_string()],
            )?;
            revoke_access(c, &old_access, *at)
        }
        OauthEffect::RevokeProfileGrants { profile_id, at } => {
            db::exec(
                c,
                "UPDATE auth_tokens SET revoked_at = ?1 WHERE revoked_at IS NULL AND hash IN
                   (SELECT access_hash FROM oauth_grants WHERE profile_id = ?2 AND revoked_at IS NULL)",
                params![at.unix(), profile_id.to_string()],
            )?;
            db::exec(
                c,
                "UPDATE oauth_grants SET revoked_at = ? WHERE profile_id = ? AND revoked_at IS NULL",
                params![at.unix(), profile_id.to_string()],
            )
        }
        OauthEffect::RevokeGrant { grant_id, at } => {
            let Some(g) = grant_by_id(c, *grant_id)? else {
                return Ok(0);
            };
            revoke_access(c, &g.access_hash, *at)?;
            db::exec(
                c,
                "UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                params![at.unix(), grant_id.to_string()],
            )
        }
    }
}
