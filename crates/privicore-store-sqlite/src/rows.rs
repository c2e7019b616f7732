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

pub fn device(r: &SqliteRow) -> Result<privicore_domain::device::Device, StoreError> {
    use privicore_domain::device::{Device, DeviceCredentials, DeviceId, DeviceStatus};
    let hash = |col: &str| -> Result<Option<TokenHash>, StoreError> {
        r.get::<Option<String>, _>(col)
            .map(|h| TokenHash::from_hex(&h).ok_or_else(|| corrupt("device secret")))
            .transpose()
    };
    let credentials = match (
        r.get::<Option<String>, _>("client_id"),
        hash("client_secret_hash")?,
        hash("bus_password_hash")?,
    ) {
        (Some(client_id), Some(client_secret), Some(bus_password)) => Some(DeviceCredentials {
            client_id,
            client_secret,
            bus_password,
        }),
        _ => None,
    };
    let meta = match serde_json::from_str(&r.get::<String, _>("meta")) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("device meta")),
    };
    let ts = |col: &str| r.get::<Option<i64>, _>(col).map(Timestamp);
    Ok(Device {
        id: DeviceId(uuid(&r.get::<String, _>("id"))?),
        profile_id: profile_id(&r.get::<String, _>("profile_id"))?,
        request_command_id: command_id(&r.get::<String, _>("request_command_id"))?,
        name: r.get("name"),
        description: r.get("description"),
        status: DeviceStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| corrupt("device status"))?,
        roles: r
            .get::<String, _>("roles")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        public_key: r.get("public_key"),
        meta,
        credentials,
        created_at: Timestamp(r.get("created_at")),
        approved_at: ts("approved_at"),
        removed_at: ts("removed_at"),
        configuration_issued_at: ts("configuration_issued_at"),
        storage_registered_at: ts("storage_registered_at"),
        last_sync: match (
            r.get::<Option<String>, _>("last_sync_id"),
            r.get::<Option<String>, _>("last_sync_status"),
            ts("last_sync_started_at"),
        ) {
            (Some(id), Some(status), Some(started_at)) => {
                Some(privicore_domain::device::SyncRecord {
                    sync_id: command_id(&id)?,
                    status,
                    started_at,
                    finished_at: ts("last_sync_finished_at"),
                })
            }
            _ => None,
        },
    })
}

fn json_col(r: &SqliteRow, col: &str) -> Result<Option<serde_json::Value>, StoreError> {
    r.get::<Option<String>, _>(col)
        .map(|t| serde_json::from_str(&t).map_err(|_| corrupt("token meta")))
        .transpose()
}

pub fn data_token(r: &SqliteRow) -> Result<privicore_domain::data_token::DataToken, StoreError> {
    use privicore_domain::data_token::{DataToken, TokenStatus};
    Ok(DataToken {
        token: r.get("token"),
        profile_id: profile_id(&r.get::<String, _>("profile_id"))?,
        application_id: r
            .get::<Option<String>, _>("application_id")
            .map(|a| uuid(&a))
            .transpose()?,
        reserve_command_id: command_id(&r.get::<String, _>("reserve_command_id"))?,
        status: TokenStatus::parse(&r.get::<String, _>("status"))
            .ok_or_else(|| corrupt("token status"))?,
        context: r.get("context"),
        expires_at: r.get::<Option<i64>, _>("expires_at").map(Timestamp),
        upload_salt: r
            .get::<Option<String>, _>("upload_salt")
            .map(|h| TokenHash::from_hex(&h).ok_or_else(|| corrupt("upload hash")))
            .transpose()?,
        version: r.get::<Option<i64>, _>("version").map(|v| v as u32),
        stored_size: r.get::<Option<i64>, _>("stored_size").map(|v| v as u64),
        meta_file: json_col(r, "meta_file")?,
        meta_risk: json_col(r, "meta_risk")?,
        meta_data: json_col(r, "meta_data")?,
        created_at: Timestamp(r.get("created_at")),
        updated_at: Timestamp(r.get("updated_at")),
    })
}

pub fn token_version(r: &SqliteRow) -> privicore_domain::data_token::TokenVersion {
    privicore_domain::data_token::TokenVersion {
        token: r.get("token"),
        version: r.get::<i64, _>("version") as u32,
        header: r.get("header"),
        digest: r.get("digest"),
        total_size: r.get::<i64, _>("total_size") as u64,
        chunk_count: r.get::<i64, _>("chunk_count") as u32,
        committed: r.get("committed"),
    }
}

pub fn replica(r: &SqliteRow) -> Result<privicore_domain::data_token::Replica, StoreError> {
    use privicore_domain::data_token::{Replica, ReplicaState};
    Ok(Replica {
        token: r.get("token"),
        version: r.get::<i64, _>("version") as u32,
        device_id: privicore_domain::device::DeviceId(uuid(&r.get::<String, _>("device_id"))?),
        state: ReplicaState::parse(&r.get::<String, _>("state"))
            .ok_or_else(|| corrupt("replica state"))?,
    })
}
