//! PostgreSQL adapter of the metadata-store and audit ports (sqlx), for engines that
//! share one database. Where the SQLite adapter relies on its single writer thread (one
//! write at a time, so a read followed by a write in one request sees no interleaving),
//! this adapter says so explicitly: each request is one transaction at READ COMMITTED,
//! state changes are conditional updates that PostgreSQL re-checks on the locked row,
//! counters and claims are single upserts, and the few read-then-write steps lock the row
//! (or an advisory lock) they depend on first. Deadlocks and serialization failures run
//! the transaction again.

#[macro_use]
mod db;
mod apply;
mod audit;
mod commands;
mod counters;
mod data;
mod directory;
mod governance;
mod idempotency;
mod oauth;
mod rows;
pub mod testing;
mod voting;

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
use rows::{Col, DATA_TOKEN_COLUMNS};
use secrecy::ExposeSecret;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// How to open the store beyond its URL.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The schema to use alone (created when missing); by default the URL's search path.
    pub schema: Option<String>,
    /// Connections kept at most (16 by default).
    pub max_connections: Option<u32>,
}

pub struct PostgresStore {
    pool: PgPool,
}

/// A pooled connection for one read, as `$c: &mut PgConnection`.
macro_rules! read {
    ($self:ident, |$c:ident| $body:expr) => {{
        let mut conn = $self.pool.acquire().await.map_err(db::unavailable)?;
        let $c: &mut PgConnection = &mut conn;
        $body
    }};
}

impl PostgresStore {
    /// Connects and runs pending migrations (safe when several engines start at once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Options::default()).await
    }

    pub async fn connect_with(url: &str, options: Options) -> Result<Self, StoreError> {
        if let Some(schema) = &options.schema {
            testing::create_schema(url, schema).await?;
        }
        let pool = db::connect(url, options.schema.as_deref(), options.max_connections).await?;
        db::migrate(&pool).await?;
        Ok(Self { pool })
    }

    /// Connects without migrating, for tools that only read (`privicore audit`).
    pub async fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            pool: db::connect(url, None, Some(2)).await?,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Reads the audit chain in one snapshot, even while engines append: `page` sees the
    /// records in seq order, `page_size` at a time, until it returns `false`; then the
    /// sealed head as of the same snapshot. `Ok(None)` when the database has no audit
    /// tables.
    pub async fn audit_snapshot(
        &self,
        page_size: usize,
        mut page: impl FnMut(&[AuditRecord]) -> bool,
    ) -> Result<Option<Option<SealedHead>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db::unavailable)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db::unavailable)?;
        let tables = db::count(
            &mut tx,
            sqlx::query(
                "SELECT COUNT(*) FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name IN ('audit_log', 'audit_head')",
            ),
        )
        .await?;
        if tables != 2 {
            return Ok(None);
        }
        let mut after = 0;
        loop {
            let records = audit::records(&mut tx, after, page_size).await?;
            let Some(last) = records.last() else { break };
            after = last.seq;
            if !page(&records) {
                break;
            }
        }
        let head = audit::head(&mut tx).await?;
        let _ = tx.rollback().await;
        Ok(Some(head))
    }

    /// Applies `effects` and, if given, the completion, in one transaction.
    async fn write(
        &self,
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<u64>, StoreError> {
        transaction!(self.pool, |c| {
            let affected = apply::apply_in(&mut *c, effects).await;
            match (affected, completion) {
                (Ok(affected), Some(done)) => commands::complete(c, done).await.map(|()| affected),
                (result, _) => result,
            }
        })
    }
}

