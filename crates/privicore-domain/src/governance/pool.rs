//! Pools, attempts, ballots and votes (docs/api/voting-and-policy.md §1.4–1.6): one vote on
//! one question, run in attempts with their own deadlines, tallied by the snapshotted
//! strategy. Pure rules; the engine keeps them durable and drives the deadlines.

use super::voting::{Strategy, VotingRules};
use crate::device::{Device, DeviceId};
use crate::ids::{BallotId, PolicyId, PoolId, VotingConfigurationId};
use crate::{CommandId, ProfileId, Reason, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(PoolOrigin { Policy => "policy", Manual => "manual", Directory => "directory" });
text_enum!(PoolStatus {
    Open => "open",
    Approved => "approved",
    Rejected => "rejected",
    Expired => "expired",
    Cancelled => "cancelled",
});
text_enum!(AttemptStatus {
    Open => "open",
    Passed => "passed",
    Rejected => "rejected",
    NoQuorum => "no_quorum",
    Cancelled => "cancelled",
});
text_enum!(Decision { Yes => "yes", No => "no" });
text_enum!(Channel { Bus => "bus", Http => "http" });
text_enum!(WithdrawReason {
    Decided => "decided",
    Expired => "expired",
    Cancelled => "cancelled",
    DeviceRemoved => "device_removed",
});

impl PoolStatus {
    pub fn is_open(self) -> bool {
        self == Self::Open
    }
}

/// The strategy predicate `S(y, r)` of §1.5. Only meaningful with `y + r ≥ 1`; returns
/// `false` otherwise (no vote never decides anything). Integer arithmetic only.
pub fn strategy_holds(strategy: Strategy, percentage: u8, yes: u32, no: u32) -> bool {
    let (y, r) = (u64::from(yes), u64::from(no));
    if y + r == 0 {
        return false;
    }
    match strategy {
        Strategy::Unanimous => r == 0,
        Strategy::Consensus => y > r,
        Strategy::Affirmative => y >= 1,
        Strategy::MinimumPercentage => {
            let c = y + r;
            (200 * y + c) / (2 * c) >= u64::from(percentage)
        }
    }
}

/// The count of one attempt: ballots issued (`N`), yes (`Y`) and no (`R`) votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub issued: u32,
    pub yes: u32,
    pub no: u32,
}

impl Tally {
    /// `U = N − Y − R`.
    pub fn outstanding(&self) -> u32 {
        self.issued.saturating_sub(self.yes + self.no)
    }

    /// The attempt's result once it can no longer change, or `None` while it can (§1.5).
    /// `deadline_passed`: the attempt's deadline is reached, so outstanding ballots count
    /// as never answered.
    ///
    /// Besides the rules of §1.5, an attempt whose quorum can no longer be reached (fewer
    /// voters left than `Q`, e.g. after ballots were withdrawn from removed devices) ends
    /// `no_quorum` at once instead of waiting for the deadline.
    pub fn decide(&self, rules: &VotingRules, deadline_passed: bool) -> Option<AttemptStatus> {
        let s = |y, r| strategy_holds(rules.strategy, rules.percentage.unwrap_or(100), y, r);
        let (y, r, u, q) = (self.yes, self.no, self.outstanding(), rules.quorum_size);
        let cast = y + r;
        let final_result = || {
            if cast >= q && s(y, r) {
                AttemptStatus::Passed
            } else if cast < q {
                AttemptStatus::NoQuorum
            } else {
                AttemptStatus::Rejected
            }
        };
        if cast >= q && s(y, r + u) {
            return Some(AttemptStatus::Passed);
        }
        if cast + u < q {
            return Some(AttemptStatus::NoQuorum);
        }
        if !s(y + u, r) {
            return Some(AttemptStatus::Rejected);
        }
        if u == 0 || deadline_passed {
            return Some(final_result());
        }
        None
    }
}

/// Who asked for the vote (check pool status `requestedBy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedBy {
    pub profile_id: ProfileId,
    pub application_id: Option<Uuid>,
    /// The application's client id, noted when the pool opened (docs/api/oauth.md §1.2).
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The event a policy pool is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEvent {
    pub event_id: String,
    pub event_name: String,
    pub label: String,
}

