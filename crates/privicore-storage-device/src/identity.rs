//! A device's identity: its signed key pair and the master key of its objects at rest,
//! created on first start and kept in files only its user can read.

use privicore_wire::{KeyPair, SignedPublicKey};
use rand::RngCore;
use std::path::Path;

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

    pub fn public_key(&self) -> &SignedPublicKey {
        self.keys.public()
    }
}
