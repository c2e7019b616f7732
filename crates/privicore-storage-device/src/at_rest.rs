//! Layer 3 (docs/api/devices-and-storage.md §4.4): one `PVD1` object per object version (kept as a
//! segment record, see `objects`), each layer-2 chunk
//! sealed again with a per-object key `HKDF(DMK, salt, "privicore/at-rest/v1"…)`, the SHA-256
//! of the file header as AAD and the layer-2 nonce layout.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const MAGIC: [u8; 4] = *b"PVD1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtRestError {
    #[error("the object file is malformed")]
    Malformed,
    #[error("a record does not authenticate")]
    Corrupt,
    #[error("no such chunk")]
    NoSuchChunk,
}

/// What the file says about the object it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub token: String,
    pub version: u32,
    pub chunk_count: u32,
    pub digest: [u8; 32],
    pub layer2_header: Vec<u8>,
}

fn object_key(dmk: &[u8; 32], salt: &[u8; 32], token: &str, version: u32) -> [u8; 32] {
    let mut info = b"privicore/at-rest/v1".to_vec();
    info.push(0);
    info.extend_from_slice(token.as_bytes());
    info.push(0);
    info.extend_from_slice(&version.to_be_bytes());
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), dmk);
    let mut out = [0u8; 32];
    hk.expand(&info, &mut out)
        .expect("32 bytes is a valid HKDF length");
    out
}

fn nonce(index: u32, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&u64::from(index).to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Bytes before the variable parts of the file header (magic, versions, salt, token length).
const FIXED_PREFIX: usize = 4 + 1 + 1 + 32 + 1;
/// A layer-2 header is about 140 bytes; anything beyond this is not one.
const MAX_LAYER2_HEADER: usize = 64 * 1024;
/// The longest file header `ObjectCipher::parse` accepts.
pub const MAX_FILE_HEADER: usize = FIXED_PREFIX + 255 + 4 + 4 + 32 + 4 + MAX_LAYER2_HEADER;

/// The key, AAD and facts of one object: seals and opens its records one at a time, so an
/// object of any size is handled a chunk at a time.
pub struct ObjectCipher {
    pub info: ObjectInfo,
    cipher: Aes256Gcm,
    aad: [u8; 32],
    /// Length of the file header: where record 0 starts.
    pub header_len: usize,
}

/// Why a file header could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    Malformed,
    /// The header is longer than the bytes given: at least this many are needed.
    NeedMore(usize),
}

impl ObjectCipher {
    /// A fresh per-object key (new salt) and the file header that names it.
    pub fn create(dmk: &[u8; 32], info: &ObjectInfo) -> (Self, Vec<u8>) {
        let mut salt = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let mut out = Vec::with_capacity(128 + info.layer2_header.len());
        out.extend_from_slice(&MAGIC);
        out.push(0x01);
        out.push(0x01);
        out.extend_from_slice(&salt);
        out.push(info.token.len() as u8);
        out.extend_from_slice(info.token.as_bytes());
        out.extend_from_slice(&info.version.to_be_bytes());
        out.extend_from_slice(&info.chunk_count.to_be_bytes());
        out.extend_from_slice(&info.digest);
        out.extend_from_slice(&(info.layer2_header.len() as u32).to_be_bytes());
        out.extend_from_slice(&info.layer2_header);
        let cipher = Self {
            info: info.clone(),
            cipher: Aes256Gcm::new((&object_key(dmk, &salt, &info.token, info.version)).into()),
            aad: Sha256::digest(&out).into(),
            header_len: out.len(),
        };
        (cipher, out)
    }