/// One vote about one thing (§1.4). The rules are a snapshot taken when it was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub id: PoolId,
    pub profile_id: ProfileId,
    pub origin: PoolOrigin,
    /// The held command (policy pools) or the create command (manual pools).
    pub command_id: Option<CommandId>,
    pub policy_id: Option<PolicyId>,
    pub policy_name: Option<String>,
    pub event: Option<PoolEvent>,
    pub title: String,
    pub question: String,
    pub nonce: Option<String>,
    /// The template's voting attributes of the held operation.
    pub attributes: Value,
    pub requested_by: RequestedBy,
    pub voting_configuration_id: Option<VotingConfigurationId>,
    pub rules: VotingRules,
    /// Devices that get no ballot (manual pools).
    pub skip: Vec<DeviceId>,
    pub status: PoolStatus,
    /// 0 before the first attempt started.
    pub current_attempt: u32,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub failure_key: Option<String>,
    /// Directory pools (docs/api/directory.md §3.17): the directory.
    #[serde(default)]
    pub directory_id: Option<Uuid>,
    /// Directory pools: the voter profiles as listed; empty = every active member.
    #[serde(default)]
    pub voter_profiles: Vec<ProfileId>,
}

/// What follows a closed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Start attempt `n` with fresh ballots.
    NextAttempt(u32),
    /// The pool ends with this status.
    Resolve(PoolStatus),
}

impl Pool {
    /// The voters of the next attempt among the profile's devices as read now: the rule's
    /// eligible voters minus the skipped devices. Fails with
    /// `voting.no_eligible_authenticators` or `voting.quorum_unreachable` (§1.6).
    pub fn eligible(&self, devices: &[Device]) -> Result<Vec<DeviceId>, Reason> {
        let own: Vec<Device> = devices
            .iter()
            .filter(|d| d.profile_id == self.profile_id)
            .cloned()
            .collect();
        let voters: Vec<DeviceId> = self
            .rules
            .voters
            .eligible(&own)
            .into_iter()
            .filter(|d| !self.skip.contains(d))
            .collect();
        if voters.is_empty() {
            Err(Reason::VotingNoEligibleAuthenticators)
        } else if voters.len() < self.rules.quorum_size as usize {
            Err(Reason::VotingQuorumUnreachable)
        } else {
            Ok(voters)
        }
    }

    /// The voters of a directory pool's next attempt (directory.md §3.17): every approved
    /// authenticator of each candidate profile (its devices as read now) that has one. A
    /// profile counts once however many authenticators it has, so the quorum is checked
    /// against profiles.
    pub fn directory_voters(
        &self,
        candidates: &[(ProfileId, Vec<Device>)],
    ) -> Result<Vec<(ProfileId, DeviceId)>, Reason> {
        let mut voters = Vec::new();
        let mut profiles = 0usize;
        for (profile, devices) in candidates {
            let own: Vec<Device> = devices
                .iter()
                .filter(|d| d.profile_id == *profile)
                .cloned()
                .collect();
            let ids = super::voting::Voters::AllAuthenticators.eligible(&own);
            if !ids.is_empty() {
                profiles += 1;
                voters.extend(ids.into_iter().map(|d| (*profile, d)));
            }
        }
        if profiles == 0 {
            Err(Reason::VotingNoEligibleAuthenticators)
        } else if profiles < self.rules.quorum_size as usize {
            Err(Reason::VotingQuorumUnreachable)
        } else {
            Ok(voters)
        }
    }

    /// The attempt's count: per ballot, or per voter profile in directory pools.
    pub fn tally(&self, ballots: &[Ballot]) -> Tally {
        if self.origin == PoolOrigin::Directory {
            tally_by_profile(ballots)
        } else {
            tally(ballots)
        }
    }

