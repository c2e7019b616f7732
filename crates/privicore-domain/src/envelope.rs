//! Layer 2, the engine envelope (docs/api/devices-and-storage.md §4.3): a fresh data key per
//! (token, version) wrapped by the engine KEK, and the payload cut into chunks sealed with
//! AES-256-GCM, the chunk index and a last flag in the nonce, SHA-256 of the header core as
//! AAD.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const MAGIC: [u8; 4] = *b"PVE1";
pub const FORMAT_VERSION: u8 = 0x01;
pub const AEAD_AES_256_GCM: u8 = 0x01;
pub const DEFAULT_CHUNK_SIZE: u32 = 1024 * 1024;
pub const TAG_LEN: usize = 16;
pub const WRAPPED_DEK_LEN: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed envelope header")]
    MalformedHeader,
    #[error("unknown key-encryption key")]
    UnknownKek,
    #[error("the data key does not unwrap")]
    DekUnwrap,
    #[error("chunk index out of range")]
    BadIndex,
    #[error("chunk has the wrong length")]
    BadLength,
    #[error("chunk does not authenticate")]
    NotAuthentic,
}

/// A key-encryption key. `Debug` shows only its id.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; 32],
}

impl Drop for Kek {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

impl Kek {
    /// `id`: 1..32 characters of `A-Z a-z 0-9 . _ -`.
    pub fn new(id: &str, key: [u8; 32]) -> Option<Self> {
        let ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| Self {
            id: id.to_owned(),
            key,
        })
    }

