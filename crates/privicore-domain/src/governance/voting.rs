//! Voting rules (docs/api/voting-and-policy.md §1.2, §1.3): the profile's defaults, named
//! voting configurations, and who may vote under them.

use super::names::{check_name, name_key};
use crate::device::{Device, DeviceId};
use crate::ids::VotingConfigurationId;
use crate::{Error, ProfileId, Reason, Timestamp};
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

pub const QUORUM_SIZE: RangeInclusive<i64> = 1..=100;
pub const TIME_LIMIT: RangeInclusive<i64> = 10..=86_400;
pub const ATTEMPTS: RangeInclusive<i64> = 1..=10;
pub const PERCENTAGE: RangeInclusive<i64> = 0..=100;
/// Devices a voting configuration may list.
pub const MAX_LISTED_DEVICES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Unanimous,
    Consensus,
    Affirmative,
    MinimumPercentage,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Self::Unanimous,
        Self::Consensus,
        Self::Affirmative,
        Self::MinimumPercentage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unanimous => "unanimous",
            Self::Consensus => "consensus",
            Self::Affirmative => "affirmative",
            Self::MinimumPercentage => "minimum_percentage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// `strategy_params` when Set quorum strategy omits it (§4.5: the documented examples).
    /// `None` for `minimum_percentage`, which requires it.
    pub fn default_param(self) -> Option<u8> {
        match self {
            Self::Unanimous => Some(100),
            Self::Consensus => Some(51),
            Self::Affirmative => Some(1),
            Self::MinimumPercentage => None,
        }
    }
}

/// A profile's voting defaults (§1.2); a profile that never set one reads the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VotingDefaults {
    pub strategy: Strategy,
    /// `p` for `minimum_percentage`; stored, unused, for the other strategies.
    pub strategy_params: u8,
    pub quorum_size: u32,
    pub time_limit: u32,
    pub number_of_attempts: u32,
    /// `None` while the profile uses the built-in defaults.
    pub updated_at: Option<Timestamp>,
}

impl Default for VotingDefaults {
    fn default() -> Self {
        Self {
            strategy: Strategy::Unanimous,
            strategy_params: 100,
            quorum_size: 1,
            time_limit: 300,
            number_of_attempts: 1,
            updated_at: None,
        }
    }
}

fn within(
    value: i64,
    bounds: &RangeInclusive<i64>,
    reason: Reason,
    field: &str,
) -> Result<u32, Error> {
    if bounds.contains(&value) {
        Ok(value as u32)
    } else {
        Err(Error::new(reason).with_field(field))
    }
}

pub fn check_strategy(text: &str, field: &str) -> Result<Strategy, Error> {
    Strategy::parse(text).ok_or_else(|| Error::new(Reason::VotingInvalidStrategy).with_field(field))
}

pub fn check_quorum_size(value: i64, field: &str) -> Result<u32, Error> {
    within(value, &QUORUM_SIZE, Reason::VotingInvalidQuorumSize, field)
}

pub fn check_time_limit(value: i64, field: &str) -> Result<u32, Error> {
    within(value, &TIME_LIMIT, Reason::VotingInvalidTimeLimit, field)
}

pub fn check_attempts(value: i64, field: &str) -> Result<u32, Error> {
    within(value, &ATTEMPTS, Reason::VotingInvalidAttempts, field)
}

/// A percentage for `strategy`: required (and kept) for `minimum_percentage`; for the other
/// strategies `None` when absent.
pub fn check_percentage(value: Option<i64>, field: &str) -> Result<Option<u8>, Error> {
    value
        .map(|v| within(v, &PERCENTAGE, Reason::VotingInvalidPercentage, field).map(|p| p as u8))
        .transpose()
}

