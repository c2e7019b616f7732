//! Objects on disk: append-only segment files `<root>/segments/<n>.seg`. Each record is a
//! fixed header followed by one layer-3 object (the `at_rest` format). A batch of writes
//! is appended and made durable with one `fdatasync`, so a device pays one disk flush per
//! batch instead of two per object. A deleted object is erased in place (header marked,
//! bytes zeroed, flushed before the deletion is confirmed); a segment file is unlinked once
//! none of its records is live, and a full segment that is less than half live is
//! compacted: its live records are copied to the active segment, then it is unlinked.
//! Objects of more than one chunk are staged chunk by chunk in a file of their own that is
//! laid out as a segment, then linked into the log whole (`upload`). Reads, scans, copies
//! and erasures go a piece at a time, so no object is ever held in memory whole.

use crate::at_rest::{self, ObjectCipher, ObjectInfo};
use privicore_wire::bus::{Capacity, InventoryItem};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const SEGMENTS: &str = "segments";
/// A new segment is started once the active one is this large.
const SEGMENT_ROLL: u64 = 64 << 20;
/// Segments grow in steps of zeroed bytes, written and flushed with the batch that first
/// needs them. Later batches overwrite blocks that are already allocated, so their
/// `fdatasync` writes the data alone; an append that grows the file also writes the inode
/// and the allocation bitmaps, one synchronous disk write more per batch (a third of a
/// hosted device's flush cost in profiles). A step is this long on average, drawn at
/// random between half and one and a half times it: devices that receive the same objects
/// would otherwise all pay for a step in the same batch, and the write quorum waits only
/// for the fastest.
const PREALLOCATE: u64 = 512 << 10;

fn next_step() -> u64 {
    use rand::Rng;
    rand::thread_rng().gen_range(PREALLOCATE / 2..PREALLOCATE * 3 / 2)
}

#[derive(Debug, Clone)]
struct Entry {
    segment: u32,
    /// Offset of the record header in its segment.
    offset: u64,
    /// Length of the layer-3 object (the record body).
    len: u64,
    digest: [u8; 32],
    chunk_count: u32,
    total_size: u64,
    stored_at: i64,
    /// Where its records are; `None` when the object could not be parsed (reported
    /// corrupt).
    layout: Option<Layout>,
}

struct Segment {
    /// Opened on first use and closed again by `release_handles`, so that an idle device
    /// holds no file descriptor.
    file: Option<Arc<File>>,
    path: PathBuf,
    live: usize,
    /// Bytes of live records (headers included) and of the whole readable segment.
    live_bytes: u64,
    size: u64,
    /// Length of the file: the readable part followed by preallocated zeros.
    allocated: u64,
}

impl Segment {
    /// A segment with no live record counted yet.
    fn new(file: Option<File>, path: PathBuf, size: u64, allocated: u64) -> Self {
        Self {
            file: file.map(Arc::new),
            path,
            live: 0,
            live_bytes: 0,
            size,
            allocated,
        }
    }

    /// The open segment file, opened now if it was closed.
    fn file(&mut self) -> std::io::Result<Arc<File>> {
        if let Some(file) = &self.file {
            return Ok(file.clone());
        }
        let file = Arc::new(File::options().read(true).write(true).open(&self.path)?);
        self.file = Some(file.clone());
        Ok(file)
    }
}

fn record_size(entry: &Entry) -> u64 {
    HEADER_LEN + entry.len
}

/// Where the body of a record to write comes from.
enum Source<'a> {
    Bytes(&'a [u8]),
    /// Copied from another segment file, a piece at a time.
    Copy {
        file: &'a File,
        at: u64,
    },
}

impl Source<'_> {
    fn in_memory(&self) -> usize {
        match self {
            Source::Bytes(b) => b.len(),
            Source::Copy { .. } => 0,
        }
    }
}

struct Inner {
    index: BTreeMap<(String, u32), Entry>,
    segments: BTreeMap<u32, Segment>,
    active: u32,
    active_len: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    Corrupt(Option<u32>),
    Io,
}

/// Where a live record sits on disk (for operators and tests that inspect a device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub segment: PathBuf,
    /// Offset of the layer-3 object bytes in the segment.
    pub offset: u64,
    pub len: u64,
}

pub struct ObjectStore {
    root: PathBuf,
    dmk: [u8; 32],
    inner: Mutex<Inner>,
}

