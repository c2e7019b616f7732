mod data;

use crate::db::{self, is_unique_violation, unavailable};
use privicore_domain::auth::TokenOwner;
use privicore_domain::data_token::DataToken;
use privicore_domain::effect::Effect;
use privicore_domain::ports::StoreError;
use rusqlite::{Connection, params};

pub use data::token_row_written;

/// Applies `effects`; the token rows they write, as written, go to `written`, and the
/// spool files whose rows they dropped to `dropped`.
pub fn apply_in(
    conn: &Connection,
    effects: &[Effect],
    written: &mut Vec<DataToken>,
    dropped: &mut crate::spool::Dropped,
) -> Result<Vec<u64>, StoreError> {
    effects
        .iter()
        .map(|effect| one(conn, effect, written, dropped))
        .collect()
}

fn one(
    conn: &Connection,
    effect: &Effect,
    written: &mut Vec<DataToken>,
    dropped: &mut crate::spool::Dropped,
) -> Result<u64, StoreError> {
    match effect {
        Effect::CreateProfile(p) => conn
            .prepare_cached(
                "INSERT INTO profiles (id, username, username_key, kind, status, password_hash, public_key, public_key_registered_at, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    p.id.to_string(),
                    p.username,
                    privicore_domain::profile::username_key(&p.username),
                    p.kind.as_str(),
                    p.status.as_str(),
                    p.password_hash.as_ref().map(|h| h.as_phc().to_owned()),
                    p.public_key.as_ref().map(|k| k.public_key.clone()),
                    p.public_key.as_ref().map(|k| k.registered_at.unix()),
                    p.created_at.unix(),
                ])
            })
            .map(|n| n as u64)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::UsernameTaken
                } else {
                    unavailable(e)
                }
            }),
        Effect::SetPassword { profile_id, hash } => db::exec(
            conn,
            "UPDATE profiles SET password_hash = ? WHERE id = ?",
            params![hash.as_phc(), profile_id.to_string()],
        ),
        Effect::SetPublicKey {
            profile_id,
            public_key,
            at,
        } => db::exec(
            conn,
            "UPDATE profiles SET public_key = ?, public_key_registered_at = ? WHERE id = ?",
            params![public_key, at.unix(), profile_id.to_string()],
        ),
        Effect::InsertAuthToken(t) => {
            let application_id = match t.owner {
                TokenOwner::Profile => None,
                TokenOwner::App { application_id } => Some(application_id.to_string()),
            };
            db::exec(
                conn,
                "INSERT INTO auth_tokens (hash, profile_id, application_id, scopes, issued_at, expires_at, revoked_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params![
                    t.hash.to_hex(),
                    t.profile_id.to_string(),
                    application_id,
                    t.scopes.join(" "),
                    t.issued_at.unix(),
                    t.expires_at.unix(),
                    t.revoked_at.map(|r| r.unix()),
                ],
            )
        }
        Effect::RevokeAuthToken { hash, at } => db::exec(
            conn,
            "UPDATE auth_tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
            params![at.unix(), hash.to_hex()],
        ),
        Effect::RevokeProfileTokens {
            profile_id,
            keep,
            at,
        } => db::exec(
            conn,
            "UPDATE auth_tokens SET revoked_at = ?
             WHERE profile_id = ? AND revoked_at IS NULL AND expires_at > ? AND hash <> ?",
            params![
                at.unix(),
                profile_id.to_string(),
                at.unix(),
                keep.map(|k| k.to_hex()).unwrap_or_default(),
            ],
        ),
        Effect::PutQrToken(q) => db::exec(
            conn,
            "INSERT INTO qr_tokens (profile_id, hash, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (profile_id) DO UPDATE SET hash = excluded.hash, expires_at = excluded.expires_at",
            params![q.profile_id.to_string(), q.hash.to_hex(), q.expires_at.unix()],
        ),
        Effect::Data(data) => data::apply(conn, data, written, dropped),
        Effect::Governance(effect) => crate::governance::apply(conn, effect),
        Effect::Voting(effect) => crate::voting::apply(conn, effect),
        Effect::Oauth(effect) => crate::oauth::apply(conn, effect),
        Effect::Directory(effect) => crate::directory::apply(conn, effect),
    }
}
