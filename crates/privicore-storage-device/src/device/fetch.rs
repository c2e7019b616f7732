//! `storage.fetch` (docs/api/devices-and-storage.md §6.6). Small objects are answered with
//! the batch. Larger ones are answered a chunk at a time: the session sends each
//! `storage.fetch_chunk` before the next chunk is read, so a window of large chunks is
//! never in memory at once.

use super::{Handled, SMALL_READS, StorageDevice};
use crate::objects::ReadError;
use privicore_wire::bus::{self, Envelope, kind};

/// Most chunks one fetch is answered with.
const MAX_WINDOW: u32 = 64;

/// A fetch being answered chunk by chunk.
pub struct Reading {
    fetch: bus::Fetch,
    correlation: String,
    next: u32,
    end: u32,
    done: bool,
}

impl Reading {
    fn new(fetch: bus::Fetch, correlation: &str) -> Self {
        let end = fetch
            .from_chunk
            .saturating_add(fetch.count.clamp(1, MAX_WINDOW));
        Self {
            next: fetch.from_chunk,
            end,
            fetch,
            correlation: correlation.to_owned(),
            done: false,
        }
    }
}

impl StorageDevice {
    pub(super) fn fetch(&self, fetch: bus::Fetch, message_id: &str, out: &mut Handled) {
        let small = self
            .store
            .stored_len(&fetch.token, fetch.version)
            .is_none_or(|len| len <= SMALL_READS);
        let mut reading = Reading::new(fetch, message_id);
        if small {
            while let Some(reply) = self.next_reply(&mut reading) {
                out.replies.push(reply);
            }
        } else {
            out.reads.push(reading);
        }
    }

    /// The next answer of a fetch (a chunk, or the failure that ends it); `None` once it
    /// is answered.
    pub fn next_reply(&self, reading: &mut Reading) -> Option<Envelope> {
        if reading.done || reading.next >= reading.end {
            return None;
        }
        let f = &reading.fetch;
        let cid = Some(reading.correlation.as_str());
        let failed = |index: Option<u32>, reason: &str| {
            self.envelope(
                kind::FETCH_FAILED,
                cid,
                bus::FetchFailed {
                    fetch_id: f.fetch_id.clone(),
                    token: f.token.clone(),
                    version: f.version,
                    chunk_index: index,
                    reason: reason.into(),
                },
            )
        };
        let reply = match self.store.read(&f.token, f.version, reading.next, 1) {
            Ok((total, chunks)) => {
                let Some(data) = chunks.into_iter().next() else {
                    // Past the last chunk: the fetch is answered.
                    reading.done = true;
                    return None;
                };
                let env = self.envelope(
                    kind::FETCH_CHUNK,
                    cid,
                    bus::FetchChunk {
                        fetch_id: f.fetch_id.clone(),
                        token: f.token.clone(),
                        version: f.version,
                        chunk_index: reading.next,
                        chunk_count: total,
                        data,
                    },
                );
                reading.next += 1;
                return Some(env);
            }
            Err(ReadError::NotFound) => failed(None, "not_found"),
            Err(ReadError::Corrupt(index)) => failed(index, "corrupt"),
            Err(ReadError::Io) => failed(None, "io_error"),
        };
        reading.done = true;
        Some(reply)
    }
}