/// The percentage a configuration keeps: required for `minimum_percentage`, ignored (`None`)
/// for the other strategies (§1.3).
pub fn configuration_percentage(
    strategy: Strategy,
    value: Option<i64>,
    field: &str,
) -> Result<Option<u8>, Error> {
    if strategy != Strategy::MinimumPercentage {
        return Ok(None);
    }
    match check_percentage(value, field)? {
        Some(p) => Ok(Some(p)),
        None => Err(Error::new(Reason::VotingInvalidPercentage).with_field(field)),
    }
}

/// Name rules of voting configurations (§1.3).
pub fn check_configuration_name(name: &str) -> Result<(), Error> {
    check_name(name, Reason::VotingConfigurationInvalidName)
}

/// Listed voters: at most 100, duplicates dropped, order kept.
pub fn check_listed_devices(ids: &[DeviceId], field: &str) -> Result<Vec<DeviceId>, Error> {
    let mut out: Vec<DeviceId> = Vec::with_capacity(ids.len());
    for id in ids {
        if !out.contains(id) {
            out.push(*id);
        }
    }
    if out.len() > MAX_LISTED_DEVICES {
        return Err(Error::out_of_range(
            field,
            format!("at most {MAX_LISTED_DEVICES} devices"),
        ));
    }
    Ok(out)
}

/// A named, reusable set of voting rules (§1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VotingConfiguration {
    pub id: VotingConfigurationId,
    pub profile_id: ProfileId,
    pub name: String,
    pub strategy: Strategy,
    /// Set for `minimum_percentage` only.
    pub percentage_required: Option<u8>,
    pub time_limit: u32,
    /// `None` = the profile default when a pool is created.
    pub quorum_size: Option<u32>,
    /// `None` = the profile default when a pool is created.
    pub number_of_attempts: Option<u32>,
    /// The voters; empty = every authenticator of the profile.
    pub device_ids: Vec<DeviceId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl VotingConfiguration {
    /// The case-insensitive key its name is unique under.
    pub fn name_key(&self) -> String {
        name_key(&self.name)
    }

    /// Its voter rule: the listed devices, or every authenticator when none is listed.
    pub fn voters(&self) -> Voters {
        if self.device_ids.is_empty() {
            Voters::AllAuthenticators
        } else {
            Voters::Listed(self.device_ids.clone())
        }
    }
}

/// Who votes under a set of rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "devices")]
pub enum Voters {
    /// Every authenticator of the profile.
    AllAuthenticators,
    /// These devices, while they are authenticators of the profile.
    Listed(Vec<DeviceId>),
}

impl Voters {
    /// The eligible voters among `authenticators` (the profile's devices as read now):
    /// approved devices with the authenticator role that the rule names. Listed devices
    /// that lost the role are skipped, not errors (§1.3).
    pub fn eligible(&self, authenticators: &[Device]) -> Vec<DeviceId> {
        let live = authenticators.iter().filter(|d| d.is_authenticator());
        match self {
            Self::AllAuthenticators => live.map(|d| d.id).collect(),
            Self::Listed(ids) => live.filter(|d| ids.contains(&d.id)).map(|d| d.id).collect(),
        }
    }
}

/// The rules a vote runs under: a configuration's, completed by the profile's defaults, or
/// the defaults alone. A pool snapshots these when it is created (§1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VotingRules {
    pub strategy: Strategy,
    /// `p` of `minimum_percentage`; `None` for the other strategies.
    pub percentage: Option<u8>,
    pub quorum_size: u32,
    pub time_limit: u32,
    pub max_attempts: u32,
    pub voters: Voters,
}

impl VotingRules {
    pub fn resolve(configuration: Option<&VotingConfiguration>, defaults: &VotingDefaults) -> Self {
        match configuration {
            Some(c) => Self {
                strategy: c.strategy,
                percentage: c.percentage_required,
                quorum_size: c.quorum_size.unwrap_or(defaults.quorum_size),
                time_limit: c.time_limit,
                max_attempts: c.number_of_attempts.unwrap_or(defaults.number_of_attempts),
                voters: c.voters(),
            },
            None => Self {
                strategy: defaults.strategy,
                percentage: (defaults.strategy == Strategy::MinimumPercentage)
                    .then_some(defaults.strategy_params),
                quorum_size: defaults.quorum_size,
                time_limit: defaults.time_limit,
                max_attempts: defaults.number_of_attempts,
                voters: Voters::AllAuthenticators,
            },
        }
    }

