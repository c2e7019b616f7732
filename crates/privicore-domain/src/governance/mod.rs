//! Governance (docs/api/voting-and-policy.md): the profile's voting defaults, named voting
//! configurations, the policy template catalogue and policies. Pools, ballots and the
//! holding of commands build on these.

pub mod names;
pub mod policy;
pub mod pool;
pub mod templates;
pub mod voting;

pub use names::{IdOrName, name_key};
pub use policy::{EventAttributes, Policy, PolicyStatus};
pub use pool::{
    AfterAttempt, Attempt, AttemptStatus, Ballot, Channel, Decision, HeldCommand, Pool, PoolEvent,
    PoolOrigin, PoolStatus, RequestedBy, Tally, Vote, WithdrawReason,
};
pub use templates::{Catalogue, Template, TemplateEvent};
pub use voting::{Strategy, Voters, VotingConfiguration, VotingDefaults, VotingRules};

use crate::ids::VotingConfigurationId;

/// Filters of List voting configurations (§4.11).
#[derive(Debug, Clone, Default)]
pub struct ConfigurationFilter {
    pub name: Option<String>,
    /// `name` is a prefix (sent with a trailing `*`).
    pub name_prefix: bool,
    pub strategy: Option<Strategy>,
}

/// Filters of the policy lists (§5.3, §5.4, §5.8). Deleted policies are never listed.
#[derive(Debug, Clone, Default)]
pub struct PolicyFilter {
    /// Empty = active and inactive.
    pub statuses: Vec<PolicyStatus>,
    pub template_id: Option<String>,
    pub event_id: Option<String>,
    pub voting_configuration_id: Option<VotingConfigurationId>,
}
