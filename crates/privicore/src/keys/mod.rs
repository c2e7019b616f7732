//! Keys at rest. One root key, kept outside the data directory in production, wraps the
//! KEKs (`keys/keystore.json`), the engine (CAB) private key (in the metadata store) and
//! the hosted devices' keys; engine secrets are derived from it. Key material that the
//! store refers to and that is missing or does not unwrap stops the start: it is never
//! replaced by a fresh key.

pub mod keystore;
mod legacy;
pub mod root;

use anyhow::Context;
use keystore::Keystore;
use privicore_domain::Timestamp;
use privicore_domain::envelope::{Header, Kek, KeyRing};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::ports::MetadataStore;
use privicore_engine::EngineSecrets;
use root::{Vault, label};
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Marks an engine private key stored sealed (anything else is a plain key of an earlier
/// build, sealed on the next start).
const SEALED_ENGINE_KEY: &str = "sealed:";

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Where the root key comes from.
pub enum RootSource {
    /// Given at start (`PRIVICORE_ROOT_KEY`, `--root-key-file`) or by an unseal.
    Given(Vault),
    /// The embedded default: `<data_dir>/keys/root.key`, generated on first start.
    Beside(PathBuf),
}

impl RootSource {
    /// `PRIVICORE_ROOT_KEY` (hex or base64), then `keys.root_key_file`, then the default.
    pub fn from_settings(settings: &crate::config::Settings) -> anyhow::Result<Self> {
        if let Ok(text) = std::env::var("PRIVICORE_ROOT_KEY") {
            let text = zeroize::Zeroizing::new(text);
            return Ok(Self::Given(
                Vault::parse(&text).context("PRIVICORE_ROOT_KEY")?,
            ));
        }
        if let Some(path) = &settings.keys.root_key_file {
            return Ok(Self::Given(Vault::from_file(path)?));
        }
        Ok(Self::Beside(default_root_path(&settings.data_dir)))
    }
}

pub fn default_root_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("root.key")
}

/// The keys an engine runs with, opened.
pub struct Opened {
    pub vault: Arc<Vault>,
    pub ring: KeyRing,
    pub engine_key: EngineKeyRecord,
    pub secrets: EngineSecrets,
}

/// Opens (or, on a fresh data directory, creates) every key, migrating plain keys of
/// earlier builds; fails with a message that says what is missing.
pub async fn open(
    data_dir: &Path,
    source: RootSource,
    store: &dyn MetadataStore,
) -> anyhow::Result<Opened> {
    let stored_engine_key = store.engine_key().await?;
    let initialized = stored_engine_key.is_some();
    let keystore_path = Keystore::path_in(data_dir);
    let keystore = Keystore::load(&keystore_path)?;
    let legacy_path = data_dir.join("keys").join("kek.json");
    let vault = match source {
        RootSource::Given(vault) => vault,
        RootSource::Beside(path) => beside(&path, keystore.is_some())?,
    };

    let ring = match keystore {
        Some(keystore) => {
            let ring = keystore.ring(&vault)?;
            // A crash after sealing and before removing the plain file leaves it behind.
            if legacy_path.exists() {
                std::fs::remove_file(&legacy_path)?;
            }
            ring
        }
        None if legacy_path.exists() => {
            let ring = legacy::load(&legacy_path)?;
            let mut keks: Vec<Kek> = vec![ring.active().clone()];
            keks.extend(
                ring.keys()
                    .filter(|k| k.id() != ring.active().id())
                    .cloned(),
            );
            Keystore::create(&keystore_path, &vault, &keks, None)?;
            std::fs::remove_file(&legacy_path)?;
            tracing::warn!(
                path = %legacy_path.display(),
                "sealed the plain KEK file of an earlier build under the root key and removed it"
            );
            ring
        }
        None if initialized => anyhow::bail!(
            "{} is missing, but the metadata store in {} holds data sealed under its keys: \
             restore the key store (privicore operator backup / serve --restore) instead of \
             starting over",
            keystore_path.display(),
            data_dir.display()
        ),
        None => {
            let kek = Kek::generate("kek-1").expect("a valid id");
            Keystore::create(&keystore_path, &vault, std::slice::from_ref(&kek), None)?;
            tracing::info!("generated the engine key-encryption key");
            KeyRing::new(kek, vec![])
        }
    };

    let engine_key = engine_key(store, &vault, stored_engine_key).await?;
    check_headers(store, &ring).await?;
    let secrets = EngineSecrets::new(
        *vault.derive(label::IDEMPOTENCY),
        *vault.derive(label::UPLOAD),
    )
    .with_audit_key(*vault.derive(label::AUDIT));
    Ok(Opened {
        vault: Arc::new(vault),
        ring,
        engine_key,
        secrets,
    })
}

/// The embedded default: a root key file beside the data. Said loudly at every start.
fn beside(path: &Path, keystore_exists: bool) -> anyhow::Result<Vault> {
    let vault = if path.exists() {
        Vault::from_file(path)?
    } else {
        anyhow::ensure!(
            !keystore_exists,
            "the root key {} is missing, but this data directory's keys are sealed under \
             one: pass it with --root-key-file or PRIVICORE_ROOT_KEY",
            path.display()
        );
        let vault = Vault::generate();
        std::fs::create_dir_all(path.parent().context("root key path has a parent")?)?;
        write_private(path, vault.to_hex().as_bytes())?;
        vault
    };
    tracing::warn!(
        path = %path.display(),
        "THE ROOT KEY IS STORED IN THE DATA DIRECTORY: anyone with a copy of it can open \
         every key. In production pass --root-key-file (kept elsewhere), PRIVICORE_ROOT_KEY \
         or start sealed (--sealed)"
    );
    Ok(vault)
}

