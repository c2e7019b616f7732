//! SQLite adapter of the metadata-store port. WAL mode; one writer connection (SQLite
//! serializes writers anyway) and a small pool of readers.

mod apply;
mod batch;
mod commands;
mod data;
mod rows;

use async_trait::async_trait;
use privicore_domain::auth::AuthToken;
use privicore_domain::command::{CommandRecord, Completion};
use privicore_domain::data_token::{
    DataToken, Match, Page, Replica, ReplicaCounts, TokenFilter, TokenVersion,
};
use privicore_domain::device::{Device, DeviceFilter, DeviceId};
use privicore_domain::effect::Effect;
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::ports::{MetadataStore, StoreError};
use privicore_domain::profile::{Profile, username_key};
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, ProfileId, Timestamp};
use secrecy::ExposeSecret;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct SqliteStore {
    /// Rare maintenance writes (migrations, purges, keys).
    writer: SqlitePool,
    reader: SqlitePool,
    /// Group-committed writes of commands and effects.
    jobs: tokio::sync::mpsc::Sender<batch::Job>,
}

pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")
            .map_err(unavailable)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged command survives power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(unavailable)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(unavailable)?;
        let conn = sqlx::ConnectOptions::connect(&options)
            .await
            .map_err(unavailable)?;
        let (jobs, queue) = tokio::sync::mpsc::channel(4096);
        tokio::spawn(batch::writer(conn, queue));
        Ok(Self {
            writer,
            reader,
            jobs,
        })
    }

    async fn one<T>(
        &self,
        sql: &'static str,
        key: String,
        convert: fn(&sqlx::sqlite::SqliteRow) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable)?
            .map(|r| convert(&r))
            .transpose()
    }

    async fn submit(
        &self,
        job: batch::Job,
        answer: tokio::sync::oneshot::Receiver<Result<Vec<u64>, StoreError>>,
    ) -> Result<Vec<u64>, StoreError> {
        let gone = || StoreError::Unavailable("the store writer stopped".into());
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn insert_command(
        &self,
        command: &CommandRecord,
        effects: &[Effect],
    ) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = batch::Job::Insert {
            command: Box::new(command.clone()),
            effects: effects.to_vec(),
            reply,
        };
        self.submit(job, answer).await.map(|_| ())
    }

    async fn command(&self, id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        commands::get(&self.reader, id).await
    }

    async fn unfinished_commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        commands::unfinished(&self.reader).await
    }

    async fn purge_finished_commands(&self, before: Timestamp) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM commands WHERE status <> 'pending' AND finished_at < ?")
            .bind(before.unix())
            .execute(&self.writer)
            .await
            .map(|r| r.rows_affected())
            .map_err(unavailable)
    }

    async fn apply(
        &self,
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<u64>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = batch::Job::Apply {
            effects: effects.to_vec(),
            completion: completion.cloned(),
            reply,
        };
        self.submit(job, answer).await
    }

    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError> {
        sqlx::query("SELECT * FROM profiles WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable)?
            .map(|r| rows::profile(&r))
            .transpose()
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<Profile>, StoreError> {
        sqlx::query("SELECT * FROM profiles WHERE username_key = ?")
            .bind(username_key(username))
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable)?
            .map(|r| rows::profile(&r))
            .transpose()
    }

    async fn auth_token(&self, hash: &TokenHash) -> Result<Option<AuthToken>, StoreError> {
        sqlx::query("SELECT * FROM auth_tokens WHERE hash = ?")
            .bind(hash.to_hex())
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable)?
            .map(|r| rows::auth_token(&r))
            .transpose()
    }

    async fn count_live_tokens(
        &self,
        profile_id: ProfileId,
        except: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM auth_tokens
             WHERE profile_id = ? AND revoked_at IS NULL AND expires_at > ? AND hash <> ?",
        )
        .bind(profile_id.to_string())
        .bind(now.unix())
        .bind(except.map(|h| h.to_hex()).unwrap_or_default())
        .fetch_one(&self.reader)
        .await
        .map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn purge_expired_tokens(&self, before: Timestamp) -> Result<u64, StoreError> {
        let tokens = sqlx::query("DELETE FROM auth_tokens WHERE expires_at < ?")
            .bind(before.unix())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        let qr = sqlx::query("DELETE FROM qr_tokens WHERE expires_at < ?")
            .bind(before.unix())
            .execute(&self.writer)
            .await
            .map_err(unavailable)?;
        Ok(tokens.rows_affected() + qr.rows_affected())
    }

    async fn take_qr_token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<ProfileId>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM qr_tokens WHERE hash = ? AND expires_at > ? RETURNING profile_id",
        )
        .bind(hash.to_hex())
        .bind(now.unix())
        .fetch_optional(&self.writer)
        .await
        .map_err(unavailable)?;
        row.map(|r| rows::profile_id(&r.get::<String, _>("profile_id")))
            .transpose()
    }

    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        self.one(
            "SELECT * FROM devices WHERE id = ?",
            id.to_string(),
            rows::device,
        )
        .await
    }

    async fn device_by_request(&self, command: CommandId) -> Result<Option<Device>, StoreError> {
        self.one(
            "SELECT * FROM devices WHERE request_command_id = ?",
            command.to_string(),
            rows::device,
        )
        .await
    }

    async fn device_by_client_id(&self, client_id: &str) -> Result<Option<Device>, StoreError> {
        self.one(
            "SELECT * FROM devices WHERE client_id = ?",
            client_id.to_owned(),
            rows::device,
        )
        .await
    }

    async fn list_devices(
        &self,
        profile_id: ProfileId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<(Vec<Device>, u64), StoreError> {
        data::list_devices(&self.reader, profile_id, filter, page).await
    }

    async fn storage_devices(
        &self,
        profile_id: Option<ProfileId>,
    ) -> Result<Vec<Device>, StoreError> {
        let sql = "SELECT * FROM devices WHERE status = 'approved' AND (',' || roles || ',') LIKE '%,storage,%'";
        let rows = match profile_id {
            Some(p) => {
                sqlx::query(&format!("{sql} AND profile_id = ? ORDER BY created_at"))
                    .bind(p.to_string())
                    .fetch_all(&self.reader)
                    .await
            }
            None => {
                sqlx::query(&format!("{sql} ORDER BY created_at"))
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(unavailable)?;
        rows.iter().map(rows::device).collect()
    }

    async fn count_live_devices(&self, profile_id: ProfileId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE profile_id = ? AND status IN ('pending', 'approved')")
            .bind(profile_id.to_string())
            .fetch_one(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn data_token(&self, token: &str) -> Result<Option<DataToken>, StoreError> {
        self.one(
            "SELECT * FROM data_tokens WHERE token = ?",
            token.to_owned(),
            rows::data_token,
        )
        .await
    }

    async fn data_token_by_reservation(
        &self,
        command: CommandId,
    ) -> Result<Option<DataToken>, StoreError> {
        self.one(
            "SELECT * FROM data_tokens WHERE reserve_command_id = ?",
            command.to_string(),
            rows::data_token,
        )
        .await
    }

    async fn list_data_tokens(
        &self,
        profile_id: ProfileId,
        filter: &TokenFilter,
        page: Page,
    ) -> Result<(Vec<DataToken>, u64), StoreError> {
        data::list_tokens(&self.reader, profile_id, filter, page).await
    }

    async fn count_outstanding_reservations(
        &self,
        profile_id: ProfileId,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_tokens WHERE profile_id = ? AND status IN ('reserved', 'exchanging')")
            .bind(profile_id.to_string())
            .fetch_one(&self.reader)
            .await
            .map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn expired_reservations(
        &self,
        now: Timestamp,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT token FROM data_tokens WHERE status = 'reserved' AND expires_at <= ? LIMIT ?",
        )
        .bind(now.unix())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable)
    }

    async fn token_version(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Option<TokenVersion>, StoreError> {
        data::token_version(&self.reader, token, version).await
    }

    async fn replicas(
        &self,
        token: &str,
        version: Option<u32>,
    ) -> Result<Vec<Replica>, StoreError> {
        data::replicas(&self.reader, token, version).await
    }

    async fn device_replicas(&self, device_id: DeviceId) -> Result<Vec<Replica>, StoreError> {
        sqlx::query("SELECT * FROM replicas WHERE device_id = ?")
            .bind(device_id.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable)?
            .iter()
            .map(rows::replica)
            .collect()
    }

    async fn replica_counts(&self, token: &str, version: u32) -> Result<ReplicaCounts, StoreError> {
        data::replica_counts(&self.reader, token, version).await
    }

    async fn spool(&self, token: &str, version: u32) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        data::spool(&self.reader, token, version).await
    }

    async fn event_counts(
        &self,
        profile_id: ProfileId,
        from: Timestamp,
        to: Timestamp,
        context: Option<&Match>,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        data::events(&self.reader, profile_id, from, to, context).await
    }

    async fn engine_key(&self) -> Result<Option<EngineKeyRecord>, StoreError> {
        sqlx::query("SELECT * FROM engine_keys ORDER BY created_at DESC, key_id DESC LIMIT 1")
            .fetch_optional(&self.writer)
            .await
            .map_err(unavailable)?
            .map(|r| rows::engine_key(&r))
            .transpose()
    }

    async fn ensure_engine_key(
        &self,
        key: &EngineKeyRecord,
    ) -> Result<EngineKeyRecord, StoreError> {
        let mut tx = self.writer.begin().await.map_err(unavailable)?;
        let existing = sqlx::query("SELECT COUNT(*) AS n FROM engine_keys")
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?
            .get::<i64, _>("n");
        if existing == 0 {
            sqlx::query("INSERT INTO engine_keys (key_id, private_hex, public_key, created_at) VALUES (?, ?, ?, ?)")
                .bind(&key.key_id)
                .bind(key.private_hex.expose_secret())
                .bind(&key.public_key)
                .bind(key.created_at.unix())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        self.engine_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("engine key vanished".into()))
    }
}

#[cfg(test)]
mod tests;
