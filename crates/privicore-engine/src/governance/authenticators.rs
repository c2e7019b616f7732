//! Verified authenticator endpoints (docs/api/voting-and-policy.md §4.1–4.8).

use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandPayload, VotingDefaultChange};
use privicore_domain::data_token::Page;
use privicore_domain::governance::Strategy;
use privicore_domain::governance::voting::{
    check_attempts, check_percentage, check_quorum_size, check_strategy, check_time_limit,
};
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use serde_json::{Value, json};

impl Engine {
    /// §4.1. Answered once the command ran, so the device can be listed as a voter (a
    /// voting configuration, say) right after the 202.
    pub async fn register_authenticator(
        &self,
        caller: &Caller,
        device: &str,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::RegisterAuthenticator {
            device_id: device.id,
        };
        self.accept_committed(self.command_for(caller, payload))
            .await
    }

    /// §4.8.
    pub async fn remove_authenticator(
        &self,
        caller: &Caller,
        device: &str,
        force: bool,
    ) -> Result<CommandId, Error> {
        let device = self.owned_device(caller, device).await?;
        let payload = CommandPayload::RemoveAuthenticator {
            device_id: device.id,
            force,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §4.2: the profile's authenticators, most recently registered first.
    pub async fn list_authenticators(
        &self,
        caller: &Caller,
        online: Option<bool>,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let mut devices = self.store.authenticators(caller.profile_id).await?;
        // Newest registration first; ties in creation order of the devices, newest first.
        devices.sort_by(|a, b| {
            (b.authenticator_registered_at, b.request_command_id)
                .cmp(&(a.authenticator_registered_at, a.request_command_id))
        });
        if let Some(want) = online {
            devices.retain(|d| self.online(d.id) == want);
        }
        let total = devices.len() as u64;
        let mut items = Vec::new();
        for d in devices
            .iter()
            .skip(page.offset() as usize)
            .take(page.per_page as usize)
        {
            // Ballots still waiting for this device's answer (open attempts only).
            let open = self.store.pending_ballots(d.id).await?.len();
            items.push(json!({
                "deviceIdentifier": d.id.to_string(),
                "name": d.name,
                "roles": d.roles,
                "online": self.online(d.id),
                "lastSeenAt": self.presence.last_seen(d.id).map(Timestamp::rfc3339),
                "registeredAt": d.authenticator_registered_at.map(Timestamp::rfc3339),
                "publicKeyPinned": d.public_key.is_some(),
                "openBallots": open,
                "lastVoteAt": null,
            }));
        }
        Ok((items, total))
    }

    /// §4.3.
    pub async fn voting_strategy(&self, caller: &Caller) -> Result<Value, Error> {
        let defaults = self.store.voting_defaults(caller.profile_id).await?;
        let count = self.store.authenticators(caller.profile_id).await?.len();
        let supported: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        Ok(json!({
            "strategy": defaults.strategy.as_str(),
            "strategy_params": defaults.strategy_params.to_string(),
            "quorumSize": defaults.quorum_size,
            "timeLimit": defaults.time_limit,
            "numberOfAttempts": defaults.number_of_attempts,
            "authenticatorCount": count,
            "supportedStrategies": supported,
        }))
    }

    async fn set_voting_default(
        &self,
        caller: &Caller,
        change: VotingDefaultChange,
    ) -> Result<CommandId, Error> {
        let payload = CommandPayload::SetVotingDefault { change };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §4.4.
    pub async fn set_quorum_size(&self, caller: &Caller, quorum: i64) -> Result<CommandId, Error> {
        let quorum_size = check_quorum_size(quorum, "quorumSize")?;
        self.set_voting_default(caller, VotingDefaultChange::QuorumSize { quorum_size })
            .await
    }

    /// §4.5: `strategy_params` is required for `minimum_percentage`; the others take the
    /// documented example value when it is omitted.
    pub async fn set_quorum_strategy(
        &self,
        caller: &Caller,
        strategy: &str,
        params: Option<i64>,
    ) -> Result<CommandId, Error> {
        let strategy = check_strategy(strategy, "strategy")?;
        let strategy_params = match (
            check_percentage(params, "strategy_params")?,
            strategy.default_param(),
        ) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => {
                return Err(
                    Error::new(Reason::VotingInvalidPercentage).with_field("strategy_params")
                );
            }
        };
        self.set_voting_default(
            caller,
            VotingDefaultChange::Strategy {
                strategy,
                strategy_params,
            },
        )
        .await
    }

    /// §4.6.
    pub async fn set_voting_time_limit(
        &self,
        caller: &Caller,
        seconds: i64,
    ) -> Result<CommandId, Error> {
        let time_limit = check_time_limit(seconds, "timeLimit")?;
        self.set_voting_default(caller, VotingDefaultChange::TimeLimit { time_limit })
            .await
    }

    /// §4.7.
    pub async fn set_maximum_voting_attempts(
        &self,
        caller: &Caller,
        attempts: i64,
    ) -> Result<CommandId, Error> {
        let number_of_attempts = check_attempts(attempts, "numberOfAttempts")?;
        self.set_voting_default(caller, VotingDefaultChange::Attempts { number_of_attempts })
            .await
    }
}
