//! The plain KEK file (`<data_dir>/keys/kek.json`) of earlier builds, read once to be
//! sealed under the root key and removed.

use anyhow::Context;
use privicore_domain::envelope::{Kek, KeyRing};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
struct KekFile {
    active: String,
    keys: BTreeMap<String, String>,
}

/// Reads the plain KEK file of an earlier build, to seal it.
pub fn load(path: &Path) -> anyhow::Result<KeyRing> {
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
