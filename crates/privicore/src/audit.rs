//! `privicore audit verify | tail`: the audit log of governance decisions (docs/audit.md),
//! read straight from the data directory's database, read-only, whether an engine is
//! serving it or not. `verify` needs the root key (to derive the chain's MAC key), from
//! the same places `serve` takes it; `tail` only shows records and needs no key.

use crate::keys::keystore::{Keystore, Unseal};
use crate::keys::root::{Vault, label};
use anyhow::Context;
use clap::{Args, Subcommand};
use privicore_domain::audit::{AuditKey, ChainBreak, ChainSummary, ChainVerifier};
use privicore_domain::ports::AuditLog;
use privicore_store_postgres::{PostgresStore, is_postgres_url};
use privicore_store_sqlite::AuditReader;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// Records read per page while verifying.
const PAGE: usize = 1000;
/// How often `tail --follow` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Exit codes: the chain is intact, it is broken, or it could not be checked.
pub const INTACT: i32 = 0;
pub const BROKEN: i32 = 1;
pub const TROUBLE: i32 = 2;

#[derive(Subcommand)]
pub enum Action {
    /// Check every record and the sealed head; exit 0 when intact, 1 with the first bad
    /// seq when not, 2 when the check could not run.
    Verify {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Print the last records, oldest first; with --follow, keep printing new ones.
    Tail {
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: usize,
        /// Keep printing records as they are appended, until interrupted.
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

/// Where the root key comes from: `PRIVICORE_ROOT_KEY`, `--root-key-file`, the passphrase
/// or shares of a sealed data directory, or the embedded default `<data_dir>/keys/root.key`.
#[derive(Args, Default)]
pub struct KeyArgs {
    /// File holding the root key (as for `serve`).
    #[arg(long, env = "PRIVICORE_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
    /// For a data directory sealed with a passphrase: read it (PRIVICORE_PASSPHRASE or
    /// standard input).
    #[arg(long)]
    pub passphrase: bool,
    /// For a data directory sealed with Shamir shares: a share (repeat up to the threshold).
    #[arg(long = "share")]
    pub shares: Vec<String>,
}

/// The root key of `data_dir`, checked against its key store.
fn root_key(data_dir: &Path, args: &KeyArgs) -> anyhow::Result<Vault> {
    let keystore = Keystore::load(&Keystore::path_in(data_dir))?;
    let unseal = keystore.as_ref().and_then(Keystore::unseal);
    let default = crate::keys::default_root_path(data_dir);
    let vault = if let Ok(text) = std::env::var("PRIVICORE_ROOT_KEY") {
        Vault::parse(&Zeroizing::new(text)).context("PRIVICORE_ROOT_KEY")?
    } else if let Some(path) = &args.root_key_file {
        Vault::from_file(path)?
    } else if args.passphrase {
        let Some(Unseal::Passphrase { salt }) = unseal else {
            anyhow::bail!("{} is not sealed with a passphrase", data_dir.display());
        };
        let passphrase = crate::operator::cli::read_passphrase()?;
        crate::operator::init::from_passphrase(&passphrase, salt)?
    } else if !args.shares.is_empty() {
        let Some(Unseal::Shamir { threshold, .. }) = unseal else {
            anyhow::bail!("{} is not sealed with shares", data_dir.display());
        };
        let shares: Vec<_> = args
            .shares
            .iter()
            .map(|s| Zeroizing::new(s.trim().to_ascii_lowercase()))
            .collect();
        crate::operator::init::from_shares(&shares, *threshold).with_context(|| {
            format!("{threshold} different valid shares are needed to rebuild the root key")
        })?
    } else if default.exists() {
        Vault::from_file(&default)?
    } else {
        anyhow::bail!(
            "no root key for {}: verifying needs the key the engine runs with; give \
             --root-key-file or PRIVICORE_ROOT_KEY (or, for a sealed data directory, \
             --passphrase or --share)",
            data_dir.display()
        );
    };
    if let Some(keystore) = &keystore {
        anyhow::ensure!(
            keystore.opens_with(&vault),
            "this root key does not open {} (another root key was used for this data directory)",
            Keystore::path_in(data_dir).display()
        );
    }
    Ok(vault)
}

fn reader(data_dir: &Path) -> anyhow::Result<Option<AuditReader>> {
    let path = data_dir.join("privicore.db");
    AuditReader::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// Verifies the whole chain in one snapshot of the database.
pub fn verify(data_dir: &Path, key: &AuditKey) -> anyhow::Result<Result<ChainSummary, ChainBreak>> {
    let Some(reader) = reader(data_dir)? else {
        return Ok(ChainVerifier::new(key).finish(None));
    };
    let checked = reader.snapshot(|r| {
        let mut verifier = ChainVerifier::new(key);
        let mut after = 0;
        loop {
            let page = r.records(after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                if let Err(broken) = verifier.push(record) {
                    return Ok(Err(broken));
                }
            }
        }
        Ok(verifier.finish(r.head()?.as_ref()))
    })?;
    Ok(checked)
}

/// Verifies the whole chain in one snapshot of a PostgreSQL database.
async fn verify_postgres(
    store: &PostgresStore,
    key: &AuditKey,
) -> anyhow::Result<Result<ChainSummary, ChainBreak>> {
    let mut verifier = ChainVerifier::new(key);
    let mut broken = None;
    let head = store
        .audit_snapshot(PAGE, |page| {
            for record in page {
                if let Err(b) = verifier.push(record) {
                    broken = Some(b);
                    return false;
                }
            }
            true
        })
        .await?;
    Ok(match (broken, head) {
        (Some(broken), _) => Err(broken),
        (None, Some(head)) => verifier.finish(head.as_ref()),
        (None, None) => ChainVerifier::new(key).finish(None),
    })
}

/// `privicore audit` on a PostgreSQL database.
async fn run_postgres(data_dir: PathBuf, url: &str, action: Action) -> anyhow::Result<i32> {
    let store = PostgresStore::connect_read_only(url)
        .await
        .context("connecting to the PostgreSQL database")?;
    match action {
        Action::Verify { key } => {
            let vault = root_key(&data_dir, &key)?;
            let key = AuditKey::new(*vault.derive(label::AUDIT));
            report(verify_postgres(&store, &key).await?)
        }
        Action::Tail { lines, follow } => {
            let shown = store.audit_tail(lines).await?;
            for record in &shown {
                println!("{}", record.line());
            }
            let mut last = store.audit_tail(1).await?.pop().map_or(0, |r| r.seq);
            if !follow {
                return Ok(INTACT);
            }
            let stop = tokio::signal::ctrl_c();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return Ok(INTACT),
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                for record in store.audit_records(last, PAGE).await? {
                    println!("{}", record.line());
                    last = record.seq;
                }
            }
        }
    }
}

/// Prints a verification's result; the exit code.
fn report(checked: Result<ChainSummary, ChainBreak>) -> anyhow::Result<i32> {
    match checked {
        Ok(summary) => {
            println!("{summary}");
            Ok(INTACT)
        }
        Err(broken) => {
            println!("audit log BROKEN at seq {}: {broken}", broken.seq);
            if broken.seq > 1 {
                println!("records 1..={} verified", broken.seq - 1);
            }
            Ok(BROKEN)
        }
    }
}

/// Runs one `privicore audit` command; the process's exit code.
pub async fn run(
    data_dir: PathBuf,
    database_url: Option<String>,
    action: Action,
) -> anyhow::Result<i32> {
    match database_url.as_deref().map(str::trim) {
        Some(url) if is_postgres_url(url) => return run_postgres(data_dir, url, action).await,
        None | Some("") | Some("sqlite://") | Some("sqlite:") => {}
        Some(_) => anyhow::bail!("--database-url: expected postgres://… or sqlite://"),
    }
    match action {
        Action::Verify { key } => {
            let vault = root_key(&data_dir, &key)?;
            let key = AuditKey::new(*vault.derive(label::AUDIT));
            let dir = data_dir.clone();
            let checked = tokio::task::spawn_blocking(move || verify(&dir, &key)).await??;
            report(checked)
        }
        Action::Tail { lines, follow } => {
            let Some(reader) = reader(&data_dir)? else {
                println!("no audit log in this database (it predates the audit log)");
                return Ok(INTACT);
            };
            // Followed from the last record, whether shown or not (`-n 0`).
            let (shown, newest) =
                reader.snapshot(|r| Ok((r.tail(lines)?, r.tail(1)?.pop().map_or(0, |r| r.seq))))?;
            for record in shown {
                println!("{}", record.line());
            }
            let mut last = newest;
            if !follow {
                return Ok(INTACT);
            }
            let stop = tokio::signal::ctrl_c();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return Ok(INTACT),
                    _ = tokio::time::sleep(FOLLOW_EVERY) => {}
                }
                for record in reader.records(last, PAGE)? {
                    println!("{}", record.line());
                    last = record.seq;
                }
            }
        }
    }
}
