//! The signed Curve25519 public key format (docs/api/profile-and-keys.md §3.1):
//! `31 42 05 00` tag, 32-byte X25519 key, BLAKE2b-512 over the first 36 bytes,
//! written as 200 lowercase hex characters.

use blake2::{Blake2b512, Digest};
use x25519_dalek::{PublicKey, StaticSecret};

pub const VERSION_TAG: [u8; 4] = [0x31, 0x42, 0x05, 0x00];
pub const SIGNED_KEY_LEN: usize = 100;
pub const SIGNED_KEY_HEX_LEN: usize = 2 * SIGNED_KEY_LEN;

/// Why a signed key was refused; each maps to one `public_key.*` error key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignedKeyError {
    #[error("a signed public key is exactly 200 hexadecimal characters")]
    InvalidFormat,
    #[error("the version tag must be 31420500")]
    UnsupportedVersion,
    #[error("the BLAKE2b-512 digest does not match the key")]
    InvalidDigest,
    #[error("the key is all-zero or a small-order point")]
    WeakKey,
}

impl SignedKeyError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidFormat => "public_key.invalid_format",
            Self::UnsupportedVersion => "public_key.unsupported_version",
            Self::InvalidDigest => "public_key.invalid_digest",
            Self::WeakKey => "public_key.weak_key",
        }
    }
}

/// A validated signed public key.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPublicKey {
    bytes: [u8; SIGNED_KEY_LEN],
}

impl std::fmt::Debug for SignedPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedPublicKey({}…)", &self.to_hex()[8..20])
    }
}

impl SignedPublicKey {
    /// Wraps a raw X25519 public key in the signed format.
    pub fn from_x25519(key: &[u8; 32]) -> Self {
        let mut bytes = [0u8; SIGNED_KEY_LEN];
        bytes[..4].copy_from_slice(&VERSION_TAG);
        bytes[4..36].copy_from_slice(key);
        let digest = Blake2b512::digest(&bytes[..36]);
        bytes[36..].copy_from_slice(&digest);
        Self { bytes }
    }

