//! Voting configuration endpoints (docs/api/voting-and-policy.md §4.9–4.12).

use super::{configuration_json, find_configuration};
use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandPayload, ConfigurationChange};
use privicore_domain::data_token::Page;
use privicore_domain::device::DeviceId;
use privicore_domain::governance::voting::{
    check_attempts, check_configuration_name, check_listed_devices, check_percentage,
    check_quorum_size, check_strategy, check_time_limit, configuration_percentage,
};
use privicore_domain::governance::{ConfigurationFilter, Strategy};
use privicore_domain::{CommandId, Error, Reason};
use serde_json::Value;

/// Register voting configuration, as sent (§4.9). Presence is checked by the edge.
#[derive(Debug, Clone, Default)]
pub struct ConfigurationInput {
    pub name: String,
    pub strategy: String,
    pub time_limit: i64,
    pub percentage_required: Option<i64>,
    pub device_identifiers: Vec<String>,
    pub quorum_size: Option<i64>,
    pub number_of_attempts: Option<i64>,
}

/// Update voting configuration, as sent (§4.10): `None` leaves a field unchanged;
/// `Some(None)` resets `quorumSize` / `numberOfAttempts` to "profile default".
#[derive(Debug, Clone, Default)]
pub struct ConfigurationUpdate {
    pub name: Option<String>,
    pub strategy: Option<String>,
    pub time_limit: Option<i64>,
    pub percentage_required: Option<i64>,
    pub device_identifiers: Option<Vec<String>>,
    pub quorum_size: Option<Option<i64>>,
    pub number_of_attempts: Option<Option<i64>>,
}

const DEVICES: &str = "deviceIdentifiers";

fn device_ids(texts: &[String]) -> Result<Vec<DeviceId>, Error> {
    let ids = texts
        .iter()
        .map(|t| t.trim().parse().map_err(|_| Error::invalid_format(DEVICES)))
        .collect::<Result<Vec<DeviceId>, Error>>()?;
    check_listed_devices(&ids, DEVICES)
}

impl Engine {
    /// §4.9. Answered once the command ran, so the configuration can be named right after
    /// the 202.
    pub async fn register_voting_configuration(
        &self,
        caller: &Caller,
        input: ConfigurationInput,
    ) -> Result<CommandId, Error> {
        check_configuration_name(&input.name)?;
        let strategy = check_strategy(&input.strategy, "strategy")?;
        let time_limit = check_time_limit(input.time_limit, "timeLimit")?;
        let percentage_required =
            configuration_percentage(strategy, input.percentage_required, "percentageRequired")?;
        let device_ids = device_ids(&input.device_identifiers)?;
        let quorum_size = input
            .quorum_size
            .map(|q| check_quorum_size(q, "quorumSize"))
            .transpose()?;
        let number_of_attempts = input
            .number_of_attempts
            .map(|n| check_attempts(n, "numberOfAttempts"))
            .transpose()?;
        let payload = CommandPayload::RegisterVotingConfiguration {
            name: input.name,
            strategy,
            percentage_required,
            time_limit,
            device_ids,
            quorum_size,
            number_of_attempts,
        };
        self.accept_committed(self.command_for(caller, payload))
            .await
    }

    /// §4.10.
    pub async fn update_voting_configuration(
        &self,
        caller: &Caller,
        configuration: &str,
        input: ConfigurationUpdate,
    ) -> Result<CommandId, Error> {
        if let Some(name) = &input.name {
            check_configuration_name(name)?;
        }
        let strategy = input
            .strategy
            .as_deref()
            .map(|s| check_strategy(s, "strategy"))
            .transpose()?;
        let mut change = ConfigurationChange {
            name: input.name,
            strategy,
            percentage_required: None,
            time_limit: input
                .time_limit
                .map(|t| check_time_limit(t, "timeLimit"))
                .transpose()?,
            device_ids: input
                .device_identifiers
                .as_deref()
                .map(device_ids)
                .transpose()?,
            quorum_size: input
                .quorum_size
                .map(|q| q.map(|q| check_quorum_size(q, "quorumSize")).transpose())
                .transpose()?,
            number_of_attempts: input
                .number_of_attempts
                .map(|n| n.map(|n| check_attempts(n, "numberOfAttempts")).transpose())
                .transpose()?,
        };
        if change.is_empty() && input.percentage_required.is_none() {
            return Err(Reason::ValidationNoChanges.into());
        }
        let current = find_configuration(self, caller.profile_id, configuration)
            .await?
            .ok_or(Reason::VotingConfigurationNotFound)?;
        // The percentage counts for minimum_percentage only (§1.3), which needs one.
        if change.strategy.unwrap_or(current.strategy) == Strategy::MinimumPercentage {
            let given = check_percentage(input.percentage_required, "percentageRequired")?;
            if given.or(current.percentage_required).is_none() {
                return Err(
                    Error::new(Reason::VotingInvalidPercentage).with_field("percentageRequired")
                );
            }
            change.percentage_required = given;
        }
        let payload = CommandPayload::UpdateVotingConfiguration {
            configuration_id: current.id,
            change,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §4.11: newest first.
    pub async fn list_voting_configurations(
        &self,
        caller: &Caller,
        filter: ConfigurationFilter,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (configurations, total) = self
            .store
            .list_voting_configurations(caller.profile_id, &filter, page)
            .await?;
        let authenticators = self.store.authenticators(caller.profile_id).await?;
        let mut items = Vec::with_capacity(configurations.len());
        for c in &configurations {
            items.push(configuration_json(self, c, &authenticators).await?);
        }
        Ok((items, total))
    }

    /// §4.12: by id or name.
    pub async fn retrieve_voting_configuration(
        &self,
        caller: &Caller,
        configuration: &str,
    ) -> Result<Value, Error> {
        let c = find_configuration(self, caller.profile_id, configuration)
            .await?
            .ok_or(Reason::VotingConfigurationNotFound)?;
        let authenticators = self.store.authenticators(caller.profile_id).await?;
        Ok(configuration_json(self, &c, &authenticators).await?)
    }
}
