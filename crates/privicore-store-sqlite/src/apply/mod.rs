mod data;

use crate::unavailable;
use privicore_domain::auth::TokenOwner;
use privicore_domain::effect::Effect;
use privicore_domain::ports::StoreError;
use sqlx::SqliteConnection;

pub async fn apply_in(
    conn: &mut SqliteConnection,
    effects: &[Effect],
) -> Result<Vec<u64>, StoreError> {
    let mut affected = Vec::with_capacity(effects.len());
    for effect in effects {
        affected.push(one(conn, effect).await?);
    }
    Ok(affected)
}

async fn one(conn: &mut SqliteConnection, effect: &Effect) -> Result<u64, StoreError> {
    let result = match effect {
        Effect::CreateProfile(p) => sqlx::query(
            "INSERT INTO profiles (id, username, username_key, kind, status, password_hash, public_key, public_key_registered_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::UsernameTaken,
            _ => unavailable(e),
        })?,
        Effect::SetPassword { profile_id, hash } => {
            sqlx::query("UPDATE profiles SET password_hash = ? WHERE id = ?")
                .bind(hash.as_phc())
                .bind(profile_id.to_string())
                .execute(conn)
                .await
                .map_err(unavailable)?
        }
        Effect::SetPublicKey {
            profile_id,
            public_key,
            at,
        } => sqlx::query(
            "UPDATE profiles SET public_key = ?, public_key_registered_at = ? WHERE id = ?",
        )
        .bind(public_key)
        .bind(at.unix())
        .bind(profile_id.to_string())
        .execute(conn)
        .await
        .map_err(unavailable)?,
        Effect::InsertAuthToken(t) => {
            let application_id = match t.owner {
                TokenOwner::Profile => None,
                TokenOwner::App { application_id } => Some(application_id.to_string()),
            };
            sqlx::query(
                "INSERT INTO auth_tokens (hash, profile_id, application_id, scopes, issued_at, expires_at, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(t.hash.to_hex())
            .bind(t.profile_id.to_string())
            .bind(application_id)
            .bind(t.scopes.join(" "))
            .bind(t.issued_at.unix())
            .bind(t.expires_at.unix())
            .bind(t.revoked_at.map(|r| r.unix()))
            .execute(conn)
            .await
            .map_err(unavailable)?
        }
        Effect::RevokeAuthToken { hash, at } => {
            sqlx::query("UPDATE auth_tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL")
                .bind(at.unix())
                .bind(hash.to_hex())
                .execute(conn)
                .await
                .map_err(unavailable)?
        }
        Effect::RevokeProfileTokens {
            profile_id,
            keep,
            at,
        } => sqlx::query(
            "UPDATE auth_tokens SET revoked_at = ?
             WHERE profile_id = ? AND revoked_at IS NULL AND expires_at > ? AND hash <> ?",
        )
        .bind(at.unix())
        .bind(profile_id.to_string())
        .bind(at.unix())
        .bind(keep.map(|k| k.to_hex()).unwrap_or_default())
        .execute(conn)
        .await
        .map_err(unavailable)?,
        Effect::PutQrToken(q) => sqlx::query(
            "INSERT INTO qr_tokens (profile_id, hash, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (profile_id) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at",
        )
        .bind(q.profile_id.to_string())
        .bind(q.hash.to_hex())
        .bind(q.expires_at.unix())
        .execute(conn)
        .await
        .map_err(unavailable)?,
        Effect::Data(data) => return data::apply(conn, data).await,
    };
    Ok(result.rows_affected())
}
