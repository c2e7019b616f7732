//! Row → domain conversions; a row that does not convert is reported as corrupt.

use privicore_domain::auth::{AuthToken, TokenOwner};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::password::PasswordHash;
use privicore_domain::ports::StoreError;
use privicore_domain::profile::{Profile, ProfileKind, ProfileStatus, RegisteredKey};
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Timestamp};
use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};
use uuid::Uuid;

pub fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

/// A column by name; a missing column or wrong type is corruption, never a panic.
pub trait Col {
    fn col<'r, T: Decode<'r, Postgres> + Type<Postgres>>(
        &'r self,
        name: &str,
    ) -> Result<T, StoreError>;
}

impl Col for PgRow {
    fn col<'r, T: Decode<'r, Postgres> + Type<Postgres>>(
        &'r self,
        name: &str,
    ) -> Result<T, StoreError> {
        self.try_get(name).map_err(|_| corrupt(name))
    }
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

pub fn ts(r: &PgRow, name: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(r.col::<Option<i64>>(name)?.map(Timestamp))
}

pub fn profile(r: &PgRow) -> Result<Profile, StoreError> {
    let public_key = match (
        r.col::<Option<String>>("public_key")?,
        r.col::<Option<i64>>("public_key_registered_at")?,
    ) {
        (Some(public_key), Some(at)) => Some(RegisteredKey {
            public_key,
            registered_at: Timestamp(at),
        }),
        _ => None,
    };
    Ok(Profile {
        id: profile_id(&r.col::<String>("id")?)?,
        username: r.col("username")?,
        kind: ProfileKind::parse(&r.col::<String>("kind")?).ok_or_else(|| corrupt("kind"))?,
        status: ProfileStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("status"))?,
        password_hash: r
            .col::<Option<String>>("password_hash")?
            .map(PasswordHash::from_phc),
        public_key,
        created_at: Timestamp(r.col("created_at")?),
    })
}

pub fn auth_token(r: &PgRow) -> Result<AuthToken, StoreError> {
    let owner = match r.col::<Option<String>>("application_id")? {
        None => TokenOwner::Profile,
        Some(id) => TokenOwner::App {
            application_id: uuid(&id)?,
        },
    };
    Ok(AuthToken {
        hash: TokenHash::from_hex(&r.col::<String>("hash")?).ok_or_else(|| corrupt("hash"))?,
        profile_id: profile_id(&r.col::<String>("profile_id")?)?,
        owner,
        scopes: r
            .col::<String>("scopes")?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        issued_at: Timestamp(r.col("issued_at")?),
        expires_at: Timestamp(r.col("expires_at")?),
        revoked_at: ts(r, "revoked_at")?,
    })
}

pub fn engine_key(r: &PgRow) -> Result<EngineKeyRecord, StoreError> {
    Ok(EngineKeyRecord {
        key_id: r.col("key_id")?,
        private_hex: r.col::<String>("private_hex")?.into(),
        public_key: r.col("public_key")?,
        created_at: Timestamp(r.col("created_at")?),
    })
}

