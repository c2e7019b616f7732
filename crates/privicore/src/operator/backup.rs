//! `privicore operator backup <file>`: one file with a consistent snapshot of the metadata
//! store (SQLite online backup, taken in one step, so one read transaction), the key store
//! and the hosted devices' sealed keys and objects. The root key is never in it: a backup
//! opens only where the root key is given (or unsealed) again. `serve --restore <file>`
//! unpacks it into an empty data directory.
//!
//! Format: the line `PRIVICORE-BACKUP 1`, a JSON manifest line (`files`: path and size),
//! then the bytes of each file in manifest order.

use super::running::Context;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

const MAGIC: &str = "PRIVICORE-BACKUP 1";
const DATABASE: &str = "privicore.db";
const KEYSTORE: &str = "keys/keystore.json";

#[derive(Serialize, Deserialize)]
struct Manifest {
    created_at: String,
    files: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    path: String,
    size: u64,
}

/// Device files worth keeping: sealed keys and segments (hosted devices only).
fn device_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            device_files(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// Writes the backup to `target` (through a temporary file beside it).
pub async fn write(ctx: &Context, target: &Path) -> anyhow::Result<String> {
    let Some(database) = ctx.database.clone() else {
        anyhow::bail!(
            "the metadata store is PostgreSQL: back the database up with its own tools \
             (pg_dump), and the data directory's keys/ and devices/ beside it"
        );
    };
    let (data_dir, target) = (ctx.data_dir.clone(), target.to_owned());
    let keystore = ctx.keystore()?.to_text()?;
    tokio::task::spawn_blocking(move || write_blocking(&database, &data_dir, &keystore, &target))
        .await?
}

fn write_blocking(
    database: &Path,
    data_dir: &Path,
    keystore: &str,
    target: &Path,
) -> anyhow::Result<String> {
    let scratch = tempfile::tempdir_in(target.parent().unwrap_or(Path::new(".")))
        .context("a scratch directory beside the backup file")?;
    let snapshot = scratch.path().join(DATABASE);
    {
        use rusqlite::OpenFlags;
        let source = rusqlite::Connection::open_with_flags(
            database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let mut copy = rusqlite::Connection::open(&snapshot)?;
        // All pages in one step: one read transaction, so one consistent state.
        rusqlite::backup::Backup::new(&source, &mut copy)?.run_to_completion(
            i32::MAX,
            std::time::Duration::ZERO,
            None,
        )?;
    }
    // Devices after the database: every replica the snapshot names as confirmed is
    // already on disk.
    let mut device_paths = Vec::new();
    device_files(data_dir, &data_dir.join("devices"), &mut device_paths)?;
    let mut sources: Vec<(String, PathBuf)> = vec![(DATABASE.into(), snapshot)];
    sources.extend(
        device_paths
            .into_iter()
            .map(|p| (p.clone(), data_dir.join(p))),
    );
    // Sizes are read as the files are copied, so a segment that grows meanwhile is cut
    // at the size recorded (a torn tail is cut when the device opens it).
    let mut files = vec![Entry {
        path: KEYSTORE.into(),
        size: keystore.len() as u64,
    }];
    for (path, source) in &sources {
        files.push(Entry {
            path: path.clone(),
            size: std::fs::metadata(source)?.len(),
        });
    }
    let manifest = Manifest {
        created_at: privicore_domain::Timestamp::now().rfc3339(),
        files,
    };
    let partial = scratch.path().join("backup.partial");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&partial)?);
    writeln!(out, "{MAGIC}")?;
    writeln!(out, "{}", serde_json::to_string(&manifest)?)?;
    out.write_all(keystore.as_bytes())?;
    for ((_, source), entry) in sources.iter().zip(&manifest.files[1..]) {
        let copied = std::io::copy(&mut std::fs::File::open(source)?.take(entry.size), &mut out)?;
        anyhow::ensure!(copied == entry.size, "{} shrank while copied", entry.path);
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&partial, target).with_context(|| format!("writing {}", target.display()))?;
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    Ok(format!(
        "backup written to {}: {} files, {bytes} bytes",
        target.display(),
        manifest.files.len()
    ))
}

/// A manifest path, relative and plain (no `..`, no root).
fn safe(path: &str) -> anyhow::Result<PathBuf> {
    let p = PathBuf::from(path);
    anyhow::ensure!(
        !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))),
        "the backup names an unsafe path: {path}"
    );
    Ok(p)
}

/// Unpacks `file` into `data_dir`, which must be empty or absent.
pub fn restore(file: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let empty = std::fs::read_dir(data_dir).map_or(true, |mut d| d.next().is_none());
    anyhow::ensure!(
        empty,
        "--restore needs an empty data directory; {} is not",
        data_dir.display()
    );
    let mut input = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let mut line = String::new();
    input.read_line(&mut line)?;
    anyhow::ensure!(
        line.trim_end() == MAGIC,
        "{} is not a privicore backup",
        file.display()
    );
    line.clear();
    input.read_line(&mut line)?;
    let manifest: Manifest = serde_json::from_str(&line).context("the backup manifest")?;
    crate::server::create_private_dir(data_dir)?;
    for entry in &manifest.files {
        let path = data_dir.join(safe(&entry.path)?);
        if let Some(parent) = path.parent() {
            crate::server::create_private_dir(parent)?;
        }
        let mut out = std::fs::OpenOptions::new();
        out.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut out, 0o600);
        let mut out = out.open(&path)?;
        let copied = std::io::copy(&mut (&mut input).take(entry.size), &mut out)?;
        anyhow::ensure!(
            copied == entry.size,
            "the backup is cut short at {}",
            entry.path
        );
        out.sync_all()?;
    }
    anyhow::ensure!(
        data_dir.join(KEYSTORE).exists() && data_dir.join(DATABASE).exists(),
        "the backup lacks the key store or the database"
    );
    tracing::info!(
        from = %file.display(),
        created_at = %manifest.created_at,
        "restored a backup; the root key is still needed to open it"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_relative_paths_are_restored() {
        assert!(super::safe("devices/a/dmk.sealed").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(super::safe(bad).is_err(), "{bad}");
        }
    }
}
