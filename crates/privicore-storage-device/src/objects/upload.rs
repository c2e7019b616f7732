//! Objects of several chunks, received a chunk at a time (up to the 10 GiB of an upload):
//! each chunk is sealed at rest and written to its place in a staging file as it arrives,
//! and the layer-2 digest is hashed in index order on the way. The staging file is laid out
//! as a segment holding this one record, so completing the object is one flush and a rename
//! into the log; no chunk stays in memory after it is written.

use super::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub(super) const STAGING: &str = "staging";
/// Every time this much has been written to a staging file, its writeback is started
/// without waiting, after waiting for the writeback started the time before. A transfer
/// then holds about two windows of dirty page cache (which a memory cgroup counts against
/// the device), and the flush that completes it waits for that much, not gigabytes, while
/// sealing and writing go on beside the disk.
const WRITE_BEHIND: u64 = 64 << 20;

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

/// Elsewhere the final flush does it all.
#[cfg(not(target_os = "linux"))]
fn write_behind(_: &File) -> std::io::Result<()> {
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The chunks do not make the announced object: another digest, or chunk lengths no
    /// layer-2 object has (every chunk but the last has the same length).
    #[error("the chunks do not make the announced object")]
    Mismatch,
}

/// An object being received into `<root>/staging/`. Dropped before it is finished, its
/// staging file is removed.
pub struct Upload {
    file: File,
    path: PathBuf,
    cipher: ObjectCipher,
    /// File offset of record 0 (after the segment record header and the file header).
    records_at: u64,
    /// Distance between records, known from the first chunk that is not the last.
    stride: Option<u64>,
    /// The last chunk, held until the stride says where it goes (it came first).
    parked_last: Option<Vec<u8>>,
    /// Length of the last record (without its prefix) once written.
    last_len: Option<u64>,
    /// Chunks `0..hashed` are written and hashed, in index order.
    hashed: u32,
    hasher: Sha256,
    /// Chunks past `hashed` that are written already (they came out of order).
    ahead: BTreeSet<u32>,
    /// Bytes written since writeback was last started.
    unflushed: u64,
    linked: bool,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.linked {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Upload {
    fn count(&self) -> u32 {
        self.cipher.info.chunk_count
    }

    /// How many chunks the object has.
    pub fn chunk_count(&self) -> u32 {
        self.count()
    }

    /// Whether every chunk is written and hashed.
    pub fn complete(&self) -> bool {
        self.hashed == self.count()
    }

    fn has(&self, index: u32) -> bool {
        index < self.hashed
            || self.ahead.contains(&index)
            || (index + 1 == self.count() && self.parked_last.is_some())
    }

    fn offset(&self, index: u32) -> Result<u64, UploadError> {
        let stride = if index == 0 {
            0
        } else {
            self.stride.ok_or(UploadError::Mismatch)?
        };
        stride
            .checked_mul(u64::from(index))
            .and_then(|o| o.checked_add(self.records_at))
            .filter(|o| *o <= MAX_BODY)
            .ok_or(UploadError::Mismatch)
    }

    /// Writes chunk `index` (a repeated one is ignored); true once the object is complete.
    pub fn write(&mut self, index: u32, chunk: &[u8]) -> Result<bool, UploadError> {
        if index >= self.count() {
            return Err(UploadError::Mismatch);
        }
        if self.has(index) {
            return Ok(self.complete());
        }
        let record_len = chunk.len() as u64 + 16;
        if record_len > MAX_RECORD {
            return Err(UploadError::Mismatch);
        }
        let last = index + 1 == self.count();
        if !last {
            match self.stride {
                None => {
                    self.stride = Some(4 + record_len);
                    if let Some(parked) = self.parked_last.take() {
                        self.place(self.count() - 1, &parked)?;
                    }
                }
                Some(stride) if stride != 4 + record_len => return Err(UploadError::Mismatch),
                Some(_) => {}
            }
        } else if self.stride.is_none() && index > 0 {
            self.parked_last = Some(chunk.to_vec());
            return Ok(false);
        }
        self.place(index, chunk)?;
        Ok(self.complete())
    }

    /// Seals and writes a chunk at its place, then hashes whatever is now in order.
    fn place(&mut self, index: u32, chunk: &[u8]) -> Result<(), UploadError> {
        let at = self.offset(index)?;
        let record = self.cipher.seal(index, chunk);
        if index + 1 == self.count() {
            self.last_len = Some(record.len() as u64);
        }
        let mut framed = Vec::with_capacity(4 + record.len());
        framed.extend_from_slice(&(record.len() as u32).to_be_bytes());
        framed.extend_from_slice(&record);
        self.file.write_all_at(&framed, at)?;
        self.unflushed += framed.len() as u64;
        if self.unflushed >= WRITE_BEHIND {
            write_behind(&self.file)?;
            self.unflushed = 0;
        }
        if index != self.hashed {
            self.ahead.insert(index);
            return Ok(());
        }
        self.hasher.update(chunk);
        self.hashed += 1;
        while self.ahead.remove(&self.hashed) {
            let next = self.read_back(self.hashed)?;
            self.hasher.update(&next);
            self.hashed += 1;
        }
        Ok(())
    }

    /// A chunk written earlier, read back from the staging file for the in-order hash.
    fn read_back(&self, index: u32) -> Result<Vec<u8>, UploadError> {
        let len = if index + 1 == self.count() {
            self.last_len.ok_or(UploadError::Mismatch)?
        } else {
            self.stride.ok_or(UploadError::Mismatch)? - 4
        };
        let mut record = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut record, self.offset(index)? + 4)?;
        self.cipher.open(index, &record).map_err(|_| {
            UploadError::Io(std::io::Error::other("a staged chunk does not read back"))
        })
    }
}

impl ObjectStore {
    /// Starts receiving an object of several chunks. `info.digest` is the digest the
    /// sender announced; `finish_upload` checks the chunks against it.
    pub fn begin_upload(&self, info: &ObjectInfo) -> Result<Upload, UploadError> {
        if !safe_token(&info.token) {
            return Err(UploadError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "unsafe token",
            )));
        }
        if info.chunk_count == 0 {
            return Err(UploadError::Mismatch);
        }
        let dir = self.root.join(STAGING);
        std::fs::create_dir_all(&dir)?;
        let nonce: u64 = rand::random();
        let path = dir.join(format!("{}-{}-{nonce:016x}.stg", info.token, info.version));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let (cipher, header) = ObjectCipher::create(&self.dmk, info);
        let mut upload = Upload {
            file,
            path,
            records_at: HEADER_LEN + header.len() as u64,
            cipher,
            stride: None,
            parked_last: None,
            last_len: None,
            hashed: 0,
            hasher: Sha256::new(),
            ahead: BTreeSet::new(),
            unflushed: 0,
            linked: false,
        };
        upload.file.write_all_at(&header, HEADER_LEN)?;
        if info.chunk_count == 1 {
            upload.stride = Some(0);
        }
        Ok(upload)
    }

    /// Checks a complete upload against its digest, flushes it and links it into the log as
    /// the new active segment; returns the bytes stored.
    pub fn finish_upload(&self, mut upload: Upload) -> Result<u64, UploadError> {
        let digest: [u8; 32] = std::mem::take(&mut upload.hasher).finalize().into();
        let info = upload.cipher.info.clone();
        if !upload.complete() || digest != info.digest {
            return Err(UploadError::Mismatch);
        }
        let last_len = upload.last_len.ok_or(UploadError::Mismatch)?;
        let end = upload.offset(info.chunk_count - 1)? + 4 + last_len;
        let len = end - HEADER_LEN;
        let stored_at = chrono::Utc::now().timestamp();
        let header = Header {
            state: LIVE,
            flags: LINKED,
            version: info.version,
            len,
            stored_at,
            token: info.token.clone(),
        };
        upload.file.write_all_at(&header.encode(), 0)?;
        upload.file.set_len(end)?;
        upload.file.sync_data()?;

        let mut inner = self.lock();
        let n = inner
            .segments
            .keys()
            .next_back()
            .map_or(1, |last| last + 1)
            .max(inner.active + 1);
        let dir = self.root.join(SEGMENTS);
        let path = dir.join(segment_name(n));
        std::fs::rename(&upload.path, &path)?;
        upload.linked = true;
        if let Err(e) = sync_dir(&dir) {
            // Not in the log after all: a file the index does not know must not stay.
            let _ = std::fs::remove_file(&path);
            return Err(e.into());
        }
        // The segment it follows is closed now: if nothing in it is live it goes, else its
        // preallocated zeros do.
        let previous = inner.active;
        if let Some(closed) = inner.segments.get_mut(&previous) {
            if closed.live == 0 {
                let empty = closed.path.clone();
                inner.segments.remove(&previous);
                std::fs::remove_file(&empty)?;
            } else if closed.allocated > closed.size {
                closed.file()?.set_len(closed.size)?;
                closed.allocated = closed.size;
            }
        }
        let file = upload.file.try_clone()?;
        let mut segment = Segment::new(Some(file), path, end, end);
        segment.live = 1;
        segment.live_bytes = end;
        inner.segments.insert(n, segment);
        inner.active = n;
        inner.active_len = end;
        let stride = upload.stride.filter(|s| *s > 0).unwrap_or(4 + last_len);
        let entry = Entry {
            segment: n,
            offset: 0,
            len,
            digest,
            chunk_count: info.chunk_count,
            total_size: total_size_of(&info.layer2_header),
            stored_at,
            layout: Some(Layout {
                records_at: upload.cipher.header_len as u64,
                stride: Some(stride),
            }),
        };
        self.index_replacing(&mut inner, (info.token, info.version), entry);
        Ok(end)
    }
}
