//! The device bus contract (docs/api/devices-and-storage.md §6): one JSON envelope per message,
//! the same on AMQP and on the embedded WebSocket bus.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub const PROTOCOL_VERSION: u32 = 1;
/// A serialized message is at most 2 MiB.
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

pub mod ballots;
mod body;
pub use body::Body;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub v: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub device_identifier: String,
    pub sent_at: String,
    pub body: Body,
}

impl Envelope {
    /// A message with its body as built: it is serialized only if it leaves the process.
    pub fn new<T: Serialize + Send + Sync + 'static>(
        kind: &str,
        device: &str,
        correlation: Option<&str>,
        body: T,
    ) -> Self {
        Self {
            v: PROTOCOL_VERSION,
            kind: kind.to_owned(),
            message_id: uuid::Uuid::now_v7().to_string(),
            correlation_id: correlation.map(str::to_owned),
            device_identifier: device.to_owned(),
            sent_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, false),
            body: Body::typed(body),
        }
    }

    pub fn body<T: DeserializeOwned + Clone + 'static>(&self) -> Option<T> {
        self.body.read()
    }

    pub fn into_body<T: DeserializeOwned + Clone + Send + Sync + 'static>(self) -> Option<T> {
        self.body.into_message()
    }

    /// The `fetchId` of a fetch answer (`storage.fetch_chunk` or `storage.fetch_failed`).
    pub fn fetch_id(&self) -> Option<String> {
        if let Some(chunk) = self.body.as_typed::<FetchChunk>() {
            return Some(chunk.fetch_id.clone());
        }
        if let Some(failed) = self.body.as_typed::<FetchFailed>() {
            return Some(failed.fetch_id.clone());
        }
        match &self.body {
            Body::Json(value) => value.get("fetchId")?.as_str().map(str::to_owned),
            Body::Typed { .. } => None,
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("envelopes serialize")
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_MESSAGE_BYTES {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// Message type names.
pub mod kind {
    pub const HELLO: &str = "device.hello";
    pub const WELCOME: &str = "device.welcome";
    pub const REJECTED: &str = "device.rejected";
    pub const HEARTBEAT: &str = "device.heartbeat";
    pub const ROLES_CHANGED: &str = "device.roles_changed";
    pub const REVOKED: &str = "device.revoked";
    pub const ACK: &str = "bus.ack";
    pub const STORE_CHUNK: &str = "storage.store_chunk";
    pub const STORED: &str = "storage.stored";
    pub const STORE_FAILED: &str = "storage.store_failed";
    pub const FETCH: &str = "storage.fetch";
    pub const FETCH_CHUNK: &str = "storage.fetch_chunk";
    pub const FETCH_FAILED: &str = "storage.fetch_failed";
    pub const DELETE: &str = "storage.delete";
    pub const DELETED: &str = "storage.deleted";
    pub const INVENTORY_REQUEST: &str = "storage.inventory_request";
    pub const INVENTORY: &str = "storage.inventory";
    pub const SYNC_COMPLETE: &str = "storage.sync_complete";
}

/// Standard base64 with padding for binary fields.
pub mod b64 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// `b64` for a shared buffer.
pub mod b64_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        super::b64::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        super::b64::deserialize(d).map(bytes::Bytes::from)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub bytes_used: u64,
    pub bytes_free: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Software {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub public_key: String,
    pub software: Software,
    pub roles: Vec<String>,
    pub capacity: Capacity,
    pub object_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    pub device_identifier: String,
    pub profile_id: String,
    pub roles: Vec<String>,
    pub chunk_size: u32,
    pub heartbeat_interval: u64,
    pub server_time: String,
    pub engine_key_id: String,
    pub key_confirmation: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reason {
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub capacity: Capacity,
    pub object_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Roles {
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub message_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreChunk {
    pub transfer_id: String,
    pub token: String,
    pub version: u32,
    pub chunk_index: u32,
    pub chunk_count: u32,
    pub total_size: u64,
    pub sha256: String,
    #[serde(with = "b64")]
    pub header: Vec<u8>,
    /// Shared, not copied, when one chunk goes to several devices in this process.
    #[serde(with = "b64_bytes")]
    pub data: bytes::Bytes,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub transfer_id: String,
    pub token: String,
    pub version: u32,
    pub sha256: String,
    pub bytes_stored: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreFailed {
    pub transfer_id: String,
    pub token: String,
    pub version: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fetch {
    pub fetch_id: String,
    pub token: String,
    pub version: u32,
    pub from_chunk: u32,
    pub count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FetchChunk {
    pub fetch_id: String,
    pub token: String,
    pub version: u32,
    pub chunk_index: u32,
    pub chunk_count: u32,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FetchFailed {
    pub fetch_id: String,
    pub token: String,
    pub version: u32,
    pub chunk_index: Option<u32>,
    pub reason: String,
}

/// `versions` is a list, or the string `"all"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Versions {
    List(Vec<u32>),
    All(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delete {
    pub delete_id: String,
    pub token: String,
    pub versions: Versions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub delete_id: String,
    pub token: String,
    pub versions_removed: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryRequest {
    pub sync_id: String,
    pub cursor: Option<String>,
    pub page_size: u32,
    pub verify: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    pub token: String,
    pub version: u32,
    pub chunk_count: u32,
    pub total_size: u64,
    pub sha256: String,
    pub stored_at: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Inventory {
    pub sync_id: String,
    pub items: Vec<InventoryItem>,
    pub cursor: Option<String>,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyncComplete {
    pub sync_id: String,
    pub pushed: u64,
    pub repaired: u64,
    pub pruned: u64,
    pub unavailable: u64,
}

/// `K_dc = HKDF-SHA256(ikm = shared, salt = "privicore/device-channel/v1", info = deviceIdentifier)`.
pub fn channel_key(shared: &[u8; 32], device_identifier: &str) -> [u8; 32] {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"privicore/device-channel/v1"), shared);
    let mut out = [0u8; 32];
    hk.expand(device_identifier.as_bytes(), &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

/// `base64(HMAC-SHA256(K_dc, "device.welcome\n" + deviceIdentifier + "\n" + helloMessageId))`.
pub fn key_confirmation(
    channel_key: &[u8; 32],
    device_identifier: &str,
    hello_message_id: &str,
) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(channel_key).expect("any key length");
    mac.update(format!("device.welcome\n{device_identifier}\n{hello_message_id}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Constant-time check of a received confirmation.
pub fn verify_key_confirmation(
    channel_key: &[u8; 32],
    device_identifier: &str,
    hello_message_id: &str,
    received: &str,
) -> bool {
    let Ok(tag) = STANDARD.decode(received) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(channel_key).expect("any key length");
    mac.update(format!("device.welcome\n{device_identifier}\n{hello_message_id}").as_bytes());
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    #[test]
    fn envelopes_round_trip_with_the_documented_field_names() {
        let chunk = StoreChunk {
            transfer_id: "t".into(),
            token: "dtk-x".into(),
            version: 1,
            chunk_index: 0,
            chunk_count: 1,
            total_size: 3,
            sha256: "00".into(),
            header: vec![1, 2],
            data: vec![0xff; 3].into(),
        };
        let env = Envelope::new(kind::STORE_CHUNK, "dev", None, chunk.clone());
        let text = env.to_text();
        for field in [
            "\"v\":1",
            "\"type\":\"storage.store_chunk\"",
            "\"messageId\"",
            "\"correlationId\":null",
            "\"deviceIdentifier\":\"dev\"",
            "\"sentAt\"",
            "\"transferId\"",
            "\"data\":\"////\"",
        ] {
            assert!(text.contains(field), "{field} in {text}");
        }
        let back = Envelope::parse(&text).unwrap();
        assert_eq!(back.body::<StoreChunk>().unwrap(), chunk);
        assert!(Envelope::parse("{").is_none());
    }

    #[test]
    fn fetch_answers_name_their_fetch_whatever_their_transport() {
        let chunk = FetchChunk {
            fetch_id: "f-1".into(),
            token: "dtk-x".into(),
            version: 1,
            chunk_index: 0,
            chunk_count: 1,
            data: vec![7; 4],
        };
        let failed = FetchFailed {
            fetch_id: "f-2".into(),
            token: "dtk-x".into(),
            version: 1,
            chunk_index: None,
            reason: "not_found".into(),
        };
        let typed = Envelope::new(kind::FETCH_CHUNK, "dev", None, chunk.clone());
        let parsed = Envelope::parse(&typed.to_text()).unwrap();
        assert_eq!(typed.fetch_id().as_deref(), Some("f-1"));
        assert_eq!(parsed.fetch_id().as_deref(), Some("f-1"));
        assert_eq!(parsed, typed);
        assert_eq!(parsed.into_body::<FetchChunk>(), Some(chunk.clone()));
        assert_eq!(typed.into_body::<FetchChunk>(), Some(chunk));
        let failed = Envelope::new(kind::FETCH_FAILED, "dev", None, failed);
        assert_eq!(failed.fetch_id().as_deref(), Some("f-2"));
        let other = Envelope::new(
            kind::ACK,
            "dev",
            None,
            Ack {
                message_ids: vec![],
            },
        );
        assert_eq!(other.fetch_id(), None);
        assert_eq!(Envelope::parse(&other.to_text()).unwrap().fetch_id(), None);
    }

    #[test]
    fn versions_are_a_list_or_all() {
        let all: Delete =
            serde_json::from_str(r#"{"deleteId":"d","token":"t","versions":"all"}"#).unwrap();
        assert_eq!(all.versions, Versions::All("all".into()));
        let list: Delete =
            serde_json::from_str(r#"{"deleteId":"d","token":"t","versions":[1,2]}"#).unwrap();
        assert_eq!(list.versions, Versions::List(vec![1, 2]));
    }

    #[test]
    fn both_sides_derive_the_same_confirmation() {
        let engine = KeyPair::generate();
        let device = KeyPair::generate();
        let k_engine = channel_key(&engine.diffie_hellman(device.public()), "dev-1");
        let k_device = channel_key(&device.diffie_hellman(engine.public()), "dev-1");
        assert_eq!(k_engine, k_device);
        let tag = key_confirmation(&k_engine, "dev-1", "hello-1");
        assert!(verify_key_confirmation(&k_device, "dev-1", "hello-1", &tag));
        assert!(!verify_key_confirmation(
            &k_device, "dev-1", "hello-2", &tag
        ));
        assert!(!verify_key_confirmation(
            &k_device,
            "dev-1",
            "hello-1",
            "not base64"
        ));
    }
}
