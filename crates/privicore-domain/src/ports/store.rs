use crate::auth::AuthToken;
use crate::command::{CommandRecord, Completion};
use crate::counter::Counter;
use crate::data_token::{
    DataToken, HeaderCursor, Match, Page, Replica, ReplicaCounts, StoredHeader, TokenFilter,
    TokenVersion,
};
use crate::device::{Device, DeviceFilter, DeviceId};
use crate::effect::Effect;
use crate::governance::{
    Attempt, Ballot, ConfigurationFilter, HeldCommand, Policy, PolicyFilter, Pool,
    VotingConfiguration, VotingDefaults,
};
use crate::idempotency::{IdempotencyRecord, IdempotencySlot};
use crate::keys::EngineKeyRecord;
use crate::profile::Profile;
use crate::secret::TokenHash;
use crate::{
    BallotId, CommandId, Error, PolicyId, PoolId, ProfileId, Reason, Timestamp,
    VotingConfigurationId,
};
use async_trait::async_trait;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("username taken")]
    UsernameTaken,
    /// A conditional effect found the state changed; the transaction was rolled back.
    #[error("conflict: {0}")]
    Conflict(Reason),
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Conflicts that are business outcomes of a command rather than faults.
    pub fn business_reason(&self) -> Option<Reason> {
        match self {
            Self::UsernameTaken => Some(Reason::ProfileUsernameTaken),
            Self::Conflict(reason) => Some(*reason),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => Error::new(Reason::ProfileUsernameTaken),
            StoreError::Conflict(reason) => Error::new(reason),
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "metadata store unavailable");
                Error::new(Reason::ServiceUnavailable)
            }
            StoreError::Corrupt(detail) => Error::internal(detail),
        }
    }
}

