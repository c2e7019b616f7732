//! `privicore operator init`: a data directory whose root key is never stored, only
//! derived from a passphrase (Argon2id, salt in the key store) or rebuilt from Shamir
//! shares printed once. The engine then starts sealed until `operator unseal`.

use crate::keys::keystore::{Keystore, Unseal};
use crate::keys::root::Vault;
use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use privicore_domain::envelope::Kek;
use rand::RngCore;
use std::path::Path;
use zeroize::Zeroizing;

/// Argon2id cost of the passphrase: 64 MiB, 3 passes (an unseal is rare; a guess must be
/// dear).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;

/// The root key of a passphrase and salt.
pub fn from_passphrase(passphrase: &str, salt_b64: &str) -> anyhow::Result<Vault> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let salt = STANDARD.decode(salt_b64).context("the passphrase salt")?;
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, Some(32))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut root = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, root.as_mut())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Vault::new(root))
}

/// The root key rebuilt from shares (hex); `None` while fewer than `threshold` differ.
pub fn from_shares(shares: &[Zeroizing<String>], threshold: u8) -> Option<Vault> {
    let parsed: Vec<sharks::Share> = shares
        .iter()
        .filter_map(|s| {
            let bytes = Zeroizing::new(hex::decode(s.trim()).ok()?);
            sharks::Share::try_from(bytes.as_slice()).ok()
        })
        .collect();
    let secret = Zeroizing::new(sharks::Sharks(threshold).recover(parsed.as_slice()).ok()?);
    let root: [u8; 32] = secret.as_slice().try_into().ok()?;
    Some(Vault::new(Zeroizing::new(root)))
}

/// How the new root key is made.
pub enum Scheme {
    Passphrase(Zeroizing<String>),
    Shamir { shares: u8, threshold: u8 },
}

/// Creates the key store of a fresh data directory; returns the shares to hand out (empty
/// for a passphrase).
pub fn init(data_dir: &Path, scheme: Scheme) -> anyhow::Result<Vec<Zeroizing<String>>> {
    let path = Keystore::path_in(data_dir);
    anyhow::ensure!(
        !path.exists() && !data_dir.join("privicore.db").exists(),
        "{} is already initialized; init only prepares a new data directory",
        data_dir.display()
    );
    let (vault, unseal, shares) = match scheme {
        Scheme::Passphrase(passphrase) => {
            anyhow::ensure!(
                passphrase.chars().count() >= 12,
                "a passphrase has at least 12 characters"
            );
            let mut salt = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut salt);
            let salt = STANDARD.encode(salt);
            let vault = from_passphrase(&passphrase, &salt)?;
            (vault, Unseal::Passphrase { salt }, vec![])
        }
        Scheme::Shamir { shares, threshold } => {
            anyhow::ensure!(
                threshold >= 2 && shares >= threshold,
                "--threshold must be at least 2 and at most --shares"
            );
            let mut root = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(root.as_mut());
            let printed = sharks::Sharks(threshold)
                .dealer(root.as_ref())
                .take(usize::from(shares))
                .map(|share| Zeroizing::new(hex::encode(Vec::from(&share))))
                .collect();
            (
                Vault::new(root),
                Unseal::Shamir { threshold, shares },
                printed,
            )
        }
    };
    std::fs::create_dir_all(data_dir)?;
    let kek = Kek::generate("kek-1").expect("a valid id");
    Keystore::create(&path, &vault, std::slice::from_ref(&kek), Some(unseal))?;
    Ok(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_of_the_shares_rebuilds_the_root_key() {
        let dir = tempfile::tempdir().unwrap();
        let shares = init(
            dir.path(),
            Scheme::Shamir {
                shares: 3,
                threshold: 2,
            },
        )
        .unwrap();
        let store = Keystore::load(&Keystore::path_in(dir.path()))
            .unwrap()
            .unwrap();
        assert_eq!(
            store.unseal(),
            Some(&Unseal::Shamir {
                threshold: 2,
                shares: 3
            })
        );
        assert!(from_shares(&shares[..1], 2).is_none_or(|v| !store.opens_with(&v)));
        for pair in [[0, 1], [1, 2], [0, 2]] {
            let given = [shares[pair[0]].clone(), shares[pair[1]].clone()];
            assert!(
                store.opens_with(&from_shares(&given, 2).unwrap()),
                "{pair:?}"
            );
        }
        assert!(
            init(
                dir.path(),
                Scheme::Shamir {
                    shares: 3,
                    threshold: 2
                }
            )
            .is_err()
        );
    }
}
