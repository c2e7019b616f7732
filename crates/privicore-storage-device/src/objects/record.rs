//! The record format of a segment: a fixed header, then one layer-3 object.

pub(super) const RECORD_MAGIC: [u8; 4] = *b"PVS1";
pub(super) const HEADER_LEN: u64 = 64;
pub(super) const TOKEN_LEN: usize = 40;
pub(super) const LIVE: u8 = 1;
pub(super) const ERASED: u8 = 0;

/// One record header: magic, state, 3 reserved bytes, version, body length, stored-at
/// (Unix seconds), token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) state: u8,
    pub(super) version: u32,
    pub(super) len: u32,
    pub(super) stored_at: i64,
    pub(super) token: String,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..4].copy_from_slice(&RECORD_MAGIC);
        h[4] = self.state;
        h[8..12].copy_from_slice(&self.version.to_be_bytes());
        h[12..16].copy_from_slice(&self.len.to_be_bytes());
        h[16..24].copy_from_slice(&self.stored_at.to_be_bytes());
        h[24..24 + TOKEN_LEN].copy_from_slice(self.token.as_bytes());
        h
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < HEADER_LEN as usize || bytes[..4] != RECORD_MAGIC {
            return None;
        }
        let token = std::str::from_utf8(&bytes[24..24 + TOKEN_LEN]).ok()?;
        Some(Self {
            state: bytes[4],
            version: u32::from_be_bytes(bytes[8..12].try_into().ok()?),
            len: u32::from_be_bytes(bytes[12..16].try_into().ok()?),
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

/// Walks the records of one segment image; stops at the first incomplete or unreadable
/// header and returns the offset where the readable part ends.
pub(super) fn walk(bytes: &[u8], mut visit: impl FnMut(u64, &Header, &[u8])) -> u64 {
    let mut offset = 0u64;
    while let Some(header) = bytes.get(offset as usize..).and_then(Header::decode) {
        let body_start = (offset + HEADER_LEN) as usize;
        let Some(body) = bytes.get(body_start..body_start + header.len as usize) else {
            break;
        };
        visit(offset, &header, body);
        offset = (body_start + header.len as usize) as u64;
    }
    offset
}
