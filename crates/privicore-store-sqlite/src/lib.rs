//! SQLite adapter of the metadata-store port (rusqlite). WAL mode; every write goes through
//! one writer thread that group-commits (see `writer`), reads run on pooled read-only
//! connections. rusqlite rather than sqlx: sqlx runs each SQLite connection on its own
//! thread and hands every statement across, which cost a quarter of the engine's CPU
//! under load (DEVELOPERS.md, "Group commit").

/// The `seq` of the token bound to this parameter (`?` unless named): versions, replicas
/// and spool rows are keyed by it (see migration 0005).
macro_rules! token_seq {
    () => {
        token_seq!("?")
    };
    ($param:literal) => {
        concat!("(SELECT seq FROM data_tokens WHERE token = ", $param, ")")
    };
}

/// The columns `rows::data_token` reads, in the order it reads them: by position, since
/// rusqlite finds a column by name with a scan over every column name (a sixth of a token
/// read's CPU).
macro_rules! data_token_columns {
    () => {
        "token, profile_id, application_id, reserve_command_id, status, context, expires_at, \
         upload_salt, version, stored_size, meta_file, meta_risk, meta_data, created_at, updated_at"
    };
}

/// A statement that writes one token row, returning the row as written (read by
/// `rows::data_token`; the row cache keeps it after the commit).
macro_rules! returning_token_row {
    ($sql:literal) => {
        concat!($sql, " RETURNING ", data_token_columns!())
    };
}

mod apply;
mod audit;
mod commands;
mod counters;
mod data;
mod db;
mod directory;
mod governance;
mod idempotency;
mod oauth;
mod rows;
mod token_rows;
mod voting;
mod writer;

pub use audit::AuditReader;

use async_trait::async_trait;
use privicore_domain::audit::{AuditEntry, AuditRecord, SealedHead, Sealer};
use privicore_domain::auth::AuthToken;
use privicore_domain::command::{CommandRecord, Completion};
use privicore_domain::counter::Counter;
use privicore_domain::data_token::{
    DataToken, HeaderCursor, Match, Page, Replica, ReplicaCounts, StoredHeader, TokenFilter,
    TokenVersion,
};
use privicore_domain::device::{Device, DeviceFilter, DeviceId};
use privicore_domain::directory as dir;
use privicore_domain::effect::Effect;
use privicore_domain::governance::{Attempt, Ballot, HeldCommand, Pool};
use privicore_domain::governance::{
    ConfigurationFilter, Policy, PolicyFilter, VotingConfiguration, VotingDefaults,
};
use privicore_domain::idempotency::{IdempotencyRecord, IdempotencySlot};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::oauth::{Application, AuthRequest, Grant};
use privicore_domain::ports::{AuditLog, MetadataStore, StoreError};
use privicore_domain::profile::{Profile, username_key};
use privicore_domain::secret::TokenHash;
use privicore_domain::{
    BallotId, CommandId, PolicyId, PoolId, ProfileId, Timestamp, VotingConfigurationId,
};
use rows::Col;
use rusqlite::{Connection, params};
use secrecy::ExposeSecret;
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