    /// Whether a vote could start now (§1.6): `voting.no_eligible_authenticators` without
    /// voters, `voting.quorum_unreachable` with fewer voters than the quorum.
    pub fn reachable(&self, authenticators: &[Device]) -> Result<(), Reason> {
        let eligible = self.voters.eligible(authenticators).len();
        if eligible == 0 {
            Err(Reason::VotingNoEligibleAuthenticators)
        } else if eligible < self.quorum_size as usize {
            Err(Reason::VotingQuorumUnreachable)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CommandId;
    use crate::device::{DeviceStatus, ROLE_AUTHENTICATOR, ROLE_STORAGE};

    fn device(status: DeviceStatus, roles: &[&str]) -> Device {
        Device {
            id: DeviceId::new(),
            profile_id: ProfileId(CommandId::new().0),
            request_command_id: CommandId::new(),
            name: "d".into(),
            description: None,
            status,
            roles: roles.iter().map(|r| r.to_string()).collect(),
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

    #[test]
    fn bounds_map_to_their_keys() {
        assert_eq!(check_quorum_size(1, "quorumSize"), Ok(1));
        assert_eq!(check_quorum_size(100, "quorumSize"), Ok(100));
        assert_eq!(
            check_quorum_size(0, "quorumSize").unwrap_err().reason,
            Reason::VotingInvalidQuorumSize
        );
        assert_eq!(
            check_quorum_size(101, "quorumSize").unwrap_err().reason,
            Reason::VotingInvalidQuorumSize
        );
        assert_eq!(check_time_limit(10, "timeLimit"), Ok(10));
        assert_eq!(check_time_limit(86_400, "timeLimit"), Ok(86_400));
        assert_eq!(
            check_time_limit(9, "timeLimit").unwrap_err().reason,
            Reason::VotingInvalidTimeLimit
        );
        assert_eq!(
            check_time_limit(86_401, "timeLimit")
                .unwrap_err()
                .field
                .as_deref(),
            Some("timeLimit")
        );
        assert_eq!(check_attempts(10, "n"), Ok(10));
        assert_eq!(
            check_attempts(0, "n").unwrap_err().reason,
            Reason::VotingInvalidAttempts
        );
        assert_eq!(
            check_attempts(11, "n").unwrap_err().reason,
            Reason::VotingInvalidAttempts
        );
        assert_eq!(check_percentage(Some(0), "p"), Ok(Some(0)));
        assert_eq!(check_percentage(None, "p"), Ok(None));
        assert_eq!(
            check_percentage(Some(101), "p").unwrap_err().reason,
            Reason::VotingInvalidPercentage
        );
        assert_eq!(
            check_percentage(Some(-1), "p").unwrap_err().reason,
            Reason::VotingInvalidPercentage
        );
    }

    #[test]
    fn strategies_and_their_default_parameters() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::parse(s.as_str()), Some(s));
        }
        assert_eq!(Strategy::parse("Unanimous"), None);
        assert_eq!(
            check_strategy("majority", "strategy").unwrap_err().reason,
            Reason::VotingInvalidStrategy
        );
        assert_eq!(Strategy::Unanimous.default_param(), Some(100));
        assert_eq!(Strategy::Consensus.default_param(), Some(51));
        assert_eq!(Strategy::Affirmative.default_param(), Some(1));
        assert_eq!(Strategy::MinimumPercentage.default_param(), None);
    }

    #[test]
    fn a_configuration_keeps_a_percentage_only_for_minimum_percentage() {
        assert_eq!(
            configuration_percentage(Strategy::MinimumPercentage, Some(67), "p"),
            Ok(Some(67))
        );
        assert_eq!(
            configuration_percentage(Strategy::MinimumPercentage, None, "p")
                .unwrap_err()
                .reason,
            Reason::VotingInvalidPercentage
        );
        assert_eq!(
            configuration_percentage(Strategy::Unanimous, Some(500), "p"),
            Ok(None)
        );
    }

    #[test]
    fn listed_devices_are_deduplicated_and_bounded() {
        let a = DeviceId::new();
        let b = DeviceId::new();
        assert_eq!(check_listed_devices(&[a, b, a], "d"), Ok(vec![a, b]));
        let many: Vec<DeviceId> = (0..101).map(|_| DeviceId::new()).collect();
        assert_eq!(
            check_listed_devices(&many, "d").unwrap_err().reason,
            Reason::ValidationOutOfRange
        );
        assert!(check_listed_devices(&many[..100], "d").is_ok());
    }

    #[test]
    fn eligible_voters_are_approved_authenticators_the_rule_names() {
        let phone = device(DeviceStatus::Approved, &[ROLE_AUTHENTICATOR]);
        let both = device(DeviceStatus::Approved, &[ROLE_STORAGE, ROLE_AUTHENTICATOR]);
        let storage_only = device(DeviceStatus::Approved, &[ROLE_STORAGE]);
        let removed = device(DeviceStatus::Removed, &[ROLE_AUTHENTICATOR]);
        let devices = vec![
            phone.clone(),
            both.clone(),
            storage_only.clone(),
            removed.clone(),
        ];
        assert_eq!(
            Voters::AllAuthenticators.eligible(&devices),
            vec![phone.id, both.id]
        );
        let listed = Voters::Listed(vec![both.id, storage_only.id, removed.id]);
        assert_eq!(listed.eligible(&devices), vec![both.id]);
    }

    #[test]
    fn rules_fill_a_configuration_from_the_defaults() {
        let defaults = VotingDefaults {
            quorum_size: 2,
            number_of_attempts: 3,
            ..VotingDefaults::default()
        };
        let now = Timestamp::now();
        let mut c = VotingConfiguration {
            id: VotingConfigurationId(CommandId::new().0),
            profile_id: ProfileId(CommandId::new().0),
            name: "approvers".into(),
            strategy: Strategy::MinimumPercentage,
            percentage_required: Some(67),
            time_limit: 60,
            quorum_size: None,
            number_of_attempts: Some(1),
            device_ids: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let rules = VotingRules::resolve(Some(&c), &defaults);
        assert_eq!(
            (
                rules.quorum_size,
                rules.max_attempts,
                rules.time_limit,
                rules.percentage
            ),
            (2, 1, 60, Some(67))
        );
        assert_eq!(rules.voters, Voters::AllAuthenticators);
        c.device_ids = vec![DeviceId::new()];
        assert!(matches!(
            VotingRules::resolve(Some(&c), &defaults).voters,
            Voters::Listed(_)
        ));
        let plain = VotingRules::resolve(None, &VotingDefaults::default());
        assert_eq!(
            (
                plain.strategy,
                plain.percentage,
                plain.quorum_size,
                plain.time_limit,
                plain.max_attempts
            ),
            (Strategy::Unanimous, None, 1, 300, 1)
        );
    }

    #[test]
    fn a_vote_needs_voters_and_a_reachable_quorum() {
        let a = device(DeviceStatus::Approved, &[ROLE_AUTHENTICATOR]);
        let b = device(DeviceStatus::Approved, &[ROLE_AUTHENTICATOR]);
        let mut rules = VotingRules::resolve(None, &VotingDefaults::default());
        assert_eq!(
            rules.reachable(&[]),
            Err(Reason::VotingNoEligibleAuthenticators)
        );
        assert_eq!(rules.reachable(std::slice::from_ref(&a)), Ok(()));
        rules.quorum_size = 2;
        assert_eq!(
            rules.reachable(std::slice::from_ref(&a)),
            Err(Reason::VotingQuorumUnreachable)
        );
        assert_eq!(rules.reachable(&[a, b]), Ok(()));
    }
}
