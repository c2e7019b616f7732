use crate::auth::AuthToken;
use crate::command::{CommandRecord, Completion};
use crate::effect::Effect;
use crate::keys::EngineKeyRecord;
use crate::profile::Profile;
use crate::secret::TokenHash;
use crate::{CommandId, Error, ProfileId, Reason, Timestamp};
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username taken")]
    UsernameTaken,
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
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UsernameTaken => Error::new(Reason::ProfileUsernameTaken),
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

    /// Persists a new command; returns only once it is durable.
    async fn insert_command(&self, command: &CommandRecord) -> Result<(), StoreError>;
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
    /// Consumes a QR token if it is live; single-use even under concurrency.
    async fn take_qr_token(
        &self,
        hash: &TokenHash,
        now: Timestamp,
    ) -> Result<Option<ProfileId>, StoreError>;

    async fn engine_key(&self) -> Result<Option<EngineKeyRecord>, StoreError>;
    /// Stores `key` unless one exists; returns the key that is stored afterwards, so
    /// concurrent first starts agree on one key.
    async fn ensure_engine_key(&self, key: &EngineKeyRecord)
    -> Result<EngineKeyRecord, StoreError>;
}
