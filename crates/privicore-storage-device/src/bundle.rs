//! The device configuration bundle (docs/api/devices-and-storage.md §2.7). It is a credential:
//! `Debug` leaves the secrets out.

use serde::Deserialize;

#[derive(Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Bundle {
    pub bundle_version: u32,
    pub device_identifier: String,
    pub device_name: String,
    pub profile_id: String,
    pub roles: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    pub bus: String,
    pub rabbit_host: String,
    pub rabbit_port: u16,
    pub rabbit_tls: bool,
    pub rabbit_vhost: String,
    pub rabbit_user: String,
    pub rabbit_pass: String,
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
    pub engine_public_key: String,
    pub engine_key_id: String,
    pub api_url: String,
    pub chunk_size: u32,
    pub issued_at: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("device_identifier", &self.device_identifier)
            .field("bus", &self.bus)
            .field("rabbit_host", &self.rabbit_host)
            .field("rabbit_port", &self.rabbit_port)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The embedded bus URL for `bus = "embedded"`.
    pub fn embedded_bus_url(&self) -> String {
        let scheme = if self.rabbit_tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}:{}/device-bus",
            self.rabbit_host, self.rabbit_port
        )
    }
}
