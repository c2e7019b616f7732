//! The root key: 32 bytes from outside the data directory (a file, `PRIVICORE_ROOT_KEY`,
//! or an unseal), from which every key at rest is wrapped and every engine secret derived.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;
use zeroize::Zeroizing;

/// What a sealed value starts with; the format may change under another prefix.
const SEALED_PREFIX: &str = "v1:";

/// Purposes, one HKDF label each, so no two uses ever share a key.
pub mod label {
    pub const CHECK: &str = "privicore/root/check/v1";
    pub const KEK: &str = "privicore/root/kek/v1";
    pub const ENGINE_KEY: &str = "privicore/root/engine-key/v1";
    pub const DEVICE_KEY: &str = "privicore/root/device-key/v1";
    pub const IDEMPOTENCY: &str = "privicore/root/idempotency/v1";
    pub const UPLOAD: &str = "privicore/root/upload-values/v1";
    /// The MAC key of the audit chain (docs/audit.md).
    pub const AUDIT: &str = "privicore/root/audit/v1";
}

/// The root key and what is derived from it. `Debug` shows nothing.
pub struct Vault {
    root: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(..)")
    }
}

impl Vault {
    pub fn new(root: Zeroizing<[u8; 32]>) -> Self {
        Self { root }
    }

    pub fn generate() -> Self {
        let mut root = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(root.as_mut());
        Self { root }
    }

    /// A root key as text: 64 hex characters or standard base64 of 32 bytes.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = Zeroizing::new(text.trim().to_owned());
        let mut root = Zeroizing::new([0u8; 32]);
        if text.len() == 64 && hex::decode_to_slice(text.as_bytes(), root.as_mut()).is_ok() {
            return Ok(Self { root });
        }
        let decoded = Zeroizing::new(STANDARD.decode(text.as_bytes()).unwrap_or_default());
        anyhow::ensure!(
            decoded.len() == 32,
            "a root key is 32 bytes written as 64 hex characters or as base64"
        );
        root.copy_from_slice(&decoded);
        Ok(Self { root })
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the root key file {}", path.display()))?,
        );
        Self::parse(&text).with_context(|| format!("the root key file {}", path.display()))
    }

    /// The key as 64 hex characters, for the file of the embedded default.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.root.as_ref()))
    }

    /// A 32-byte key for one purpose (HKDF-SHA256).
    pub fn derive(&self, label: &str) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"privicore/root/v1"), self.root.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(label.as_bytes(), out.as_mut())
            .expect("32 bytes is a valid HKDF length");
        out
    }

    /// AES-256-GCM under the key of `label`, bound to `name` (AAD): `v1:` + base64 of
    /// nonce ‖ ciphertext.
    pub fn seal(&self, label: &str, name: &str, plain: &[u8]) -> String {
        let key = self.derive(label);
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new(key.as_ref().into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: name.as_bytes(),
                },
            )
            .expect("AES-GCM encryption cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// `None` unless `sealed` came from `seal` with this root key, label and name.
    pub fn open(&self, label: &str, name: &str, sealed: &str) -> Option<Zeroizing<Vec<u8>>> {
        let bytes = STANDARD.decode(sealed.strip_prefix(SEALED_PREFIX)?).ok()?;
        if bytes.len() < 12 + 16 {
            return None;
        }
        let key = self.derive(label);
        Aes256Gcm::new(key.as_ref().into())
            .decrypt(
                Nonce::from_slice(&bytes[..12]),
                Payload {
                    msg: &bytes[12..],
                    aad: name.as_bytes(),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Hosted devices seal their keys under the root key.
pub struct DeviceKeys(pub std::sync::Arc<Vault>);

impl privicore_storage_device::KeyWrap for DeviceKeys {
    fn wrap(&self, name: &str, secret: &[u8]) -> Vec<u8> {
        self.0.seal(label::DEVICE_KEY, name, secret).into_bytes()
    }

    fn unwrap(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.0
            .open(label::DEVICE_KEY, name, std::str::from_utf8(sealed).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let hex_text = "11".repeat(32);
        let b64 = STANDARD.encode([0x11u8; 32]);
        let (a, b) = (
            Vault::parse(&hex_text).unwrap(),
            Vault::parse(&b64).unwrap(),
        );
        assert_eq!(a.derive(label::KEK), b.derive(label::KEK));
        assert!(Vault::parse("abcd").is_err());
        assert!(Vault::parse(&"zz".repeat(32)).is_err());
        assert!(!format!("{a:?}").contains("11"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_label_and_name() {
        let vault = Vault::generate();
        let sealed = vault.seal(label::KEK, "kek-1", b"secret");
        assert_eq!(
            vault.open(label::KEK, "kek-1", &sealed).unwrap().as_slice(),
            b"secret"
        );
        assert!(vault.open(label::KEK, "kek-2", &sealed).is_none());
        assert!(vault.open(label::ENGINE_KEY, "kek-1", &sealed).is_none());
        assert!(
            Vault::generate()
                .open(label::KEK, "kek-1", &sealed)
                .is_none()
        );
        assert_ne!(
            vault.derive(label::IDEMPOTENCY),
            vault.derive(label::UPLOAD)
        );
    }
}
