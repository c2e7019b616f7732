mod data;

use crate::db::{self, is_unique_violation, unavailable};
use privicore_domain::auth::TokenOwner;
use privicore_domain::effect::Effect;
use privicore_domain::ports::StoreError;
use sqlx::PgConnection;

/// Applies `effects` in order inside the caller's transaction.
pub async fn apply_in(conn: &mut PgConnection, effects: &[Effect]) -> Result<Vec<u64>, StoreError> {
    let mut affected = Vec::with_capacity(effects.len());
    for effect in effects {
        affected.push(one(&mut *conn, effect).await?);
    }
    Ok(affected)
}

async fn one(conn: &mut PgConnection, effect: &Effect) -> Result<u64, StoreError> {
    match effect {
        Effect::CreateProfile(p) => sqlx::query(
            "INSERT INTO profiles (id, username, username_key, kind, status, password_hash, public_key, public_key_registered_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(p.id.to_string())
        .bind(&p.username)
        .bind(privicore_domain::profile::username_key(&p.username))
        .bind(p.kind.as_str())
        .bind(p.status.as_str())
        .bind(p.password_hash.as_ref().map(|h| h.as_phc().to_owned()))
        .bind(p.public_key.as_ref().map(|k| k.public_key.clone()))
        .bind(p.public_key.as_ref().map(|k| k.registered_at.unix()))
        .bind(p.created_at.unix())
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::UsernameTaken
            } else {
                unavailable(e)
            }
        }),
        Effect::SetPassword { profile_id, hash } => {
            db::exec(
                conn,
                sqlx::query("UPDATE profiles SET password_hash = $1 WHERE id = $2")
                    .bind(hash.as_phc())
                    .bind(profile_id.to_string()),
            )
            .await
        }
        Effect::SetPublicKey {
            profile_id,
            public_key,
            at,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE profiles SET public_key = $1, public_key_registered_at = $2 WHERE id = $3",
                )
                .bind(public_key)
                .bind(at.unix())
                .bind(profile_id.to_string()),
            )
            .await
        }
        Effect::InsertAuthToken(t) => {
            let application_id = match t.owner {
                TokenOwner::Profile => None,
                TokenOwner::App { application_id } => Some(application_id.to_string()),
            };
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO auth_tokens (hash, profile_id, application_id, scopes, issued_at, expires_at, revoked_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(t.hash.to_hex())
                .bind(t.profile_id.to_string())
                .bind(application_id)
                .bind(t.scopes.join(" "))
                .bind(t.issued_at.unix())
                .bind(t.expires_at.unix())
                .bind(t.revoked_at.map(|r| r.unix())),
            )
            .await
        }
        Effect::RevokeAuthToken { hash, at } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE auth_tokens SET revoked_at = $1 WHERE hash = $2 AND revoked_at IS NULL",
                )
                .bind(at.unix())
                .bind(hash.to_hex()),
            )
            .await
        }
        Effect::RevokeProfileTokens {
            profile_id,
            keep,
            at,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE auth_tokens SET revoked_at = $1
                     WHERE profile_id = $2 AND revoked_at IS NULL AND expires_at > $1 AND hash <> $3",
                )
                .bind(at.unix())
                .bind(profile_id.to_string())
                .bind(keep.map(|k| k.to_hex()).unwrap_or_default()),
            )
            .await
        }
        Effect::PutQrToken(q) => {
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO qr_tokens (profile_id, hash, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (profile_id) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at",
                )
                .bind(q.profile_id.to_string())
                .bind(q.hash.to_hex())
                .bind(q.expires_at.unix()),
            )
            .await
        }
        Effect::Data(effect) => data::apply(conn, effect).await,
        Effect::Governance(effect) => crate::governance::apply(conn, effect).await,
        Effect::Voting(effect) => crate::voting::apply(conn, effect).await,
        Effect::Oauth(effect) => crate::oauth::apply(conn, effect).await,
        Effect::Directory(effect) => crate::directory::apply(conn, effect).await,
    }
}
