//! A device's identity: its signed key pair and the master key of its objects at rest,
//! created on first start and kept in files only its user can read.

use privicore_wire::{KeyPair, SignedPublicKey};
use rand::RngCore;
use std::path::Path;
use zeroize::Zeroizing;

/// Seals a device's secrets at rest under a key kept elsewhere: a hosted device's keys are
/// wrapped under the engine's root key, so a copy of its directory opens nothing.
pub trait KeyWrap: Send + Sync {
    /// `name` says whose secret this is; it binds the sealed bytes to it.
    fn wrap(&self, name: &str, secret: &[u8]) -> Vec<u8>;
    /// `None` when `sealed` was not made by `wrap` with this key and name.
    fn unwrap(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>>;
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Whether objects were already written here (a lost key must then not be replaced).
fn holds_objects(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("segments"))
        .map(|mut entries| entries.next().is_some())
        .unwrap_or(false)
}

/// One wrapped secret: opened from `<stem>.sealed`, or moved there from the plain file of
/// an earlier build, or made by `fresh` when the device holds nothing yet.
fn wrapped_secret(
    dir: &Path,
    plain: &str,
    stem: &str,
    name: &str,
    wrap: &dyn KeyWrap,
    fresh: impl FnOnce() -> Zeroizing<Vec<u8>>,
) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let sealed_path = dir.join(format!("{stem}.sealed"));
    let plain_path = dir.join(plain);
    if sealed_path.exists() {
        let secret = wrap
            .unwrap(name, &std::fs::read(&sealed_path)?)
            .ok_or_else(|| {
                invalid(format!(
                    "{} does not open with this root key",
                    sealed_path.display()
                ))
            })?;
        // A crash between sealing and removing the plain copy leaves it behind.
        if plain_path.exists() {
            std::fs::remove_file(&plain_path)?;
        }
        return Ok(secret);
    }
    let secret = if plain_path.exists() {
        Zeroizing::new(std::fs::read(&plain_path)?)
    } else if holds_objects(dir) {
        return Err(invalid(format!(
            "{} holds objects but its {stem} is missing; restore it instead of starting over",
            dir.display()
        )));
    } else {
        fresh()
    };
    write_private(&sealed_path, &wrap.wrap(name, &secret))?;
    if plain_path.exists() {
        std::fs::remove_file(&plain_path)?;
        tracing::info!(dir = %dir.display(), "sealed a plain device key under the root key");
    }
    Ok(secret)
}

/// Who the device is and the secrets that never leave it.
pub struct DeviceIdentity {
    pub device_identifier: String,
    pub engine_public_key: SignedPublicKey,
    pub(crate) keys: KeyPair,
    pub(crate) dmk: [u8; 32],
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl Drop for DeviceIdentity {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.dmk);
    }
}

