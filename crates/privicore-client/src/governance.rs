//! Verified authenticators, voting rules and policies over HTTP
//! (docs/api/voting-and-policy.md §4, §5).

use crate::api::Accepted;
use crate::error::ClientError;
use crate::http::Client;
use serde_json::{Value, json};

/// A path segment: ids and names are sent percent-encoded.
fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Client {
    pub async fn register_authenticator(&self, device: &str) -> Result<Accepted, ClientError> {
        self.post_form(
            "/verified-authenticator/register",
            &[("deviceIdentifier", device)],
        )
        .await?
        .accepted()
    }

    /// `query` is appended as is (`?page=2&filters[online]=true`, or empty).
    pub async fn list_authenticators(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!(
            "/verified-authenticator/list-verified-authenticators{query}"
        ))
        .await?
        .expect(200)
    }

    pub async fn retrieve_voting_strategy(&self) -> Result<Value, ClientError> {
        self.get("/verified-authenticator/retrieve-voting-strategy")
            .await?
            .expect(200)
    }

    pub async fn set_quorum_size(&self, quorum_size: i64) -> Result<Accepted, ClientError> {
        self.post_json(
            "/verified-authenticator/set-quorum-size",
            json!({ "quorumSize": quorum_size }),
        )
        .await?
        .accepted()
    }

    pub async fn set_quorum_strategy(
        &self,
        strategy: &str,
        strategy_params: Option<i64>,
    ) -> Result<Accepted, ClientError> {
        let mut body = json!({ "strategy": strategy });
        if let Some(p) = strategy_params {
            body["strategy_params"] = json!(p.to_string());
        }
        self.post_json("/verified-authenticator/set-quorum-strategy", body)
            .await?
            .accepted()
    }

    pub async fn set_voting_time_limit(&self, seconds: i64) -> Result<Accepted, ClientError> {
        self.post_json(
            "/verified-authenticator/set-voting-time-limit",
            json!({ "timeLimit": seconds }),
        )
        .await?
        .accepted()
    }

    pub async fn set_maximum_voting_attempts(
        &self,
        attempts: i64,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/verified-authenticator/set-maximum-voting-attempts",
            json!({ "numberOfAttempts": attempts }),
        )
        .await?
        .accepted()
    }

    pub async fn remove_authenticator(
        &self,
        device: &str,
        force: bool,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/verified-authenticator/remove",
            json!({ "deviceIdentifier": device, "force": force }),
        )
        .await?
        .accepted()
    }

    /// `body` as §4.9 describes it (`name`, `strategy`, `timeLimit`, …).
    pub async fn register_voting_configuration(
        &self,
        body: Value,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/verified-authenticator/voting-configuration/register",
            body,
        )
        .await?
        .accepted()
    }

    /// `body` carries `votingConfigurationId` (id or name) and the fields to change.
    pub async fn update_voting_configuration(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/verified-authenticator/voting-configuration/update", body)
            .await?
            .accepted()
    }

    pub async fn list_voting_configurations(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!(
            "/verified-authenticator/voting-configuration/list{query}"
        ))
        .await?
        .expect(200)
    }

    /// By id or name.
    pub async fn retrieve_voting_configuration(
        &self,
        id_or_name: &str,
    ) -> Result<Value, ClientError> {
        self.get(&format!(
            "/verified-authenticator/voting-configuration/retrieve/{}",
            segment(id_or_name)
        ))
        .await?
        .expect(200)
    }

    pub async fn list_policy_templates(&self) -> Result<Value, ClientError> {
        self.get("/policy/list-policy-templates").await?.expect(200)
    }

    /// `body` as §5.2 describes it (`policyTemplateId`, `applyingEventIds`, `configuration`, …).
    pub async fn register_policy(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/policy/register", body).await?.accepted()
    }

    /// By id or name.
    pub async fn activate_policy(&self, policy: &str) -> Result<Accepted, ClientError> {
        self.post_form("/policy/activate", &[("policyId", policy)])
            .await?
            .accepted()
    }

    pub async fn deactivate_policy(&self, policy: &str) -> Result<Accepted, ClientError> {
        self.post_form("/policy/deactivate", &[("policyId", policy)])
            .await?
            .accepted()
    }

    pub async fn delete_policy(&self, policy: &str) -> Result<Accepted, ClientError> {
        self.post_form("/policy/delete", &[("policyId", policy)])
            .await?
            .accepted()
    }

    pub async fn list_active_policies(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/policy/list-active-policies{query}"))
            .await?
            .expect(200)
    }

    pub async fn list_inactive_policies(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/policy/list-inactive-policies{query}"))
            .await?
            .expect(200)
    }

    pub async fn list_registered_policies(&self, query: &str) -> Result<Value, ClientError> {
        self.get(&format!("/policy/list-registered-policies{query}"))
            .await?
            .expect(200)
    }

    /// By id or name.
    pub async fn retrieve_policy(&self, id_or_name: &str) -> Result<Value, ClientError> {
        self.get(&format!("/policy/retrieve-policy/{}", segment(id_or_name)))
            .await?
            .expect(200)
    }
    /// Create voting (§6.1.1); `(commandId, poolId)`.
    pub async fn create_voting(&self, body: Value) -> Result<(String, String), ClientError> {
        let v: Value = self.post_json("/voting/create", body).await?.expect(202)?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok((text("commandId"), text("poolId")))
    }

    /// Check pool status (§6.1.2).
    pub async fn check_pool_status(&self, pool: &str) -> Result<Value, ClientError> {
        self.get(&format!("/voting/check-pool-status/{}", segment(pool)))
            .await?
            .expect(200)
    }

    /// This client with device credentials (§6.3): `Authorization: Basic`.
    pub fn with_device_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, ClientError> {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{client_id}:{client_secret}"));
        self.with_header("authorization", &format!("Basic {encoded}"))
    }

    /// List pending ballots (§6.3.1), with device credentials.
    pub async fn pending_ballots(&self) -> Result<Value, ClientError> {
        self.get("/voting/pending-ballots").await?.expect(200)
    }

    /// Cast vote (§6.3.2), with device credentials; `body` has `ballotId`, `decision` and
    /// optionally `mac` and `votedAt`.
    pub async fn cast_vote(&self, body: Value) -> Result<Value, ClientError> {
        self.post_json("/voting/cast-vote", body).await?.expect(200)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_travel_percent_encoded_in_paths() {
        assert_eq!(
            super::segment("exchange approvers/ä"),
            "exchange%20approvers%2F%C3%A4"
        );
        assert_eq!(super::segment("plain-name"), "plain-name");
    }
}