#[async_trait]
impl MetadataStore for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        read!(self, |c| db::count(c, sqlx::query("SELECT 1::bigint"))
            .await
            .map(drop))
    }

    async fn operational_counts(
        &self,
    ) -> Result<privicore_domain::ports::OperationalCounts, StoreError> {
        read!(self, |c| data::operational_counts(c).await)
    }

    async fn insert_command(
        &self,
        command: &CommandRecord,
        effects: &[Effect],
    ) -> Result<(), StoreError> {
        transaction!(self.pool, |c| {
            match apply::apply_in(&mut *c, effects).await {
                Ok(_) => commands::insert(c, command).await,
                Err(e) => Err(e),
            }
        })
    }

    async fn command(&self, id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
        read!(self, |c| commands::get(c, id).await)
    }

    async fn unfinished_commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        read!(self, |c| commands::unfinished(c).await)
    }

    async fn purge_finished_commands(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| commands::purge_finished(c, before).await)
    }

    async fn apply(
        &self,
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<u64>, StoreError> {
        self.write(effects, completion).await
    }

    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM profiles WHERE id = $1").bind(id.to_string()),
            rows::profile
        )
        .await)
    }

    async fn profile_by_username(&self, username: &str) -> Result<Option<Profile>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM profiles WHERE username_key = $1")
                .bind(username_key(username)),
            rows::profile
        )
        .await)
    }

    async fn auth_token(&self, hash: &TokenHash) -> Result<Option<AuthToken>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM auth_tokens WHERE hash = $1").bind(hash.to_hex()),
            rows::auth_token
        )
        .await)
    }

    async fn count_live_tokens(
        &self,
        profile_id: ProfileId,
        except: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        read!(self, |c| db::count(
            c,
            sqlx::query(
                "SELECT COUNT(*) FROM auth_tokens
                 WHERE profile_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND hash <> $3"
            )
            .bind(profile_id.to_string())
            .bind(now.unix())
            .bind(except.map(|h| h.to_hex()).unwrap_or_default())
        )
        .await)
    }

    async fn purge_expired_tokens(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| {
            let tokens = db::exec(
                &mut *c,
                sqlx::query("DELETE FROM auth_tokens WHERE expires_at < $1").bind(before.unix()),
            )
            .await?;
            let qr = db::exec(
                c,
                sqlx::query("DELETE FROM qr_tokens WHERE expires_at < $1").bind(before.unix()),
            )
            .await?;
            Ok(tokens + qr)
        })
    }

    async fn purge_spool(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| db::exec(
            c,
            sqlx::query(
                "DELETE FROM spool WHERE spooled_at < $1 AND EXISTS (
                     SELECT 1 FROM token_versions v
                     WHERE v.token_seq = spool.token_seq AND v.version = spool.version
                       AND v.committed)"
            )
            .bind(before.unix())
        )
        .await)
    }

    async fn take_qr_token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<ProfileId>, StoreError> {
        // One DELETE ... RETURNING: of two engines taking the same token, one deletes it.
        let taken = read!(self, |c| db::one(
            c,
            sqlx::query(
                "DELETE FROM qr_tokens WHERE hash = $1 AND expires_at > $2 RETURNING profile_id"
            )
            .bind(hash.to_hex())
            .bind(now.unix()),
            |r| r.col::<String>("profile_id")
        )
        .await)?;
        taken.map(|id| rows::profile_id(&id)).transpose()
    }

    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM devices WHERE id = $1").bind(id.to_string()),
            rows::device
        )
        .await)
    }

    async fn device_by_request(&self, command: CommandId) -> Result<Option<Device>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM devices WHERE request_command_id = $1")
                .bind(command.to_string()),
            rows::device
        )
        .await)
    }

    async fn device_by_client_id(&self, client_id: &str) -> Result<Option<Device>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM devices WHERE client_id = $1").bind(client_id),
            rows::device
        )
        .await)
    }

    async fn list_devices(
        &self,
        profile_id: ProfileId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<(Vec<Device>, u64), StoreError> {
        read!(self, |c| data::list_devices(c, profile_id, filter, page)
            .await)
    }

    async fn storage_devices(
        &self,
        profile_id: Option<ProfileId>,
    ) -> Result<Vec<Device>, StoreError> {
        read!(self, |c| data::storage_devices(c, profile_id).await)
    }

    async fn count_live_devices(&self, profile_id: ProfileId) -> Result<u64, StoreError> {
        read!(self, |c| {
            db::count(
            c,
            sqlx::query(
                "SELECT COUNT(*) FROM devices WHERE profile_id = $1 AND status IN ('pending', 'approved')"
            )
            .bind(profile_id.to_string())
        )
        .await
        })
    }

    async fn authenticators(&self, profile_id: ProfileId) -> Result<Vec<Device>, StoreError> {
        read!(self, |c| governance::authenticators(c, profile_id).await)
    }

    async fn voting_defaults(&self, profile_id: ProfileId) -> Result<VotingDefaults, StoreError> {
        read!(self, |c| governance::voting_defaults(c, profile_id).await)
    }

    async fn voting_configuration(
        &self,
        id: VotingConfigurationId,
    ) -> Result<Option<VotingConfiguration>, StoreError> {
        read!(self, |c| governance::voting_configuration(c, id).await)
    }

    async fn voting_configuration_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<VotingConfiguration>, StoreError> {
        read!(self, |c| governance::voting_configuration_by_name(
            c, profile_id, name
        )
        .await)
    }

    async fn list_voting_configurations(
        &self,
        profile_id: ProfileId,
        filter: &ConfigurationFilter,
        page: Page,
    ) -> Result<(Vec<VotingConfiguration>, u64), StoreError> {
        read!(self, |c| governance::list_voting_configurations(
            c, profile_id, filter, page
        )
        .await)
    }

    async fn policy(&self, id: PolicyId) -> Result<Option<Policy>, StoreError> {
        read!(self, |c| governance::policy_by_id(c, id).await)
    }

    async fn policy_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<Policy>, StoreError> {
        read!(self, |c| governance::policy_by_name(c, profile_id, name)
            .await)
    }

    async fn list_policies(
        &self,
        profile_id: ProfileId,
        filter: &PolicyFilter,
        page: Page,
    ) -> Result<(Vec<Policy>, u64), StoreError> {
        read!(self, |c| governance::list_policies(
            c, profile_id, filter, page
        )
        .await)
    }

    async fn active_policies(&self, profile_id: ProfileId) -> Result<Vec<Policy>, StoreError> {
        read!(self, |c| governance::active_policies(c, profile_id).await)
    }

    async fn pool(&self, id: PoolId) -> Result<Option<Pool>, StoreError> {
        read!(self, |c| voting::pool_by_id(c, id).await)
    }

    async fn command_pools(&self, command: CommandId) -> Result<Vec<Pool>, StoreError> {
        read!(self, |c| voting::command_pools(c, command).await)
    }

    async fn open_pools(&self) -> Result<Vec<Pool>, StoreError> {
        read!(self, |c| voting::open_pools(c).await)
    }

    async fn attempts(&self, pool: PoolId) -> Result<Vec<Attempt>, StoreError> {
        read!(self, |c| voting::attempts(c, pool).await)
    }

    async fn ballots(&self, pool: PoolId) -> Result<Vec<Ballot>, StoreError> {
        read!(self, |c| voting::ballots(c, pool).await)
    }

    async fn ballot(&self, id: BallotId) -> Result<Option<Ballot>, StoreError> {
        read!(self, |c| voting::ballot_by_id(c, id).await)
    }

    async fn pending_ballots(&self, device: DeviceId) -> Result<Vec<Ballot>, StoreError> {
        read!(self, |c| voting::pending_ballots(c, device).await)
    }

    async fn held_commands(&self) -> Result<Vec<HeldCommand>, StoreError> {
        read!(self, |c| voting::held_commands(c).await)
    }

    async fn held_command(&self, id: CommandId) -> Result<Option<HeldCommand>, StoreError> {
        read!(self, |c| voting::held_command(c, id).await)
    }

    async fn data_token(&self, token: &str) -> Result<Option<DataToken>, StoreError> {
        let sql = format!("SELECT {DATA_TOKEN_COLUMNS} FROM data_tokens WHERE token = $1");
        read!(self, |c| db::one(
            c,
            sqlx::query(&sql).bind(token),
            rows::data_token
        )
        .await)
    }

    async fn data_token_by_reservation(
        &self,
        command: CommandId,
    ) -> Result<Option<DataToken>, StoreError> {
        let sql =
            format!("SELECT {DATA_TOKEN_COLUMNS} FROM data_tokens WHERE reserve_command_id = $1");
        read!(self, |c| db::one(
            c,
            sqlx::query(&sql).bind(command.to_string()),
            rows::data_token
        )
        .await)
    }

    async fn list_data_tokens(
        &self,
        profile_id: ProfileId,
        filter: &TokenFilter,
        page: Page,
    ) -> Result<(Vec<DataToken>, u64), StoreError> {
        read!(self, |c| data::list_tokens(c, profile_id, filter, page)
            .await)
    }

    async fn exchanging_tokens(&self) -> Result<Vec<String>, StoreError> {
        read!(self, |c| db::all(
            c,
            sqlx::query("SELECT token FROM data_tokens WHERE status = 'exchanging'"),
            |r| r.col::<String>("token")
        )
        .await)
    }

    async fn expired_reservations(
        &self,
        now: Timestamp,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        read!(self, |c| {
            db::all(
            c,
            sqlx::query(
                "SELECT token FROM data_tokens WHERE status = 'reserved' AND expires_at <= $1 LIMIT $2"
            )
            .bind(now.unix())
            .bind(limit as i64),
            |r| r.col::<String>("token")
        )
        .await
        })
    }

    async fn token_version(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Option<TokenVersion>, StoreError> {
        read!(self, |c| data::token_version(c, token, version).await)
    }

    async fn replicas(
        &self,
        token: &str,
        version: Option<u32>,
    ) -> Result<Vec<Replica>, StoreError> {
        read!(self, |c| data::replicas(c, token, version).await)
    }

    async fn device_replicas(&self, device_id: DeviceId) -> Result<Vec<Replica>, StoreError> {
        let device = device_id.to_string();
        read!(self, |c| data::device_replicas(c, &device).await)
    }

    async fn replica_counts(&self, token: &str, version: u32) -> Result<ReplicaCounts, StoreError> {
        read!(self, |c| data::replica_counts(c, token, version).await)
    }

    async fn spool(&self, token: &str, version: u32) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        read!(self, |c| data::spool(c, token, version).await)
    }

    async fn spool_chunk(
        &self,
        token: &str,
        version: u32,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        read!(self, |c| data::spool_chunk(c, token, version, index).await)
    }

    async fn event_counts(
        &self,
        profile_id: ProfileId,
        from: Timestamp,
        to: Timestamp,
        context: Option<&Match>,
        application: Option<Uuid>,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        read!(self, |c| data::events(
            c,
            profile_id,
            from,
            to,
            context,
            application
        )
        .await)
    }

    async fn engine_key(&self) -> Result<Option<EngineKeyRecord>, StoreError> {
        read!(self, |c| db::one(
            c,
            sqlx::query("SELECT * FROM engine_keys ORDER BY created_at DESC, key_id DESC LIMIT 1"),
            rows::engine_key
        )
        .await)
    }

    async fn ensure_engine_key(
        &self,
        key: &EngineKeyRecord,
    ) -> Result<EngineKeyRecord, StoreError> {
        // Engines starting at once each bring a fresh key; an advisory lock lets the first
        // store its own, and every other one reads that one back.
        transaction!(self.pool, |c| {
            let stored = async {
                db::exec(
                    &mut *c,
                    sqlx::query(
                        "SELECT pg_advisory_xact_lock(hashtext('privicore.engine_key:' || current_schema()))",
                    ),
                )
                .await?;
                if db::count(&mut *c, sqlx::query("SELECT COUNT(*) FROM engine_keys")).await? == 0 {
                    db::exec(
                        &mut *c,
                        sqlx::query(
                            "INSERT INTO engine_keys (key_id, private_hex, public_key, created_at) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&key.key_id)
                        .bind(key.private_hex.expose_secret())
                        .bind(&key.public_key)
                        .bind(key.created_at.unix()),
                    )
                    .await?;
                }
                db::one(
                    c,
                    sqlx::query(
                        "SELECT * FROM engine_keys ORDER BY created_at DESC, key_id DESC LIMIT 1",
                    ),
                    rows::engine_key,
                )
                .await
            };
            stored.await
        })?
        .ok_or_else(|| StoreError::Corrupt("engine key vanished".into()))
    }

    async fn replace_engine_private_key(
        &self,
        key_id: &str,
        private: &str,
    ) -> Result<(), StoreError> {
        read!(self, |c| db::exec(
            c,
            sqlx::query("UPDATE engine_keys SET private_hex = $1 WHERE key_id = $2")
                .bind(private)
                .bind(key_id)
        )
        .await
        .map(drop))
    }

    async fn version_headers(
        &self,
        after: Option<HeaderCursor>,
        limit: usize,
    ) -> Result<Vec<StoredHeader>, StoreError> {
        let after = after.unwrap_or((i64::MIN, 0));
        read!(self, |c| data::version_headers(c, after, limit).await)
    }

    async fn replace_version_header(
        &self,
        token: &str,
        version: u32,
        expected: &[u8],
        header: &[u8],
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE token_versions SET header = $4 WHERE token_seq = {} AND version = $2 AND header = $3",
            data::token_seq(1)
        );
        read!(self, |c| db::exec(
            c,
            sqlx::query(&sql)
                .bind(token)
                .bind(i64::from(version))
                .bind(expected)
                .bind(header)
        )
        .await
        .map(|n| n == 1))
    }

    async fn claim_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        body_hash: &[u8],
        now: Timestamp,
        stale_before: Timestamp,
        abandoned_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        read!(self, |c| idempotency::claim(
            c,
            slot,
            body_hash,
            now,
            stale_before,
            abandoned_before
        )
        .await)
    }

    async fn settle_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        reply: Option<&str>,
    ) -> Result<(), StoreError> {
        read!(self, |c| idempotency::settle(c, slot, reply).await)
    }

    async fn purge_idempotency_slots(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| idempotency::purge(c, before).await)
    }

    async fn hit_counter(
        &self,
        key: &str,
        now: Timestamp,
        window_seconds: i64,
    ) -> Result<Counter, StoreError> {
        read!(self, |c| counters::hit(c, key, now, window_seconds).await)
    }

    async fn counter(&self, key: &str, now: Timestamp) -> Result<Option<Counter>, StoreError> {
        read!(self, |c| counters::read(c, key, now).await)
    }

    async fn clear_counter(&self, key: &str) -> Result<(), StoreError> {
        read!(self, |c| counters::clear(c, key).await)
    }

    async fn purge_counters(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| counters::purge(c, before).await)
    }

    async fn oauth_application(&self, id: Uuid) -> Result<Option<Application>, StoreError> {
        read!(self, |c| oauth::application_by_id(c, id).await)
    }

    async fn oauth_application_by_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Application>, StoreError> {
        read!(self, |c| oauth::application_by_client(c, client_id).await)
    }

    async fn oauth_applications(
        &self,
        profile_id: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<(Application, u64)>, u64), StoreError> {
        read!(self, |c| oauth::applications(c, profile_id, name, page)
            .await)
    }

    async fn oauth_request(&self, id: CommandId) -> Result<Option<AuthRequest>, StoreError> {
        read!(self, |c| oauth::request_by_id(c, id).await)
    }

    async fn oauth_request_by_code(
        &self,
        code: &TokenHash,
    ) -> Result<Option<AuthRequest>, StoreError> {
        read!(self, |c| oauth::request_by_code(c, code).await)
    }

    async fn purge_oauth(&self, before: Timestamp) -> Result<u64, StoreError> {
        transaction!(self.pool, |c| oauth::purge(c, before).await)
    }

    async fn oauth_grant(&self, id: Uuid) -> Result<Option<Grant>, StoreError> {
        read!(self, |c| oauth::grant_by_id(c, id).await)
    }

    async fn oauth_live_grants(&self, profile_id: ProfileId) -> Result<u64, StoreError> {
        read!(self, |c| oauth::live_grants(c, profile_id).await)
    }

    async fn oauth_nonce_used(&self, application: Uuid, nonce: &str) -> Result<bool, StoreError> {
        read!(self, |c| oauth::nonce_used(c, application, nonce).await)
    }

    async fn oauth_grant_by_refresh(
        &self,
        refresh: &TokenHash,
    ) -> Result<Option<(Grant, bool)>, StoreError> {
        read!(self, |c| oauth::grant_by_refresh(c, refresh).await)
    }

    async fn directory(&self, id: Uuid) -> Result<Option<dir::Directory>, StoreError> {
        read!(self, |c| directory::by_id(c, id).await)
    }

    async fn owned_directories(
        &self,
        owner: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<dir::Directory>, u64), StoreError> {
        read!(self, |c| directory::owned(c, owner, name, page).await)
    }

    async fn assigned_directories(
        &self,
        profile: ProfileId,
        role: Option<dir::Role>,
        status: dir::MemberStatus,
        page: Page,
    ) -> Result<(Vec<(dir::Directory, dir::Membership)>, u64), StoreError> {
        read!(self, |c| directory::assigned(
            c, profile, role, status, page
        )
        .await)
    }

    async fn membership(
        &self,
        id: Uuid,
        profile: ProfileId,
    ) -> Result<Option<dir::Membership>, StoreError> {
        read!(self, |c| directory::membership(c, id, profile).await)
    }

    async fn managed_membership(
        &self,
        profile: ProfileId,
    ) -> Result<Option<dir::Membership>, StoreError> {
        read!(self, |c| directory::managed_membership(c, profile).await)
    }

    async fn members(
        &self,
        id: Uuid,
        filter: &dir::MemberFilter,
        page: Page,
    ) -> Result<(Vec<dir::Membership>, u64), StoreError> {
        read!(self, |c| directory::members(c, id, filter, page).await)
    }

    async fn directory_counts(
        &self,
        id: Uuid,
        now: Timestamp,
    ) -> Result<dir::DirectoryCounts, StoreError> {
        read!(self, |c| directory::counts(c, id, now).await)
    }

    async fn profile_activity(
        &self,
        profile: ProfileId,
    ) -> Result<dir::ProfileActivity, StoreError> {
        read!(self, |c| directory::activity(c, profile).await)
    }

    async fn invitation(&self, id: Uuid) -> Result<Option<dir::Invitation>, StoreError> {
        read!(self, |c| directory::invitation_by_id(c, id).await)
    }

    async fn invitations(
        &self,
        scope: dir::InvitationScope,
        status: Option<dir::InvitationStatus>,
        now: Timestamp,
        page: Page,
    ) -> Result<(Vec<dir::Invitation>, u64), StoreError> {
        read!(self, |c| directory::invitations(
            c, scope, status, now, page
        )
        .await)
    }

    async fn purge_directory_history(&self, before: Timestamp) -> Result<u64, StoreError> {
        read!(self, |c| directory::purge(c, before).await)
    }
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn append_audit(
        &self,
        sealer: &Sealer,
        entries: &[AuditEntry],
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        transaction!(self.pool, |c| {
            let appended = async {
                // The chain's lock first, so appends are sealed in the order they commit.
                let records = audit::seal_and_append(&mut *c, sealer, entries).await?;
                apply::apply_in(&mut *c, effects).await?;
                if let Some(done) = completion {
                    commands::complete(&mut *c, done).await?;
                }
                Ok::<_, StoreError>(records)
            };
            appended.await
        })
    }

    async fn audit_head(&self) -> Result<Option<SealedHead>, StoreError> {
        read!(self, |c| audit::head(c).await)
    }

    async fn audit_records(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        read!(self, |c| audit::records(c, after, limit).await)
    }

    async fn audit_tail(&self, n: usize) -> Result<Vec<AuditRecord>, StoreError> {
        read!(self, |c| audit::tail(c, n).await)
    }
}

#[cfg(test)]
mod tests;