pub struct SqliteStore {
    readers: Arc<db::Readers>,
    writer: writer::Writer,
    token_rows: Arc<token_rows::TokenRows>,
    checkpointer: std::sync::Mutex<db::Checkpointer>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let owned = path.to_path_buf();
        let conn = tokio::task::spawn_blocking(move || db::open_writer(&owned))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        let restart = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok(Self {
            readers: Arc::new(db::Readers::new(path)),
            writer: writer::Writer::start(conn, restart.clone()),
            token_rows: Arc::default(),
            checkpointer: std::sync::Mutex::new(db::Checkpointer::start(path, restart)?),
        })
    }

    /// A point read, on the calling thread.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.readers.with(read)
    }

    /// A read that may touch many rows, off the async threads.
    async fn scan<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || readers.with(read))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    /// Applies `effects` and then `more` in one request of the next group commit; the
    /// token rows written go through the row cache (see `token_rows`).
    async fn write_effects(
        &self,
        effects: &[Effect],
        mut more: impl FnMut(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> Result<Vec<u64>, StoreError> {
        let effects = effects.to_vec();
        let rows = self.token_rows.clone();
        let kept = rows.clone();
        let (affected, _) = self
            .writer
            .write_then(
                move |c| {
                    let tag = rows.forget(effects.iter().filter_map(|e| match e {
                        Effect::Data(data) => apply::token_row_written(data),
                        _ => None,
                    }));
                    let mut written = Vec::new();
                    let affected = apply::apply_in(c, &effects, &mut written)?;
                    more(c)?;
                    Ok((affected, (tag, written)))
                },
                move |(_, (tag, written))| kept.keep(*tag, std::mem::take(written)),
            )
            .await?;
        Ok(affected)
    }

    pub async fn close(&self) {
        self.checkpointer.lock().expect("checkpointer lock").stop();
        self.writer.close().await;
        self.readers.close();
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| db::count(c, "SELECT 1", []).map(|_| ()))
    }

    async fn insert_command(
        &self,
        command: &CommandRecord,
        effects: &[Effect],
    ) -> Result<(), StoreError> {
        let command = command.clone();
        self.write_effects(effects, move |c| commands::insert(c, &command))
            .await
            .map(drop)
    }

    async fn command(&self, id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        self.read(|c| commands::get(c, id))
    }

    async fn unfinished_commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        self.scan(commands::unfinished).await
    }

    async fn purge_finished_commands(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| commands::purge_finished(c, before))
            .await
    }

    async fn apply(
        &self,
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<u64>, StoreError> {
        let completion = completion.cloned();
        self.write_effects(effects, move |c| match &completion {
            Some(done) => commands::complete(c, done),
            None => Ok(()),
        })
        .await
    }

    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM profiles WHERE id = ?",
                [id.to_string()],
                rows::profile,
            )
        })
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<Profile>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM profiles WHERE username_key = ?",
                [username_key(username)],
                rows::profile,
            )
        })
    }

    async fn auth_token(&self, hash: &TokenHash) -> Result<Option<AuthToken>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM auth_tokens WHERE hash = ?",
                [hash.to_hex()],
                rows::auth_token,
            )
        })
    }

    async fn count_live_tokens(
        &self,
        profile_id: ProfileId,
        except: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.read(|c| {
            db::count(
                c,
                "SELECT COUNT(*) FROM auth_tokens
                 WHERE profile_id = ? AND revoked_at IS NULL AND expires_at > ? AND hash <> ?",
                params![
                    profile_id.to_string(),
                    now.unix(),
                    except.map(|h| h.to_hex()).unwrap_or_default()
                ],
            )
        })
    }

    async fn purge_expired_tokens(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| {
                let tokens = db::exec(
                    c,
                    "DELETE FROM auth_tokens WHERE expires_at < ?",
                    [before.unix()],
                )?;
                let qr = db::exec(
                    c,
                    "DELETE FROM qr_tokens WHERE expires_at < ?",
                    [before.unix()],
                )?;
                Ok(tokens + qr)
            })
            .await
    }

    async fn purge_spool(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| {
                db::exec(
                    c,
                    "DELETE FROM spool WHERE spooled_at < ? AND EXISTS (
                         SELECT 1 FROM token_versions v
                         WHERE v.token_seq = spool.token_seq AND v.version = spool.version
                           AND v.committed = 1)",
                    [before.unix()],
                )
            })
            .await
    }

    async fn take_qr_token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<ProfileId>, StoreError> {
        let hash = hash.to_hex();
        let taken = self
            .writer
            .write(move |c| {
                db::one(
                    c,
                    "DELETE FROM qr_tokens WHERE hash = ? AND expires_at > ? RETURNING profile_id",
                    params![hash, now.unix()],
                    |r| r.col::<String>("profile_id"),
                )
            })
            .await?;
        taken.map(|id| rows::profile_id(&id)).transpose()
    }

    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM devices WHERE id = ?",
                [id.to_string()],
                rows::device,
            )
        })
    }

    async fn device_by_request(&self, command: CommandId) -> Result<Option<Device>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM devices WHERE request_command_id = ?",
                [command.to_string()],
                rows::device,
            )
        })
    }

    async fn device_by_client_id(&self, client_id: &str) -> Result<Option<Device>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM devices WHERE client_id = ?",
                [client_id],
                rows::device,
            )
        })
    }

    async fn list_devices(
        &self,
        profile_id: ProfileId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<(Vec<Device>, u64), StoreError> {
        let filter = filter.clone();
        self.scan(move |c| data::list_devices(c, profile_id, &filter, page))
            .await
    }

    async fn storage_devices(
        &self,
        profile_id: Option<ProfileId>,
    ) -> Result<Vec<Device>, StoreError> {
        match profile_id {
            Some(_) => self.read(|c| data::storage_devices(c, profile_id)),
            None => self.scan(move |c| data::storage_devices(c, None)).await,
        }
    }

    async fn count_live_devices(&self, profile_id: ProfileId) -> Result<u64, StoreError> {
        self.read(|c| {
            db::count(
                c,
                "SELECT COUNT(*) FROM devices WHERE profile_id = ? AND status IN ('pending', 'approved')",
                [profile_id.to_string()],
            )
        })
    }

    async fn authenticators(&self, profile_id: ProfileId) -> Result<Vec<Device>, StoreError> {
        self.read(|c| governance::authenticators(c, profile_id))
    }

    async fn voting_defaults(&self, profile_id: ProfileId) -> Result<VotingDefaults, StoreError> {
        self.read(|c| governance::voting_defaults(c, profile_id))
    }

    async fn voting_configuration(
        &self,
        id: VotingConfigurationId,
    ) -> Result<Option<VotingConfiguration>, StoreError> {
        self.read(|c| governance::voting_configuration(c, id))
    }

    async fn voting_configuration_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<VotingConfiguration>, StoreError> {
        self.read(|c| governance::voting_configuration_by_name(c, profile_id, name))
    }

    async fn list_voting_configurations(
        &self,
        profile_id: ProfileId,
        filter: &ConfigurationFilter,
        page: Page,
    ) -> Result<(Vec<VotingConfiguration>, u64), StoreError> {
        let filter = filter.clone();
        self.scan(move |c| governance::list_voting_configurations(c, profile_id, &filter, page))
            .await
    }

    async fn policy(&self, id: PolicyId) -> Result<Option<Policy>, StoreError> {
        self.read(|c| governance::policy_by_id(c, id))
    }

    async fn policy_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<Policy>, StoreError> {
        self.read(|c| governance::policy_by_name(c, profile_id, name))
    }

    async fn list_policies(
        &self,
        profile_id: ProfileId,
        filter: &PolicyFilter,
        page: Page,
    ) -> Result<(Vec<Policy>, u64), StoreError> {
        let filter = filter.clone();
        self.scan(move |c| governance::list_policies(c, profile_id, &filter, page))
            .await
    }

    async fn active_policies(&self, profile_id: ProfileId) -> Result<Vec<Policy>, StoreError> {
        self.read(|c| governance::active_policies(c, profile_id))
    }

    async fn pool(&self, id: PoolId) -> Result<Option<Pool>, StoreError> {
        self.read(|c| voting::pool_by_id(c, id))
    }

    async fn command_pools(&self, command: CommandId) -> Result<Vec<Pool>, StoreError> {
        self.read(|c| voting::command_pools(c, command))
    }

    async fn open_pools(&self) -> Result<Vec<Pool>, StoreError> {
        self.read(voting::open_pools)
    }

    async fn attempts(&self, pool: PoolId) -> Result<Vec<Attempt>, StoreError> {
        self.read(|c| voting::attempts(c, pool))
    }

    async fn ballots(&self, pool: PoolId) -> Result<Vec<Ballot>, StoreError> {
        self.read(|c| voting::ballots(c, pool))
    }

    async fn ballot(&self, id: BallotId) -> Result<Option<Ballot>, StoreError> {
        self.read(|c| voting::ballot_by_id(c, id))
    }

    async fn pending_ballots(&self, device: DeviceId) -> Result<Vec<Ballot>, StoreError> {
        self.read(|c| voting::pending_ballots(c, device))
    }

    async fn held_commands(&self) -> Result<Vec<HeldCommand>, StoreError> {
        self.read(voting::held_commands)
    }

    async fn held_command(&self, id: CommandId) -> Result<Option<HeldCommand>, StoreError> {
        self.read(|c| voting::held_command(c, id))
    }

    async fn data_token(&self, token: &str) -> Result<Option<DataToken>, StoreError> {
        if let Some(row) = self.token_rows.get(token) {
            return Ok(Some(row));
        }
        self.read(|c| {
            db::one(
                c,
                concat!(
                    "SELECT ",
                    data_token_columns!(),
                    " FROM data_tokens WHERE token = ?"
                ),
                [token],
                rows::data_token,
            )
        })
    }

    async fn data_token_by_reservation(
        &self,
        command: CommandId,
    ) -> Result<Option<DataToken>, StoreError> {
        if let Some(row) = self.token_rows.by_reservation(command) {
            return Ok(Some(row));
        }
        self.read(|c| {
            db::one(
                c,
                concat!(
                    "SELECT ",
                    data_token_columns!(),
                    " FROM data_tokens WHERE reserve_command_id = ?"
                ),
                [command.to_string()],
                rows::data_token,
            )
        })
    }

    async fn list_data_tokens(
        &self,
        profile_id: ProfileId,
        filter: &TokenFilter,
        page: Page,
    ) -> Result<(Vec<DataToken>, u64), StoreError> {
        let filter = filter.clone();
        self.scan(move |c| data::list_tokens(c, profile_id, &filter, page))
            .await
    }

    async fn exchanging_tokens(&self) -> Result<Vec<String>, StoreError> {
        self.scan(move |c| {
            db::all(
                c,
                "SELECT token FROM data_tokens WHERE status = 'exchanging'",
                [],
                |r| r.col::<String>("token"),
            )
        })
        .await
    }

    async fn expired_reservations(
        &self,
        now: Timestamp,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        self.scan(move |c| {
            db::all(
                c,
                "SELECT token FROM data_tokens WHERE status = 'reserved' AND expires_at <= ? LIMIT ?",
                params![now.unix(), limit as i64],
                |r| r.col::<String>("token"),
            )
        })
        .await
    }

    async fn token_version(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Option<TokenVersion>, StoreError> {
        self.read(|c| data::token_version(c, token, version))
    }

    async fn replicas(
        &self,
        token: &str,
        version: Option<u32>,
    ) -> Result<Vec<Replica>, StoreError> {
        self.read(|c| data::replicas(c, token, version))
    }

    async fn device_replicas(&self, device_id: DeviceId) -> Result<Vec<Replica>, StoreError> {
        self.scan(move |c| {
            db::all(
                c,
                "SELECT t.token, r.* FROM replicas r JOIN data_tokens t ON t.seq = r.token_seq WHERE r.device_id = ?",
                [device_id.to_string()],
                rows::replica,
            )
        })
        .await
    }

    async fn replica_counts(&self, token: &str, version: u32) -> Result<ReplicaCounts, StoreError> {
        self.read(|c| data::replica_counts(c, token, version))
    }

    async fn spool(&self, token: &str, version: u32) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        self.read(|c| data::spool(c, token, version))
    }

    async fn spool_chunk(
        &self,
        token: &str,
        version: u32,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| data::spool_chunk(c, token, version, index))
    }

    async fn event_counts(
        &self,
        profile_id: ProfileId,
        from: Timestamp,
        to: Timestamp,
        context: Option<&Match>,
        application: Option<uuid::Uuid>,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let context = context.cloned();
        self.scan(move |c| data::events(c, profile_id, from, to, context.as_ref(), application))
            .await
    }

    async fn engine_key(&self) -> Result<Option<EngineKeyRecord>, StoreError> {
        self.read(|c| {
            db::one(
                c,
                "SELECT * FROM engine_keys ORDER BY created_at DESC, key_id DESC LIMIT 1",
                [],
                rows::engine_key,
            )
        })
    }

    async fn ensure_engine_key(
        &self,
        key: &EngineKeyRecord,
    ) -> Result<EngineKeyRecord, StoreError> {
        let (key_id, private_hex, public_key, created_at) = (
            key.key_id.clone(),
            key.private_hex.expose_secret().to_owned(),
            key.public_key.clone(),
            key.created_at.unix(),
        );
        self.writer
            .write(move |c| {
                if db::count(c, "SELECT COUNT(*) FROM engine_keys", [])? == 0 {
                    db::exec(
                        c,
                        "INSERT INTO engine_keys (key_id, private_hex, public_key, created_at) VALUES (?, ?, ?, ?)",
                        params![key_id, private_hex, public_key, created_at],
                    )?;
                }
                Ok(())
            })
            .await?;
        self.engine_key()
            .await?
            .ok_or_else(|| StoreError::Corrupt("engine key vanished".into()))
    }

    async fn replace_engine_private_key(
        &self,
        key_id: &str,
        private: &str,
    ) -> Result<(), StoreError> {
        let (key_id, private) = (key_id.to_owned(), private.to_owned());
        self.writer
            .write(move |c| {
                db::exec(
                    c,
                    "UPDATE engine_keys SET private_hex = ? WHERE key_id = ?",
                    params![private, key_id],
                )
                .map(drop)
            })
            .await
    }

    async fn version_headers(
        &self,
        after: Option<HeaderCursor>,
        limit: usize,
    ) -> Result<Vec<StoredHeader>, StoreError> {
        let (seq, version) = after.unwrap_or((i64::MIN, 0));
        self.scan(move |c| data::version_headers(c, (seq, version), limit))
            .await
    }

    async fn replace_version_header(
        &self,
        token: &str,
        version: u32,
        expected: &[u8],
        header: &[u8],
    ) -> Result<bool, StoreError> {
        let (token, expected, header) = (token.to_owned(), expected.to_vec(), header.to_vec());
        self.writer
            .write(move |c| {
                db::exec(
                    c,
                    concat!(
                        "UPDATE token_versions SET header = ?4 WHERE token_seq = ",
                        token_seq!("?1"),
                        " AND version = ?2 AND header = ?3"
                    ),
                    params![token, i64::from(version), expected, header],
                )
                .map(|n| n == 1)
            })
            .await
    }

    async fn claim_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        body_hash: &[u8],
        now: Timestamp,
        stale_before: Timestamp,
        abandoned_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let (slot, body_hash) = (slot.clone(), body_hash.to_vec());
        self.writer
            .write(move |c| {
                idempotency::claim(c, &slot, &body_hash, now, stale_before, abandoned_before)
            })
            .await
    }

    async fn settle_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        reply: Option<&str>,
    ) -> Result<(), StoreError> {
        let (slot, reply) = (slot.clone(), reply.map(str::to_owned));
        self.writer
            .write(move |c| idempotency::settle(c, &slot, reply.as_deref()))
            .await
    }

    async fn purge_idempotency_slots(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| idempotency::purge(c, before))
            .await
    }

    async fn hit_counter(
        &self,
        key: &str,
        now: Timestamp,
        window_seconds: i64,
    ) -> Result<Counter, StoreError> {
        let key = key.to_owned();
        self.writer
            .write(move |c| counters::hit(c, &key, now, window_seconds))
            .await
    }

    async fn counter(&self, key: &str, now: Timestamp) -> Result<Option<Counter>, StoreError> {
        self.read(|c| counters::read(c, key, now))
    }

    async fn clear_counter(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.writer.write(move |c| counters::clear(c, &key)).await
    }

    async fn purge_counters(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer.write(move |c| counters::purge(c, before)).await
    }

    async fn oauth_application(&self, id: Uuid) -> Result<Option<Application>, StoreError> {
        self.read(|c| oauth::application_by_id(c, id))
    }

    async fn oauth_application_by_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Application>, StoreError> {
        self.read(|c| oauth::application_by_client(c, client_id))
    }

    async fn oauth_applications(
        &self,
        profile_id: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<(Application, u64)>, u64), StoreError> {
        self.read(|c| oauth::applications(c, profile_id, name, page))
    }

    async fn oauth_request(&self, id: CommandId) -> Result<Option<AuthRequest>, StoreError> {
        self.read(|c| oauth::request_by_id(c, id))
    }

    async fn oauth_request_by_code(
        &self,
        code: &TokenHash,
    ) -> Result<Option<AuthRequest>, StoreError> {
        self.read(|c| oauth::request_by_code(c, code))
    }

    async fn purge_oauth(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer.write(move |c| oauth::purge(c, before)).await
    }

    async fn oauth_grant(&self, id: Uuid) -> Result<Option<Grant>, StoreError> {
        self.read(|c| oauth::grant_by_id(c, id))
    }

    async fn oauth_live_grants(&self, profile_id: ProfileId) -> Result<u64, StoreError> {
        self.read(|c| oauth::live_grants(c, profile_id))
    }

    async fn oauth_nonce_used(&self, application: Uuid, nonce: &str) -> Result<bool, StoreError> {
        self.read(|c| oauth::nonce_used(c, application, nonce))
    }

    async fn oauth_grant_by_refresh(
        &self,
        refresh: &TokenHash,
    ) -> Result<Option<(Grant, bool)>, StoreError> {
        self.read(|c| oauth::grant_by_refresh(c, refresh))
    }

    async fn directory(&self, id: Uuid) -> Result<Option<dir::Directory>, StoreError> {
        self.read(|c| directory::by_id(c, id))
    }

    async fn owned_directories(
        &self,
        owner: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<dir::Directory>, u64), StoreError> {
        self.read(|c| directory::owned(c, owner, name, page))
    }

    async fn assigned_directories(
        &self,
        profile: ProfileId,
        role: Option<dir::Role>,
        status: dir::MemberStatus,
        page: Page,
    ) -> Result<(Vec<(dir::Directory, dir::Membership)>, u64), StoreError> {
        self.read(|c| directory::assigned(c, profile, role, status, page))
    }

    async fn membership(
        &self,
        id: Uuid,
        profile: ProfileId,
    ) -> Result<Option<dir::Membership>, StoreError> {
        self.read(|c| directory::membership(c, id, profile))
    }

    async fn managed_membership(
        &self,
        profile: ProfileId,
    ) -> Result<Option<dir::Membership>, StoreError> {
        self.read(|c| directory::managed_membership(c, profile))
    }

    async fn members(
        &self,
        id: Uuid,
        filter: &dir::MemberFilter,
        page: Page,
    ) -> Result<(Vec<dir::Membership>, u64), StoreError> {
        self.read(|c| directory::members(c, id, filter, page))
    }

    async fn directory_counts(
        &self,
        id: Uuid,
        now: Timestamp,
    ) -> Result<dir::DirectoryCounts, StoreError> {
        self.read(|c| directory::counts(c, id, now))
    }

    async fn profile_activity(
        &self,
        profile: ProfileId,
    ) -> Result<dir::ProfileActivity, StoreError> {
        self.read(|c| directory::activity(c, profile))
    }

    async fn invitation(&self, id: Uuid) -> Result<Option<dir::Invitation>, StoreError> {
        self.read(|c| directory::invitation_by_id(c, id))
    }

    async fn invitations(
        &self,
        scope: dir::InvitationScope,
        status: Option<dir::InvitationStatus>,
        now: Timestamp,
        page: Page,
    ) -> Result<(Vec<dir::Invitation>, u64), StoreError> {
        self.read(|c| directory::invitations(c, scope, status, now, page))
    }

    async fn purge_directory_history(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.writer
            .write(move |c| directory::purge(c, before))
            .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(
        &self,
        sealer: &Sealer,
        entries: &[AuditEntry],
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (sealer, entries, completion) = (sealer.clone(), entries.to_vec(), completion.cloned());
        let sealed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = sealed.clone();
        self.write_effects(effects, move |c| {
            let records = audit::seal_and_append(c, &sealer, &entries)?;
            if let Some(done) = &completion {
                commands::complete(c, done)?;
            }
            *out.lock().expect("sealed records") = records;
            Ok(())
        })
        .await?;
        Ok(std::mem::take(&mut *sealed.lock().expect("sealed records")))
    }

    async fn audit_head(&self) -> Result<Option<SealedHead>, StoreError> {
        self.read(audit::head)
    }

    async fn audit_records(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.scan(move |c| audit::records(c, after, limit)).await
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.scan(move |c| audit::tail(c, n)).await
    }
}

#[cfg(test)]
mod tests;
