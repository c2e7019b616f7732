//! `Idempotency-Key` on async POSTs (docs/api/README.md §4.7): for 24 h a repeat of (scope, path, key)
//! with the same body gets the original 202 again, with another body a conflict.

use crate::{Error, ProfileId, Reason, Timestamp};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a key is remembered.
pub const RETENTION_SECONDS: i64 = 24 * 3600;
/// A claim whose request never finished (the engine stopped in between) is given up after
/// this long, and a repeat runs again.
pub const ABANDONED_AFTER_SECONDS: i64 = 60;

/// 1..64 characters of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, Error> {
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::new(Reason::ValidationInvalidFormat)
                .with_field("Idempotency-Key")
                .with_message("An Idempotency-Key is 1 to 64 characters of A-Z a-z 0-9 _ -."))
        }
    }
}

/// What a key is remembered under: the caller's profile (none before registration), the
/// request path and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencySlot {
    pub scope: String,
    pub path: String,
    pub key: String,
}

impl IdempotencySlot {
    pub fn new(profile: Option<ProfileId>, path: &str, key: &IdempotencyKey) -> Self {
        Self {
            scope: profile.map_or_else(|| "anonymous".to_owned(), |p| p.to_string()),
            path: path.to_owned(),
            key: key.0.clone(),
        }
    }
}

/// A remembered request: the fingerprint of its body and, once it was accepted, the reply
/// that is sent again to repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub body_hash: Vec<u8>,
    pub reply: Option<String>,
    pub created_at: Timestamp,
}

/// HMAC-SHA256 of a request body in a canonical form, under an engine secret: bodies may
/// hold guessable values, so a plain hash at rest would be a dictionary target. Callers
/// leave secret fields out of the canonical form first (`is_secret_field`).
pub fn fingerprint(key: &[u8; 32], canonical_body: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(canonical_body);
    mac.finalize().into_bytes().to_vec()
}

/// Body fields that carry a secret (`password`, `currentPassword`, `newPassword`, …) and
/// never enter a fingerprint: a repeat is recognised by everything else it says.
pub fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passphrase", "secret", "privatekey"]
        .iter()
        .any(|word| name.contains(word))
}

/// The outcome of presenting a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// First use: run the request, then settle the slot.
    Claimed(IdempotencySlot),
    /// A repeat of an accepted request: send this reply again.
    Replay(String),
    /// The same key with another body.
    Conflict,
    /// The first request with this key and body is still running.
    InFlight,
}

/// Decides what a repeat gets from the record found in its slot.
pub fn judge(record: &IdempotencyRecord, body_hash: &[u8]) -> Presented {
    use subtle::ConstantTimeEq;
    if !bool::from(record.body_hash.ct_eq(body_hash)) {
        return Presented::Conflict;
    }
    match &record.reply {
        Some(reply) => Presented::Replay(reply.clone()),
        None => Presented::InFlight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn keys_follow_the_contract() {
        for ok in ["a", "A-b_9", &"k".repeat(64)] {
            assert!(IdempotencyKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "ä", "a/b", &"k".repeat(65)] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().reason,
                Reason::ValidationInvalidFormat,
                "{bad}"
            );
        }
    }

    #[test]
    fn fingerprints_are_keyed() {
        let plain = <Sha256 as sha2::Digest>::digest(b"a").to_vec();
        assert_ne!(fingerprint(&KEY, b"a"), plain);
        assert_ne!(fingerprint(&KEY, b"a"), fingerprint(&[8; 32], b"a"));
        assert_eq!(fingerprint(&KEY, b"a"), fingerprint(&KEY, b"a"));
    }

    #[test]
    fn password_fields_are_secret() {
        for name in [
            "password",
            "currentPassword",
            "newPassword",
            "client_secret",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["username", "context", "publicKey"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn repeats_are_judged_by_body_and_progress() {
        let done = IdempotencyRecord {
            body_hash: fingerprint(&KEY, b"a"),
            reply: Some("r".into()),
            created_at: Timestamp::now(),
        };
        assert_eq!(
            judge(&done, &fingerprint(&KEY, b"a")),
            Presented::Replay("r".into())
        );
        assert_eq!(judge(&done, &fingerprint(&KEY, b"b")), Presented::Conflict);
        let running = IdempotencyRecord {
            reply: None,
            ..done
        };
        assert_eq!(
            judge(&running, &fingerprint(&KEY, b"a")),
            Presented::InFlight
        );
    }
}
