//! Reading objects back: chunks for fetches, and the inventory (optionally verified). Each
//! chunk is read and opened on its own, so an object of any size costs one chunk of memory.

use super::*;

impl ObjectStore {
    /// The index entry of a held object and its open segment file.
    fn held(&self, token: &str, version: u32) -> Result<(Entry, Arc<File>), ReadError> {
        if !safe_token(token) {
            return Err(ReadError::NotFound);
        }
        let mut inner = self.lock();
        let entry = inner
            .index
            .get(&(token.to_owned(), version))
            .cloned()
            .ok_or(ReadError::NotFound)?;
        let file = inner
            .segments
            .get_mut(&entry.segment)
            .ok_or(ReadError::NotFound)?
            .file()
            .map_err(|_| ReadError::Io)?;
        Ok((entry, file))
    }

    /// Layer-2 chunks `from..from+count`, each authenticated at rest first. Callers that
    /// must stay within a bound of memory ask for one chunk at a time.
    pub fn read(
        &self,
        token: &str,
        version: u32,
        from: u32,
        count: u32,
    ) -> Result<(u32, Vec<Vec<u8>>), ReadError> {
        let (entry, file) = self.held(token, version)?;
        let layout = entry.layout.ok_or(ReadError::Corrupt(None))?;
        let body = Body {
            file: &file,
            at: entry.offset + HEADER_LEN,
            len: entry.len,
        };
        let cipher = body.cipher(&self.dmk)?;
        let total = cipher.info.chunk_count;
        let end = from.saturating_add(count).min(total);
        let mut out = Vec::with_capacity(end.saturating_sub(from) as usize);
        for i in from..end {
            out.push(body.chunk(&cipher, &layout, i)?);
        }
        Ok((total, out))
    }

    /// How many chunks a held object has.
    pub fn chunk_count(&self, token: &str, version: u32) -> Option<u32> {
        self.lock()
            .index
            .get(&(token.to_owned(), version))
            .map(|e| e.chunk_count)
    }

    /// A page of the inventory; the cursor is the position in token order.
    pub fn inventory(
        &self,
        cursor: Option<&str>,
        page_size: usize,
        verify: bool,
    ) -> (Vec<InventoryItem>, Option<String>) {
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        type Listed = Vec<((String, u32), Entry)>;
        let (entries, total): (Listed, usize) = {
            let inner = self.lock();
            let page = inner
                .index
                .iter()
                .skip(start)
                .take(page_size.max(1))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            (page, inner.index.len())
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
                    stored_at: format_time(e.stored_at),
                    status: if healthy && e.chunk_count > 0 && e.layout.is_some() {
                        "ok"
                    } else {
                        "corrupt"
                    }
                    .into(),
                }
            })
            .collect();
        let next = start + items.len();
        (items, (next < total).then(|| next.to_string()))
    }

    fn verify_one(&self, token: &str, version: u32) -> bool {
        self.held(token, version).is_ok_and(|(entry, file)| {
            Body {
                file: &file,
                at: entry.offset + HEADER_LEN,
                len: entry.len,
            }
            .verify(&self.dmk)
            .is_ok()
        })
    }
}
