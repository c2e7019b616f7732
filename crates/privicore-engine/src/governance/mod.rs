//! Verified authenticators, voting rules and policies (docs/api/voting-and-policy.md §4, §5):
//! synchronous checks and acceptance here; the commands run in `pipeline::governance`.

mod authenticators;
mod configurations;
mod policies;

pub use configurations::{ConfigurationInput, ConfigurationUpdate};
pub use policies::PolicyInput;

use crate::engine::Core;
use privicore_domain::data_token::Page;
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::governance::{
    IdOrName, Policy, PolicyFilter, PolicyStatus, VotingConfiguration, VotingDefaults, VotingRules,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{Error, PolicyId, ProfileId, Reason, Timestamp, VotingConfigurationId};
use serde_json::{Value, json};

/// A profile's voting configuration by id or name (§1.3: the id first, then the name).
/// Another profile's configuration is not found.
pub(crate) async fn find_configuration(
    core: &Core,
    profile: ProfileId,
    text: &str,
) -> Result<Option<VotingConfiguration>, StoreError> {
    let found = match IdOrName::parse(text) {
        IdOrName::Id(id) => {
            core.store
                .voting_configuration(VotingConfigurationId(id))
                .await?
        }
        IdOrName::Name(name) => {
            core.store
                .voting_configuration_by_name(profile, &name)
                .await?
        }
    };
    Ok(found.filter(|c| c.profile_id == profile))
}

/// A profile's live policy by id or name. Another profile's policy, and a deleted one,
/// are not found.
pub(crate) async fn find_policy(
    core: &Core,
    profile: ProfileId,
    text: &str,
) -> Result<Option<Policy>, StoreError> {
    let found = match IdOrName::parse(text) {
        IdOrName::Id(id) => core.store.policy(PolicyId(id)).await?,
        IdOrName::Name(name) => core.store.policy_by_name(profile, &name).await?,
    };
    Ok(found.filter(|p| p.profile_id == profile && p.status != PolicyStatus::Deleted))
}

/// The policy addressed by a request, or 404 `policy.not_found`.
pub(crate) async fn addressed_policy(
    core: &Core,
    profile: ProfileId,
    text: &str,
) -> Result<Policy, Error> {
    find_policy(core, profile, text)
        .await?
        .ok_or_else(|| Reason::PolicyNotFound.into())
}

/// What the safeguards of §1.6 weigh a change against.
pub(crate) struct Prospect<'a> {
    pub defaults: &'a VotingDefaults,
    /// A configuration as it will be after an update.
    pub replaced: Option<&'a VotingConfiguration>,
    pub authenticators: &'a [Device],
}

/// The active policies of `profile` that `affected` selects and that could not open a vote
/// under `prospect` (§1.6: their eligible voters would fall below their quorum size).
pub(crate) async fn unreachable_policies(
    core: &Core,
    profile: ProfileId,
    prospect: &Prospect<'_>,
    affected: impl Fn(&Policy, &VotingRules) -> bool,
) -> Result<Vec<Policy>, StoreError> {
    let mut out = Vec::new();
    for policy in core.store.active_policies(profile).await? {
        let configuration = match policy.voting_configuration_id {
            None => None,
            Some(id) => match prospect.replaced.filter(|c| c.id == id) {
                Some(c) => Some(c.clone()),
                None => core.store.voting_configuration(id).await?,
            },
        };
        let rules = VotingRules::resolve(configuration.as_ref(), prospect.defaults);
        if affected(&policy, &rules) && rules.reachable(prospect.authenticators).is_err() {
            out.push(policy);
        }
    }
    Ok(out)
}

/// Whether removing `device`'s authenticator role (or the device) would leave an active
/// policy it votes for with fewer eligible voters than its quorum size.
pub(crate) async fn required_by_active_policy(
    core: &Core,
    device: &Device,
) -> Result<bool, StoreError> {
    let now = core.store.authenticators(device.profile_id).await?;
    let without: Vec<Device> = now.iter().filter(|d| d.id != device.id).cloned().collect();
    let defaults = core.store.voting_defaults(device.profile_id).await?;
    let prospect = Prospect {
        defaults: &defaults,
        replaced: None,
        authenticators: &without,
    };
    let votes_for =
        |_: &Policy, rules: &VotingRules| rules.voters.eligible(&now).contains(&device.id);
    Ok(
        !unreachable_policies(core, device.profile_id, &prospect, votes_for)
            .await?
            .is_empty(),
    )
}

/// How many live policies name the configuration.
async fn used_by_policies(core: &Core, c: &VotingConfiguration) -> Result<u64, StoreError> {
    let filter = PolicyFilter {
        voting_configuration_id: Some(c.id),
        ..PolicyFilter::default()
    };
    let (_, total) = core
        .store
        .list_policies(
            c.profile_id,
            &filter,
            Page {
                page: 1,
                per_page: 1,
            },
        )
        .await?;
    Ok(total)
}

/// A voting configuration record (§4.12); `authenticators` are the profile's, read now.
pub(crate) async fn configuration_json(
    core: &Core,
    c: &VotingConfiguration,
    authenticators: &[Device],
) -> Result<Value, StoreError> {
    let eligible = c.voters().eligible(authenticators).len();
    let devices: Vec<String> = c.device_ids.iter().map(DeviceId::to_string).collect();
    Ok(json!({
        "votingConfigurationId": c.id.to_string(),
        "name": c.name,
        "strategy": c.strategy.as_str(),
        "percentageRequired": c.percentage_required,
        "timeLimit": c.time_limit,
        "quorumSize": c.quorum_size,
        "numberOfAttempts": c.number_of_attempts,
        "deviceIdentifiers": devices,
        "eligibleAuthenticators": eligible,
        "usedByPolicies": used_by_policies(core, c).await?,
        "createdAt": c.created_at.rfc3339(),
        "updatedAt": c.updated_at.rfc3339(),
    }))
}

/// A policy record (§5), with its configuration's current name.
pub(crate) async fn policy_json(core: &Core, p: &Policy) -> Result<Value, StoreError> {
    let configuration_name = match p.voting_configuration_id {
        None => None,
        Some(id) => core.store.voting_configuration(id).await?.map(|c| c.name),
    };
    let ts = |t: Option<Timestamp>| t.map(Timestamp::rfc3339);
    Ok(json!({
        "id": p.id.to_string(),
        "policyId": p.id.to_string(),
        "name": p.name,
        "description": p.description,
        "policyTemplateId": p.template_id,
        "templateName": p.template().map(|t| t.name),
        "applyingEventIds": p.event_ids,
        "configuration": Value::Object(p.configuration.clone()),
        "votingConfigurationId": p.voting_configuration_id.map(|c| c.to_string()),
        "votingConfigurationName": configuration_name,
        "status": p.status.as_str(),
        "createdAt": p.created_at.rfc3339(),
        "updatedAt": p.updated_at.rfc3339(),
        "activatedAt": ts(p.activated_at),
        "deactivatedAt": ts(p.deactivated_at),
    }))
}
