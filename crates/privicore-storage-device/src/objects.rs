//! Objects on disk: `<root>/objects/<token>/<version>.pvd`, written to a temporary name,
//! fsynced and renamed, so a reader sees a whole object or none.

use crate::at_rest::{self, AtRestError, ObjectInfo};
use privicore_wire::bus::{Capacity, InventoryItem};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone)]
struct Entry {
    digest: [u8; 32],
    chunk_count: u32,
    total_size: u64,
    bytes: u64,
    stored_at: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    Corrupt(Option<u32>),
    Io,
}

pub struct ObjectStore {
    root: PathBuf,
    dmk: [u8; 32],
    index: Mutex<BTreeMap<(String, u32), Entry>>,
}

/// Only engine-issued token shapes become file names (no path tricks).
pub fn safe_token(token: &str) -> bool {
    token.len() == 40
        && token.starts_with("dtk-")
        && token[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Total payload size, read from the layer-2 header core (offset 15 + T).
fn total_size_of(layer2_header: &[u8]) -> u64 {
    let t = *layer2_header.get(6).unwrap_or(&0) as usize;
    layer2_header
        .get(15 + t..23 + t)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or_default()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl ObjectStore {
    /// Opens the store and indexes the objects already on disk (headers only).
    pub fn open(root: &Path, dmk: [u8; 32]) -> std::io::Result<Self> {
        let objects = root.join("objects");
        std::fs::create_dir_all(&objects)?;
        let mut index = BTreeMap::new();
        for token_dir in std::fs::read_dir(&objects)? {
            let token_dir = token_dir?;
            let Some(token) = token_dir.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !safe_token(&token) {
                continue;
            }
            for file in std::fs::read_dir(token_dir.path())? {
                let file = file?;
                let name = file.file_name();
                let Some(version) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".pvd"))
                    .and_then(|v| v.parse::<u32>().ok())
                else {
                    continue;
                };
                let bytes = std::fs::read(file.path())?;
                let stored_at = file
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|t| {
                        chrono::DateTime::<chrono::Utc>::from(t)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                    })
                    .unwrap_or_else(|_| now());
                // An unreadable header still counts as an object, reported corrupt later.
                let (digest, chunk_count, total_size) = match at_rest::decode(&dmk, &bytes) {
                    Ok(d) => (
                        d.info.digest,
                        d.info.chunk_count,
                        total_size_of(&d.info.layer2_header),
                    ),
                    Err(_) => ([0; 32], 0, 0),
                };
                index.insert(
                    (token.clone(), version),
                    Entry {
                        digest,
                        chunk_count,
                        total_size,
                        bytes: bytes.len() as u64,
                        stored_at,
                    },
                );
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            dmk,
            index: Mutex::new(index),
        })
    }

    fn path(&self, token: &str, version: u32) -> PathBuf {
        self.root
            .join("objects")
            .join(token)
            .join(format!("{version}.pvd"))
    }

    pub fn digest_of(&self, token: &str, version: u32) -> Option<[u8; 32]> {
        self.index
            .lock()
            .expect("index lock")
            .get(&(token.to_owned(), version))
            .map(|e| e.digest)
    }

    /// Seals with layer 3 and writes durably; returns the bytes written.
    pub fn put(&self, info: &ObjectInfo, sealed_chunks: &[Vec<u8>]) -> std::io::Result<u64> {
        if !safe_token(&info.token) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "unsafe token",
            ));
        }
        let file = at_rest::encode(&self.dmk, info, sealed_chunks);
        let path = self.path(&info.token, info.version);
        let dir = path.parent().expect("object paths have a parent");
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.{}.tmp", info.version, rand::random::<u64>()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&file)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()?;
        let entry = Entry {
            digest: info.digest,
            chunk_count: info.chunk_count,
            total_size: total_size_of(&info.layer2_header),
            bytes: file.len() as u64,
            stored_at: now(),
        };
        self.index
            .lock()
            .expect("index lock")
            .insert((info.token.clone(), info.version), entry);
        Ok(file.len() as u64)
    }

    /// Layer-2 chunks `from..from+count`, each authenticated at rest first.
    pub fn read(
        &self,
        token: &str,
        version: u32,
        from: u32,
        count: u32,
    ) -> Result<(u32, Vec<Vec<u8>>), ReadError> {
        if !safe_token(token) || self.digest_of(token, version).is_none() {
            return Err(ReadError::NotFound);
        }
        let bytes = match std::fs::read(self.path(token, version)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::NotFound),
            Err(_) => return Err(ReadError::Io),
        };
        let decoded = at_rest::decode(&self.dmk, &bytes).map_err(|_| ReadError::Corrupt(None))?;
        let total = decoded.info.chunk_count;
        let end = from.saturating_add(count).min(total);
        let mut out = Vec::new();
        for i in from..end {
            match decoded.chunk(i) {
                Ok(c) => out.push(c),
                Err(AtRestError::NoSuchChunk) => return Err(ReadError::NotFound),
                Err(_) => return Err(ReadError::Corrupt(Some(i))),
            }
        }
        Ok((total, out))
    }

    /// Removes the given versions (all when `None`); returns those that existed.
    pub fn delete(&self, token: &str, versions: Option<&[u32]>) -> Vec<u32> {
        if !safe_token(token) {
            return Vec::new();
        }
        let mut index = self.index.lock().expect("index lock");
        let held: Vec<u32> = index
            .range((token.to_owned(), 0)..=(token.to_owned(), u32::MAX))
            .map(|((_, v), _)| *v)
            .filter(|v| versions.is_none_or(|vs| vs.contains(v)))
            .collect();
        for v in &held {
            let _ = std::fs::remove_file(self.path(token, *v));
            index.remove(&(token.to_owned(), *v));
        }
        held
    }

    /// A page of the inventory; the cursor is the position in token order.
    pub fn inventory(
        &self,
        cursor: Option<&str>,
        page_size: usize,
        verify: bool,
    ) -> (Vec<InventoryItem>, Option<String>) {
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let entries: Vec<((String, u32), Entry)> = {
            let index = self.index.lock().expect("index lock");
            index
                .iter()
                .skip(start)
                .take(page_size.max(1))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()
        };
        let items: Vec<InventoryItem> = entries
            .iter()
            .map(|((token, version), e)| {
                let healthy = !verify || self.verify_one(token, *version);
                InventoryItem {
                    token: token.clone(),
                    version: *version,
                    chunk_count: e.chunk_count,
                    total_size: e.total_size,
                    sha256: hex::encode(e.digest),
                    stored_at: e.stored_at.clone(),
                    status: if healthy && e.chunk_count > 0 {
                        "ok"
                    } else {
                        "corrupt"
                    }
                    .into(),
                }
            })
            .collect();
        let next = start + items.len();
        let more = next < self.index.lock().expect("index lock").len();
        (items, more.then(|| next.to_string()))
    }

    fn verify_one(&self, token: &str, version: u32) -> bool {
        std::fs::read(self.path(token, version))
            .ok()
            .and_then(|bytes| {
                at_rest::decode(&self.dmk, &bytes)
                    .ok()
                    .map(|d| d.verify().is_ok())
            })
            .unwrap_or(false)
    }

    pub fn object_count(&self) -> u64 {
        self.index.lock().expect("index lock").len() as u64
    }

    pub fn capacity(&self) -> Capacity {
        let used = self
            .index
            .lock()
            .expect("index lock")
            .values()
            .map(|e| e.bytes)
            .sum();
        let free = fs4::statvfs(&self.root)
            .map(|s| s.available_space())
            .unwrap_or(0);
        Capacity {
            bytes_used: used,
            bytes_free: free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    const TOKEN: &str = "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5";

    fn object(version: u32, chunks: &[Vec<u8>]) -> ObjectInfo {
        let mut h = Sha256::new();
        chunks.iter().for_each(|c| h.update(c));
        ObjectInfo {
            token: TOKEN.into(),
            version,
            chunk_count: chunks.len() as u32,
            digest: h.finalize().into(),
            layer2_header: vec![0; 30],
        }
    }

    #[test]
    fn put_read_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = vec![vec![1u8; 20], vec![2u8; 20], vec![3u8; 5]];
        let store = ObjectStore::open(dir.path(), [1; 32]).unwrap();
        store.put(&object(1, &chunks), &chunks).unwrap();
        store.put(&object(2, &chunks[..1]), &chunks[..1]).unwrap();
        assert_eq!(
            store.read(TOKEN, 1, 1, 8).unwrap(),
            (3, chunks[1..].to_vec())
        );
        assert_eq!(store.read(TOKEN, 3, 0, 8), Err(ReadError::NotFound));
        assert_eq!(
            store.read("../../etc/passwd", 1, 0, 8),
            Err(ReadError::NotFound)
        );

        let reopened = ObjectStore::open(dir.path(), [1; 32]).unwrap();
        assert_eq!(reopened.object_count(), 2);
        let (items, cursor) = reopened.inventory(None, 1, true);
        assert_eq!((items.len(), cursor.as_deref()), (1, Some("1")));
        assert_eq!(items[0].status, "ok");
        let (items, cursor) = reopened.inventory(cursor.as_deref(), 1, false);
        assert_eq!((items.len(), cursor), (1, None));

        assert_eq!(reopened.delete(TOKEN, Some(&[1])), vec![1]);
        assert_eq!(reopened.delete(TOKEN, None), vec![2]);
        assert_eq!(reopened.object_count(), 0);
    }

    #[test]
    fn a_damaged_file_reads_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let chunks = vec![vec![1u8; 20]];
        let store = ObjectStore::open(dir.path(), [1; 32]).unwrap();
        store.put(&object(1, &chunks), &chunks).unwrap();
        let path = dir.path().join("objects").join(TOKEN).join("1.pvd");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(store.read(TOKEN, 1, 0, 1), Err(ReadError::Corrupt(Some(0))));
        assert_eq!(store.inventory(None, 10, true).0[0].status, "corrupt");
    }
}
