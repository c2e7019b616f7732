//! The engine's own (CAB) key pair. Generated once, persisted, and published.

use crate::Timestamp;
use privicore_wire::KeyPair;
use secrecy::{ExposeSecret, SecretString};

/// The stored form of the engine key.
#[derive(Clone)]
pub struct EngineKeyRecord {
    pub key_id: String,
    pub private_hex: SecretString,
    pub public_key: String,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for EngineKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineKeyRecord")
            .field("key_id", &self.key_id)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

impl EngineKeyRecord {
    /// A fresh key named after its creation month (`cab-2026-01`).
    pub fn generate(now: Timestamp) -> Self {
        let pair = KeyPair::generate();
        let month = &now.rfc3339()[..7];
        Self {
            key_id: format!("cab-{month}"),
            private_hex: SecretString::from(pair.private_hex()),
            public_key: pair.public().to_hex(),
            created_at: now,
        }
    }

    pub fn key_pair(&self) -> Option<KeyPair> {
        KeyPair::from_private_hex(self.private_hex.expose_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_record_is_consistent() {
        let rec =
            EngineKeyRecord::generate(Timestamp::parse_rfc3339("2026-01-05T09:00:00Z").unwrap());
        assert_eq!(rec.key_id, "cab-2026-01");
        assert_eq!(rec.key_pair().unwrap().public().to_hex(), rec.public_key);
        assert!(!format!("{rec:?}").contains(rec.private_hex.expose_secret()));
    }
}