    /// Parses the file header at the start of `prefix` (the rest may hold records or be
    /// missing).
    pub fn parse(dmk: &[u8; 32], prefix: &[u8]) -> Result<Self, HeaderError> {
        let mut c = Cursor {
            bytes: prefix,
            at: 0,
        };
        if grab(&mut c, 4)? != MAGIC || grab(&mut c, 2)? != [1, 1] {
            return Err(HeaderError::Malformed);
        }
        let salt: [u8; 32] = grab(&mut c, 32)?.try_into().expect("32 bytes");
        let t = grab(&mut c, 1)?[0] as usize;
        let token = std::str::from_utf8(grab(&mut c, t)?)
            .map_err(|_| HeaderError::Malformed)?
            .to_owned();
        let version = u32::from_be_bytes(grab(&mut c, 4)?.try_into().expect("4 bytes"));
        let chunk_count = u32::from_be_bytes(grab(&mut c, 4)?.try_into().expect("4 bytes"));
        let digest: [u8; 32] = grab(&mut c, 32)?.try_into().expect("32 bytes");
        let h = u32::from_be_bytes(grab(&mut c, 4)?.try_into().expect("4 bytes")) as usize;
        if h > MAX_LAYER2_HEADER {
            return Err(HeaderError::Malformed);
        }
        let layer2_header = grab(&mut c, h)?.to_vec();
        Ok(Self {
            cipher: Aes256Gcm::new((&object_key(dmk, &salt, &token, version)).into()),
            aad: Sha256::digest(&prefix[..c.at]).into(),
            header_len: c.at,
            info: ObjectInfo {
                token,
                version,
                chunk_count,
                digest,
                layer2_header,
            },
        })
    }

    /// Record `index` (without its length prefix) for the layer-2 sealed chunk `chunk`.
    pub fn seal(&self, index: u32, chunk: &[u8]) -> Vec<u8> {
        let last = index + 1 == self.info.chunk_count;
        self.cipher
            .encrypt(
                Nonce::from_slice(&nonce(index, last)),
                Payload {
                    msg: chunk,
                    aad: &self.aad,
                },
            )
            .expect("AES-GCM encryption cannot fail")
    }

    /// The layer-2 sealed chunk in record `index`, or `Corrupt` if it does not authenticate.
    pub fn open(&self, index: u32, record: &[u8]) -> Result<Vec<u8>, AtRestError> {
        if index >= self.info.chunk_count {
            return Err(AtRestError::NoSuchChunk);
        }
        let last = index + 1 == self.info.chunk_count;
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce(index, last)),
                Payload {
                    msg: record,
                    aad: &self.aad,
                },
            )
            .map_err(|_| AtRestError::Corrupt)
    }
}

/// Takes `n` header bytes, or says how many the header needs at least.
fn grab<'a>(c: &mut Cursor<'a>, n: usize) -> Result<&'a [u8], HeaderError> {
    let end = c.at + n;
    if end > MAX_FILE_HEADER {
        return Err(HeaderError::Malformed);
    }
    c.take(n).map_err(|_| HeaderError::NeedMore(end))
}

/// Bytes a record adds to the layer-2 sealed chunk it holds (length prefix and GCM tag).
pub const RECORD_OVERHEAD: u64 = 4 + 16;

/// Serializes an object: file header, then one length-prefixed record per chunk.
pub fn encode(dmk: &[u8; 32], info: &ObjectInfo, sealed_chunks: &[Vec<u8>]) -> Vec<u8> {
    let (cipher, mut out) = ObjectCipher::create(dmk, info);
    out.reserve(sealed_chunks.iter().map(|c| c.len() + 20).sum::<usize>());
    for (i, chunk) in sealed_chunks.iter().enumerate() {
        let record = cipher.seal(i as u32, chunk);
        out.extend_from_slice(&(record.len() as u32).to_be_bytes());
        out.extend_from_slice(&record);
    }
    out
}

/// A parsed object file held in memory; records are opened on demand.
pub struct Decoded<'a> {
    pub info: ObjectInfo,
    cipher: ObjectCipher,
    records: Vec<&'a [u8]>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AtRestError> {
        let end = self.at.checked_add(n).ok_or(AtRestError::Malformed)?;
        let s = self.bytes.get(self.at..end).ok_or(AtRestError::Malformed)?;
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, AtRestError> {
        Ok(u32::from_be_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| AtRestError::Malformed)?,
        ))
    }
}