    /// What follows attempt `current_attempt` closing with `status` (§1.6).
    pub fn after_attempt(&self, status: AttemptStatus) -> AfterAttempt {
        match status {
            AttemptStatus::Open => AfterAttempt::Resolve(PoolStatus::Open),
            AttemptStatus::Passed => AfterAttempt::Resolve(PoolStatus::Approved),
            AttemptStatus::Cancelled => AfterAttempt::Resolve(PoolStatus::Cancelled),
            AttemptStatus::Rejected | AttemptStatus::NoQuorum
                if self.current_attempt < self.rules.max_attempts =>
            {
                AfterAttempt::NextAttempt(self.current_attempt + 1)
            }
            AttemptStatus::Rejected => AfterAttempt::Resolve(PoolStatus::Rejected),
            AttemptStatus::NoQuorum => AfterAttempt::Resolve(PoolStatus::Expired),
        }
    }

    /// Ends the pool: status, time and the failure key of a pool that did not approve.
    pub fn resolve(&mut self, status: PoolStatus, failure: Option<Reason>, at: Timestamp) {
        self.status = status;
        self.resolved_at = Some(at);
        self.failure_key = match status {
            PoolStatus::Open | PoolStatus::Approved => None,
            _ => Some(
                failure
                    .unwrap_or(match status {
                        PoolStatus::Rejected => Reason::VotingRejected,
                        PoolStatus::Cancelled => Reason::VotingCancelled,
                        _ => Reason::VotingExpired,
                    })
                    .code()
                    .to_owned(),
            ),
        };
    }
}

/// One round of a pool (§1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub pool_id: PoolId,
    pub number: u32,
    pub status: AttemptStatus,
    pub opened_at: Timestamp,
    pub deadline: Timestamp,
    pub closed_at: Option<Timestamp>,
}

impl Attempt {
    pub fn open(pool: &Pool, number: u32, now: Timestamp) -> Self {
        Self {
            pool_id: pool.id,
            number,
            status: AttemptStatus::Open,
            opened_at: now,
            deadline: now.plus_seconds(i64::from(pool.rules.time_limit)),
            closed_at: None,
        }
    }
}

/// A recorded vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub decision: Decision,
    pub voted_at: Timestamp,
    pub channel: Channel,
}

/// One voter's request to vote in one attempt (§1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub id: BallotId,
    pub pool_id: PoolId,
    pub profile_id: ProfileId,
    pub attempt: u32,
    pub device_id: DeviceId,
    pub issued_at: Timestamp,
    pub vote: Option<Vote>,
    /// Set when the ballot was taken back unanswered (`ballot.withdraw`).
    pub withdrawn: Option<WithdrawReason>,
}

impl Ballot {
    pub fn issue(pool: &Pool, attempt: u32, device_id: DeviceId, now: Timestamp) -> Self {
        Self::issue_to(pool, attempt, pool.profile_id, device_id, now)
    }

    /// A ballot for a device of `profile` (a voter profile of a directory pool).
    pub fn issue_to(
        pool: &Pool,
        attempt: u32,
        profile: ProfileId,
        device_id: DeviceId,
        now: Timestamp,
    ) -> Self {
        Self {
            id: BallotId(Uuid::new_v4()),
            pool_id: pool.id,
            profile_id: profile,
            attempt,
            device_id,
            issued_at: now,
            vote: None,
            withdrawn: None,
        }
    }

    /// Still waiting for its voter.
    pub fn is_pending(&self) -> bool {
        self.vote.is_none() && self.withdrawn.is_none()
    }

    /// Why this ballot cannot take a vote from `device` in `attempt` (§6.4), if it cannot.
    pub fn refuses(&self, device: DeviceId, attempt: &Attempt) -> Option<Reason> {
        if self.device_id != device {
            Some(Reason::BallotNotFound)
        } else if self.vote.is_some() {
            Some(Reason::BallotAlreadyVoted)
        } else if self.withdrawn.is_some() || attempt.status != AttemptStatus::Open {
            Some(Reason::BallotClosed)
        } else {
            None
        }
    }
}

/// The tally of an attempt from its ballots: withdrawn unanswered ballots do not count as
/// issued; votes already cast always count.
pub fn tally(ballots: &[Ballot]) -> Tally {
    let mut t = Tally::default();
    for b in ballots {
        match b.vote {
            Some(Vote {
                decision: Decision::Yes,
                ..
            }) => {
                t.issued += 1;
                t.yes += 1;
            }
            Some(Vote {
                decision: Decision::No,
                ..
            }) => {
                t.issued += 1;
                t.no += 1;
            }
            None if b.withdrawn.is_none() => t.issued += 1,
            None => {}
        }
    }
    t
}