impl DeviceIdentity {
    /// Loads the device key pair and master key from `dir`, creating them on first start.
    pub fn load_or_create(
        dir: &Path,
        device_identifier: &str,
        engine_public_key: SignedPublicKey,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let key_path = dir.join("device-key.hex");
        let dmk_path = dir.join("dmk.key");
        if !key_path.exists() {
            write_private(&key_path, KeyPair::generate().private_hex().as_bytes())?;
        }
        if !dmk_path.exists() {
            let mut dmk = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut dmk);
            write_private(&dmk_path, &dmk)?;
        }
        let invalid = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("unreadable {what}"),
            )
        };
        let keys = KeyPair::from_private_hex(std::fs::read_to_string(&key_path)?.trim())
            .ok_or_else(|| invalid("device key"))?;
        let dmk: [u8; 32] = std::fs::read(&dmk_path)?
            .try_into()
            .map_err(|_| invalid("master key"))?;
        Ok(Self {
            device_identifier: device_identifier.to_owned(),
            engine_public_key,
            keys,
            dmk,
        })
    }

    /// As `load_or_create`, with both secrets sealed by `wrap` (`device-key.sealed`,
    /// `dmk.sealed`); plain files of earlier builds are sealed and removed. A secret that is
    /// missing while objects exist, or that does not unwrap, is an error, never replaced.
    pub fn load_or_create_wrapped(
        dir: &Path,
        device_identifier: &str,
        engine_public_key: SignedPublicKey,
        wrap: &dyn KeyWrap,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let key_hex = wrapped_secret(
            dir,
            "device-key.hex",
            "device-key",
            &format!("{device_identifier}/device-key"),
            wrap,
            || Zeroizing::new(KeyPair::generate().private_hex().into_bytes()),
        )?;
        let dmk = wrapped_secret(
            dir,
            "dmk.key",
            "dmk",
            &format!("{device_identifier}/dmk"),
            wrap,
            || {
                let mut dmk = Zeroizing::new(vec![0u8; 32]);
                rand::rngs::OsRng.fill_bytes(&mut dmk);
                dmk
            },
        )?;
        let keys = std::str::from_utf8(&key_hex)
            .ok()
            .and_then(|text| KeyPair::from_private_hex(text.trim()))
            .ok_or_else(|| invalid("unreadable device key".into()))?;
        let dmk: [u8; 32] = dmk
            .as_slice()
            .try_into()
            .map_err(|_| invalid("unreadable master key".into()))?;
        Ok(Self {
            device_identifier: device_identifier.to_owned(),
            engine_public_key,
            keys,
            dmk,
        })
    }

    pub fn public_key(&self) -> &SignedPublicKey {
        self.keys.public()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOR with a name-bound byte: enough to tell wrapped from plain in a test.
    struct Xor(u8);

    impl KeyWrap for Xor {
        fn wrap(&self, name: &str, secret: &[u8]) -> Vec<u8> {
            let mut out = name.as_bytes().to_vec();
            out.push(0);
            out.extend(secret.iter().map(|b| b ^ self.0));
            out
        }

        fn unwrap(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
            let rest = sealed.strip_prefix(name.as_bytes())?.strip_prefix(&[0])?;
            (self.0 != 0).then(|| Zeroizing::new(rest.iter().map(|b| b ^ self.0).collect()))
        }
    }

    fn engine_key() -> SignedPublicKey {
        KeyPair::generate().public().clone()
    }

    #[test]
    fn plain_keys_are_sealed_and_lost_keys_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let plain = DeviceIdentity::load_or_create(dir.path(), "d1", engine_key()).unwrap();
        let (dmk, public) = (plain.dmk, plain.public_key().clone());
        let sealed =
            DeviceIdentity::load_or_create_wrapped(dir.path(), "d1", engine_key(), &Xor(9))
                .unwrap();
        assert_eq!((sealed.dmk, sealed.public_key()), (dmk, &public));
        assert!(!dir.path().join("dmk.key").exists());
        assert!(!dir.path().join("device-key.hex").exists());
        assert_ne!(
            std::fs::read(dir.path().join("dmk.sealed")).unwrap()[3..],
            dmk
        );
        // Another wrapping key, or another device's name, opens nothing.
        assert!(
            DeviceIdentity::load_or_create_wrapped(dir.path(), "d1", engine_key(), &Xor(0))
                .is_err()
        );
        assert!(
            DeviceIdentity::load_or_create_wrapped(dir.path(), "d2", engine_key(), &Xor(9))
                .is_err()
        );
        // Objects without their key: an error, never a fresh key.
        std::fs::remove_file(dir.path().join("dmk.sealed")).unwrap();
        std::fs::create_dir_all(dir.path().join("segments")).unwrap();
        std::fs::write(dir.path().join("segments/00000001.seg"), b"x").unwrap();
        let error = DeviceIdentity::load_or_create_wrapped(dir.path(), "d1", engine_key(), &Xor(9))
            .err()
            .unwrap();
        assert!(error.to_string().contains("missing"), "{error}");
        assert!(!dir.path().join("dmk.sealed").exists());
    }
}
