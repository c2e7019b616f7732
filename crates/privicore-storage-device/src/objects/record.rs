//! The record format of a segment: a fixed header, then one layer-3 object.

use std::fs::File;
use std::os::unix::fs::FileExt;

pub(super) const RECORD_MAGIC: [u8; 4] = *b"PVS1";
pub(super) const HEADER_LEN: u64 = 64;
pub(super) const TOKEN_LEN: usize = 40;
pub(super) const LIVE: u8 = 1;
pub(super) const ERASED: u8 = 0;
/// Flag: the record was written and flushed whole before its file became a segment (a
/// staged large object), so it can never be a torn write.
pub(super) const LINKED: u8 = 1;
/// Body lengths have 48 bits: the low 32 where earlier builds kept the length, the high 16
/// in bytes that were reserved (zero) before.
pub(super) const MAX_BODY: u64 = (1 << 48) - 1;

/// One record header: magic, state, flags, high 16 bits of the body length, version, low
/// 32 bits of the body length, stored-at (Unix seconds), token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) state: u8,
    pub(super) flags: u8,
    pub(super) version: u32,
    pub(super) len: u64,
    pub(super) stored_at: i64,
    pub(super) token: String,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        debug_assert!(self.len <= MAX_BODY);
        let mut h = [0u8; HEADER_LEN as usize];
        h[..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.state;
        h[5] = self.flags;
        h[6..8].copy_from_slice(&((self.len >> 32) as u16).to_be_bytes());
        h[8..12].copy_from_slice(&self.version.to_be_bytes());
        h[12..16].copy_from_slice(&(self.len as u32).to_be_bytes());
        h[16..24].copy_from_slice(&self.stored_at.to_be_bytes());
        h[24..24 + TOKEN_LEN].copy_from_slice(self.token.as_bytes());
        h
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN as usize || bytes[..4] != RECORD_MAGIC {
            return None;
        }
        let token = std::str::from_utf8(&bytes[24..24 + TOKEN_LEN]).ok()?;
        let high = u64::from(u16::from_be_bytes(bytes[6..8].try_into().ok()?));
        let low = u64::from(u32::from_be_bytes(bytes[12..16].try_into().ok()?));
        Some(Self {
            state: bytes[4],
            flags: bytes[5],
            version: u32::from_be_bytes(bytes[8..12].try_into().ok()?),
            len: high << 32 | low,
            stored_at: i64::from_be_bytes(bytes[16..24].try_into().ok()?),
            token: safe_token(token).then(|| token.to_owned())?,
        })
    }
}

/// Only engine-issued token shapes are stored (no path tricks, fixed header width).
pub fn safe_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with("dtk-")
        && token[4..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Total payload size, read from the layer-2 header core (offset 15 + T).
pub(super) fn total_size_of(layer2_header: &[u8]) -> u64 {
    let t = *layer2_header.get(6).unwrap_or(&0) as usize;
    layer2_header
        .get(15 + t..23 + t)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or_default()
}

/// Walks the record headers of one segment file of length `len` (bodies are not read);
/// stops at the first incomplete or unreadable header and returns the offset where the
/// readable part ends.
pub(super) fn walk(
    file: &File,
    len: u64,
    mut visit: impl FnMut(u64, &Header) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut offset = 0u64;
    let mut buf = [0u8; HEADER_LEN as usize];
    while offset + HEADER_LEN <= len {
        file.read_exact_at(&mut buf, offset)?;
        let Some(header) = Header::decode(&buf) else {
            break;
        };
        let end = offset + HEADER_LEN + header.len;
        if end > len {
            break;
        }
        visit(offset, &header)?;
        offset = end;
    }
    Ok(offset)
}

/// Whether `len` bytes of `file` from `offset` are all zero, read a piece at a time.
pub(super) fn all_zero(file: &File, offset: u64, len: u64) -> std::io::Result<bool> {
    let mut buf = vec![0u8; PIECE.min(len) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = PIECE.min(offset + len - at) as usize;
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Zeroes `len` bytes of `file` from `offset` (not flushed), a piece at a time.
pub(super) fn zero(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    let buf = vec![0u8; PIECE.min(len) as usize];
    let mut at = offset;
    while at < offset + len {
        let n = PIECE.min(offset + len - at) as usize;
        file.write_all_at(&buf[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Copies `len` bytes between files (not flushed), a piece at a time.
pub(super) fn copy(from: &File, at: u64, to: &File, dest: u64, len: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; PIECE.min(len) as usize];
    let mut done = 0;
    while done < len {
        let n = PIECE.min(len - done) as usize;
        from.read_exact_at(&mut buf[..n], at + done)?;
        to.write_all_at(&buf[..n], dest + done)?;
        done += n as u64;
    }
    Ok(())
}

/// The most bytes a scan, copy or erasure holds in memory at once.
pub(super) const PIECE: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lengths_past_four_gib_round_trip_and_old_headers_read_the_same() {
        let header = Header {
            state: LIVE,
            flags: LINKED,
            version: 3,
            len: 10 << 30,
            stored_at: 1_700_000_000,
            token: "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5".into(),
        };
        let bytes = header.encode();
        assert_eq!(Header::decode(&bytes), Some(header.clone()));
        // Earlier builds left bytes 5..8 zero: their 32-bit lengths decode unchanged.
        let small = Header {
            flags: 0,
            len: 4096,
            ..header
        };
        let bytes = small.encode();
        assert_eq!(bytes[5..8], [0, 0, 0]);
        assert_eq!(Header::decode(&bytes).unwrap().len, 4096);
    }
}