/// The tally of a directory pool's attempt: each voter profile once. Its vote is the first
/// one cast by any of its authenticators; it is outstanding while one of its ballots is.
pub fn tally_by_profile(ballots: &[Ballot]) -> Tally {
    use std::collections::BTreeMap;
    let mut voters: BTreeMap<ProfileId, (bool, Option<(Timestamp, Decision)>)> = BTreeMap::new();
    for b in ballots {
        let entry = voters.entry(b.profile_id).or_default();
        match b.vote {
            Some(v) if entry.1.is_none_or(|(at, _)| v.voted_at < at) => {
                entry.1 = Some((v.voted_at, v.decision))
            }
            Some(_) => {}
            None if b.withdrawn.is_none() => entry.0 = true,
            None => {}
        }
    }
    let mut t = Tally::default();
    for (pending, vote) in voters.values() {
        match vote {
            Some((_, Decision::Yes)) => {
                t.issued += 1;
                t.yes += 1;
            }
            Some((_, Decision::No)) => {
                t.issued += 1;
                t.no += 1;
            }
            None if *pending => t.issued += 1,
            None => {}
        }
    }
    t
}

/// A command held for its pools (§2.2): it stays pending until every pool approved
/// (then it runs) or one did not (then it fails with that pool's key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCommand {
    pub command_id: CommandId,
    pub profile_id: ProfileId,
    pub held_at: Timestamp,
    /// Set once the hold ended: `approved` or the failure key.
    pub released: Option<(Timestamp, String)>,
}