/// Durable metadata: profiles, tokens, keys and the command log.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Cheap liveness probe for `/health`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Persists a new command together with `effects` (atomically); returns only once it
    /// is durable.
    async fn insert_command(
        &self,
        command: &CommandRecord,
        effects: &[Effect],
    ) -> Result<(), StoreError>;
    async fn command(&self, id: CommandId) -> Result<Option<CommandRecord>, StoreError>;
    /// Commands accepted but not finished, oldest first (resumed after a restart).
    async fn unfinished_commands(&self) -> Result<Vec<CommandRecord>, StoreError>;
    /// Drops finished commands older than `before`; returns how many.
    async fn purge_finished_commands(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Applies the effects and, if given, the command completion atomically. Returns the
    /// number of rows each effect touched.
    async fn apply(
        &self,
        effects: &[Effect],
        completion: Option<&Completion>,
    ) -> Result<Vec<u64>, StoreError>;

    async fn profile(&self, id: ProfileId) -> Result<Option<Profile>, StoreError>;
    /// Case-insensitive lookup.
    async fn profile_by_username(&self, username: &str) -> Result<Option<Profile>, StoreError>;

    async fn auth_token(&self, hash: &TokenHash) -> Result<Option<AuthToken>, StoreError>;
    /// Live (unexpired, unrevoked) tokens of a profile, `except` excluded.
    async fn count_live_tokens(
        &self,
        profile_id: ProfileId,
        except: Option<&TokenHash>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Drops tokens that expired before `before`.
    async fn purge_expired_tokens(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Drops the spool copies of committed versions spooled before `before` (§5.2.7: the
    /// spool keeps an object at most 24 h after its commit); returns how many chunks.
    async fn purge_spool(&self, before: Timestamp) -> Result<u64, StoreError>;
    /// Consumes a QR token if it is live; single-use even under concurrency.
    async fn take_qr_token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<ProfileId>, StoreError>;

    async fn device(&self, id: DeviceId) -> Result<Option<Device>, StoreError>;
    async fn device_by_request(&self, command: CommandId) -> Result<Option<Device>, StoreError>;
    /// Devices holding these bus user / client id credentials.
    async fn device_by_client_id(&self, client_id: &str) -> Result<Option<Device>, StoreError>;
    async fn list_devices(
        &self,
        profile_id: ProfileId,
        filter: &DeviceFilter,
        page: Page,
    ) -> Result<(Vec<Device>, u64), StoreError>;
    /// Approved devices with the storage role: of one profile, or of all profiles.
    async fn storage_devices(
        &self,
        profile_id: Option<ProfileId>,
    ) -> Result<Vec<Device>, StoreError>;
    async fn count_live_devices(&self, profile_id: ProfileId) -> Result<u64, StoreError>;
    /// The profile's approved devices holding the authenticator role, oldest first, read
    /// now (eligible voters are recomputed from this for every attempt).
    async fn authenticators(&self, profile_id: ProfileId) -> Result<Vec<Device>, StoreError>;

    /// The profile's voting defaults; the built-in defaults (`updated_at: None`) when it
    /// never set any.
    async fn voting_defaults(&self, profile_id: ProfileId) -> Result<VotingDefaults, StoreError>;
    async fn voting_configuration(
        &self,
        id: VotingConfigurationId,
    ) -> Result<Option<VotingConfiguration>, StoreError>;
    /// Case-insensitive lookup among the profile's configurations.
    async fn voting_configuration_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<VotingConfiguration>, StoreError>;
    /// Newest first (docs/api/README.md §9), and the total across pages.
    async fn list_voting_configurations(
        &self,
        profile_id: ProfileId,
        filter: &ConfigurationFilter,
        page: Page,
    ) -> Result<(Vec<VotingConfiguration>, u64), StoreError>;
    /// Any policy by id, deleted ones included (pools keep naming them); callers treat a
    /// deleted policy as not found.
    async fn policy(&self, id: PolicyId) -> Result<Option<Policy>, StoreError>;
    /// Case-insensitive lookup among the profile's live (not deleted) policies.
    async fn policy_by_name(
        &self,
        profile_id: ProfileId,
        name: &str,
    ) -> Result<Option<Policy>, StoreError>;
    /// Live policies, newest first, and the total across pages.
    async fn list_policies(
        &self,
        profile_id: ProfileId,
        filter: &PolicyFilter,
        page: Page,
    ) -> Result<(Vec<Policy>, u64), StoreError>;
    /// Every active policy of the profile, oldest first (gating and safeguards).
    async fn active_policies(&self, profile_id: ProfileId) -> Result<Vec<Policy>, StoreError>;

    // Voting (docs/api/voting-and-policy.md §1.4, §2): pools, attempts, ballots, holds.
    async fn pool(&self, id: PoolId) -> Result<Option<Pool>, StoreError>;
    /// The pools a held command opened, oldest first.
    async fn command_pools(&self, command: CommandId) -> Result<Vec<Pool>, StoreError>;
    /// Every open pool, oldest first (resumed after a restart).
    async fn open_pools(&self) -> Result<Vec<Pool>, StoreError>;
    /// The pool's attempts in order.
    async fn attempts(&self, pool: PoolId) -> Result<Vec<Attempt>, StoreError>;
    /// The pool's ballots, every attempt, in issue order.
    async fn ballots(&self, pool: PoolId) -> Result<Vec<Ballot>, StoreError>;
    async fn ballot(&self, id: BallotId) -> Result<Option<Ballot>, StoreError>;
    /// The device's unanswered, not withdrawn ballots of open attempts, oldest first.
    async fn pending_ballots(&self, device: DeviceId) -> Result<Vec<Ballot>, StoreError>;
    /// Commands still held (not released), oldest first.
    async fn held_commands(&self) -> Result<Vec<HeldCommand>, StoreError>;
    async fn held_command(&self, id: CommandId) -> Result<Option<HeldCommand>, StoreError>;

    async fn data_token(&self, token: &str) -> Result<Option<DataToken>, StoreError>;
    async fn data_token_by_reservation(
        &self,
        command: CommandId,
    ) -> Result<Option<DataToken>, StoreError>;
    async fn list_data_tokens(
        &self,
        profile_id: ProfileId,
        filter: &TokenFilter,
        page: Page,
    ) -> Result<(Vec<DataToken>, u64), StoreError>;
    /// Tokens in `exchanging` (read at start-up: an upload cut off by a stop left its
    /// token there without a command).
    async fn exchanging_tokens(&self) -> Result<Vec<String>, StoreError>;
    /// `reserved` tokens whose deadline passed, at most `limit`.
    async fn expired_reservations(
        &self,
        now: Timestamp,
        limit: u64,
    ) -> Result<Vec<String>, StoreError>;
    async fn token_version(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Option<TokenVersion>, StoreError>;
    async fn replicas(&self, token: &str, version: Option<u32>)
    -> Result<Vec<Replica>, StoreError>;
    /// Replicas held by one device, in any state.
    async fn device_replicas(&self, device_id: DeviceId) -> Result<Vec<Replica>, StoreError>;
    async fn replica_counts(&self, token: &str, version: u32) -> Result<ReplicaCounts, StoreError>;
    async fn spool(&self, token: &str, version: u32) -> Result<Option<Vec<Vec<u8>>>, StoreError>;
    /// One spooled chunk, so that large versions move through memory a chunk at a time.
    async fn spool_chunk(
        &self,
        token: &str,
        version: u32,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Counts of `kind` events per bucket start (`%Y-%m-%d` style key) in `[from, to)`.
    async fn event_counts(
        &self,
        profile_id: ProfileId,
        from: Timestamp,
        to: Timestamp,
        context: Option<&Match>,
        // Only the transactions of this application (`None`: all of the profile's).
        application: Option<uuid::Uuid>,
    ) -> Result<Vec<(String, Timestamp)>, StoreError>;

    async fn engine_key(&self) -> Result<Option<EngineKeyRecord>, StoreError>;
    /// Stores `key` unless one exists; returns the key that is stored afterwards, so
    /// concurrent first starts agree on one key.
    async fn ensure_engine_key(&self, key: &EngineKeyRecord)
    -> Result<EngineKeyRecord, StoreError>;
    /// Replaces the stored private part of engine key `key_id` (its sealed form at rest).
    async fn replace_engine_private_key(
        &self,
        key_id: &str,
        private: &str,
    ) -> Result<(), StoreError>;

    /// Version headers after `after` in the store's order, at most `limit`.
    async fn version_headers(
        &self,
        after: Option<HeaderCursor>,
        limit: usize,
    ) -> Result<Vec<StoredHeader>, StoreError>;
    /// Replaces a version's header if it is still `expected`; `false` when it is not.
    async fn replace_version_header(
        &self,
        token: &str,
        version: u32,
        expected: &[u8],
        header: &[u8],
    ) -> Result<bool, StoreError>;

    /// Claims `slot` for a request whose body has `body_hash`, atomically: a record created
    /// before `stale_before`, or an unsettled one created before `abandoned_before`, is
    /// replaced. `None` when the slot is now claimed; the record holding it otherwise.
    async fn claim_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        body_hash: &[u8],
        now: Timestamp,
        stale_before: Timestamp,
        abandoned_before: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Stores the reply of a claimed slot, or frees the slot when `reply` is `None`.
    async fn settle_idempotency_slot(
        &self,
        slot: &IdempotencySlot,
        reply: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Drops records created before `before`; returns how many.
    async fn purge_idempotency_slots(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// Counts one hit under `key`, atomically: in the window running at `now`, or in a new
    /// one of `window_seconds` from `now` when the stored one has ended. The counter after
    /// the hit.
    async fn hit_counter(
        &self,
        key: &str,
        now: Timestamp,
        window_seconds: i64,
    ) -> Result<Counter, StoreError>;
    /// The counter of `key`, unless its window ended at or before `now`.
    async fn counter(&self, key: &str, now: Timestamp) -> Result<Option<Counter>, StoreError>;
    async fn clear_counter(&self, key: &str) -> Result<(), StoreError>;
    /// Drops counters whose window ended before `before`; returns how many.
    async fn purge_counters(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// OAuth (docs/api/oauth.md).
    async fn oauth_application(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<crate::oauth::Application>, StoreError>;
    async fn oauth_application_by_client(
        &self,
        client_id: &str,
    ) -> Result<Option<crate::oauth::Application>, StoreError>;
    /// The profile's applications, newest first, each with its count of live grants.
    async fn oauth_applications(
        &self,
        profile_id: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<(crate::oauth::Application, u64)>, u64), StoreError>;
    async fn oauth_request(
        &self,
        id: CommandId,
    ) -> Result<Option<crate::oauth::AuthRequest>, StoreError>;
    async fn oauth_request_by_code(
        &self,
        code: &TokenHash,
    ) -> Result<Option<crate::oauth::AuthRequest>, StoreError>;
    /// Deletes authorization requests that expired before `before`, and grants whose
    /// refresh token did (with their used refresh tokens); how many rows went.
    async fn purge_oauth(&self, before: Timestamp) -> Result<u64, StoreError>;
    async fn oauth_grant(&self, id: uuid::Uuid) -> Result<Option<crate::oauth::Grant>, StoreError>;
    /// The profile's grants not revoked.
    async fn oauth_live_grants(&self, profile_id: ProfileId) -> Result<u64, StoreError>;
    async fn oauth_nonce_used(
        &self,
        application: uuid::Uuid,
        nonce: &str,
    ) -> Result<bool, StoreError>;
    /// The grant whose current refresh token this is (`false`), or that rotated it away
    /// (`true`).
    async fn oauth_grant_by_refresh(
        &self,
        refresh: &TokenHash,
    ) -> Result<Option<(crate::oauth::Grant, bool)>, StoreError>;

    /// Directories (docs/api/directory.md).
    async fn directory(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<crate::directory::Directory>, StoreError>;
    /// Directories the profile owns, newest first.
    async fn owned_directories(
        &self,
        owner: ProfileId,
        name: Option<&Match>,
        page: Page,
    ) -> Result<(Vec<crate::directory::Directory>, u64), StoreError>;
    /// Directories where the profile is an admin or member (not owner), newest first, with
    /// its membership.
    async fn assigned_directories(
        &self,
        profile: ProfileId,
        role: Option<crate::directory::Role>,
        status: crate::directory::MemberStatus,
        page: Page,
    ) -> Result<
        (
            Vec<(crate::directory::Directory, crate::directory::Membership)>,
            u64,
        ),
        StoreError,
    >;
    async fn membership(
        &self,
        directory: uuid::Uuid,
        profile: ProfileId,
    ) -> Result<Option<crate::directory::Membership>, StoreError>;
    /// The membership through which a directory manages the profile (a managed user
    /// belongs to exactly one directory), if any.
    async fn managed_membership(
        &self,
        profile: ProfileId,
    ) -> Result<Option<crate::directory::Membership>, StoreError>;
    /// Members, by `joinedAt` ascending.
    async fn members(
        &self,
        directory: uuid::Uuid,
        filter: &crate::directory::MemberFilter,
        page: Page,
    ) -> Result<(Vec<crate::directory::Membership>, u64), StoreError>;
    async fn directory_counts(
        &self,
        directory: uuid::Uuid,
        now: Timestamp,
    ) -> Result<crate::directory::DirectoryCounts, StoreError>;
    async fn profile_activity(
        &self,
        profile: ProfileId,
    ) -> Result<crate::directory::ProfileActivity, StoreError>;
    async fn invitation(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<crate::directory::Invitation>, StoreError>;
    /// Newest first; `status` `None` = all; an expired pending one counts as `expired`.
    async fn invitations(
        &self,
        scope: crate::directory::InvitationScope,
        status: Option<crate::directory::InvitationStatus>,
        now: Timestamp,
        page: Page,
    ) -> Result<(Vec<crate::directory::Invitation>, u64), StoreError>;
    /// Drops memberships removed before `before` and invitations that ended before it
    /// (docs/api/directory.md §1.2); how many rows went.
    async fn purge_directory_history(&self, before: Timestamp) -> Result<u64, StoreError>;
}