    pub fn generate(id: &str) -> Option<Self> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::new(id, key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

/// The active KEK for wrapping, plus retired ones kept for unwrapping.
#[derive(Debug, Clone)]
pub struct KeyRing {
    active: Kek,
    all: HashMap<String, Kek>,
}

impl KeyRing {
    pub fn new(active: Kek, retired: Vec<Kek>) -> Self {
        let mut all: HashMap<String, Kek> =
            retired.into_iter().map(|k| (k.id.clone(), k)).collect();
        all.insert(active.id.clone(), active.clone());
        Self { active, all }
    }

    pub fn active(&self) -> &Kek {
        &self.active
    }

    fn get(&self, id: &str) -> Option<&Kek> {
        self.all.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.all.contains_key(id)
    }

    /// Every KEK, the active one included.
    pub fn keys(&self) -> impl Iterator<Item = &Kek> {
        self.all.values()
    }
}

/// KEK rotation (§4.3): the data key of `header` unwrapped and wrapped again under the
/// active KEK; the core, and so every sealed chunk, stays as it is.
pub fn rewrap(ring: &KeyRing, header: &Header) -> Result<Header, EnvelopeError> {
    let dek = unwrap_dek(ring, header)?;
    let kek = ring.active();
    Ok(Header {
        core: header.core.clone(),
        kek_id: kek.id.clone(),
        wrapped_dek: wrap_dek(kek, &header.core.token, header.core.version, &dek),
    })
}

/// The data key of `header`, unwrapped by the KEK it names.
fn unwrap_dek(
    ring: &KeyRing,
    header: &Header,
) -> Result<zeroize::Zeroizing<[u8; 32]>, EnvelopeError> {
    let kek = ring.get(&header.kek_id).ok_or(EnvelopeError::UnknownKek)?;
    let aad = dek_aad(&header.core.token, header.core.version, &header.kek_id);
    let dek = zeroize::Zeroizing::new(
        Aes256Gcm::new((&kek.key).into())
            .decrypt(
                Nonce::from_slice(&header.wrapped_dek[..12]),
                Payload {
                    msg: &header.wrapped_dek[12..],
                    aad: &aad,
                },
            )
            .map_err(|_| EnvelopeError::DekUnwrap)?,
    );
    let dek: [u8; 32] = dek
        .as_slice()
        .try_into()
        .map_err(|_| EnvelopeError::DekUnwrap)?;
    Ok(zeroize::Zeroizing::new(dek))
}

/// The header core: what the object is. Its SHA-256 is the AAD of every chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    pub token: String,
    pub version: u32,
    pub chunk_size: u32,
    pub total_size: u64,
    pub chunk_count: u32,
}

impl Core {
    pub fn new(token: &str, version: u32, chunk_size: u32, total_size: u64) -> Self {
        let chunk_count = total_size.div_ceil(u64::from(chunk_size)) as u32;
        Self {
            token: token.to_owned(),
            version,
            chunk_size,
            total_size,
            chunk_count,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let t = self.token.as_bytes();
        let mut out = Vec::with_capacity(27 + t.len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(AEAD_AES_256_GCM);
        out.push(t.len() as u8);
        out.extend_from_slice(t);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.chunk_size.to_be_bytes());
        out.extend_from_slice(&self.total_size.to_be_bytes());
        out.extend_from_slice(&self.chunk_count.to_be_bytes());
        out
    }

    pub fn aad(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Expected sealed length of chunk `index`.
    pub fn sealed_len(&self, index: u32) -> Option<usize> {
        if index >= self.chunk_count {
            return None;
        }
        let cs = u64::from(self.chunk_size);
        let start = u64::from(index) * cs;
        let len = (self.total_size - start).min(cs);
        Some(len as usize + TAG_LEN)
    }
}

/// Core plus the key block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub core: Core,
    pub kek_id: String,
    pub wrapped_dek: [u8; WRAPPED_DEK_LEN],
}

impl Header {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.core.to_bytes();
        out.push(self.kek_id.len() as u8);
        out.extend_from_slice(self.kek_id.as_bytes());
        out.extend_from_slice(&self.wrapped_dek);
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let bad = EnvelopeError::MalformedHeader;
        let mut r = Reader { bytes, at: 0 };
        if r.take(4).ok_or(bad)? != MAGIC
            || r.u8().ok_or(bad)? != FORMAT_VERSION
            || r.u8().ok_or(bad)? != AEAD_AES_256_GCM
        {
            return Err(bad);
        }
        let t = r.u8().ok_or(bad)? as usize;
        let token = std::str::from_utf8(r.take(t).ok_or(bad)?)
            .map_err(|_| bad)?
            .to_owned();
        let version = u32::from_be_bytes(r.take(4).ok_or(bad)?.try_into().map_err(|_| bad)?);
        let chunk_size = u32::from_be_bytes(r.take(4).ok_or(bad)?.try_into().map_err(|_| bad)?);
        let total_size = u64::from_be_bytes(r.take(8).ok_or(bad)?.try_into().map_err(|_| bad)?);
        let chunk_count = u32::from_be_bytes(r.take(4).ok_or(bad)?.try_into().map_err(|_| bad)?);
        let k = r.u8().ok_or(bad)? as usize;
        let kek_id = std::str::from_utf8(r.take(k).ok_or(bad)?)
            .map_err(|_| bad)?
            .to_owned();
        let wrapped_dek: [u8; WRAPPED_DEK_LEN] = r
            .take(WRAPPED_DEK_LEN)
            .ok_or(bad)?
            .try_into()
            .map_err(|_| bad)?;
        let core = Core {
            token,
            version,
            chunk_size,
            total_size,
            chunk_count,
        };
        let consistent = chunk_size > 0
            && total_size > 0
            && u64::from(chunk_count) == total_size.div_ceil(u64::from(chunk_size))
            && r.at == bytes.len();
        if !consistent {
            return Err(bad);
        }
        Ok(Self {
            core,
            kek_id,
            wrapped_dek,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
}

fn dek_aad(token: &str, version: u32, kek_id: &str) -> Vec<u8> {
    let mut aad = b"privicore/dek/v1".to_vec();
    aad.push(0);
    aad.extend_from_slice(token.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad.push(0);
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

fn wrap_dek(kek: &Kek, token: &str, version: u32, dek: &[u8; 32]) -> [u8; WRAPPED_DEK_LEN] {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new((&kek.key).into());
    let aad = dek_aad(token, version, &kek.id);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: dek,
                aad: &aad,
            },
        )
        .expect("AES-GCM encryption of 32 bytes cannot fail");
    let mut out = [0u8; WRAPPED_DEK_LEN];
    out[..12].copy_from_slice(&nonce);
    out[12..].copy_from_slice(&ct);
    out
}

fn chunk_nonce(index: u32, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&u64::from(index).to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

/// A payload sealed for one (token, version).
#[derive(Debug, Clone)]
pub struct SealedObject {
    pub header: Header,
    pub chunks: Vec<Vec<u8>>,
    pub digest: [u8; 32],
}

/// SHA-256 over the sealed chunks in index order, the object digest.
pub fn object_digest<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().into()
}

/// Seals `payload` (non-empty) with a fresh data key wrapped by the active KEK.
pub fn seal(
    ring: &KeyRing,
    token: &str,
    version: u32,
    chunk_size: u32,
    payload: &[u8],
) -> SealedObject {
    assert!(
        !payload.is_empty() && chunk_size > 0,
        "payloads are never empty"
    );
    let mut sealer = Sealer::new(ring, token, version, chunk_size, payload.len() as u64);
    let chunks: Vec<Vec<u8>> = payload
        .chunks(chunk_size as usize)
        .map(|chunk| sealer.seal_next(chunk).expect("whole chunks in order"))
        .collect();
    let header = sealer.header();
    let digest = sealer.finish().expect("every chunk sealed");
    SealedObject {
        header,
        chunks,
        digest,
    }
}

/// Seals one object version chunk by chunk as its bytes arrive (an upload): the total size
/// must be known at the start, since it is part of the header core and so of every chunk's
/// AAD. The object digest is computed on the way.
pub struct Sealer {
    header: Header,
    aad: [u8; 32],
    cipher: Aes256Gcm,
    next: u32,
    digest: Sha256,
}

impl Sealer {
    /// A fresh data key for (token, version), wrapped by the active KEK. `total_size` > 0.
    pub fn new(
        ring: &KeyRing,
        token: &str,
        version: u32,
        chunk_size: u32,
        total_size: u64,
    ) -> Self {
        assert!(total_size > 0 && chunk_size > 0, "payloads are never empty");
        let mut dek = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(dek.as_mut());
        let kek = ring.active();
        let core = Core::new(token, version, chunk_size, total_size);
        Self {
            aad: core.aad(),
            cipher: Aes256Gcm::new((&*dek).into()),
            header: Header {
                wrapped_dek: wrap_dek(kek, token, version, &dek),
                kek_id: kek.id.clone(),
                core,
            },
            next: 0,
            digest: Sha256::new(),
        }
    }

    pub fn header(&self) -> Header {
        self.header.clone()
    }

    /// Index of the next chunk to seal.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Seals the next chunk, which must have exactly its expected length (`chunk_size`, or
    /// the remainder for the last one).
    pub fn seal_next(&mut self, chunk: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let core = &self.header.core;
        let index = self.next;
        let expected = core.sealed_len(index).ok_or(EnvelopeError::BadIndex)? - TAG_LEN;
        if chunk.len() != expected {
            return Err(EnvelopeError::BadLength);
        }
        let nonce = chunk_nonce(index, index + 1 == core.chunk_count);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: chunk,
                    aad: &self.aad,
                },
            )
            .expect("AES-GCM encryption cannot fail");
        self.digest.update(&sealed);
        self.next += 1;
        Ok(sealed)
    }