/// A title or question within bounds (§6.1.1): 1..=max characters.
pub fn check_text(text: &str, max: usize, reason: Reason, field: &str) -> Result<(), crate::Error> {
    let n = text.trim().chars().count();
    if n == 0 || text.chars().count() > max {
        Err(crate::Error::new(reason).with_field(field))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceStatus, ROLE_AUTHENTICATOR};
    use crate::governance::voting::{Voters, VotingDefaults};
    use proptest::prelude::{
        prop, prop_assert, prop_assert_eq, prop_assert_ne, prop_assume, proptest,
    };

    fn rules(strategy: Strategy, percentage: Option<u8>, quorum: u32) -> VotingRules {
        VotingRules {
            strategy,
            percentage,
            quorum_size: quorum,
            time_limit: 60,
            max_attempts: 2,
            voters: Voters::AllAuthenticators,
        }
    }

    fn t(issued: u32, yes: u32, no: u32) -> Tally {
        Tally { issued, yes, no }
    }

    use AttemptStatus::{NoQuorum, Passed, Rejected};

    #[test]
    fn unanimous_examples_of_the_spec() {
        let r = rules(Strategy::Unanimous, None, 1);
        assert_eq!(t(3, 3, 0).decide(&r, false), Some(Passed));
        assert_eq!(t(3, 0, 1).decide(&r, false), Some(Rejected));
        assert_eq!(t(3, 2, 1).decide(&r, false), Some(Rejected));
        // One yes, two silent: undecided before the deadline, passes at it.
        assert_eq!(t(3, 1, 0).decide(&r, false), None);
        assert_eq!(t(3, 1, 0).decide(&r, true), Some(Passed));
        // Nobody voted: no quorum at the deadline.
        assert_eq!(t(3, 0, 0).decide(&r, true), Some(NoQuorum));
        let everyone = rules(Strategy::Unanimous, None, 3);
        assert_eq!(t(3, 1, 0).decide(&everyone, true), Some(NoQuorum));
        assert_eq!(t(3, 3, 0).decide(&everyone, false), Some(Passed));
    }

    #[test]
    fn consensus_ties_are_not_a_majority() {
        let r = rules(Strategy::Consensus, None, 2);
        assert_eq!(t(3, 2, 0).decide(&r, false), Some(Passed));
        assert_eq!(t(4, 1, 1).decide(&r, false), None);
        // 2 yes, 2 no: a tie rejects.
        assert_eq!(t(4, 2, 2).decide(&r, false), Some(Rejected));
        assert_eq!(t(4, 1, 1).decide(&r, true), Some(Rejected));
        assert_eq!(t(3, 1, 0).decide(&r, true), Some(NoQuorum));
        // Two no of three: even the last yes cannot make a majority.
        assert_eq!(t(3, 0, 2).decide(&r, false), Some(Rejected));
        assert_eq!(t(2, 1, 1).decide(&r, false), Some(Rejected));
    }

    #[test]
    fn affirmative_needs_one_yes() {
        let r = rules(Strategy::Affirmative, None, 1);
        assert_eq!(t(3, 1, 0).decide(&r, false), Some(Passed));
        assert_eq!(t(3, 0, 2).decide(&r, false), None);
        assert_eq!(t(3, 0, 3).decide(&r, false), Some(Rejected));
        assert_eq!(t(3, 0, 2).decide(&r, true), Some(Rejected));
        assert_eq!(t(3, 1, 2).decide(&r, false), Some(Passed));
        let q2 = rules(Strategy::Affirmative, None, 2);
        assert_eq!(t(3, 1, 0).decide(&q2, false), None);
        assert_eq!(t(3, 1, 0).decide(&q2, true), Some(NoQuorum));
    }

    #[test]
    fn minimum_percentage_rounds_half_up_on_cast_votes() {
        assert!(strategy_holds(Strategy::MinimumPercentage, 67, 2, 1));
        assert!(!strategy_holds(Strategy::MinimumPercentage, 67, 1, 2));
        assert!(strategy_holds(Strategy::MinimumPercentage, 50, 1, 1));
        assert!(!strategy_holds(Strategy::MinimumPercentage, 51, 1, 1));
        // 1 of 8 = 12.5 % rounds to 13.
        assert!(strategy_holds(Strategy::MinimumPercentage, 13, 1, 7));
        assert!(!strategy_holds(Strategy::MinimumPercentage, 14, 1, 7));
        // Boundaries: 0 % passes with any vote, 100 % needs every vote yes.
        assert!(strategy_holds(Strategy::MinimumPercentage, 0, 0, 5));
        assert!(strategy_holds(Strategy::MinimumPercentage, 100, 5, 0));
        // 199 of 200 = 99.5 % rounds half up to 100; 198 of 199 = 99.497 % does not.
        assert!(strategy_holds(Strategy::MinimumPercentage, 100, 199, 1));
        assert!(!strategy_holds(Strategy::MinimumPercentage, 100, 198, 1));
        assert!(!strategy_holds(Strategy::MinimumPercentage, 0, 0, 0));
        let r = rules(Strategy::MinimumPercentage, Some(67), 3);
        assert_eq!(t(3, 2, 1).decide(&r, false), Some(Passed));
        assert_eq!(t(3, 1, 2).decide(&r, false), Some(Rejected));
        assert_eq!(t(3, 2, 0).decide(&r, false), None);
        assert_eq!(t(3, 2, 0).decide(&r, true), Some(NoQuorum));
    }

    #[test]
    fn no_strategy_decides_without_votes() {
        for s in Strategy::ALL {
            assert!(!strategy_holds(s, 0, 0, 0));
            let r = rules(s, Some(0), 1);
            assert_eq!(t(2, 0, 0).decide(&r, false), None);
            assert_eq!(t(2, 0, 0).decide(&r, true), Some(NoQuorum));
            // Every ballot withdrawn: the quorum is out of reach.
            assert_eq!(t(0, 0, 0).decide(&r, false), Some(NoQuorum));
        }
    }

    #[test]
    fn an_unreachable_quorum_ends_the_attempt_early() {
        let r = rules(Strategy::Unanimous, None, 3);
        // Three voters, one ballot withdrawn: two left cannot make a quorum of three.
        assert_eq!(t(2, 1, 0).decide(&r, false), Some(NoQuorum));
    }

    fn final_of(rules: &VotingRules, issued: u32, yes: u32, no: u32) -> AttemptStatus {
        t(issued, yes, no)
            .decide(rules, true)
            .expect("decided at the deadline")
    }

    fn strategies() -> impl proptest::strategy::Strategy<Value = Strategy> {
        prop::sample::select(Strategy::ALL.to_vec())
    }

    proptest! {
        /// An early pass or no-quorum is the result every way the outstanding ballots could
        /// go (each answered yes or no, or left unanswered until the deadline); an early
        /// rejection can never turn into a pass.
        #[test]
        fn early_decisions_never_change(
            s in strategies(),
            p in 0u8..=100,
            issued in 1u32..8,
            q in 1u32..8,
            yes in 0u32..8,
            no in 0u32..8,
        ) {
            prop_assume!(yes + no <= issued);
            let r = rules(s, Some(p), q);
            if let Some(early) = t(issued, yes, no).decide(&r, false) {
                let u = issued - yes - no;
                for more_yes in 0..=u {
                    for more_no in 0..=(u - more_yes) {
                        let last = final_of(&r, issued, yes + more_yes, no + more_no);
                        match early {
                            // Rejected early stays refused: nothing can still pass it
                            // (left unanswered it may end without quorum instead).
                            Rejected => prop_assert_ne!(last, Passed),
                            _ => prop_assert_eq!(last, early),
                        }
                    }
                }
            }
        }

        /// With every ballot answered the attempt is always decided, by the pass rule.
        #[test]
        fn a_complete_count_is_decided(
            s in strategies(), p in 0u8..=100, q in 1u32..6, yes in 0u32..6, no in 0u32..6,
        ) {
            prop_assume!(yes + no >= 1);
            let r = rules(s, Some(p), q);
            let d = t(yes + no, yes, no).decide(&r, false);
            let pass = yes + no >= q && strategy_holds(s, p, yes, no);
            prop_assert_eq!(d == Some(Passed), pass);
            prop_assert!(d.is_some());
        }

        /// The rounded percentage is never more than half a point from the exact share.
        #[test]
        fn percentage_is_rounded_half_up(yes in 0u32..1000, no in 0u32..1000, p in 0u8..=100) {
            prop_assume!(yes + no >= 1);
            let exact = 100.0 * f64::from(yes) / f64::from(yes + no);
            let holds = strategy_holds(Strategy::MinimumPercentage, p, yes, no);
            if exact >= f64::from(p) { prop_assert!(holds); }
            if exact + 0.5 < f64::from(p) - 1e-9 { prop_assert!(!holds); }
        }
    }

    fn device(profile: ProfileId, authenticator: bool) -> Device {
        Device {
            id: DeviceId::new(),
            profile_id: profile,
            request_command_id: CommandId::new(),
            name: "d".into(),
            description: None,
            status: DeviceStatus::Approved,
            roles: if authenticator {
                vec![ROLE_AUTHENTICATOR.into()]
            } else {
                vec![]
            },
            public_key: None,
            meta: Default::default(),
            credentials: None,
            created_at: Timestamp::now(),
            approved_at: None,
            removed_at: None,
            configuration_issued_at: None,
            storage_registered_at: None,
            authenticator_registered_at: None,
            last_sync: None,
        }
    }

    fn pool(profile: ProfileId, rules: VotingRules) -> Pool {
        Pool {
            id: PoolId(Uuid::now_v7()),
            profile_id: profile,
            origin: PoolOrigin::Manual,
            command_id: None,
            policy_id: None,
            policy_name: None,
            event: None,
            title: "t".into(),
            question: "q".into(),
            nonce: None,
            attributes: Value::Null,
            requested_by: RequestedBy {
                profile_id: profile,
                application_id: None,
                client_id: None,
            },
            voting_configuration_id: None,
            rules,
            skip: vec![],
            status: PoolStatus::Open,
            current_attempt: 1,
            created_at: Timestamp::from_unix(1_000),
            resolved_at: None,
            failure_key: None,
            directory_id: None,
            voter_profiles: vec![],
        }
    }

    #[test]
    fn eligible_voters_are_recomputed_from_the_live_list_of_the_own_profile() {
        let me = ProfileId(Uuid::now_v7());
        let other = ProfileId(Uuid::now_v7());
        let a = device(me, true);
        let b = device(me, true);
        let storage = device(me, false);
        let foreign = device(other, true);
        let mut p = pool(me, VotingRules::resolve(None, &VotingDefaults::default()));
        let all = vec![a.clone(), b.clone(), storage.clone(), foreign.clone()];
        assert_eq!(p.eligible(&all), Ok(vec![a.id, b.id]));
        p.skip = vec![a.id];
        assert_eq!(p.eligible(&all), Ok(vec![b.id]));
        p.rules.quorum_size = 2;
        assert_eq!(p.eligible(&all), Err(Reason::VotingQuorumUnreachable));
        p.skip = vec![a.id, b.id];
        assert_eq!(
            p.eligible(&all),
            Err(Reason::VotingNoEligibleAuthenticators)
        );
        // Another profile's authenticator is never a voter, even when listed.
        p.skip.clear();
        p.rules.quorum_size = 1;
        p.rules.voters = Voters::Listed(vec![foreign.id]);
        assert_eq!(
            p.eligible(&all),
            Err(Reason::VotingNoEligibleAuthenticators)
        );
    }

    #[test]
    fn directory_pools_count_each_voter_profile_once() {
        let creator = ProfileId(Uuid::now_v7());
        let (bob, dave, carol) = (
            ProfileId(Uuid::now_v7()),
            ProfileId(Uuid::now_v7()),
            ProfileId(Uuid::now_v7()),
        );
        let mut p = pool(creator, rules(Strategy::Consensus, None, 2));
        p.origin = PoolOrigin::Directory;
        let (b1, b2, d1) = (device(bob, true), device(bob, true), device(dave, true));
        let storage_only = device(carol, false);
        let candidates = vec![
            (bob, vec![b1.clone(), b2.clone()]),
            (dave, vec![d1.clone()]),
            (carol, vec![storage_only]),
        ];
        // Two voter profiles (Carol has no authenticator), three ballots.
        let voters = p.directory_voters(&candidates).unwrap();
        assert_eq!(voters, vec![(bob, b1.id), (bob, b2.id), (dave, d1.id)]);
        p.rules.quorum_size = 3;
        assert_eq!(
            p.directory_voters(&candidates),
            Err(Reason::VotingQuorumUnreachable)
        );
        assert_eq!(
            p.directory_voters(&[(carol, vec![])]),
            Err(Reason::VotingNoEligibleAuthenticators)
        );
        // A device of another profile listed under a voter never votes for it.
        assert_eq!(
            p.directory_voters(&[(carol, vec![d1.clone()])]),
            Err(Reason::VotingNoEligibleAuthenticators)
        );

        let now = Timestamp::from_unix(10);
        let mut ballots: Vec<Ballot> = voters
            .iter()
            .map(|(pr, d)| Ballot::issue_to(&p, 1, *pr, *d, now))
            .collect();
        assert_eq!(p.tally(&ballots), t(2, 0, 0));
        // Bob's first vote is his; his other ballot withdrawn does not count.
        ballots[0].vote = Some(Vote {
            decision: Decision::Yes,
            voted_at: now,
            channel: Channel::Http,
        });
        ballots[1].withdrawn = Some(WithdrawReason::Decided);
        assert_eq!(p.tally(&ballots), t(2, 1, 0));
        // Should both of a profile's ballots carry a vote, the earlier one counts.
        ballots[1].withdrawn = None;
        ballots[1].vote = Some(Vote {
            decision: Decision::No,
            voted_at: Timestamp::from_unix(11),
            channel: Channel::Bus,
        });
        assert_eq!(p.tally(&ballots), t(2, 1, 0));
        // The per-ballot count of other pools is unchanged.
        p.origin = PoolOrigin::Manual;
        assert_eq!(p.tally(&ballots), t(3, 1, 1));
    }

    #[test]
    fn attempts_retry_until_exhausted() {
        let me = ProfileId(Uuid::now_v7());
        let mut p = pool(me, rules(Strategy::Unanimous, None, 1));
        assert_eq!(p.after_attempt(Rejected), AfterAttempt::NextAttempt(2));
        assert_eq!(p.after_attempt(NoQuorum), AfterAttempt::NextAttempt(2));
        assert_eq!(
            p.after_attempt(Passed),
            AfterAttempt::Resolve(PoolStatus::Approved)
        );
        p.current_attempt = 2;
        assert_eq!(
            p.after_attempt(Rejected),
            AfterAttempt::Resolve(PoolStatus::Rejected)
        );
        assert_eq!(
            p.after_attempt(NoQuorum),
            AfterAttempt::Resolve(PoolStatus::Expired)
        );
        let at = Timestamp::from_unix(2_000);
        p.resolve(PoolStatus::Expired, None, at);
        assert_eq!(p.failure_key.as_deref(), Some("voting.expired"));
        p.resolve(PoolStatus::Cancelled, None, at);
        assert_eq!(p.failure_key.as_deref(), Some("voting.cancelled"));
        p.resolve(
            PoolStatus::Expired,
            Some(Reason::VotingQuorumUnreachable),
            at,
        );
        assert_eq!(p.failure_key.as_deref(), Some("voting.quorum_unreachable"));
        p.resolve(PoolStatus::Approved, None, at);
        assert_eq!(p.failure_key, None);
    }

    #[test]
    fn attempts_have_their_own_deadline() {
        let me = ProfileId(Uuid::now_v7());
        let p = pool(me, rules(Strategy::Unanimous, None, 1));
        let a = Attempt::open(&p, 2, Timestamp::from_unix(5_000));
        assert_eq!(a.deadline, Timestamp::from_unix(5_060));
        assert_eq!(a.number, 2);
    }

    #[test]
    fn ballots_take_one_vote_while_their_attempt_is_open() {
        let me = ProfileId(Uuid::now_v7());
        let p = pool(me, rules(Strategy::Unanimous, None, 1));
        let mut attempt = Attempt::open(&p, 1, Timestamp::from_unix(5_000));
        let voter = DeviceId::new();
        let mut b = Ballot::issue(&p, 1, voter, Timestamp::from_unix(5_000));
        assert_eq!(b.refuses(voter, &attempt), None);
        assert_eq!(
            b.refuses(DeviceId::new(), &attempt),
            Some(Reason::BallotNotFound)
        );
        b.vote = Some(Vote {
            decision: Decision::Yes,
            voted_at: Timestamp::from_unix(5_001),
            channel: Channel::Http,
        });
        assert_eq!(b.refuses(voter, &attempt), Some(Reason::BallotAlreadyVoted));
        b.vote = None;
        attempt.status = AttemptStatus::Rejected;
        assert_eq!(b.refuses(voter, &attempt), Some(Reason::BallotClosed));
    }

    #[test]
    fn withdrawn_unanswered_ballots_do_not_count() {
        let me = ProfileId(Uuid::now_v7());
        let p = pool(me, rules(Strategy::Unanimous, None, 1));
        let now = Timestamp::from_unix(1);
        let mut ballots: Vec<Ballot> = (0..3)
            .map(|_| Ballot::issue(&p, 1, DeviceId::new(), now))
            .collect();
        ballots[0].vote = Some(Vote {
            decision: Decision::Yes,
            voted_at: now,
            channel: Channel::Bus,
        });
        ballots[1].vote = Some(Vote {
            decision: Decision::No,
            voted_at: now,
            channel: Channel::Bus,
        });
        ballots[2].withdrawn = Some(WithdrawReason::DeviceRemoved);
        assert_eq!(tally(&ballots), t(2, 1, 1));
        assert!(!ballots[2].is_pending());
    }

    #[test]
    fn texts_and_names_parse_back() {
        for s in PoolStatus::ALL {
            assert_eq!(PoolStatus::parse(s.as_str()), Some(*s));
        }
        for s in AttemptStatus::ALL {
            assert_eq!(AttemptStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Decision::parse("yes"), Some(Decision::Yes));
        assert_eq!(Decision::parse("YES"), None);
        assert!(check_text("", 120, Reason::VotingInvalidTitle, "title").is_err());
        assert!(check_text("  ", 120, Reason::VotingInvalidTitle, "title").is_err());
        assert!(check_text(&"x".repeat(120), 120, Reason::VotingInvalidTitle, "title").is_ok());
        assert!(check_text(&"x".repeat(121), 120, Reason::VotingInvalidTitle, "title").is_err());
    }
}
