//! The end-to-end flows of docs/api/flows.md, each one `await`: attach a storage device (flow 5),
//! store a payload (flow 2), fetch it back (flow 4a).

use crate::error::ClientError;
use crate::http::Client;
use crate::session::Session;
use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;

/// How long a flow waits for each acknowledgement.
pub const ACK_WAIT: Duration = Duration::from_secs(60);

impl Client {
    /// Requests, approves and registers a storage device; returns its identifier.
    pub async fn attach_storage_device(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<String, ClientError> {
        let requested = self.request_device(name).await?;
        let device = session
            .wait_command(&requested.command_id, ACK_WAIT)
            .await?
            .result()?;
        let id = device["deviceIdentifier"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let approved = self.approve_device(&id).await?;
        session
            .wait_command(&approved.command_id, ACK_WAIT)
            .await?
            .result()?;
        let registered = self.register_storage(&id).await?;
        session
            .wait_command(&registered.command_id, ACK_WAIT)
            .await?
            .result()?;
        Ok(id)
    }

    /// Reserve → ack → temporary token → exchange → ack. Returns the token and the
    /// exchange result.
    pub async fn store_payload(
        &self,
        session: &Session,
        context: &str,
        payload: &[u8],
    ) -> Result<(String, Value), ClientError> {
        let reserved = self.reserve_token_space(context, None).await?;
        let reservation = session
            .wait_command(&reserved.command_id, ACK_WAIT)
            .await?
            .result()?;
        let token = reservation["token"].as_str().unwrap_or_default().to_owned();
        let temporary = self.temporary_data_token(&reserved.command_id).await?;
        debug_assert_eq!(temporary["token"], reservation["token"]);
        let exchanged = self.exchange_data(&token, payload).await?;
        let result = session
            .wait_command(&exchanged.command_id, ACK_WAIT)
            .await?
            .result()?;
        Ok((token, result))
    }

    /// Request data → inline delivery → the payload bytes.
    pub async fn fetch_payload(
        &self,
        session: &Session,
        token: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let request = self.request_data(token).await?;
        let outcome = session.wait_command(&request.command_id, ACK_WAIT).await?;
        outcome.result()?;
        let delivery = session
            .events_for(&request.request_id)
            .into_iter()
            .find(|e| e["type"] == "X-DPT-CAB-REQUEST-ID")
            .ok_or_else(|| ClientError::Timeout(format!("delivery of {}", request.request_id)))?;
        if delivery["output_type"] == 1 {
            // Above the inline delivery limit the body is the single-use download URL.
            let mut payload = Vec::new();
            self.download_stream(delivery["body"].as_str().unwrap_or_default(), &mut payload)
                .await?;
            return Ok(payload);
        }
        base64::engine::general_purpose::STANDARD
            .decode(delivery["body"].as_str().unwrap_or_default())
            .map_err(|e| ClientError::WebSocket(format!("delivery is not base64: {e}")))
    }
}