    /// The object digest, once every chunk is sealed.
    pub fn finish(self) -> Result<[u8; 32], EnvelopeError> {
        if self.next != self.header.core.chunk_count {
            return Err(EnvelopeError::BadIndex);
        }
        Ok(self.digest.finalize().into())
    }
}

/// Seals the chunks of an upload whose size is not known yet (a chunked body) with a
/// one-time key held only in memory, until they can be sealed for good: the total size is
/// part of every chunk's AAD, so the final sealing waits for the last byte. The spool thus
/// never holds unsealed client bytes.
pub struct StagingKey {
    cipher: Aes256Gcm,
}

impl StagingKey {
    pub fn generate() -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self {
            cipher: Aes256Gcm::new((&*key).into()),
        }
    }

    fn nonce(index: u32) -> [u8; 12] {
        let mut nonce = chunk_nonce(index, false);
        nonce[..3].copy_from_slice(&[0xff; 3]);
        nonce
    }

    pub fn seal(&self, index: u32, chunk: &[u8]) -> Vec<u8> {
        self.cipher
            .encrypt(Nonce::from_slice(&Self::nonce(index)), chunk)
            .expect("AES-GCM encryption cannot fail")
    }

    pub fn open(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.cipher
            .decrypt(Nonce::from_slice(&Self::nonce(index)), sealed)
            .map_err(|_| EnvelopeError::NotAuthentic)
    }
}

/// Opens the chunks of one object version with the engine's own header.
pub struct Opener {
    core: Core,
    aad: [u8; 32],
    cipher: Aes256Gcm,
}

impl Opener {
    pub fn new(ring: &KeyRing, header: &Header) -> Result<Self, EnvelopeError> {
        let dek = unwrap_dek(ring, header)?;
        Ok(Self {
            aad: header.core.aad(),
            core: header.core.clone(),
            cipher: Aes256Gcm::new((&*dek).into()),
        })
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn open_chunk(&self, index: u32, sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let expected = self.core.sealed_len(index).ok_or(EnvelopeError::BadIndex)?;
        if sealed.len() != expected {
            return Err(EnvelopeError::BadLength);
        }
        let nonce = chunk_nonce(index, index + 1 == self.core.chunk_count);
        self.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .map_err(|_| EnvelopeError::NotAuthentic)
    }
}

#[cfg(test)]
mod tests;
