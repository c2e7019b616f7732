//! Helpers of the authenticator and policy tests.

use super::{Provisioned, WAIT};
use privicore_client::{ClientError, CommandOutcome};
use serde_json::Value;

impl Provisioned {
    /// Requests and approves a device (not hosted, so offline); its identifier.
    pub async fn approved_device(&self, name: &str) -> String {
        let requested = self.api.request_device(name).await.unwrap();
        let id = self.ok(&requested.command_id).await["deviceIdentifier"]
            .as_str()
            .unwrap()
            .to_owned();
        let approved = self.api.approve_device(&id).await.unwrap();
        self.ok(&approved.command_id).await;
        id
    }

    /// An approved device holding the authenticator role; its identifier.
    pub async fn authenticator(&self, name: &str) -> String {
        let id = self.approved_device(name).await;
        let registered = self.api.register_authenticator(&id).await.unwrap();
        self.ok(&registered.command_id).await;
        id
    }

    /// The key a command failed with; panics when it succeeded.
    pub async fn failure(&self, command_id: &str) -> String {
        match self.session.wait_command(command_id, WAIT).await.unwrap() {
            CommandOutcome::Failed(key) => key,
            CommandOutcome::Succeeded(result) => panic!("{command_id} succeeded: {result}"),
        }
    }
}

/// `(status, code, field)` of a api_error call.
pub fn api_error<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
) -> (u16, String, Option<String>) {
    let err = result.expect_err("the call must be api_error");
    (
        err.status().unwrap_or(0),
        err.code().unwrap_or_default().to_owned(),
        err.field().map(str::to_owned),
    )
}

/// `(status, code)` of a api_error call.
pub fn api_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    let (status, code, _) = api_error(result);
    (status, code)
}

/// The ids of a list answer's items under `key`.
pub fn ids(list: &Value, key: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i[key].as_str().unwrap().to_owned())
        .collect()
}
