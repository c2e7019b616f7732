//! Changes a command or a synchronous call makes to metadata. The store applies a list of
//! effects and, for commands, the completion record in one transaction, so an outcome is
//! never recorded without its effects or the other way round.

use crate::auth::{AuthToken, QrToken};
use crate::data_token::{DataToken, Replica, ReplicaState, TokenStatus, TokenVersion};
use crate::device::{Device, DeviceCredentials, DeviceId, SyncRecord};
use crate::governance::{
    Attempt, Ballot, Policy, Pool, Vote, VotingConfiguration, VotingDefaults, WithdrawReason,
};
use crate::ids::{BallotId, CommandId};
use crate::password::PasswordHash;
use crate::profile::Profile;
use crate::secret::TokenHash;
use crate::{ProfileId, Timestamp};
use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Effect {
    /// Fails with [`crate::ports::StoreError::UsernameTaken`] when the name exists.
    CreateProfile(Profile),
    SetPassword {
        profile_id: ProfileId,
        hash: PasswordHash,
    },
    SetPublicKey {
        profile_id: ProfileId,
        public_key: String,
        at: Timestamp,
    },
    InsertAuthToken(AuthToken),
    /// Revokes one token; affects 0 rows when it was already revoked.
    RevokeAuthToken {
        hash: TokenHash,
        at: Timestamp,
    },
    /// Revokes every live token of the profile except `keep`.
    RevokeProfileTokens {
        profile_id: ProfileId,
        keep: Option<TokenHash>,
        at: Timestamp,
    },
    /// Replaces the profile's outstanding QR token.
    PutQrToken(QrToken),
    Data(Box<DataEffect>),
    Governance(Box<GovernanceEffect>),
    Voting(Box<VotingEffect>),
    Oauth(Box<crate::oauth::OauthEffect>),
    Directory(Box<crate::directory::DirectoryEffect>),
}

/// Effects on pools, attempts, ballots and held commands (docs/api/voting-and-policy.md
/// §1.4, §2). The engine serializes every change of a pool, so each writes whole records.
#[derive(Debug, Clone)]
pub enum VotingEffect {
    /// Creates or replaces the pool.
    SavePool(Box<Pool>),
    /// Creates or replaces the attempt.
    SaveAttempt(Attempt),
    IssueBallots(Vec<Ballot>),
    /// Records the vote; fails with `Conflict(ballot.already_voted)` when the ballot was
    /// answered, `Conflict(ballot.closed)` when it was withdrawn or its attempt is closed.
    RecordVote {
        ballot_id: BallotId,
        vote: Vote,
    },
    /// Takes back one unanswered ballot; 0 rows when it was answered or withdrawn.
    WithdrawBallot {
        ballot_id: BallotId,
        reason: WithdrawReason,
    },
    /// Takes back every unanswered ballot of an attempt; returns how many.
    WithdrawAttempt {
        pool_id: crate::PoolId,
        attempt: u32,
        reason: WithdrawReason,
    },
    HoldCommand {
        command_id: CommandId,
        profile_id: ProfileId,
        at: Timestamp,
    },
    /// The hold ended: `outcome` is `approved` or the failure key.
    ReleaseCommand {
        command_id: CommandId,
        outcome: String,
        at: Timestamp,
    },
}

impl VotingEffect {
    pub fn save_pool(pool: Pool) -> Self {
        Self::SavePool(Box::new(pool))
    }
}

impl From<VotingEffect> for Effect {
    fn from(e: VotingEffect) -> Self {
        Effect::Voting(Box::new(e))
    }
}

/// Effects on voting defaults, voting configurations and policies. Their commands run in
/// the profile's lane, so each writes the whole record it read and changed.
#[derive(Debug, Clone)]
pub enum GovernanceEffect {
    PutVotingDefaults {
        profile_id: ProfileId,
        defaults: VotingDefaults,
    },
    /// Creates or replaces the configuration; fails with
    /// `Conflict(voting_configuration.name_taken)` when another of the profile's
    /// configurations has the name (case-insensitively).
    SaveVotingConfiguration(VotingConfiguration),
    /// Creates or replaces the policy; fails with `Conflict(policy.name_taken)` when
    /// another live policy of the profile has the name. A deleted policy frees its name.
    SavePolicy(Policy),
}

impl From<GovernanceEffect> for Effect {
    fn from(e: GovernanceEffect) -> Self {
        Effect::Governance(Box::new(e))
    }
}