pub fn device(r: &PgRow) -> Result<privicore_domain::device::Device, StoreError> {
    use privicore_domain::device::{Device, DeviceCredentials, DeviceId, DeviceStatus};
    let hash = |col: &str| -> Result<Option<TokenHash>, StoreError> {
        r.col::<Option<String>>(col)?
            .map(|h| TokenHash::from_hex(&h).ok_or_else(|| corrupt("device secret")))
            .transpose()
    };
    let credentials = match (
        r.col::<Option<String>>("client_id")?,
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
    let meta = match serde_json::from_str(&r.col::<String>("meta")?) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("device meta")),
    };
    Ok(Device {
        id: DeviceId(uuid(&r.col::<String>("id")?)?),
        profile_id: profile_id(&r.col::<String>("profile_id")?)?,
        request_command_id: command_id(&r.col::<String>("request_command_id")?)?,
        name: r.col("name")?,
        description: r.col("description")?,
        status: DeviceStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("device status"))?,
        roles: r
            .col::<String>("roles")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        public_key: r.col("public_key")?,
        meta,
        credentials,
        created_at: Timestamp(r.col("created_at")?),
        approved_at: ts(r, "approved_at")?,
        removed_at: ts(r, "removed_at")?,
        configuration_issued_at: ts(r, "configuration_issued_at")?,
        storage_registered_at: ts(r, "storage_registered_at")?,
        authenticator_registered_at: ts(r, "authenticator_registered_at")?,
        last_sync: match (
            r.col::<Option<String>>("last_sync_id")?,
            r.col::<Option<String>>("last_sync_status")?,
            ts(r, "last_sync_started_at")?,
        ) {
            (Some(id), Some(status), Some(started_at)) => {
                Some(privicore_domain::device::SyncRecord {
                    sync_id: command_id(&id)?,
                    status,
                    started_at,
                    finished_at: ts(r, "last_sync_finished_at")?,
                })
            }
            _ => None,
        },
    })
}

fn json_col(r: &PgRow, name: &str) -> Result<Option<serde_json::Value>, StoreError> {
    r.col::<Option<String>>(name)?
        .map(|t| serde_json::from_str(&t).map_err(|_| corrupt("token meta")))
        .transpose()
}

/// The columns `data_token` reads.
pub const DATA_TOKEN_COLUMNS: &str = "token, profile_id, application_id, reserve_command_id, \
     status, context, expires_at, upload_salt, version, stored_size, meta_file, meta_risk, \
     meta_data, created_at, updated_at";

pub fn data_token(r: &PgRow) -> Result<privicore_domain::data_token::DataToken, StoreError> {
    use privicore_domain::data_token::{DataToken, TokenStatus};
    Ok(DataToken {
        token: r.col("token")?,
        profile_id: profile_id(&r.col::<String>("profile_id")?)?,
        application_id: r
            .col::<Option<String>>("application_id")?
            .map(|a| uuid(&a))
            .transpose()?,
        reserve_command_id: command_id(&r.col::<String>("reserve_command_id")?)?,
        status: TokenStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("token status"))?,
        context: r.col("context")?,
        expires_at: ts(r, "expires_at")?,
        upload_salt: r
            .col::<Option<String>>("upload_salt")?
            .map(|h| TokenHash::from_hex(&h).ok_or_else(|| corrupt("upload hash")))
            .transpose()?,
        version: r.col::<Option<i64>>("version")?.map(|v| v as u32),
        stored_size: r.col::<Option<i64>>("stored_size")?.map(|v| v as u64),
        meta_file: json_col(r, "meta_file")?,
        meta_risk: json_col(r, "meta_risk")?,
        meta_data: json_col(r, "meta_data")?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
    })
}

pub fn token_version(r: &PgRow) -> Result<privicore_domain::data_token::TokenVersion, StoreError> {
    Ok(privicore_domain::data_token::TokenVersion {
        token: r.col("token")?,
        version: r.col::<i64>("version")? as u32,
        header: r.col("header")?,
        digest: r.col("digest")?,
        total_size: r.col::<i64>("total_size")? as u64,
        chunk_count: r.col::<i64>("chunk_count")? as u32,
        committed: r.col("committed")?,
    })
}

pub fn replica(r: &PgRow) -> Result<privicore_domain::data_token::Replica, StoreError> {
    use privicore_domain::data_token::{Replica, ReplicaState};
    Ok(Replica {
        token: r.col("token")?,
        version: r.col::<i64>("version")? as u32,
        device_id: privicore_domain::device::DeviceId(uuid(&r.col::<String>("device_id")?)?),
        state: ReplicaState::parse(&r.col::<String>("state")?)
            .ok_or_else(|| corrupt("replica state"))?,
    })
}
