//! Local administration of a running engine (`privicore operator …`) over a Unix domain
//! socket, `<data_dir>/run/operator.sock`: mode 0600 inside the 0700 data directory, and a
//! peer whose uid is neither the data directory's owner nor root is turned away. Unsealing
//! passes a passphrase or key shares, so the channel never leaves the machine and needs no
//! credential of its own: being the engine's user on its host is the credential.

pub mod backup;
pub mod cli;
pub mod init;
pub mod rotate;
pub mod running;
pub mod sealed;
mod socket;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub use socket::{Handler, listen};

/// What an operator asks, one JSON line per connection.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// A passphrase, or key shares (hex) added to those given before.
    Unseal {
        #[serde(default)]
        passphrase: Option<String>,
        #[serde(default)]
        shares: Vec<String>,
    },
    RotateKek,
    Backup {
        path: PathBuf,
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status => f.write_str("Status"),
            Self::Unseal { shares, .. } => write!(f, "Unseal({} shares)", shares.len()),
            Self::RotateKek => f.write_str("RotateKek"),
            Self::Backup { path } => write!(f, "Backup({})", path.display()),
        }
    }
}

/// The answer: an error, or the engine's key status after the request.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Reply {
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            error: Some(message.into()),
            ..Self::default()
        }
    }

    pub fn status(status: Status) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub sealed: bool,
    /// While sealed with Shamir shares: how many were given, and how many are needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares_given: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_kek: Option<String>,
    #[serde(default)]
    pub keks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<rotate::Progress>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sealed {
            write!(f, "sealed")?;
            if let (Some(given), Some(threshold)) = (self.shares_given, self.threshold) {
                write!(f, " ({given} of {threshold} shares given)")?;
            }
            return Ok(());
        }
        write!(
            f,
            "unsealed; active KEK {}; KEKs {}",
            self.active_kek.as_deref().unwrap_or("-"),
            self.keks.join(", ")
        )?;
        if let Some(r) = &self.rotation {
            write!(f, "\nrotation to {}: {r}", r.to)?;
        }
        Ok(())
    }
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("run").join("operator.sock")
}

/// Sends one request to the engine serving `data_dir`.
pub async fn call(data_dir: &Path, request: &Request) -> anyhow::Result<Reply> {
    let path = socket_path(data_dir);
    let stream = tokio::net::UnixStream::connect(&path)
        .await
        .with_context(|| {
            format!(
                "connecting to {} (is `privicore serve` running on this data directory?)",
                path.display()
            )
        })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    let reply: Reply = serde_json::from_str(&answer).context("the engine's answer")?;
    if let Some(error) = &reply.error {
        anyhow::bail!("{error}");
    }
    Ok(reply)
}
