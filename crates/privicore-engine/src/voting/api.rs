//! The engine's voting operations, as the edge calls them.

use super::*;

/// Longest `nonce` of Create voting (§6.1.1).
pub(super) const MAX_NONCE: usize = 128;

impl crate::Engine {
    /// Create voting (§6.1.1): a manual pool; 202 with the command id (= the pool id).
    pub async fn create_voting(
        &self,
        caller: &privicore_domain::auth::Caller,
        configuration: &str,
        title: &str,
        question: &str,
        skip: Vec<DeviceId>,
        nonce: Option<String>,
    ) -> Result<CommandId, Error> {
        use privicore_domain::governance::IdOrName;
        use privicore_domain::governance::pool::check_text;
        check_text(title, 120, Reason::VotingInvalidTitle, "title")?;
        check_text(question, 2000, Reason::VotingInvalidQuestion, "question")?;
        if let Some(n) = &nonce
            && n.chars().count() > MAX_NONCE
        {
            return Err(Error::out_of_range("nonce", "at most 128 characters"));
        }
        let found = match IdOrName::parse(configuration) {
            IdOrName::Id(id) => match self
                .store
                .voting_configuration(VotingConfigurationId(id))
                .await?
            {
                Some(c) => Some(c),
                None => {
                    self.store
                        .voting_configuration_by_name(caller.profile_id, configuration)
                        .await?
                }
            },
            IdOrName::Name(name) => {
                self.store
                    .voting_configuration_by_name(caller.profile_id, &name)
                    .await?
            }
        };
        let Some(config) = found.filter(|c| c.profile_id == caller.profile_id) else {
            return Err(Reason::VotingConfigurationNotFound.into());
        };
        let command = self.command_for(
            caller,
            CommandPayload::CreateVoting {
                configuration: config.id,
                title: title.to_owned(),
                question: question.to_owned(),
                skip,
                nonce,
            },
        );
        self.accept_with(command, Vec::new()).await
    }

    /// Check pool status (§6.1.2).
    pub async fn pool_status(
        &self,
        caller: &privicore_domain::auth::Caller,
        pool_id: &str,
    ) -> Result<Value, Error> {
        let id = pool_id
            .parse::<PoolId>()
            .map_err(|_| Error::new(Reason::VotingPoolNotFound))?;
        pool_status(self, caller.profile_id, caller.application_id(), id).await
    }

    /// The device whose Basic credentials these are (§6.3), if approved.
    pub async fn device_by_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Device, Error> {
        let invalid = || Error::new(Reason::DeviceInvalidCredentials);
        let device = self
            .store
            .device_by_client_id(client_id)
            .await?
            .ok_or_else(invalid)?;
        let given = privicore_domain::secret::TokenHash::of(client_secret);
        let ok = device.credentials.as_ref().is_some_and(|c| {
            privicore_domain::secret::secrets_equal(
                c.client_secret.to_hex().as_bytes(),
                given.to_hex().as_bytes(),
            )
        });
        if !ok || device.status != privicore_domain::device::DeviceStatus::Approved {
            return Err(invalid());
        }
        Ok(device)
    }

    /// List pending ballots (§6.3.1): the device's open, unanswered ballots, oldest first;
    /// marks it as seen.
    pub async fn pending_ballots(
        &self,
        device: &Device,
        page: privicore_domain::data_token::Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        self.presence.touch(device.id, None);
        let all = pending_for(self, device).await?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(((page.page.max(1) - 1) * page.per_page) as usize)
            .take(page.per_page as usize)
            .map(|mut i| {
                let mut v = serde_json::to_value(&i).unwrap_or(Value::Null);
                if i.mac.is_empty() {
                    v["mac"] = Value::Null;
                }
                i.mac.clear();
                v
            })
            .collect();
        Ok((items, total))
    }

    /// Cast vote (§6.3.2) over HTTP. A `mac` is verified when present; it covers
    /// `votedAt` as sent (required with a MAC).
    pub async fn cast_vote(
        &self,
        device: &Device,
        ballot_id: &str,
        decision: &str,
        mac: Option<&str>,
        voted_at: Option<&str>,
    ) -> Result<VoteRecorded, Error> {
        let ballot = ballot_id
            .parse::<BallotId>()
            .map_err(|_| Error::new(Reason::BallotNotFound))?;
        let decision = Decision::parse(decision)
            .ok_or_else(|| Error::new(Reason::BallotInvalidDecision).with_field("decision"))?;
        if let Some(mac) = mac {
            let key = channel_key(self, device);
            let vote = bus::ballots::Vote {
                ballot_id: ballot_id.to_owned(),
                decision: decision.as_str().to_owned(),
                voted_at: voted_at.unwrap_or_default().to_owned(),
                mac: mac.to_owned(),
            };
            if !key.is_some_and(|k| vote.verifies(&k)) {
                return Err(Error::new(Reason::BallotInvalidMac).with_field("mac"));
            }
        }
        cast(self, device, ballot, decision, Channel::Http).await
    }
}