/// Effects on devices and data tokens.
#[derive(Debug, Clone)]
pub enum DataEffect {
    /// Creates the device, or updates its status, roles, name, description and meta
    /// (device commands are serialized per device). Credentials and the pinned key are
    /// changed only by their own effects.
    SaveDevice(Device),
    /// Records the start or end of a synchronization.
    SetDeviceSync {
        device_id: DeviceId,
        record: SyncRecord,
    },
    /// Revokes the device's client and bus credentials.
    ClearDeviceCredentials {
        device_id: DeviceId,
    },
    /// Pins the key from a device's first hello; no-op if one is pinned already.
    PinDeviceKey {
        device_id: DeviceId,
        public_key: String,
    },
    /// A new bundle: new secrets, the pinned key cleared.
    RotateDeviceCredentials {
        device_id: DeviceId,
        credentials: DeviceCredentials,
        at: Timestamp,
    },
    /// Fails with `data_token.too_many_reservations` when the profile already has `limit`
    /// reservations outstanding (`reserved` or `exchanging`). Checked in the write that
    /// creates the reservation, so concurrent reservations cannot pass the cap together.
    CapOutstandingReservations {
        profile_id: ProfileId,
        limit: u64,
    },
    CreateDataToken(DataToken),
    /// `reserved` → `exchanging`; fails with `data_token.already_exchanged` otherwise.
    BeginExchange {
        token: String,
        at: Timestamp,
    },
    /// Back to `reserved` with a fresh upload value, or `expired` when time ran out.
    AbortExchange {
        token: String,
        status: TokenStatus,
        upload_salt: Option<TokenHash>,
        at: Timestamp,
    },
    /// `reserved` → `active` with `version` current, in one step: for an exchange whose
    /// version was replicated before anything was written, so no reader can see it
    /// `exchanging`. Fails with `data_token.already_exchanged` unless `reserved`.
    ActivateReservation {
        token: String,
        version: u32,
        stored_size: u64,
        at: Timestamp,
    },
    /// The version becomes current, the token `active`.
    CommitVersion {
        token: String,
        version: u32,
        stored_size: u64,
        at: Timestamp,
    },
    /// `reserved` → `expired`; affects 0 rows if it changed meanwhile.
    ExpireReservation {
        token: String,
        at: Timestamp,
    },
    SetFileMeta {
        token: String,
        file: Option<Value>,
        context: Option<String>,
        at: Timestamp,
    },
    SetRiskMeta {
        token: String,
        risk: Option<Value>,
        at: Timestamp,
    },
    SetDataMeta {
        token: String,
        data: Option<Value>,
        at: Timestamp,
    },
    /// Status `deleted`, metadata erased.
    DeleteDataToken {
        token: String,
        at: Timestamp,
    },
    PutTokenVersion(TokenVersion),
    SetReplica(Replica),
    /// Records a replica unless one exists.
    AddReplica(Replica),
    /// The device holds the version: `confirmed`, unless the replica is being deleted or
    /// detached.
    ConfirmReplica {
        token: String,
        version: u32,
        device_id: DeviceId,
    },
    /// Only moves a replica that is in one of `from`.
    TransitionReplica {
        token: String,
        version: u32,
        device_id: DeviceId,
        from: Vec<ReplicaState>,
        to: ReplicaState,
    },
    /// Forgets a device's replicas of a token that were being deleted (it confirmed).
    DropReplicas {
        token: String,
        device_id: DeviceId,
    },
    /// All replicas of a device become `detached` (role lost or device removed).
    DetachReplicas {
        device_id: DeviceId,
    },
    PutSpool {
        token: String,
        version: u32,
        chunks: Vec<Vec<u8>>,
    },
    /// One sealed chunk of a version being uploaded, spooled as it arrives.
    PutSpoolChunk {
        token: String,
        version: u32,
        index: u32,
        sealed: Vec<u8>,
    },
    DropSpool {
        token: String,
        version: u32,
    },
    /// Drops the spool copy of a version once none of its replicas is pending (checked in
    /// the same write, so a confirmation and the drop it allows cost one request).
    DropSettledSpool {
        token: String,
        version: u32,
    },
    /// One counted transaction, for the statistics.
    CountEvent {
        profile_id: ProfileId,
        kind: &'static str,
        context: String,
        at: Timestamp,
        /// The application whose access token made the transaction (oauth.md §1.2).
        application_id: Option<uuid::Uuid>,
    },
}

impl From<DataEffect> for Effect {
    fn from(e: DataEffect) -> Self {
        Effect::Data(Box::new(e))
    }
}