/// The engine (CAB) key, opened: created sealed on first start, sealed in place when an
/// earlier build stored it plain.
async fn engine_key(
    store: &dyn MetadataStore,
    vault: &Vault,
    stored: Option<EngineKeyRecord>,
) -> anyhow::Result<EngineKeyRecord> {
    let stored = match stored {
        Some(record) => record,
        None => {
            let fresh = EngineKeyRecord::generate(Timestamp::now());
            let sealed = EngineKeyRecord {
                private_hex: seal_engine_key(vault, &fresh),
                ..fresh.clone()
            };
            let kept = store.ensure_engine_key(&sealed).await?;
            tracing::info!(key_id = %kept.key_id, "generated the engine (CAB) key pair");
            kept
        }
    };
    let text = stored.private_hex.expose_secret();
    if let Some(sealed) = text.strip_prefix(SEALED_ENGINE_KEY) {
        let plain = vault
            .open(label::ENGINE_KEY, &stored.key_id, sealed)
            .context("the engine key in the metadata store does not unwrap with this root key")?;
        let hex = String::from_utf8(plain.to_vec()).context("the engine key is not text")?;
        let record = EngineKeyRecord {
            private_hex: SecretString::from(hex),
            ..stored.clone()
        };
        anyhow::ensure!(record.key_pair().is_some(), "the engine key is unreadable");
        return Ok(record);
    }
    // Plain, from an earlier build: seal it where it is.
    anyhow::ensure!(stored.key_pair().is_some(), "the engine key is unreadable");
    let sealed = seal_engine_key(vault, &stored);
    store
        .replace_engine_private_key(&stored.key_id, sealed.expose_secret())
        .await?;
    tracing::warn!(key_id = %stored.key_id, "sealed the plain engine key of an earlier build");
    Ok(stored)
}

fn seal_engine_key(vault: &Vault, record: &EngineKeyRecord) -> SecretString {
    SecretString::from(format!(
        "{SEALED_ENGINE_KEY}{}",
        vault.seal(
            label::ENGINE_KEY,
            &record.key_id,
            record.private_hex.expose_secret().as_bytes()
        )
    ))
}

/// The oldest stored version must be wrapped by a KEK the ring holds (rotation keeps every
/// other one under a KEK of the ring too).
async fn check_headers(store: &dyn MetadataStore, ring: &KeyRing) -> anyhow::Result<()> {
    if let Some(first) = store.version_headers(None, 1).await?.into_iter().next()
        && let Ok(header) = Header::parse(&first.header)
    {
        anyhow::ensure!(
            ring.contains(&header.kek_id),
            "stored data is wrapped by KEK {}, which the key store does not hold",
            header.kek_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_store_sqlite::SqliteStore;

    fn root() -> Vault {
        Vault::parse(&"42".repeat(32)).unwrap()
    }

    #[tokio::test]
    async fn plain_keys_of_an_earlier_build_are_sealed_on_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let kek_hex = "07".repeat(32);
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        let legacy = dir.path().join("keys/kek.json");
        std::fs::write(
            &legacy,
            format!(r#"{{"active":"kek-1","keys":{{"kek-1":"{kek_hex}"}}}}"#),
        )
        .unwrap();
        let store = SqliteStore::open(&dir.path().join("privicore.db"))
            .await
            .unwrap();
        let plain = store
            .ensure_engine_key(&EngineKeyRecord::generate(Timestamp::now()))
            .await
            .unwrap();

        let opened = open(dir.path(), RootSource::Given(root()), &store)
            .await
            .unwrap();
        assert_eq!(hex::encode(opened.ring.active().key_bytes()), kek_hex);
        assert_eq!(
            opened.engine_key.private_hex.expose_secret(),
            plain.private_hex.expose_secret()
        );
        assert!(!legacy.exists(), "the plain KEK file is removed");
        let keystore = std::fs::read_to_string(Keystore::path_in(dir.path())).unwrap();
        assert!(!keystore.contains(&kek_hex));
        let stored = store.engine_key().await.unwrap().unwrap();
        assert!(
            stored
                .private_hex
                .expose_secret()
                .starts_with(SEALED_ENGINE_KEY)
        );

        // The next start opens the sealed forms to the same keys.
        let again = open(dir.path(), RootSource::Given(root()), &store)
            .await
            .unwrap();
        assert_eq!(
            again.ring.active().key_bytes(),
            opened.ring.active().key_bytes()
        );
        assert_eq!(again.engine_key.public_key, plain.public_key);
        store.close().await;
    }

    #[tokio::test]
    async fn a_store_without_its_key_store_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("privicore.db"))
            .await
            .unwrap();
        open(dir.path(), RootSource::Given(root()), &store)
            .await
            .unwrap();
        std::fs::remove_file(Keystore::path_in(dir.path())).unwrap();
        let error = open(dir.path(), RootSource::Given(root()), &store)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("is missing"), "{error}");
        store.close().await;
    }
}
