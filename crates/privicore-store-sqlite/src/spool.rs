//! Spool files: the sealed chunks of an upload (`PutSpoolChunk`) go to one file per upload
//! under `<database>.spool/` instead of into the `spool` table. In the table every byte
//! went through the WAL (fsynced per chunk) and again into the database file; a file takes
//! it once, and usually only in the page cache until the version is flushed.
//!
//! While an upload runs, where each chunk sits is kept in memory (`Pending`), and no row is
//! written per chunk. The version row's write (`PutTokenVersion`) first flushes the file
//! and then writes one `spool` row per chunk naming the file and the chunk's place, in the
//! same transaction: a committed version's chunks survive power loss like its row. From
//! then on reads go through the rows, and dropping the rows (drop, settled drop, purge)
//! removes the file once that commit is done.
//!
//! Crash recovery: an upload cut off by a stop never wrote rows, so its file is named by
//! none; `recover` removes such files at open (the engine hands the reservation back), and
//! rows whose file is gone are dropped as if purged.

use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::ports::StoreError;
use rusqlite::{Connection, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Every time this much has been written to a spool file, its writeback is started (after
/// waiting for the one started before), so the flush before the version row waits for
/// about one window, not the whole upload, while receiving goes on beside the disk.
const WRITE_BEHIND: u64 = 64 << 20;

/// The upload a pending file belongs to: token and version.
type Key = (String, u32);

/// A chunk's place in its file: offset and length.
type Place = (u64, u64);

/// An upload's file while no row names it yet.
pub(crate) struct Pending {
    name: String,
    file: File,
    end: u64,
    chunks: BTreeMap<u32, Place>,
    unflushed: u64,
}

/// What the version row's write needs of a flushed upload.
pub(crate) struct Flushed {
    token: String,
    version: u32,
    name: String,
    chunks: Vec<(u32, Place)>,
}

pub(crate) struct SpoolFiles {
    dir: PathBuf,
    pending: Mutex<HashMap<Key, Arc<Mutex<Pending>>>>,
    /// Some row may name a file. Set (on the writer thread) before such rows are written,
    /// cleared by the purge when none is left: until then every spool drop returns the
    /// names of files it emptied, which costs a little on every late device answer.
    files: AtomicBool,
}

/// What a transaction's spool drops collected: the files whose rows went.
pub(crate) struct Dropped {
    pub(crate) names: Vec<String>,
    /// Whether rows naming files may exist (else drops need not look).
    pub(crate) files: bool,
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("spool file: {e}"))
}

impl SpoolFiles {
    /// The spool directory beside the database file `db` (created if needed).
    pub(crate) fn beside(db: &Path) -> Result<Self, StoreError> {
        let mut dir = db.as_os_str().to_owned();
        dir.push(".spool");
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(Self {
            dir,
            pending: Mutex::default(),
            files: AtomicBool::new(false),
        })
    }

    /// A collector for one run of a transaction's effects.
    pub(crate) fn drops(&self) -> Dropped {
        Dropped {
            names: Vec::new(),
            files: self.files.load(Ordering::SeqCst),
        }
    }

    /// Before rows naming a file are written (on the writer thread).
    pub(crate) fn note_files(&self) {
        self.files.store(true, Ordering::SeqCst);
    }

    /// After a purge on the writer thread: whether any row still names a file.
    pub(crate) fn recount(&self, conn: &Connection) -> Result<(), StoreError> {
        let any = crate::db::count(
            conn,
            "SELECT EXISTS (SELECT 1 FROM spool WHERE file IS NOT NULL)",
            [],
        )? > 0;
        self.files.store(any, Ordering::SeqCst);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Mutex<Pending>>>> {
        self.pending.lock().expect("spool files lock")
    }

    fn pending(&self, token: &str, version: u32) -> Option<Arc<Mutex<Pending>>> {
        let map = self.lock();
        if map.is_empty() {
            return None;
        }
        map.get(&(token.to_owned(), version)).cloned()
    }

    /// Whether an upload of this version is being spooled (cheap: no upload, no lookup).
    pub(crate) fn is_pending(&self, token: &str, version: u32) -> bool {
        self.pending(token, version).is_some()
    }

    /// The file of an upload, created with its first chunk. Called before the write goes
    /// off the async threads, so a drop committed later always finds it.
    pub(crate) fn file_for(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Arc<Mutex<Pending>>, StoreError> {
        let mut map = self.lock();
        if let Some(pending) = map.get(&(token.to_owned(), version)) {
            return Ok(pending.clone());
        }
        let name = format!("{}.chunks", uuid::Uuid::new_v4().simple());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.dir.join(&name))
            .map_err(io)?;
        let pending = Arc::new(Mutex::new(Pending {
            name,
            file,
            end: 0,
            chunks: BTreeMap::new(),
            unflushed: 0,
        }));
        map.insert((token.to_owned(), version), pending.clone());
        Ok(pending)
    }

    /// Writes chunk `index`: in place when it replaces one of the same length (a staged
    /// chunk sealed for good), else at the end.
    pub(crate) fn write(
        pending: &Mutex<Pending>,
        index: u32,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        let mut p = pending.lock().expect("spool file lock");
        let len = sealed.len() as u64;
        let at = match p.chunks.get(&index) {
            Some(&(at, old)) if old == len => at,
            _ => {
                let at = p.end;
                p.end += len;
                at
            }
        };
        p.file.write_all_at(sealed, at).map_err(io)?;
        p.chunks.insert(index, (at, len));
        p.unflushed += len;
        if p.unflushed >= WRITE_BEHIND {
            p.unflushed = 0;
            write_behind(&p.file).map_err(io)?;
        }
        Ok(())
    }

    /// Chunk `index` of an upload still pending: `None` when there is no such upload,
    /// `Some(None)` when it lacks the chunk.
    pub(crate) fn pending_chunk(
        &self,
        token: &str,
        version: u32,
        index: u32,
    ) -> Option<Result<Option<Vec<u8>>, StoreError>> {
        let pending = self.pending(token, version)?;
        let p = pending.lock().expect("spool file lock");
        Some(match p.chunks.get(&index) {
            Some(&place) => read_from(&p.file, place).map(Some),
            None => Ok(None),
        })
    }

    /// Every chunk of an upload still pending, in index order.
    pub(crate) fn pending_all(
        &self,
        token: &str,
        version: u32,
    ) -> Option<Result<Vec<Vec<u8>>, StoreError>> {
        let pending = self.pending(token, version)?;
        let p = pending.lock().expect("spool file lock");
        Some(
            p.chunks
                .values()
                .map(|&place| read_from(&p.file, place))
                .collect(),
        )
    }

    /// Flushes a pending upload's file before its version row is written (blocking).
    pub(crate) fn flush(&self, token: &str, version: u32) -> Option<Result<Flushed, StoreError>> {
        let pending = self.pending(token, version)?;
        let p = pending.lock().expect("spool file lock");
        Some(p.file.sync_data().map_err(io).map(|()| Flushed {
            token: token.to_owned(),
            version,
            name: p.name.clone(),
            chunks: p.chunks.iter().map(|(i, place)| (*i, *place)).collect(),
        }))
    }

    /// Reads a chunk of a file named by a row.
    pub(crate) fn read(&self, name: &str, place: Place) -> Result<Vec<u8>, StoreError> {
        let file = File::open(self.dir.join(name)).map_err(io)?;
        read_from(&file, place)
    }

    /// After the commit that wrote `flushed`'s rows: reads go through the rows now.
    pub(crate) fn committed(&self, flushed: &[Flushed]) {
        let mut map = self.lock();
        for f in flushed {
            let key = (f.token.clone(), f.version);
            let same = map
                .get(&key)
                .is_some_and(|p| p.lock().expect("spool file lock").name == f.name);
            if same {
                map.remove(&key);
            }
        }
    }

    /// After the commit of a drop: pending uploads of `dropped` versions and the files
    /// whose rows went (`names`) are removed.
    pub(crate) fn dropped(&self, dropped: &[Key], names: Vec<String>) {
        let mut names: HashSet<String> = names.into_iter().collect();
        if !dropped.is_empty() {
            let mut map = self.lock();
            for key in dropped {
                if let Some(p) = map.remove(key) {
                    names.insert(p.lock().expect("spool file lock").name.clone());
                }
            }
        }
        if names.is_empty() {
            return;
        }
        // Freeing a large file's blocks takes a while: not on the writer thread.
        let dir = self.dir.clone();
        let _ = std::thread::Builder::new()
            .name("spool-remove".into())
            .spawn(move || {
                for name in names {
                    if let Err(error) = std::fs::remove_file(dir.join(&name)) {
                        tracing::warn!(%name, %error, "could not remove a spool file");
                    }
                }
            });
    }

    /// At open: removes files no row names (uploads cut off by a stop, removals a stop
    /// interrupted) and drops rows whose file is gone.
    pub(crate) fn recover(&self, conn: &Connection) -> Result<(), StoreError> {
        let named: HashSet<String> = crate::db::all(
            conn,
            "SELECT DISTINCT file FROM spool WHERE file IS NOT NULL",
            [],
            |r| r.get::<_, String>(0).map_err(crate::db::unavailable),
        )?
        .into_iter()
        .collect();
        let mut present = HashSet::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if named.contains(&name) {
                present.insert(name);
            } else {
                tracing::info!(%name, "removing a spool file no version names");
                std::fs::remove_file(entry.path()).map_err(io)?;
            }
        }
        for name in named.difference(&present) {
            tracing::warn!(%name, "a spool file is missing; its spool copy is dropped");
            crate::db::exec(conn, "DELETE FROM spool WHERE file = ?", [name])?;
        }
        self.files.store(!present.is_empty(), Ordering::SeqCst);
        Ok(())
    }
}

impl crate::SqliteStore {
    /// Writes the upload chunks among `effects` to their spool files, off the async
    /// threads. The file is found (or created) first, so a drop committed after this call
    /// started always sees it.
    pub(crate) async fn spool_chunks(&self, effects: &[Effect]) -> Result<(), StoreError> {
        for effect in effects.iter().filter_map(crate::data_effect) {
            if let DataEffect::PutSpoolChunk {
                token,
                version,
                index,
                sealed,
            } = effect
            {
                let pending = self.spool.file_for(token, *version)?;
                let (index, sealed) = (*index, sealed.clone());
                tokio::task::spawn_blocking(move || SpoolFiles::write(&pending, index, &sealed))
                    .await
                    .map_err(|e| StoreError::Unavailable(e.to_string()))??;
            }
        }
        Ok(())
    }

    /// Flushes the spool file of an upload whose version row is about to be written.
    pub(crate) async fn flush_spool(
        &self,
        token: &str,
        version: u32,
    ) -> Result<Option<Flushed>, StoreError> {
        if !self.spool.is_pending(token, version) {
            return Ok(None);
        }
        let spool = self.spool.clone();
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || spool.flush(&token, version).transpose())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

/// Writes the rows that name a flushed upload's chunks (in the version row's transaction).
pub(crate) fn insert_rows(conn: &Connection, flushed: &Flushed) -> Result<(), StoreError> {
    for (index, (at, len)) in &flushed.chunks {
        crate::db::exec(
            conn,
            concat!(
                "INSERT OR REPLACE INTO spool (token_seq, version, chunk_index, sealed, spooled_at, file, file_at, file_len) VALUES (",
                token_seq!(),
                ", ?, ?, x'', unixepoch(), ?, ?, ?)"
            ),
            params![
                flushed.token,
                i64::from(flushed.version),
                i64::from(*index),
                flushed.name,
                *at as i64,
                *len as i64
            ],
        )?;
    }
    Ok(())
}

/// A `DELETE FROM spool … RETURNING file`: the names of files that lost rows go to
/// `names`; returns how many rows went.
pub(crate) fn delete_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    names: &mut Vec<String>,
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(crate::db::unavailable)?;
    let mut rows = statement.query(params).map_err(crate::db::unavailable)?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(crate::db::unavailable)? {
        if let Some(name) = row
            .get::<_, Option<String>>(0)
            .map_err(crate::db::unavailable)?
            && names.last() != Some(&name)
        {
            names.push(name);
        }
        n += 1;
    }
    Ok(n)
}

fn read_from(file: &File, (at, len): Place) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0; len as usize];
    file.read_exact_at(&mut buf, at).map_err(io)?;
    Ok(buf)
}

#[cfg(target_os = "linux")]
fn write_behind(file: &File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    for flags in [
        libc::SYNC_FILE_RANGE_WAIT_BEFORE,
        libc::SYNC_FILE_RANGE_WRITE,
    ] {
        // SAFETY: a plain syscall on an open descriptor; offset 0, length 0 means the
        // whole file.
        if unsafe { libc::sync_file_range(fd, 0, 0, flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Elsewhere the flush before the version row does it all.
#[cfg(not(target_os = "linux"))]
fn write_behind(_: &File) -> std::io::Result<()> {
    Ok(())
}