pub fn decode<'a>(dmk: &[u8; 32], file: &'a [u8]) -> Result<Decoded<'a>, AtRestError> {
    let cipher = ObjectCipher::parse(dmk, file).map_err(|_| AtRestError::Malformed)?;
    let mut c = Cursor {
        bytes: file,
        at: cipher.header_len,
    };
    let mut records = Vec::new();
    for _ in 0..cipher.info.chunk_count {
        let len = c.u32()? as usize;
        records.push(c.take(len)?);
    }
    if c.at != file.len() {
        return Err(AtRestError::Malformed);
    }
    Ok(Decoded {
        info: cipher.info.clone(),
        cipher,
        records,
    })
}

impl Decoded<'_> {
    /// The layer-2 sealed chunk `index`, or `Corrupt` if its record does not authenticate.
    pub fn chunk(&self, index: u32) -> Result<Vec<u8>, AtRestError> {
        let record = self
            .records
            .get(index as usize)
            .ok_or(AtRestError::NoSuchChunk)?;
        self.cipher.open(index, record)
    }

    /// Length of the file header: where record 0 starts.
    pub fn header_len(&self) -> usize {
        self.cipher.header_len
    }

    /// Lengths of the layer-2 sealed chunks the records hold.
    pub fn chunk_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.records.iter().map(|r| r.len().saturating_sub(16))
    }

    /// Re-reads every record and recomputes the layer-2 object digest.
    pub fn verify(&self) -> Result<(), AtRestError> {
        let mut h = Sha256::new();
        for i in 0..self.info.chunk_count {
            h.update(self.chunk(i)?);
        }
        let digest: [u8; 32] = h.finalize().into();
        if digest == self.info.digest {
            Ok(())
        } else {
            Err(AtRestError::Corrupt)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn info(chunks: &[Vec<u8>]) -> ObjectInfo {
        let mut h = Sha256::new();
        for c in chunks {
            h.update(c);
        }
        ObjectInfo {
            token: "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5".into(),
            version: 2,
            chunk_count: chunks.len() as u32,
            digest: h.finalize().into(),
            layer2_header: vec![9; 20],
        }
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let dmk = [3u8; 32];
        let chunks = vec![vec![1u8; 40], vec![2u8; 17]];
        let file = encode(&dmk, &info(&chunks), &chunks);
        let decoded = decode(&dmk, &file).unwrap();
        assert_eq!(decoded.info, info(&chunks));
        assert_eq!(decoded.chunk(1).unwrap(), chunks[1]);
        decoded.verify().unwrap();
        // The sealed chunks never appear verbatim in the file.
        assert!(!file.windows(17).any(|w| w == chunks[1].as_slice()));

        let mut flipped = file.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        let d = decode(&dmk, &flipped).unwrap();
        assert_eq!(d.chunk(1), Err(AtRestError::Corrupt));
        assert_eq!(d.verify(), Err(AtRestError::Corrupt));
        let other_dmk = decode(&[4u8; 32], &file).unwrap();
        assert_eq!(other_dmk.chunk(0), Err(AtRestError::Corrupt));
        assert_eq!(
            decode(&dmk, &file[..file.len() - 1]).err(),
            Some(AtRestError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(d) = decode(&[0; 32], &bytes) {
                let _ = d.verify();
            }
        }

        #[test]
        fn any_object_round_trips(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 17..200), 1..5)) {
            let dmk = [7u8; 32];
            let file = encode(&dmk, &info(&chunks), &chunks);
            let d = decode(&dmk, &file).unwrap();
            for (i, c) in chunks.iter().enumerate() {
                prop_assert_eq!(&d.chunk(i as u32).unwrap(), c);
            }
        }
    }
}
