//! Opening a store: indexing the segments on disk, cutting off a torn tail, importing
//! objects written by earlier builds.

use super::*;

impl ObjectStore {
    /// Opens the store and indexes the records already on disk. A torn record at the end
    /// of the last segment (a write that was never confirmed) is cut off.
    pub fn open(root: &Path, dmk: [u8; 32]) -> std::io::Result<Self> {
        let dir = root.join(SEGMENTS);
        std::fs::create_dir_all(&dir)?;
        let mut inner = Inner {
            index: BTreeMap::new(),
            segments: BTreeMap::new(),
            active: 0,
            active_len: 0,
        };
        let listed = list_segments(&dir)?;
        let last = listed.last().map(|(n, _)| *n);
        let mut superseded = Vec::new();
        for (n, path) in listed {
            let bytes = std::fs::read(&path)?;
            let mut records = Vec::new();
            let end = walk(&bytes, |offset, header, body| {
                // An erased record has no object left to decode; it is complete all the same.
                let decoded = (header.state == LIVE).then(|| {
                    at_rest::decode(&dmk, body).ok().map(|d| {
                        let size = total_size_of(&d.info.layer2_header);
                        (d.info.digest, d.info.chunk_count, size)
                    })
                });
                records.push((offset, header.clone(), decoded));
            });
            let is_last = Some(n) == last;
            // In the last segment, live records at the end that do not authenticate belong
            // to a batch whose flush never finished (in a preallocated file a torn record
            // keeps its full length, zeros where its bytes never landed): they are cut off.
            let mut cut = end;
            while let Some((offset, header, Some(_))) = records.last().filter(|_| is_last) {
                let start = (offset + HEADER_LEN) as usize;
                let body = &bytes[start..start + header.len as usize];
                if at_rest::decode(&dmk, body).is_ok_and(|d| d.verify().is_ok()) {
                    break;
                }
                cut = *offset;
                records.pop();
            }
            let torn = cut < end || bytes[end as usize..].iter().any(|b| *b != 0);
            let allocated = if torn && is_last {
                tracing::warn!(segment = %path.display(), at = cut, "cutting off a torn record");
                let file = File::options().write(true).open(&path)?;
                file.set_len(cut)?;
                file.sync_all()?;
                cut
            } else {
                if torn {
                    tracing::error!(segment = %path.display(), at = end, "unreadable bytes in a segment");
                }
                bytes.len() as u64
            };
            for (offset, header, decoded) in records {
                let Some(decoded) = decoded else { continue };
                // An undecodable object still counts; it is reported corrupt later.
                let (digest, chunk_count, total_size) = decoded.unwrap_or(([0; 32], 0, 0));
                let entry = Entry {
                    segment: n,
                    offset,
                    len: header.len,
                    digest,
                    chunk_count,
                    total_size,
                    stored_at: header.stored_at,
                };
                if let Some(old) = inner.index.insert((header.token, header.version), entry) {
                    superseded.push(old);
                }
            }
            inner
                .segments
                .insert(n, Segment::new(None, path, cut, allocated));
            inner.active = n;
            inner.active_len = cut;
        }
        for entry in inner.index.values() {
            if let Some(segment) = inner.segments.get_mut(&entry.segment) {
                segment.live += 1;
                segment.live_bytes += record_size(entry);
            }
        }
        for old in superseded {
            if let Some(segment) = inner.segments.get_mut(&old.segment) {
                wipe(&*segment.file()?, &old)?;
            }
        }
        let active = inner.active;
        let empty: Vec<u32> = inner
            .segments
            .iter()
            .filter(|(n, s)| s.live == 0 && **n != active)
            .map(|(n, _)| *n)
            .collect();
        for n in empty {
            if let Some(segment) = inner.segments.remove(&n) {
                std::fs::remove_file(&segment.path)?;
            }
        }
        let store = Self {
            root: root.to_path_buf(),
            dmk,
            inner: Mutex::new(inner),
        };
        if store.lock().segments.is_empty() {
            let mut inner = store.lock();
            store.start_segment(&mut inner, 1)?;
        }
        store.import_legacy_files()?;
        Ok(store)
    }

    /// Objects written by earlier builds as one file each (`objects/<token>/<v>.pvd`) move
    /// into the segment log once, then their files are removed.
    fn import_legacy_files(&self) -> std::io::Result<()> {
        let legacy = self.root.join("objects");
        if !legacy.is_dir() {
            return Ok(());
        }
        for token_dir in std::fs::read_dir(&legacy)? {
            let token_dir = token_dir?.path();
            for file in std::fs::read_dir(&token_dir)? {
                let path = file?.path();
                let bytes = std::fs::read(&path)?;
                if let Ok(d) = at_rest::decode(&self.dmk, &bytes)
                    && safe_token(&d.info.token)
                {
                    self.append(&[(d.info.clone(), bytes.clone())])
                        .into_iter()
                        .collect::<std::io::Result<Vec<u64>>>()?;
                }
                std::fs::remove_file(&path)?;
            }
            std::fs::remove_dir(&token_dir)?;
        }
        std::fs::remove_dir(&legacy)?;
        sync_dir(&self.root)
    }
}
