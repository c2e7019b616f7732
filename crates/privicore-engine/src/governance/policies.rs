//! Policy endpoints (docs/api/voting-and-policy.md §5).

use super::{addressed_policy, policy_json};
use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::CommandPayload;
use privicore_domain::data_token::Page;
use privicore_domain::governance::policy::{
    check_configuration, check_description, check_events, check_policy_name, check_template,
};
use privicore_domain::governance::{Catalogue, PolicyFilter};
use privicore_domain::{CommandId, Error};
use serde_json::Value;

/// Register policy, as sent (§5.2). Presence of the required fields is checked by the edge;
/// `policy_template_id` and the event ids may be strings or numbers.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub policy_template_id: Value,
    pub applying_event_ids: Vec<Value>,
    pub configuration: Value,
    /// Id or name; resolved when the command runs (`voting_configuration.not_found` is async).
    pub voting_configuration: Option<String>,
}

impl Engine {
    /// §5.1: the read-only catalogue.
    pub fn policy_templates(&self) -> Catalogue {
        Catalogue
    }

    /// §5.2. Answered once the command ran, so the policy can be activated right after the
    /// 202.
    pub async fn register_policy(
        &self,
        caller: &Caller,
        input: PolicyInput,
    ) -> Result<CommandId, Error> {
        let template = check_template(&input.policy_template_id)?;
        let event_ids = check_events(template, &input.applying_event_ids)?;
        let configuration = check_configuration(template, &input.configuration)?;
        if let Some(name) = &input.name {
            check_policy_name(name)?;
        }
        if let Some(description) = &input.description {
            check_description(description)?;
        }
        let payload = CommandPayload::RegisterPolicy {
            name: input.name,
            description: input.description,
            template_id: template.id.to_owned(),
            event_ids,
            configuration,
            voting_configuration: input.voting_configuration,
        };
        self.accept_committed(self.command_for(caller, payload))
            .await
    }

    /// §5.5.
    pub async fn activate_policy(&self, caller: &Caller, policy: &str) -> Result<CommandId, Error> {
        let policy_id = addressed_policy(self, caller.profile_id, policy).await?.id;
        let payload = CommandPayload::ActivatePolicy { policy_id };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §5.6.
    pub async fn deactivate_policy(
        &self,
        caller: &Caller,
        policy: &str,
    ) -> Result<CommandId, Error> {
        let policy_id = addressed_policy(self, caller.profile_id, policy).await?.id;
        let payload = CommandPayload::DeactivatePolicy { policy_id };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §5.7.
    pub async fn delete_policy(&self, caller: &Caller, policy: &str) -> Result<CommandId, Error> {
        let policy_id = addressed_policy(self, caller.profile_id, policy).await?.id;
        let payload = CommandPayload::DeletePolicy { policy_id };
        self.accept(self.command_for(caller, payload)).await
    }

    /// §5.3, §5.4, §5.8: newest first.
    pub async fn list_policies(
        &self,
        caller: &Caller,
        filter: PolicyFilter,
        page: Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        let (policies, total) = self
            .store
            .list_policies(caller.profile_id, &filter, page)
            .await?;
        let mut items = Vec::with_capacity(policies.len());
        for p in &policies {
            items.push(policy_json(self, p).await?);
        }
        Ok((items, total))
    }

    /// §5.9: by id or name.
    pub async fn retrieve_policy(&self, caller: &Caller, policy: &str) -> Result<Value, Error> {
        let p = addressed_policy(self, caller.profile_id, policy).await?;
        Ok(policy_json(self, &p).await?)
    }
}
