//! `privicore operator …` on the command line.

use super::{Request, init};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Action {
    /// Prepare a new data directory whose root key is never stored: derived from a
    /// passphrase (PRIVICORE_PASSPHRASE or standard input) or split into Shamir shares,
    /// printed once. `serve` then starts sealed.
    Init {
        /// Split the root key into this many shares...
        #[arg(long, requires = "threshold")]
        shares: Option<u8>,
        /// ...of which this many unseal.
        #[arg(long, requires = "shares")]
        threshold: Option<u8>,
        /// Derive the root key from a passphrase instead.
        #[arg(long, conflicts_with = "shares")]
        passphrase: bool,
    },
    /// Unseal a sealed engine with the passphrase or one or more shares.
    Unseal {
        /// A share as printed by `init` (repeat for several).
        #[arg(long = "share")]
        shares: Vec<String>,
        /// Read the passphrase (PRIVICORE_PASSPHRASE or standard input).
        #[arg(long)]
        passphrase: bool,
    },
    /// Seal state, KEKs and the progress of a rotation.
    Status,
    /// Make a new KEK active and rewrap every data key in the background.
    RotateKek {
        /// Print progress until the rotation has finished.
        #[arg(long)]
        wait: bool,
    },
    /// Write a consistent backup (database, key store, hosted devices) without the root key.
    Backup { file: PathBuf },
}

/// PRIVICORE_PASSPHRASE, or one line of standard input.
pub(crate) fn read_passphrase() -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Ok(p) = std::env::var("PRIVICORE_PASSPHRASE") {
        return Ok(zeroize::Zeroizing::new(p));
    }
    eprintln!("passphrase:");
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line)?;
    Ok(zeroize::Zeroizing::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// Runs one `privicore operator` command.
pub async fn run(data_dir: PathBuf, action: Action) -> anyhow::Result<()> {
    let wait = matches!(action, Action::RotateKek { wait: true });
    let request = match action {
        Action::Init {
            shares,
            threshold,
            passphrase,
        } => {
            let scheme = match (shares, threshold, passphrase) {
                (Some(shares), Some(threshold), false) => {
                    init::Scheme::Shamir { shares, threshold }
                }
                (None, None, true) => init::Scheme::Passphrase(read_passphrase()?),
                _ => anyhow::bail!("give --shares N --threshold K, or --passphrase"),
            };
            let printed = init::init(&data_dir, scheme)?;
            println!(
                "initialized {}; `privicore serve` starts sealed",
                data_dir.display()
            );
            if !printed.is_empty() {
                println!("root key shares (shown once; store each apart from the others):");
                for (i, share) in printed.iter().enumerate() {
                    println!("share-{}: {}", i + 1, share.as_str());
                }
            }
            return Ok(());
        }
        Action::Unseal { shares, passphrase } => Request::Unseal {
            passphrase: passphrase
                .then(read_passphrase)
                .transpose()?
                .map(|p| p.to_string()),
            shares,
        },
        Action::Status => Request::Status,
        Action::RotateKek { .. } => Request::RotateKek,
        Action::Backup { file } => Request::Backup {
            path: std::path::absolute(file)?,
        },
    };
    let reply = super::call(&data_dir, &request).await?;
    if let Some(message) = &reply.message {
        println!("{message}");
    }
    if let Some(status) = &reply.status {
        println!("{status}");
    }
    if wait {
        loop {
            let status = super::call(&data_dir, &Request::Status).await?.status;
            let Some(progress) = status.and_then(|s| s.rotation) else {
                break;
            };
            println!("{progress}");
            match progress.state {
                super::rotate::State::Running => {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await
                }
                super::rotate::State::Done => break,
                super::rotate::State::Failed => anyhow::bail!("the KEK rotation failed"),
            }
        }
    }
    Ok(())
}
