//! Authenticator, voting-rule and policy commands (docs/api/voting-and-policy.md §4, §5).
//! The synchronous checks are made again: state may have changed since acceptance.

use super::execute::{After, Plan};
use crate::engine::Core;
use crate::governance::{
    Prospect, configuration_json, find_configuration, required_by_active_policy,
    unreachable_policies,
};
use privicore_domain::command::{
    CommandPayload, CommandRecord, ConfigurationChange, VotingDefaultChange,
};
use privicore_domain::device::{DeviceStatus, ROLE_AUTHENTICATOR};
use privicore_domain::effect::{DataEffect, Effect, GovernanceEffect};
use privicore_domain::governance::policy::default_name;
use privicore_domain::governance::{
    Policy, PolicyStatus, Strategy, VotingConfiguration, VotingRules, templates,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{PolicyId, ProfileId, Reason, Timestamp, VotingConfigurationId};
use serde_json::{Map, json};

fn governance(effect: GovernanceEffect) -> Vec<Effect> {
    vec![effect.into()]
}

pub(crate) async fn plan(
    core: &Core,
    command: &CommandRecord,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let profile = command.profile_id;
    match &command.payload {
        CommandPayload::RegisterAuthenticator { device_id }
        | CommandPayload::RemoveAuthenticator { device_id, .. } => {
            let Some(mut device) = core.store.device(*device_id).await? else {
                return Ok(Plan::fail(Reason::DeviceNotFound));
            };
            // Directory authority reaches managed users' authenticators (directory.md §1.4).
            if device.profile_id != profile
                && !crate::directory::device_authority(core, profile, device.profile_id).await?
            {
                return Ok(Plan::fail(Reason::DeviceNotOwner));
            }
            let id = device.id.to_string();
            if let CommandPayload::RemoveAuthenticator { force, .. } = &command.payload {
                if !device.has_role(ROLE_AUTHENTICATOR) {
                    return Ok(Plan::fail(Reason::AuthenticatorNotRegistered));
                }
                if !force && required_by_active_policy(core, &device).await? {
                    return Ok(Plan::fail(Reason::AuthenticatorRequiredByActivePolicy));
                }
                device.roles.retain(|r| r != ROLE_AUTHENTICATOR);
                device.authenticator_registered_at = None;
                let mut plan = Plan::succeed(
                    vec![DataEffect::SaveDevice(device.clone()).into()],
                    json!({ "deviceIdentifier": id, "roles": device.roles }),
                );
                plan.after = vec![After::SendRoles(device)];
                return Ok(plan);
            }
            match device.status {
                DeviceStatus::Approved => {}
                DeviceStatus::Removed => return Ok(Plan::fail(Reason::DeviceInactive)),
                _ => return Ok(Plan::fail(Reason::DeviceNotApproved)),
            }
            if device.has_role(ROLE_AUTHENTICATOR) {
                return Ok(Plan::fail(Reason::AuthenticatorAlreadyRegistered));
            }
            device.roles.push(ROLE_AUTHENTICATOR.into());
            device.authenticator_registered_at = Some(now);
            let mut plan = Plan::succeed(
                vec![DataEffect::SaveDevice(device.clone()).into()],
                json!({ "deviceIdentifier": id, "roles": device.roles, "registeredAt": now.rfc3339() }),
            );
            plan.after = vec![After::SendRoles(device)];
            Ok(plan)
        }
        CommandPayload::SetVotingDefault { change } => {
            set_default(core, profile, change, now).await
        }
        CommandPayload::RegisterVotingConfiguration {
            name,
            strategy,
            percentage_required,
            time_limit,
            device_ids,
            quorum_size,
            number_of_attempts,
        } => {
            let c = VotingConfiguration {
                id: VotingConfigurationId::from(command.id),
                profile_id: profile,
                name: name.clone(),
                strategy: *strategy,
                percentage_required: *percentage_required,
                time_limit: *time_limit,
                quorum_size: *quorum_size,
                number_of_attempts: *number_of_attempts,
                device_ids: device_ids.clone(),
                created_at: now,
                updated_at: now,
            };
            if let Some(reason) = configuration_conflict(core, &c).await? {
                return Ok(Plan::fail(reason));
            }
            Ok(Plan::succeed(
                governance(GovernanceEffect::SaveVotingConfiguration(c.clone())),
                json!({ "votingConfigurationId": c.id.to_string(), "name": c.name }),
            ))
        }
        CommandPayload::UpdateVotingConfiguration {
            configuration_id,
            change,
        } => update_configuration(core, profile, *configuration_id, change, now).await,
        CommandPayload::RegisterPolicy { .. } => register_policy(core, command, now).await,
        CommandPayload::ActivatePolicy { policy_id }
        | CommandPayload::DeactivatePolicy { policy_id }
        | CommandPayload::DeletePolicy { policy_id } => {
            policy_transition(core, command, *policy_id, now).await
        }
        _ => Err(StoreError::Corrupt("not a governance command".into())),
    }
}

/// The name is taken by another configuration, or a listed device is not an authenticator.
async fn configuration_conflict(
    core: &Core,
    c: &VotingConfiguration,
) -> Result<Option<Reason>, StoreError> {
    if let Some(other) = core
        .store
        .voting_configuration_by_name(c.profile_id, &c.name)
        .await?
        && other.id != c.id
    {
        return Ok(Some(Reason::VotingConfigurationNameTaken));
    }
    if !c.device_ids.is_empty() {
        let authenticators = core.store.authenticators(c.profile_id).await?;
        if c.device_ids
            .iter()
            .any(|id| !authenticators.iter().any(|d| d.id == *id))
        {
            return Ok(Some(Reason::VotingConfigurationUnknownAuthenticator));
        }
    }
    Ok(None)
}

async fn set_default(
    core: &Core,
    profile: ProfileId,
    change: &VotingDefaultChange,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let mut defaults = core.store.voting_defaults(profile).await?;
    let result = match change {
        VotingDefaultChange::QuorumSize { quorum_size } => {
            defaults.quorum_size = *quorum_size;
            json!({ "quorumSize": quorum_size })
        }
        VotingDefaultChange::Strategy {
            strategy,
            strategy_params,
        } => {
            defaults.strategy = *strategy;
            defaults.strategy_params = *strategy_params;
            json!({ "strategy": strategy.as_str(), "strategy_params": strategy_params.to_string() })
        }
        VotingDefaultChange::TimeLimit { time_limit } => {
            defaults.time_limit = *time_limit;
            json!({ "timeLimit": time_limit })
        }
        VotingDefaultChange::Attempts { number_of_attempts } => {
            defaults.number_of_attempts = *number_of_attempts;
            json!({ "numberOfAttempts": number_of_attempts })
        }
    };
    defaults.updated_at = Some(now);
    if let VotingDefaultChange::QuorumSize { .. } = change {
        // §4.4: an active policy relying on the default quorum must stay reachable.
        let authenticators = core.store.authenticators(profile).await?;
        let prospect = Prospect {
            defaults: &defaults,
            replaced: None,
            authenticators: &authenticators,
        };
        let mut relies = std::collections::HashMap::new();
        for p in core.store.active_policies(profile).await? {
            let uses_default = match p.voting_configuration_id {
                None => true,
                Some(id) => core
                    .store
                    .voting_configuration(id)
                    .await?
                    .is_none_or(|c| c.quorum_size.is_none()),
            };
            relies.insert(p.id, uses_default);
        }
        let affected = |p: &Policy, _: &VotingRules| relies.get(&p.id).copied().unwrap_or(false);
        if !unreachable_policies(core, profile, &prospect, affected)
            .await?
            .is_empty()
        {
            return Ok(Plan::fail(Reason::VotingQuorumUnreachable));
        }
    }
    Ok(Plan::succeed(
        governance(GovernanceEffect::PutVotingDefaults {
            profile_id: profile,
            defaults,
        }),
        result,
    ))
}

async fn update_configuration(
    core: &Core,
    profile: ProfileId,
    id: VotingConfigurationId,
    change: &ConfigurationChange,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let Some(mut c) = core
        .store
        .voting_configuration(id)
        .await?
        .filter(|c| c.profile_id == profile)
    else {
        return Ok(Plan::fail(Reason::VotingConfigurationNotFound));
    };
    if let Some(name) = &change.name {
        c.name = name.clone();
    }
    if let Some(strategy) = change.strategy {
        c.strategy = strategy;
    }
    c.percentage_required = match c.strategy {
        Strategy::MinimumPercentage => match change.percentage_required.or(c.percentage_required) {
            Some(p) => Some(p),
            None => return Ok(Plan::fail(Reason::VotingInvalidPercentage)),
        },
        _ => None,
    };
    if let Some(t) = change.time_limit {
        c.time_limit = t;
    }
    if let Some(devices) = &change.device_ids {
        c.device_ids = devices.clone();
    }
    if let Some(q) = change.quorum_size {
        c.quorum_size = q;
    }
    if let Some(n) = change.number_of_attempts {
        c.number_of_attempts = n;
    }
    c.updated_at = now;
    // Listed devices are checked only when the list changes: devices that lost the role
    // since are skipped when votes are counted, not errors (§1.3).
    let checked = VotingConfiguration {
        device_ids: if change.device_ids.is_some() {
            c.device_ids.clone()
        } else {
            Vec::new()
        },
        ..c.clone()
    };
    if let Some(reason) = configuration_conflict(core, &checked).await? {
        return Ok(Plan::fail(reason));
    }
    let defaults = core.store.voting_defaults(profile).await?;
    let authenticators = core.store.authenticators(profile).await?;
    let prospect = Prospect {
        defaults: &defaults,
        replaced: Some(&c),
        authenticators: &authenticators,
    };
    let uses = |p: &Policy, _: &VotingRules| p.voting_configuration_id == Some(c.id);
    if !unreachable_policies(core, profile, &prospect, uses)
        .await?
        .is_empty()
    {
        return Ok(Plan::fail(Reason::VotingQuorumUnreachable));
    }
    let record = configuration_json(core, &c, &authenticators).await?;
    Ok(Plan::succeed(
        governance(GovernanceEffect::SaveVotingConfiguration(c)),
        record,
    ))
}

async fn register_policy(
    core: &Core,
    command: &CommandRecord,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let CommandPayload::RegisterPolicy {
        name,
        description,
        template_id,
        event_ids,
        configuration,
        voting_configuration,
    } = &command.payload
    else {
        return Err(StoreError::Corrupt("not a policy registration".into()));
    };
    let profile = command.profile_id;
    let Some(template) = templates::template(template_id) else {
        return Ok(Plan::fail(Reason::PolicyTemplateNotFound));
    };
    let voting_configuration_id = match voting_configuration {
        None => None,
        Some(text) => match find_configuration(core, profile, text).await? {
            Some(c) => Some(c.id),
            None => return Ok(Plan::fail(Reason::VotingConfigurationNotFound)),
        },
    };
    let id = PolicyId::from(command.id);
    let name = match name {
        Some(name) => {
            if core.store.policy_by_name(profile, name).await?.is_some() {
                return Ok(Plan::fail(Reason::PolicyNameTaken));
            }
            name.clone()
        }
        None => {
            let mut chosen = default_name(template, id, 0);
            for longer in 1..=2 {
                if core.store.policy_by_name(profile, &chosen).await?.is_none() {
                    break;
                }
                chosen = default_name(template, id, longer);
            }
            chosen
        }
    };
    let policy = Policy {
        id,
        profile_id: profile,
        name,
        description: description.clone(),
        template_id: template.id.to_owned(),
        event_ids: event_ids.clone(),
        configuration: Map::clone(configuration),
        voting_configuration_id,
        status: PolicyStatus::Inactive,
        created_at: now,
        updated_at: now,
        activated_at: None,
        deactivated_at: None,
        deleted_at: None,
    };
    let result = json!({ "policyId": id.to_string(), "name": policy.name, "status": "inactive" });
    Ok(Plan::succeed(
        governance(GovernanceEffect::SavePolicy(policy)),
        result,
    ))
}

async fn policy_transition(
    core: &Core,
    command: &CommandRecord,
    policy_id: PolicyId,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let profile = command.profile_id;
    let Some(mut policy) = core
        .store
        .policy(policy_id)
        .await?
        .filter(|p| p.profile_id == profile && p.status != PolicyStatus::Deleted)
    else {
        return Ok(Plan::fail(Reason::PolicyNotFound));
    };
    let id = policy.id.to_string();
    policy.updated_at = now;
    let result = match &command.payload {
        CommandPayload::ActivatePolicy { .. } => {
            if policy.status == PolicyStatus::Active {
                return Ok(Plan::fail(Reason::PolicyAlreadyActive));
            }
            // §1.6: a policy is activated only when a vote under it could start.
            let configuration = match policy.voting_configuration_id {
                None => None,
                Some(c) => core.store.voting_configuration(c).await?,
            };
            let defaults = core.store.voting_defaults(profile).await?;
            let rules = VotingRules::resolve(configuration.as_ref(), &defaults);
            if let Err(reason) = rules.reachable(&core.store.authenticators(profile).await?) {
                return Ok(Plan::fail(reason));
            }
            policy.status = PolicyStatus::Active;
            policy.activated_at = Some(now);
            json!({ "policyId": id, "status": "active", "activatedAt": now.rfc3339() })
        }
        CommandPayload::DeactivatePolicy { .. } => {
            if policy.status == PolicyStatus::Inactive {
                return Ok(Plan::fail(Reason::PolicyAlreadyInactive));
            }
            policy.status = PolicyStatus::Inactive;
            policy.deactivated_at = Some(now);
            json!({ "policyId": id, "status": "inactive", "deactivatedAt": now.rfc3339() })
        }
        CommandPayload::DeletePolicy { .. } => {
            if policy.status == PolicyStatus::Active {
                return Ok(Plan::fail(Reason::PolicyMustBeInactive));
            }
            policy.status = PolicyStatus::Deleted;
            policy.deleted_at = Some(now);
            json!({ "policyId": id, "deleted": true })
        }
        _ => return Err(StoreError::Corrupt("not a policy transition".into())),
    };
    Ok(Plan::succeed(
        governance(GovernanceEffect::SavePolicy(policy)),
        result,
    ))
}
