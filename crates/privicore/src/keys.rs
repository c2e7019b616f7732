//! The engine KEK (layer 2). Embedded default: generated on first start into
//! `<data_dir>/keys/kek.json` (mode 0600), outside the metadata database, so the database
//! alone never opens a data key.

use anyhow::Context;
use privicore_domain::envelope::{Kek, KeyRing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Serialize, Deserialize)]
struct KekFile {
    active: String,
    keys: BTreeMap<String, String>,
}

pub fn load_or_create(path: &Path) -> anyhow::Result<KeyRing> {
    if !path.exists() {
        let kek = Kek::generate("kek-1").expect("a valid id");
        let file = KekFile {
            active: kek.id().to_owned(),
            keys: BTreeMap::from([(kek.id().to_owned(), hex::encode(kek.key_bytes()))]),
        };
        let dir = path.parent().expect("kek path has a parent");
        std::fs::create_dir_all(dir)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        let mut f = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.write_all(serde_json::to_string_pretty(&file)?.as_bytes())?;
        f.sync_all()?;
        tracing::info!(path = %path.display(), "generated the engine key-encryption key");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: KekFile = serde_json::from_str(&text).context("parsing the KEK file")?;
    let mut keys = Vec::new();
    for (id, hex_key) in &file.keys {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut raw)
            .with_context(|| format!("KEK {id} is not 64 hex characters"))?;
        keys.push(Kek::new(id, raw).with_context(|| format!("invalid KEK id {id}"))?);
    }
    let position = keys
        .iter()
        .position(|k| k.id() == file.active)
        .context("the active KEK is not in the file")?;
    let active = keys.remove(position);
    Ok(KeyRing::new(active, keys))
}
