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
        // Transfers that were being staged died with the process that received them.
        let staging = root.join(upload::STAGING);
        if staging.is_dir() {
            std::fs::remove_dir_all(&staging)?;
        }
        let listed = list_segments(&dir)?;
        let last = listed.last().map(|(n, _)| *n);
        let mut superseded = Vec::new();
        for (n, path) in listed {
            let file = File::options().read(true).write(true).open(&path)?;
            let file_len = file.metadata()?.len();
            let mut records = Vec::new();
            let end = walk(&file, file_len, |offset, header| {
                records.push((offset, header.clone()));
                Ok(())
            })?;
            let body = |offset: u64, header: &Header| Body {
                file: &file,
                at: offset + HEADER_LEN,
                len: header.len,
            };
            let is_last = Some(n) == last;
            // In the last segment, live records at the end that do not authenticate belong
            // to a batch whose flush never finished (in a preallocated file a torn record
            // keeps its full length, zeros where its bytes never landed): they are cut off.
            // A linked record was flushed whole before it became part of the log.
            let mut cut = end;
            while let Some((offset, header)) = records.last().filter(|_| is_last) {
                if header.state != LIVE
                    || header.flags & LINKED != 0
                    || body(*offset, header).verify(&dmk).is_ok()
                {
                    break;
                }
                cut = *offset;
                records.pop();
            }
            let torn = cut < end || !all_zero(&file, end, file_len - end)?;
            let allocated = if torn && is_last {
                tracing::warn!(segment = %path.display(), at = cut, "cutting off a torn record");
                file.set_len(cut)?;
                file.sync_all()?;
                cut
            } else {
                if torn {
                    tracing::error!(segment = %path.display(), at = end, "unreadable bytes in a segment");
                }
                file_len
            };
            for (offset, header) in records {
                if header.state != LIVE {
                    continue;
                }
                let body = body(offset, &header);
                // An undecodable object still counts; it is reported corrupt later.
                let parsed = body
                    .cipher(&dmk)
                    .and_then(|c| body.layout(&c).map(|layout| (c, layout)));
                let (digest, chunk_count, total_size, layout) = match parsed {
                    Ok((c, layout)) => (
                        c.info.digest,
                        c.info.chunk_count,
                        total_size_of(&c.info.layer2_header),
                        Some(layout),
                    ),
                    Err(_) => ([0; 32], 0, 0, None),
                };
                let entry = Entry {
                    segment: n,
                    offset,
                    len: header.len,
                    digest,
                    chunk_count,
                    total_size,
                    stored_at: header.stored_at,
                    layout,
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
    /// into the segment log once, then their files are removed. Those builds held every
    /// object in memory whole (inline exchanges only), so reading one whole is no new bound.
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
                    let layout = Layout::of_lengths(d.header_len(), d.chunk_lens());
                    self.append(&[(d.info.clone(), bytes.clone(), layout)])
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
