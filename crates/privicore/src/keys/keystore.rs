//! `<data_dir>/keys/keystore.json`: the KEKs, each wrapped under the root key, a check
//! value that tells a wrong root key from a damaged file, and how the engine is unsealed.

use super::root::{Vault, label};
use anyhow::Context;
use privicore_domain::envelope::{Kek, KeyRing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;
const CHECK_PLAIN: &[u8] = b"privicore root key";

/// How the root key is obtained when it is not given at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Unseal {
    /// Argon2id of an operator passphrase with this salt (base64).
    Passphrase { salt: String },
    /// Shamir shares of the root key, `threshold` of `shares` needed.
    Shamir { threshold: u8, shares: u8 },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: u32,
    check: String,
    active: String,
    keks: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unseal: Option<Unseal>,
}

pub struct Keystore {
    path: PathBuf,
    file: File,
}

impl Keystore {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("keystore.json")
    }

    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: File = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a key store", path.display()))?;
        anyhow::ensure!(
            file.format == FORMAT,
            "unknown key store format {}",
            file.format
        );
        Ok(Some(Self {
            path: path.to_owned(),
            file,
        }))
    }

    /// A new store holding `keks` (the first is active), written at once.
    pub fn create(
        path: &Path,
        vault: &Vault,
        keks: &[Kek],
        unseal: Option<Unseal>,
    ) -> anyhow::Result<Self> {
        let mut store = Self {
            path: path.to_owned(),
            file: File {
                format: FORMAT,
                check: vault.seal(label::CHECK, "root", CHECK_PLAIN),
                active: keks
                    .first()
                    .context("a key store needs a KEK")?
                    .id()
                    .to_owned(),
                keks: BTreeMap::new(),
                unseal,
            },
        };
        for kek in keks {
            store.put(vault, kek);
        }
        store.save()?;
        Ok(store)
    }

    pub fn unseal(&self) -> Option<&Unseal> {
        self.file.unseal.as_ref()
    }

    /// Whether `vault` holds the root key this store was written with.
    pub fn opens_with(&self, vault: &Vault) -> bool {
        vault
            .open(label::CHECK, "root", &self.file.check)
            .is_some_and(|plain| plain.as_slice() == CHECK_PLAIN)
    }

    /// Every KEK, unwrapped; an error names the first that does not unwrap.
    pub fn ring(&self, vault: &Vault) -> anyhow::Result<KeyRing> {
        anyhow::ensure!(
            self.opens_with(vault),
            "the root key does not open {} (another root key was used for this data \
             directory: check --root-key-file / PRIVICORE_ROOT_KEY)",
            self.path.display()
        );
        let mut active = None;
        let mut others = Vec::new();
        for (id, sealed) in &self.file.keks {
            let plain = vault
                .open(label::KEK, id, sealed)
                .with_context(|| format!("KEK {id} in {} does not unwrap", self.path.display()))?;
            let raw: [u8; 32] = plain
                .as_slice()
                .try_into()
                .with_context(|| format!("KEK {id} is not 32 bytes"))?;
            let kek = Kek::new(id, raw).with_context(|| format!("invalid KEK id {id}"))?;
            if *id == self.file.active {
                active = Some(kek);
            } else {
                others.push(kek);
            }
        }
        let active = active.context("the active KEK is not in the key store")?;
        Ok(KeyRing::new(active, others))
    }

    pub fn active(&self) -> &str {
        &self.file.active
    }

    pub fn kek_ids(&self) -> impl Iterator<Item = &str> {
        self.file.keks.keys().map(String::as_str)
    }

    /// Adds (or replaces) a KEK, wrapped; `save` writes it.
    pub fn put(&mut self, vault: &Vault, kek: &Kek) {
        self.file.keks.insert(
            kek.id().to_owned(),
            vault.seal(label::KEK, kek.id(), kek.key_bytes()),
        );
    }

    pub fn set_active(&mut self, id: &str) {
        self.file.active = id.to_owned();
    }

    pub fn remove(&mut self, id: &str) {
        self.file.keks.remove(id);
    }

    /// Written to a temporary file, synced, then renamed over the old one.
    pub fn save(&self) -> anyhow::Result<()> {
        let dir = self
            .path
            .parent()
            .context("the key store has a directory")?;
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("keystore.json.tmp");
        let _ = std::fs::remove_file(&tmp);
        super::write_private(&tmp, serde_json::to_string_pretty(&self.file)?.as_bytes())?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The file as written, for backups.
    pub fn to_text(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(&self.file)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keks_round_trip_under_the_right_root_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(dir.path());
        let vault = Vault::generate();
        let kek = Kek::generate("kek-1").unwrap();
        Keystore::create(&path, &vault, std::slice::from_ref(&kek), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&hex::encode(kek.key_bytes())),
            "no plain KEK on disk"
        );
        let store = Keystore::load(&path).unwrap().unwrap();
        let ring = store.ring(&vault).unwrap();
        assert_eq!(ring.active().key_bytes(), kek.key_bytes());
        let wrong = store.ring(&Vault::generate()).unwrap_err().to_string();
        assert!(wrong.contains("does not open"), "{wrong}");
    }
}
