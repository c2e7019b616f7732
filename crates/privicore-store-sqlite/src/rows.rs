//! Row → domain conversions; a row that does not convert is reported as corrupt.

use privicore_domain::auth::{AuthToken, TokenOwner};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::password::PasswordHash;
use privicore_domain::ports::StoreError;
use privicore_domain::profile::{Profile, ProfileKind, ProfileStatus, RegisteredKey};
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Timestamp};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

pub fn uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| corrupt("uuid"))
}

pub fn profile_id(text: &str) -> Result<ProfileId, StoreError> {
    uuid(text).map(ProfileId)
}

pub fn command_id(text: &str) -> Result<CommandId, StoreError> {
    uuid(text).map(CommandId)
}

pub fn profile(r: &SqliteRow) -> Result<Profile, StoreError> {
    let public_key = match (
        r.get::<Option<String>, _>("public_key"),
        r.get::<Option<i64>, _>("public_key_registered_at"),
    ) {
        (Some(public_key), Some(at)) => Some(RegisteredKey {
            public_key,
            registered_at: Timestamp(at),
        }),
        _ => None,
    };
    Ok(Profile {
        id: profile_id(&r.get::<String, _>("id"))?,
        username: r.get("username"),
        kind: ProfileKind::parse(&r.get::<String, _>("kind")).ok_or_else(|| corrupt("kind"))?,
        status: ProfileStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| corrupt("status"))?,
        password_hash: r
            .get::<Option<String>, _>("password_hash")
            .map(PasswordHash::from_phc),
        public_key,
        created_at: Timestamp(r.get("created_at")),
    })
}

pub fn auth_token(r: &SqliteRow) -> Result<AuthToken, StoreError> {
    let owner = match r.get::<Option<String>, _>("application_id") {
        None => TokenOwner::Profile,
        Some(id) => TokenOwner::App {
            application_id: uuid(&id)?,
        },
    };
    Ok(AuthToken {
        hash: TokenHash::from_hex(&r.get::<String, _>("hash")).ok_or_else(|| corrupt("hash"))?,
        profile_id: profile_id(&r.get::<String, _>("profile_id"))?,
        owner,
        scopes: r
            .get::<String, _>("scopes")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        issued_at: Timestamp(r.get("issued_at")),
        expires_at: Timestamp(r.get("expires_at")),
        revoked_at: r.get::<Option<i64>, _>("revoked_at").map(Timestamp),
    })
}

pub fn engine_key(r: &SqliteRow) -> Result<EngineKeyRecord, StoreError> {
    Ok(EngineKeyRecord {
        key_id: r.get("key_id"),
        private_hex: r.get::<String, _>("private_hex").into(),
        public_key: r.get("public_key"),
        created_at: Timestamp(r.get("created_at")),
    })
}
