//! The CLI's local profile file: credentials and keys, written with mode 0600.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalProfile {
    pub api: String,
    pub ws: String,
    pub username: String,
    pub password: String,
    pub profile_id: String,
    pub private_key: String,
    pub public_key: String,
    /// The AES-256 key files are encrypted with before they leave this machine.
    pub data_key: String,
}

impl std::fmt::Debug for LocalProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProfile")
            .field("api", &self.api)
            .field("username", &self.username)
            .field("profile_id", &self.profile_id)
            .finish_non_exhaustive()
    }
}

/// `$PRIVICORE_CLI_CONFIG`, else `~/.config/privicore/cli.json`.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PRIVICORE_CLI_CONFIG") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".config").join("privicore").join("cli.json")
}

/// No local profile file where one was looked for (the CLI is not signed in).
#[derive(Debug, thiserror::Error)]
#[error("no local profile at {}", .0.display())]
pub struct NoProfile(pub PathBuf);

impl LocalProfile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NoProfile(path.to_path_buf()).into());
            }
            other => other.with_context(|| format!("reading {}", path.display()))?,
        };
        serde_json::from_str(&text).context("parsing the CLI profile file")
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The data key, wiped from memory when dropped.
    pub fn data_key(&self) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&self.data_key, &mut *key)
            .context("the data key in the profile file is damaged")?;
        Ok(key)
    }
}