    /// Parses and validates, in the order the contract prescribes.
    pub fn parse(text: &str) -> Result<Self, SignedKeyError> {
        if text.len() != SIGNED_KEY_HEX_LEN || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SignedKeyError::InvalidFormat);
        }
        let mut bytes = [0u8; SIGNED_KEY_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| SignedKeyError::InvalidFormat)?;
        if bytes[..4] != VERSION_TAG {
            return Err(SignedKeyError::UnsupportedVersion);
        }
        let digest = Blake2b512::digest(&bytes[..36]);
        if digest.as_slice() != &bytes[36..] {
            return Err(SignedKeyError::InvalidDigest);
        }
        let key: [u8; 32] = bytes[4..36].try_into().expect("slice of 32");
        if is_weak_x25519(&key) {
            return Err(SignedKeyError::WeakKey);
        }
        Ok(Self { bytes })
    }

    pub fn x25519(&self) -> [u8; 32] {
        self.bytes[4..36].try_into().expect("slice of 32")
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

/// Small-order points of Curve25519 (and their non-canonical encodings): a DH with
/// any of them yields a predictable shared secret.
const SMALL_ORDER_POINTS: [[u8; 32]; 7] = [
    [0; 32],
    {
        let mut p = [0u8; 32];
        p[0] = 1;
        p
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

fn is_weak_x25519(key: &[u8; 32]) -> bool {
    // The top bit is ignored by X25519, so compare with it cleared.
    let mut masked = *key;
    masked[31] &= 0x7f;
    SMALL_ORDER_POINTS.iter().any(|p| {
        let mut q = *p;
        q[31] &= 0x7f;
        q == masked
    })
}

/// An X25519 key pair whose public half is in the signed format.
pub struct KeyPair {
    secret: StaticSecret,
    public: SignedPublicKey,
}

impl KeyPair {
    /// Fresh pair from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        Self::from_private(raw)
    }

    pub fn from_private(raw: [u8; 32]) -> Self {
        let secret = StaticSecret::from(raw);
        let public = SignedPublicKey::from_x25519(PublicKey::from(&secret).as_bytes());
        Self { secret, public }
    }

    pub fn from_private_hex(text: &str) -> Option<Self> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(text, &mut raw).ok()?;
        Some(Self::from_private(raw))
    }

    pub fn private_hex(&self) -> String {
        hex::encode(self.secret.to_bytes())
    }

    pub fn public(&self) -> &SignedPublicKey {
        &self.public
    }

    /// Raw X25519 agreement with a peer's key.
    pub fn diffie_hellman(&self, peer: &SignedPublicKey) -> [u8; 32] {
        self.secret
            .diffie_hellman(&PublicKey::from(peer.x25519()))
            .to_bytes()
    }
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VECTOR_PRIVATE: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";
    const VECTOR_SIGNED: &str = "3142050007a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c53e07393d76b12abaeba7c6f696c8b1ac7afc1a63ab27af506ae9298ca2e77e2c92c182be3c6e208013716db4c8873c269819190a56d71b8315e03118a1a82ac";

    #[test]
    fn spec_test_vector_round_trips() {
        let pair = KeyPair::from_private_hex(VECTOR_PRIVATE).unwrap();
        assert_eq!(pair.public().to_hex(), VECTOR_SIGNED);
        assert_eq!(
            SignedPublicKey::parse(VECTOR_SIGNED).unwrap(),
            *pair.public()
        );
    }

    #[test]
    fn upper_case_is_normalised() {
        let parsed = SignedPublicKey::parse(&VECTOR_SIGNED.to_uppercase()).unwrap();
        assert_eq!(parsed.to_hex(), VECTOR_SIGNED);
    }

    #[test]
    fn each_rule_has_its_error() {
        assert_eq!(
            SignedPublicKey::parse(&VECTOR_SIGNED[..198]),
            Err(SignedKeyError::InvalidFormat)
        );
        let not_hex = format!("zz{}", &VECTOR_SIGNED[2..]);
        assert_eq!(
            SignedPublicKey::parse(&not_hex),
            Err(SignedKeyError::InvalidFormat)
        );
        let wrong_tag = format!("41{}", &VECTOR_SIGNED[2..]);
        assert_eq!(
            SignedPublicKey::parse(&wrong_tag),
            Err(SignedKeyError::UnsupportedVersion)
        );
        let mut tampered = VECTOR_SIGNED.to_string();
        tampered.replace_range(199..200, "d");
        assert_eq!(
            SignedPublicKey::parse(&tampered),
            Err(SignedKeyError::InvalidDigest)
        );
        let zero = SignedPublicKey::from_x25519(&[0; 32]).to_hex();
        assert_eq!(SignedPublicKey::parse(&zero), Err(SignedKeyError::WeakKey));
        let one = SignedPublicKey::from_x25519(&SMALL_ORDER_POINTS[1]).to_hex();
        assert_eq!(SignedPublicKey::parse(&one), Err(SignedKeyError::WeakKey));
    }

    #[test]
    fn generated_pairs_agree() {
        let a = KeyPair::generate();
        let b = KeyPair::generate();
        assert_eq!(a.diffie_hellman(b.public()), b.diffie_hellman(a.public()));
        let reparsed = SignedPublicKey::parse(&a.public().to_hex()).unwrap();
        assert_eq!(&reparsed, a.public());
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in ".{0,260}") {
            let _ = SignedPublicKey::parse(&text);
        }

        #[test]
        fn parser_never_panics_on_hex(text in "[0-9a-fA-F]{190,210}") {
            let _ = SignedPublicKey::parse(&text);
        }

        #[test]
        fn any_strong_key_round_trips(raw in proptest::array::uniform32(any::<u8>())) {
            let signed = SignedPublicKey::from_x25519(&raw);
            match SignedPublicKey::parse(&signed.to_hex()) {
                Ok(parsed) => prop_assert_eq!(parsed.x25519(), raw),
                Err(e) => prop_assert_eq!(e, SignedKeyError::WeakKey),
            }
        }

        #[test]
        fn single_byte_corruption_is_caught(raw in proptest::array::uniform32(1u8..), pos in 0usize..100, flip in 1u8..) {
            let signed = SignedPublicKey::from_x25519(&raw);
            let mut bytes = hex::decode(signed.to_hex()).unwrap();
            bytes[pos] ^= flip;
            prop_assert!(SignedPublicKey::parse(&hex::encode(bytes)).is_err());
        }
    }
}
