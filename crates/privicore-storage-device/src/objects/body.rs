//! Reading one layer-3 object in place, a record at a time: an object of any size is
//! opened, read and verified without holding more than one chunk.

use super::ReadError;
use crate::at_rest::{HeaderError, MAX_FILE_HEADER, ObjectCipher, RECORD_OVERHEAD};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The longest record read back. Layer-2 chunks travel in bus messages of at most 2 MiB;
/// a longer length prefix is damage, not data, and must not size an allocation.
pub(super) const MAX_RECORD: u64 = 16 << 20;

/// Where the records of an object body are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Offset of record 0 from the start of the body (the file header's length).
    pub(super) records_at: u64,
    /// Distance between records when every record but the last has the same length, as
    /// layer 2 guarantees (each chunk but the last is exactly the chunk size); other shapes
    /// are read by walking the length prefixes.
    pub(super) stride: Option<u64>,
}

impl Layout {
    /// The layout of an object about to be written from these sealed chunks.
    pub(super) fn of_chunks(header_len: usize, chunks: &[Vec<u8>]) -> Self {
        Self::of_lengths(header_len, chunks.iter().map(Vec::len))
    }

    /// The layout of an object whose sealed chunks have these lengths.
    pub(super) fn of_lengths(header_len: usize, lens: impl Iterator<Item = usize>) -> Self {
        let lens: Vec<usize> = lens.collect();
        let first = lens.first().copied().unwrap_or(0);
        let uniform = lens
            .split_last()
            .is_some_and(|(_, rest)| rest.iter().all(|l| *l == first));
        Self {
            records_at: header_len as u64,
            stride: uniform.then_some(first as u64 + RECORD_OVERHEAD),
        }
    }
}

/// One object body: `len` bytes at `at` in `file`.
pub(super) struct Body<'a> {
    pub(super) file: &'a File,
    pub(super) at: u64,
    pub(super) len: u64,
}

fn io(_: std::io::Error) -> ReadError {
    ReadError::Io
}

impl Body<'_> {
    fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(ReadError::Corrupt(None));
        }
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, self.at + offset)
            .map_err(io)?;
        Ok(buf)
    }

    fn prefix(&self, offset: u64) -> Result<u64, ReadError> {
        let b = self.read(offset, 4)?;
        Ok(u64::from(u32::from_be_bytes(
            b.try_into().expect("4 bytes"),
        )))
    }

    /// Parses the file header (key, AAD and what the object is).
    pub(super) fn cipher(&self, dmk: &[u8; 32]) -> Result<ObjectCipher, ReadError> {
        let mut want = 512u64;
        loop {
            let prefix = self.read(0, want.min(self.len))?;
            match ObjectCipher::parse(dmk, &prefix) {
                Ok(c) => return Ok(c),
                Err(HeaderError::NeedMore(n)) if (n as u64) <= self.len && n > prefix.len() => {
                    want = (n as u64).max(want * 2).min(MAX_FILE_HEADER as u64);
                }
                Err(_) => return Err(ReadError::Corrupt(None)),
            }
        }
    }

    /// Finds the records: the first and last length prefixes when the object is uniform
    /// (two reads), every prefix otherwise. Fails when they do not fill the body exactly.
    pub(super) fn layout(&self, cipher: &ObjectCipher) -> Result<Layout, ReadError> {
        let count = u64::from(cipher.info.chunk_count);
        let records_at = cipher.header_len as u64;
        if count == 0 {
            return Err(ReadError::Corrupt(None));
        }
        let stride = 4 + self.prefix(records_at)?;
        let uniform = stride
            .checked_mul(count - 1)
            .and_then(|s| s.checked_add(records_at))
            .filter(|last| last + 4 <= self.len)
            .map(|last| Ok::<_, ReadError>(last + 4 + self.prefix(last)? == self.len))
            .transpose()?
            .unwrap_or(false);
        if uniform {
            return Ok(Layout {
                records_at,
                stride: Some(stride),
            });
        }
        let mut at = records_at;
        for _ in 0..count {
            at += 4 + self.prefix(at)?;
        }
        if at != self.len {
            return Err(ReadError::Corrupt(None));
        }
        Ok(Layout {
            records_at,
            stride: None,
        })
    }

    /// Record `index` without its length prefix (not yet opened).
    fn record(&self, layout: &Layout, count: u32, index: u32) -> Result<Vec<u8>, ReadError> {
        let bad = ReadError::Corrupt(Some(index));
        let at = match layout.stride {
            Some(stride) => layout.records_at + u64::from(index) * stride,
            None => {
                let mut at = layout.records_at;
                for _ in 0..index {
                    at += 4 + self.prefix(at)?;
                }
                at
            }
        };
        let len = self.prefix(at).map_err(|_| bad.clone())?;
        let expected = match layout.stride {
            Some(stride) if index + 1 < count => len + 4 == stride,
            _ => true,
        };
        if !expected || len > MAX_RECORD {
            return Err(bad);
        }
        self.read(at + 4, len).map_err(|e| match e {
            ReadError::Io => ReadError::Io,
            _ => bad,
        })
    }

    /// The layer-2 sealed chunk `index`, authenticated at rest.
    pub(super) fn chunk(
        &self,
        cipher: &ObjectCipher,
        layout: &Layout,
        index: u32,
    ) -> Result<Vec<u8>, ReadError> {
        let count = cipher.info.chunk_count;
        if index >= count {
            return Err(ReadError::NotFound);
        }
        let record = self.record(layout, count, index)?;
        cipher
            .open(index, &record)
            .map_err(|_| ReadError::Corrupt(Some(index)))
    }

    /// Opens every record and checks the layer-2 digest recorded in the file header.
    pub(super) fn verify(&self, dmk: &[u8; 32]) -> Result<(), ReadError> {
        let cipher = self.cipher(dmk)?;
        let layout = self.layout(&cipher)?;
        let mut h = Sha256::new();
        for i in 0..cipher.info.chunk_count {
            h.update(self.chunk(&cipher, &layout, i)?);
        }
        let digest: [u8; 32] = h.finalize().into();
        if digest == cipher.info.digest {
            Ok(())
        } else {
            Err(ReadError::Corrupt(None))
        }
    }
}