fn segment_name(n: u32) -> String {
    format!("{n:08}.seg")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The segment files under `dir`, in write order.
fn list_segments(dir: &Path) -> std::io::Result<Vec<(u32, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u32>().ok())
        {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Marks a record erased and zeroes its object bytes (not yet flushed).
fn wipe(file: &File, entry: &Entry) -> std::io::Result<()> {
    file.write_all_at(&[ERASED], entry.offset + 4)?;
    zero(file, entry.offset + HEADER_LEN, entry.len)
}

fn format_time(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

impl ObjectStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("object index lock")
    }

    fn start_segment(&self, inner: &mut Inner, n: u32) -> std::io::Result<()> {
        let dir = self.root.join(SEGMENTS);
        let path = dir.join(segment_name(n));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        sync_dir(&dir)?;
        inner
            .segments
            .insert(n, Segment::new(Some(file), path, 0, 0));
        inner.active = n;
        inner.active_len = 0;
        Ok(())
    }

    /// Bytes the object's record takes on disk, if it is held.
    pub fn stored_len(&self, token: &str, version: u32) -> Option<u64> {
        self.lock()
            .index
            .get(&(token.to_owned(), version))
            .map(|e| e.len)
    }

    pub fn digest_of(&self, token: &str, version: u32) -> Option<[u8; 32]> {
        self.lock()
            .index
            .get(&(token.to_owned(), version))
            .map(|e| e.digest)
    }

    /// Seals with layer 3 and writes durably; returns the bytes written.
    pub fn put(&self, info: &ObjectInfo, sealed_chunks: &[Vec<u8>]) -> std::io::Result<u64> {
        self.put_many(&[(info, sealed_chunks)])
            .pop()
            .expect("one result per object")
    }

    /// Seals and appends every object, then flushes once. One result per object, in order.
    pub fn put_many(&self, objects: &[(&ObjectInfo, &[Vec<u8>])]) -> Vec<std::io::Result<u64>> {
        let mut results: Vec<Option<std::io::Result<u64>>> = Vec::with_capacity(objects.len());
        let mut sealed = Vec::new();
        for (info, chunks) in objects {
            if !safe_token(&info.token) {
                results.push(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "unsafe token",
                ))));
            } else if chunks.iter().any(|c| c.len() as u64 > MAX_RECORD - 16) {
                results.push(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "chunk too long",
                ))));
            } else {
                results.push(None);
                let (cipher, _) = ObjectCipher::create(&self.dmk, info);
                let layout = Layout::of_chunks(cipher.header_len, chunks);
                sealed.push((
                    (*info).clone(),
                    at_rest::encode(&self.dmk, info, chunks),
                    layout,
                ));
            }
        }
        let mut written = self.append(&sealed).into_iter();
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| written.next().expect("one result per sealed object")))
            .collect()
    }

    /// Appends already sealed objects to the active segment with one flush.
    fn append(&self, objects: &[(ObjectInfo, Vec<u8>, Layout)]) -> Vec<std::io::Result<u64>> {
        if objects.is_empty() {
            return Vec::new();
        }
        let stored_at = chrono::Utc::now().timestamp();
        let records: Vec<(Header, Source<'_>, Entry)> = objects
            .iter()
            .map(|(info, body, layout)| {
                let len = body.len() as u64;
                let header = Header {
                    state: LIVE,
                    flags: 0,
                    version: info.version,
                    len,
                    stored_at,
                    token: info.token.clone(),
                };
                let entry = Entry {
                    segment: 0,
                    offset: 0,
                    len,
                    digest: info.digest,
                    chunk_count: info.chunk_count,
                    total_size: total_size_of(&info.layer2_header),
                    stored_at,
                    layout: Some(*layout),
                };
                (header, Source::Bytes(body.as_slice()), entry)
            })
            .collect();
        let mut inner = self.lock();
        let placed = match self.write_records(&mut inner, &records) {
            Ok(placed) => placed,
            Err(e) => {
                return objects
                    .iter()
                    .map(|_| Err(std::io::Error::new(e.kind(), e.to_string())))
                    .collect();
            }
        };
        let mut results = Vec::with_capacity(objects.len());
        for ((info, body, _), entry) in objects.iter().zip(placed) {
            self.index_replacing(&mut inner, (info.token.clone(), info.version), entry);
            results.push(Ok(body.len() as u64 + HEADER_LEN));
        }
        results
    }

    /// Points the index at a new record; an earlier record of the same object is erased.
    fn index_replacing(&self, inner: &mut Inner, key: (String, u32), entry: Entry) {
        if let Some(old) = inner.index.insert(key, entry)
            && let Err(e) = self.erase_record(inner, &old, false)
        {
            tracing::warn!(error = %e, "could not erase a replaced object");
        }
    }

    /// Writes records at the end of the active segment (rolling to a new one when full)
    /// and flushes once; returns their index entries. On failure nothing partial is left.
    fn write_records(
        &self,
        inner: &mut Inner,
        records: &[(Header, Source<'_>, Entry)],
    ) -> std::io::Result<Vec<Entry>> {
        if inner.active_len >= SEGMENT_ROLL {
            let next = inner.active + 1;
            self.start_segment(inner, next)?;
        }
        let start = inner.active_len;
        let active = inner.active;
        let mut placed = Vec::with_capacity(records.len());
        let mut end = start;
        for (header, _, entry) in records {
            placed.push(Entry {
                segment: active,
                offset: end,
                ..entry.clone()
            });
            end += HEADER_LEN + header.len;
        }
        let segment = inner.segments.get_mut(&active).expect("active segment");
        let file = segment.file()?;
        let grow_to = (end > segment.allocated).then(|| end + next_step());
        let written = (|| {
            // In-memory records go out in one write; a copied body is streamed between
            // the writes of what precedes and follows it.
            let mut buf = Vec::with_capacity(
                records
                    .iter()
                    .map(|(_, body, _)| HEADER_LEN as usize + body.in_memory())
                    .sum(),
            );
            let mut at = start;
            for ((header, body, _), entry) in records.iter().zip(&placed) {
                buf.extend_from_slice(&header.encode());
                match body {
                    Source::Bytes(bytes) => buf.extend_from_slice(bytes),
                    Source::Copy {
                        file: from,
                        at: body_at,
                    } => {
                        file.write_all_at(&buf, at)?;
                        buf.clear();
                        let dest = entry.offset + HEADER_LEN;
                        copy(from, *body_at, &file, dest, header.len)?;
                        at = dest + header.len;
                    }
                }
            }
            if let Some(to) = grow_to {
                let zeros = (to - end) as usize;
                buf.resize(buf.len() + zeros, 0);
            }
            file.write_all_at(&buf, at)?;
            file.sync_data()
        })();
        if let Err(e) = written {
            // Nothing of the batch may be found on the next open.
            let _ = file.set_len(start);
            segment.allocated = start;
            return Err(e);
        }
        if let Some(to) = grow_to {
            segment.allocated = to;
        }
        segment.live += records.len();
        segment.live_bytes += end - start;
        segment.size = end;
        inner.active_len = end;
        Ok(placed)
    }

    /// Marks a record erased and zeroes its bytes; unlinks its segment when nothing in it
    /// is live any more, compacts it when less than half is. `flush` makes the erasure
    /// durable before returning.
    fn erase_record(&self, inner: &mut Inner, entry: &Entry, flush: bool) -> std::io::Result<()> {
        let active = inner.active;
        let Some(segment) = inner.segments.get_mut(&entry.segment) else {
            return Ok(());
        };
        let file = segment.file()?;
        segment.live = segment.live.saturating_sub(1);
        segment.live_bytes = segment.live_bytes.saturating_sub(record_size(entry));
        // A full active segment takes no more writes (the next one rolls over), so it is
        // treated as closed: a large upload deleted with little or nothing after it then
        // leaves by unlinking or compaction instead of being zero-filled in place.
        let closed = entry.segment != active || segment.size >= SEGMENT_ROLL;
        let unlink = segment.live == 0 && closed;
        let compact = !unlink && closed && segment.live_bytes * 2 < segment.size;
        let path = segment.path.clone();
        if (unlink || compact) && entry.segment == active {
            self.start_segment(inner, active + 1)?;
        }
        if unlink {
            // No zeros first: written to a file that is then unlinked they never reach the
            // disk, and for a large object they would be gigabytes of writes.
            std::fs::remove_file(&path)?;
            inner.segments.remove(&entry.segment);
            if flush {
                sync_dir(&self.root.join(SEGMENTS))?;
            }
            return Ok(());
        }
        file.write_all_at(&[ERASED], entry.offset + 4)?;
        if compact {
            if flush {
                file.sync_data()?;
            }
            // The copy takes the live records elsewhere and the file goes; zeros are
            // written only if it fails (it is tried again at the next erasure).
            match self.compact(inner, entry.segment) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::warn!(error = %e, "could not compact a segment"),
            }
        }
        zero(&file, entry.offset + HEADER_LEN, entry.len)?;
        if flush {
            file.sync_data()?;
        }
        Ok(())
    }

    /// Copies the live records of a closed segment to the active one (flushed), points the
    /// index at the copies, then unlinks the segment. A crash in between leaves both
    /// copies; the later one wins on the next open and the earlier is erased.
    fn compact(&self, inner: &mut Inner, n: u32) -> std::io::Result<()> {
        let Some(source) = inner.segments.get_mut(&n).map(Segment::file).transpose()? else {
            return Ok(());
        };
        let moving: Vec<((String, u32), Entry)> = inner
            .index
            .iter()
            .filter(|(_, e)| e.segment == n)
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        let records: Vec<(Header, Source<'_>, Entry)> = moving
            .iter()
            .map(|((token, version), entry)| {
                let header = Header {
                    state: LIVE,
                    flags: 0,
                    version: *version,
                    len: entry.len,
                    stored_at: entry.stored_at,
                    token: token.clone(),
                };
                let body = Source::Copy {
                    file: &source,
                    at: entry.offset + HEADER_LEN,
                };
                (header, body, entry.clone())
            })
            .collect();
        let placed = self.write_records(inner, &records)?;
        for ((key, _), entry) in moving.into_iter().zip(placed) {
            inner.index.insert(key, entry);
        }
        if let Some(old) = inner.segments.remove(&n) {
            std::fs::remove_file(&old.path)?;
            sync_dir(&self.root.join(SEGMENTS))?;
        }
        Ok(())
    }

    /// Erases the given versions (all when `None`) durably; returns those that existed.
    pub fn delete(&self, token: &str, versions: Option<&[u32]>) -> Vec<u32> {
        if !safe_token(token) {
            return Vec::new();
        }
        let mut inner = self.lock();
        let held: Vec<(u32, Entry)> = inner
            .index
            .range((token.to_owned(), 0)..=(token.to_owned(), u32::MAX))
            .filter(|((_, v), _)| versions.is_none_or(|vs| vs.contains(v)))
            .map(|((_, v), e)| (*v, e.clone()))
            .collect();
        let mut removed = Vec::new();
        for (version, entry) in held {
            // Out of the index first: a compaction the erasure triggers must not copy it.
            let key = (token.to_owned(), version);
            inner.index.remove(&key);
            match self.erase_record(&mut inner, &entry, true) {
                Ok(()) => removed.push(version),
                // Not reported as removed: the engine asks again.
                Err(e) => {
                    tracing::error!(error = %e, "could not erase an object");
                    inner.index.insert(key, entry);
                }
            }
        }
        removed
    }

    /// Closes every segment file; the next access opens what it needs again. A device
    /// calls this once it has been idle for a while.
    pub fn release_handles(&self) {
        for segment in self.lock().segments.values_mut() {
            segment.file = None;
        }
    }

    /// How many segment files are open.
    pub fn open_handles(&self) -> usize {
        self.lock()
            .segments
            .values()
            .filter(|s| s.file.is_some())
            .count()
    }

    pub fn object_count(&self) -> u64 {
        self.lock().index.len() as u64
    }

    pub fn capacity(&self) -> Capacity {
        let used = self.lock().index.values().map(record_size).sum();
        let free = fs4::statvfs(&self.root)
            .map(|s| s.available_space())
            .unwrap_or(0);
        Capacity {
            bytes_used: used,
            bytes_free: free,
        }
    }

    /// Finds the live record of `token`/`version` in a device's data directory by reading
    /// the segment headers only (no keys needed).
    pub fn locate(root: &Path, token: &str, version: u32) -> std::io::Result<Option<Location>> {
        let mut found = None;
        for (_, path) in list_segments(&root.join(SEGMENTS))? {
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            walk(&file, len, |offset, header| {
                if header.state == LIVE && header.token == token && header.version == version {
                    found = Some(Location {
                        segment: path.clone(),
                        offset: offset + HEADER_LEN,
                        len: header.len,
                    });
                }
                Ok(())
            })?;
        }
        Ok(found)
    }
}

mod body;
mod open;
mod read;
mod record;
mod upload;

use body::{Body, Layout, MAX_RECORD};
use record::*;
pub use upload::{Upload, UploadError};

#[cfg(test)]
mod tests;
