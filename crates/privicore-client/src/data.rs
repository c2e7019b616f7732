//! Devices, storage and data tokens over HTTP.

use crate::api::Accepted;
use crate::error::ClientError;
use crate::http::{Body, Client, Method, RawResponse};
use serde_json::{Value, json};

/// A data request's 202: the command id and the request id, from body and headers.
#[derive(Debug, Clone)]
pub struct DataRequest {
    pub command_id: String,
    pub request_id: String,
    pub header_command_id: Option<String>,
    pub header_request_id: Option<String>,
}

fn value(res: RawResponse, status: u16) -> Result<Value, ClientError> {
    res.expect(status)
}

impl Client {
    pub async fn request_device(&self, name: &str) -> Result<Accepted, ClientError> {
        self.post_form("/device/request-unique-identifier", &[("deviceName", name)])
            .await?
            .accepted()
    }

    pub async fn retrieve_unique_identifier(&self, command_id: &str) -> Result<Value, ClientError> {
        value(
            self.post_form("/device/retrieve-unique-identifier", &[("id", command_id)])
                .await?,
            200,
        )
    }

    pub async fn list_devices(&self, query: &str) -> Result<Value, ClientError> {
        value(
            self.get(&format!("/device/retrieve-profile-devices{query}"))
                .await?,
            200,
        )
    }

    pub async fn approve_device(&self, device: &str) -> Result<Accepted, ClientError> {
        self.post_form("/device/approve-device", &[("deviceIdentifier", device)])
            .await?
            .accepted()
    }

    pub async fn reject_device(&self, device: &str) -> Result<Accepted, ClientError> {
        self.post_form("/device/reject-device", &[("deviceIdentifier", device)])
            .await?
            .accepted()
    }

    pub async fn configure_device_meta(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/device/configure-meta", body)
            .await?
            .accepted()
    }

    pub async fn download_device_configuration(&self, device: &str) -> Result<Value, ClientError> {
        value(
            self.post_form(
                "/device/download-device-configuration",
                &[("deviceIdentifier", device)],
            )
            .await?,
            200,
        )
    }

    pub async fn remove_device(&self, device: &str, force: bool) -> Result<Accepted, ClientError> {
        self.post_json(
            "/device/remove",
            json!({ "deviceIdentifier": device, "force": force }),
        )
        .await?
        .accepted()
    }

    pub async fn register_storage(&self, device: &str) -> Result<Accepted, ClientError> {
        self.post_form("/storage/register", &[("deviceIdentifier", device)])
            .await?
            .accepted()
    }

    pub async fn list_storage_devices(&self, query: &str) -> Result<Value, ClientError> {
        value(
            self.get(&format!("/storage/list-storage-devices{query}"))
                .await?,
            200,
        )
    }

    pub async fn sync_device(&self, device: &str, verify: bool) -> Result<Accepted, ClientError> {
        self.post_json(
            "/storage/sync-device",
            json!({ "deviceIdentifier": device, "verify": verify }),
        )
        .await?
        .accepted()
    }

    pub async fn remove_storage(&self, device: &str, force: bool) -> Result<Accepted, ClientError> {
        self.post_json(
            "/storage/remove",
            json!({ "deviceIdentifier": device, "force": force }),
        )
        .await?
        .accepted()
    }

    pub async fn reserve_token_space(
        &self,
        context: &str,
        ttl_minutes: Option<i64>,
    ) -> Result<Accepted, ClientError> {
        let mut body = json!({ "context": context });
        if let Some(ttl) = ttl_minutes {
            body["ttl"] = json!(ttl);
        }
        self.post_json("/data-token/reserve-token-space", body)
            .await?
            .accepted()
    }

    pub async fn temporary_data_token(&self, reservation: &str) -> Result<Value, ClientError> {
        value(
            self.get(&format!(
                "/data-token/retrieve-temporary-data-token/{reservation}"
            ))
            .await?,
            200,
        )
    }

    /// `data` is the client payload (IV | ciphertext | tag); it is sent as base64.
    pub async fn exchange_data(&self, token: &str, data: &[u8]) -> Result<Accepted, ClientError> {
        let body = exchange_body(token, data);
        self.send(
            Method::POST,
            "/data-token/exchange-data-for-token",
            Body::Raw {
                content_type: "application/json",
                bytes: body,
            },
        )
        .await?
        .accepted()
    }

    pub async fn configure_file_meta(&self, body: Value) -> Result<Value, ClientError> {
        value(
            self.post_json("/data-token/configure-file-meta", body)
                .await?,
            200,
        )
    }

    pub async fn request_data(&self, token: &str) -> Result<DataRequest, ClientError> {
        let res = self
            .post_form("/data-token/request-data", &[("token", token)])
            .await?;
        let header_command_id = res.header("x-dpt-cab-id").map(str::to_owned);
        let header_request_id = res.header("x-dpt-cab-request-id").map(str::to_owned);
        let body = value(res, 202)?;
        Ok(DataRequest {
            command_id: body["commandId"].as_str().unwrap_or_default().to_owned(),
            request_id: body["requestId"].as_str().unwrap_or_default().to_owned(),
            header_command_id,
            header_request_id,
        })
    }

    pub async fn list_data_tokens(&self, query: &str) -> Result<Value, ClientError> {
        value(
            self.get(&format!("/data-token/list-data-tokens{query}"))
                .await?,
            200,
        )
    }

    pub async fn update_data_token(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/data-token/update-data-token", body)
            .await?
            .accepted()
    }

    pub async fn configure_risk_meta(&self, body: Value) -> Result<Accepted, ClientError> {
        self.post_json("/data-token/configure-information-security-risk-meta", body)
            .await?
            .accepted()
    }

    pub async fn delete_data(&self, token: &str) -> Result<Accepted, ClientError> {
        self.post_form("/data-token/delete-data", &[("token", token)])
            .await?
            .accepted()
    }

    pub async fn token_statistics(&self, query: &str) -> Result<Value, ClientError> {
        value(
            self.get(&format!("/data-token/transaction-count-statistics{query}"))
                .await?,
            200,
        )
    }
}

/// `{"temporaryTokenSpace": …, "data": "<base64>"}`. JSON rather than a form: base64 needs
/// no escaping in a JSON string, while a form percent-encodes every `+`, `/` and `=` (and
/// the engine decodes them again). Written directly, so the payload is not copied into a
/// JSON value and scanned for escapes on the way out.
fn exchange_body(token: &str, data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let token = serde_json::to_string(token).expect("a string serializes");
    let encoded_len = data.len().div_ceil(3) * 4;
    let mut body = Vec::with_capacity(40 + token.len() + encoded_len);
    body.extend_from_slice(b"{\"temporaryTokenSpace\":");
    body.extend_from_slice(token.as_bytes());
    body.extend_from_slice(b",\"data\":\"");
    let start = body.len();
    body.resize(start + encoded_len, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(data, &mut body[start..])
        .expect("the buffer holds the padded encoding");
    body.truncate(start + written);
    body.extend_from_slice(b"\"}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn the_exchange_body_is_json_with_the_token_and_the_payload() {
        for len in [0usize, 1, 2, 3, 1024, 1025] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let token = "tts-\"quoted\"\\";
            let body: Value = serde_json::from_slice(&exchange_body(token, &data)).unwrap();
            assert_eq!(body["temporaryTokenSpace"], token);
            let sent = base64::engine::general_purpose::STANDARD
                .decode(body["data"].as_str().unwrap())
                .unwrap();
            assert_eq!(sent, data);
        }
    }
}
