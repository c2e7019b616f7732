//! Encryption layer 1, the client's own (docs/api/data-tokens.md §1.4): AES-256-GCM
//! without associated data, laid out as `[12-byte IV][ciphertext][16-byte tag]`.
//!
//! [`encrypt`] and [`decrypt`] handle an inline payload in one piece. [`EncryptReader`]
//! and [`DecryptWriter`] do the same for payloads of any size (up to 10 GiB travel through
//! the streaming listeners) while holding one read buffer of them at a time: GCM is
//! computed incrementally as NIST SP 800-38D describes it, `J0 = IV || 0^31 || 1`, the
//! keystream counter starting at `inc32(J0)`, GHASH over the ciphertext and the length
//! block, tag = GHASH xor E(K, J0). The output is byte-identical to the one-shot form.
//!
//! GCM authenticates only at the end. A streaming decryption has written every plaintext
//! byte by the time the tag is checked, so whoever reads from a [`DecryptWriter`] must
//! keep its output provisional (a temporary file renamed into place afterwards) and
//! discard it when [`DecryptWriter::finish`] fails.

use aes::Aes256;
use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, Nonce};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use rand::RngCore;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use zeroize::{Zeroize, Zeroizing};

pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// What layer 1 adds to a plaintext: the IV in front, the tag at the end.
pub const OVERHEAD: u64 = (IV_LEN + TAG_LEN) as u64;
/// The longest plaintext one GCM message may carry: 2^39 − 256 bits.
pub const MAX_PLAINTEXT: u64 = (1 << 36) - 32;

/// The most ciphertext a [`DecryptWriter`] takes from one `write` call.
const WRITE_CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Layer1Error {
    #[error("the payload is shorter than its IV and tag ({0} bytes): it is truncated")]
    Truncated(u64),
    #[error(
        "the payload does not authenticate with this profile's key: it is damaged, truncated or was encrypted with another key"
    )]
    TagMismatch,
    #[error("a layer-1 payload carries at most {MAX_PLAINTEXT} bytes of plaintext")]
    TooLong,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<Layer1Error> for io::Error {
    fn from(e: Layer1Error) -> Self {
        match e {
            Layer1Error::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// The ciphertext length for a plaintext of `plaintext` bytes.
pub fn encrypted_len(plaintext: u64) -> u64 {
    plaintext + OVERHEAD
}

/// A fresh random IV (never reuse one with the same key).
pub fn random_iv() -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    iv
}

/// `[12-byte IV][ciphertext][16-byte tag]` of a whole plaintext, with a random IV.
pub fn encrypt(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let iv = random_iv();
    let ct = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&iv), plaintext)
        .expect("AES-GCM encryption cannot fail");
    let mut out = Vec::with_capacity(IV_LEN + ct.len());
    out.extend_from_slice(&iv);
    out.extend(ct);
    out
}

/// The plaintext of a whole payload, once its tag verified.
pub fn decrypt(key: &[u8; 32], payload: &[u8]) -> Result<Vec<u8>, Layer1Error> {
    if payload.len() < OVERHEAD as usize {
        return Err(Layer1Error::Truncated(payload.len() as u64));
    }
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(&payload[..IV_LEN]), &payload[IV_LEN..])
        .map_err(|_| Layer1Error::TagMismatch)
}

type Ctr = ctr::Ctr32BE<Aes256>;

/// AES-256-GCM over a message that arrives in pieces of any length.
struct Gcm {
    ctr: Ctr,
    ghash: GHash,
    /// E(K, J0), XORed into the GHASH result to form the tag.
    mask: [u8; 16],
    /// Ciphertext not hashed yet: GHASH takes whole blocks, the pieces have any length.
    partial: [u8; 16],
    partial_len: usize,
    /// Bytes processed so far.
    len: u64,
}

impl Drop for Gcm {
    fn drop(&mut self) {
        // The cipher and GHASH states zeroize themselves (the crates' `zeroize` features).
        self.mask.zeroize();
        self.partial.zeroize();
    }
}

impl Gcm {
    fn new(key: &[u8; 32], iv: &[u8; IV_LEN]) -> Self {
        // H = E(K, 0^128), the GHASH key.
        let mut h = ghash::Key::default();
        Aes256::new(key.into()).encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.as_mut_slice().zeroize();
        let mut j0 = [0u8; 16];
        j0[..IV_LEN].copy_from_slice(iv);
        j0[15] = 1;
        let mut ctr = Ctr::new(key.into(), &j0.into());
        // The first keystream block is E(K, J0), the tag mask; the counter then stands at
        // inc32(J0), where the message's keystream starts.
        let mut mask = [0u8; 16];
        ctr.apply_keystream(&mut mask);
        Self {
            ctr,
            ghash,
            mask,
            partial: [0; 16],
            partial_len: 0,
            len: 0,
        }
    }

    fn count(&mut self, n: usize) -> Result<(), Layer1Error> {
        let len = self
            .len
            .checked_add(n as u64)
            .filter(|l| *l <= MAX_PLAINTEXT)
            .ok_or(Layer1Error::TooLong)?;
        self.len = len;
        Ok(())
    }

    /// Feeds ciphertext to GHASH, whole blocks at once and the rest kept for later.
    fn hash(&mut self, mut ct: &[u8]) {
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(ct.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&ct[..take]);
            self.partial_len += take;
            ct = &ct[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update_padded(&self.partial);
            self.partial_len = 0;
        }
        let whole = ct.len() / 16 * 16;
        // A multiple of the block size: nothing is padded.
        self.ghash.update_padded(&ct[..whole]);
        let rest = &ct[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), Layer1Error> {
        self.count(buf.len())?;
        self.ctr.apply_keystream(buf);
        self.hash(buf);
        Ok(())
    }

    fn decrypt(&mut self, buf: &mut [u8]) -> Result<(), Layer1Error> {
        self.count(buf.len())?;
        self.hash(buf);
        self.ctr.apply_keystream(buf);
        Ok(())
    }

    /// The tag of everything processed so far.
    fn tag(&self) -> [u8; TAG_LEN] {
        let mut ghash = self.ghash.clone();
        ghash.update_padded(&self.partial[..self.partial_len]);
        // len(A) || len(C) in bits; there is no associated data.
        let mut lengths = ghash::Block::default();
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        ghash.update(&[lengths]);
        let mut tag: [u8; TAG_LEN] = ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(self.mask) {
            *t ^= m;
        }
        tag
    }
}

#[derive(Clone, Copy)]
enum EncryptState {
    /// Bytes of the IV handed out so far.
    Iv(usize),
    Body,
    /// The tag and how much of it was handed out.
    Tag([u8; TAG_LEN], usize),
    Done,
}

/// Reads plaintext from `inner` and yields the layer-1 payload: the IV, the ciphertext as
/// the plaintext arrives (encrypted in the caller's buffer), and the tag once `inner`
/// ends. Yields exactly [`encrypted_len`] of the plaintext's length.
pub struct EncryptReader<R> {
    inner: R,
    gcm: Gcm,
    iv: [u8; IV_LEN],
    state: EncryptState,
}

impl<R> EncryptReader<R> {
    /// Encrypts under a fresh random IV.
    pub fn new(key: &[u8; 32], inner: R) -> Self {
        Self::with_iv(key, random_iv(), inner)
    }

    /// Encrypts under `iv`, which must never have been used with `key` before.
    pub fn with_iv(key: &[u8; 32], iv: [u8; IV_LEN], inner: R) -> Self {
        Self {
            inner,
            gcm: Gcm::new(key, &iv),
            iv,
            state: EncryptState::Iv(0),
        }
    }

    /// Plaintext bytes encrypted so far.
    pub fn plaintext_len(&self) -> u64 {
        self.gcm.len
    }
}

/// Copies what is left of `bytes` from `*pos` into `buf`; true once all of it is out.
fn hand_out(bytes: &[u8], pos: &mut usize, buf: &mut ReadBuf<'_>) -> bool {
    let n = (bytes.len() - *pos).min(buf.remaining());
    buf.put_slice(&bytes[*pos..*pos + n]);
    *pos += n;
    *pos == bytes.len()
}

impl<R: AsyncRead + Unpin> AsyncRead for EncryptReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // With no room, `inner` would answer "nothing read", which looks like its end.
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match this.state {
                EncryptState::Iv(mut pos) => {
                    let done = hand_out(&this.iv, &mut pos, buf);
                    this.state = if done {
                        EncryptState::Body
                    } else {
                        EncryptState::Iv(pos)
                    };
                    return Poll::Ready(Ok(()));
                }
                EncryptState::Body => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
                    let fresh = &mut buf.filled_mut()[before..];
                    if fresh.is_empty() {
                        this.state = EncryptState::Tag(this.gcm.tag(), 0);
                        continue;
                    }
                    this.gcm.encrypt(fresh)?;
                    return Poll::Ready(Ok(()));
                }
                EncryptState::Tag(tag, mut pos) => {
                    let done = hand_out(&tag, &mut pos, buf);
                    this.state = if done {
                        EncryptState::Done
                    } else {
                        EncryptState::Tag(tag, pos)
                    };
                    return Poll::Ready(Ok(()));
                }
                EncryptState::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// Takes a layer-1 payload as it arrives and writes its plaintext to `inner`, always
/// holding back the last 16 bytes seen (the tag, once the payload ends).
/// [`finish`](Self::finish) checks the tag: until it succeeds, everything written to
/// `inner` is unauthenticated and must be discarded if it fails.
pub struct DecryptWriter<W> {
    inner: W,
    /// Until the IV is complete; zeroized once the cipher is set up.
    key: Zeroizing<[u8; 32]>,
    iv: [u8; IV_LEN],
    iv_len: usize,
    gcm: Option<Gcm>,
    /// The last bytes received, which may be the tag.
    tail: [u8; TAG_LEN],
    tail_len: usize,
    /// Plaintext not yet written to `inner`, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Payload bytes taken so far.
    received: u64,
}

impl<W: AsyncWrite + Unpin> DecryptWriter<W> {
    pub fn new(key: &[u8; 32], inner: W) -> Self {
        Self {
            inner,
            key: Zeroizing::new(*key),
            iv: [0; IV_LEN],
            iv_len: 0,
            gcm: None,
            tail: [0; TAG_LEN],
            tail_len: 0,
            out: Vec::new(),
            written: 0,
            received: 0,
        }
    }

    /// Payload bytes (IV, ciphertext, tag) taken so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Plaintext bytes decrypted so far (not yet authenticated until `finish` succeeds).
    pub fn decrypted(&self) -> u64 {
        self.gcm.as_ref().map_or(0, |g| g.len)
    }

    /// Writes out pending plaintext, then checks the tag. Returns the writer and the
    /// plaintext length. On an error, what was written to the writer is not the payload's
    /// plaintext (or not all of it) and must be discarded.
    pub async fn finish(mut self) -> Result<(W, u64), Layer1Error> {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        self.inner.flush().await?;
        let Some(gcm) = self.gcm.as_ref() else {
            return Err(Layer1Error::Truncated(self.received));
        };
        if self.tail_len < TAG_LEN {
            return Err(Layer1Error::Truncated(self.received));
        }
        if !bool::from(gcm.tag().ct_eq(&self.tail)) {
            return Err(Layer1Error::TagMismatch);
        }
        let len = gcm.len;
        Ok((self.inner, len))
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Decrypts `input` into `out`, except for the last 16 bytes seen, which wait in `tail`.
    fn accept(&mut self, mut input: &[u8]) -> Result<(), Layer1Error> {
        self.received += input.len() as u64;
        if self.gcm.is_none() {
            let take = (IV_LEN - self.iv_len).min(input.len());
            self.iv[self.iv_len..self.iv_len + take].copy_from_slice(&input[..take]);
            self.iv_len += take;
            input = &input[take..];
            if self.iv_len < IV_LEN {
                return Ok(());
            }
            self.gcm = Some(Gcm::new(&self.key, &self.iv));
            self.key.zeroize();
        }
        let seen = self.tail_len + input.len();
        if seen <= TAG_LEN {
            self.tail[self.tail_len..seen].copy_from_slice(input);
            self.tail_len = seen;
            return Ok(());
        }
        // The oldest `release` bytes (from the tail first, then the input) are ciphertext
        // for sure; the newest 16 become the tail.
        let release = seen - TAG_LEN;
        let from_tail = release.min(self.tail_len);
        let from_input = release - from_tail;
        debug_assert!(self.out.is_empty());
        self.out.extend_from_slice(&self.tail[..from_tail]);
        self.out.extend_from_slice(&input[..from_input]);
        let kept = self.tail_len - from_tail;
        self.tail.copy_within(from_tail..self.tail_len, 0);
        self.tail[kept..].copy_from_slice(&input[from_input..]);
        self.tail_len = TAG_LEN;
        let gcm = self.gcm.as_mut().expect("set up above");
        gcm.decrypt(&mut self.out)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for DecryptWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = buf.len().min(WRITE_CHUNK);
        this.accept(&buf[..take])?;
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Reads a whole layer-1 payload from `reader`, writes its plaintext to `writer` and checks
/// the tag; the plaintext length. On an error, discard what `writer` received.
pub async fn decrypt_stream<R, W>(
    key: &[u8; 32],
    reader: &mut R,
    writer: W,
) -> Result<(W, u64), Layer1Error>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin,
{
    let mut decrypting = DecryptWriter::new(key, writer);
    tokio::io::copy(reader, &mut decrypting).await?;
    decrypting.finish().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn one_shot(key: &[u8; 32], iv: [u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut out = iv.to_vec();
        out.extend(
            Aes256Gcm::new(key.into())
                .encrypt(Nonce::from_slice(&iv), plaintext)
                .unwrap(),
        );
        out
    }

    /// Hands out its data in pieces of the given lengths, in turn.
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = size.min(buf.remaining()).min(self.data.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.data[at..at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn pieces(data: &[u8], sizes: &[usize]) -> Pieces {
        Pieces {
            data: data.to_vec(),
            at: 0,
            sizes: if sizes.is_empty() {
                vec![usize::MAX]
            } else {
                sizes.to_vec()
            },
            turn: 0,
        }
    }

    /// Encrypts through an `EncryptReader` read with buffers of `read_size`.
    fn stream_encrypt(
        key: &[u8; 32],
        iv: [u8; IV_LEN],
        plaintext: &[u8],
        input: &[usize],
        read_size: usize,
    ) -> Vec<u8> {
        runtime().block_on(async {
            let mut reader = EncryptReader::with_iv(key, iv, pieces(plaintext, input));
            let mut out = Vec::new();
            let mut buf = vec![0u8; read_size.max(1)];
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(reader.plaintext_len(), plaintext.len() as u64);
            out
        })
    }

    fn stream_decrypt(
        key: &[u8; 32],
        payload: &[u8],
        input: &[usize],
    ) -> Result<Vec<u8>, Layer1Error> {
        runtime().block_on(async {
            let mut reader = pieces(payload, input);
            let (out, len) = decrypt_stream(key, &mut reader, Vec::new()).await?;
            assert_eq!(len, out.len() as u64);
            Ok(out)
        })
    }

    fn random_bytes(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut v);
        v
    }

    #[test]
    fn streaming_matches_one_shot_at_block_boundaries_and_beyond() {
        let key = [7u8; 32];
        let iv = [3u8; IV_LEN];
        let lengths = [0usize, 1, 15, 16, 17, 31, 32, 33, 4096, 3 * 1024 * 1024 + 5];
        for len in lengths {
            let plaintext = random_bytes(len);
            let expected = one_shot(&key, iv, &plaintext);
            assert_eq!(expected.len() as u64, encrypted_len(len as u64));
            for (input, read_size) in [(&[][..], 64 * 1024), (&[1, 7, 16, 100][..], 5)] {
                let got = stream_encrypt(&key, iv, &plaintext, input, read_size);
                assert!(got == expected, "length {len}, input {input:?}");
            }
            assert!(stream_decrypt(&key, &expected, &[]).unwrap() == plaintext);
            assert!(stream_decrypt(&key, &expected, &[1, 3, 16, 17, 1000]).unwrap() == plaintext);
            assert_eq!(decrypt(&key, &expected).unwrap(), plaintext);
        }
    }

    #[test]
    fn the_one_shot_form_round_trips_and_detects_tampering() {
        let key = [9u8; 32];
        let payload = encrypt(&key, b"Invoice 0042: EUR 1,250.00");
        assert_eq!(payload.len(), 12 + 26 + 16);
        assert_eq!(
            decrypt(&key, &payload).unwrap(),
            b"Invoice 0042: EUR 1,250.00"
        );
        let mut bad = payload.clone();
        bad[20] ^= 1;
        assert!(matches!(decrypt(&key, &bad), Err(Layer1Error::TagMismatch)));
        assert!(decrypt(&[1u8; 32], &payload).is_err());
        assert!(matches!(
            decrypt(&key, &payload[..27]),
            Err(Layer1Error::Truncated(27))
        ));
    }

    #[test]
    fn payloads_shorter_than_iv_and_tag_are_truncated() {
        let key = [1u8; 32];
        let payload = encrypt(&key, b"");
        assert_eq!(payload.len(), 28);
        assert!(stream_decrypt(&key, &payload, &[]).unwrap().is_empty());
        for len in [0, 1, 11, 12, 13, 27] {
            assert!(
                matches!(
                    stream_decrypt(&key, &payload[..len], &[]),
                    Err(Layer1Error::Truncated(n)) if n == len as u64
                ),
                "{len}"
            );
        }
    }

    #[test]
    fn random_ivs_differ_and_stream_and_one_shot_agree_on_them() {
        let key = [5u8; 32];
        let plaintext = random_bytes(1000);
        let a = runtime().block_on(async {
            let mut out = Vec::new();
            EncryptReader::new(&key, &plaintext[..])
                .read_to_end(&mut out)
                .await
                .unwrap();
            out
        });
        let b = encrypt(&key, &plaintext);
        assert_ne!(a[..IV_LEN], b[..IV_LEN]);
        assert_eq!(decrypt(&key, &a).unwrap(), plaintext);
        assert!(stream_decrypt(&key, &b, &[]).unwrap() == plaintext);
    }

    #[test]
    fn a_writer_that_accepts_little_at_a_time_gets_every_byte() {
        /// Takes at most three bytes per write and is not ready every other call.
        struct Slow {
            got: Vec<u8>,
            flip: bool,
        }
        impl AsyncWrite for Slow {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.flip = !self.flip;
                if self.flip {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let n = buf.len().min(3);
                self.got.extend_from_slice(&buf[..n]);
                Poll::Ready(Ok(n))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let key = [2u8; 32];
        let plaintext = random_bytes(5000);
        let payload = encrypt(&key, &plaintext);
        let (slow, len) = runtime()
            .block_on(async {
                let slow = Slow {
                    got: Vec::new(),
                    flip: false,
                };
                decrypt_stream(&key, &mut &payload[..], slow).await
            })
            .unwrap();
        assert_eq!(len, 5000);
        assert!(slow.got == plaintext);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn streaming_encryption_is_byte_identical_to_aes_gcm(
            key in any::<[u8; 32]>(),
            iv in any::<[u8; IV_LEN]>(),
            plaintext in prop::collection::vec(any::<u8>(), 0..3000),
            input in prop::collection::vec(1usize..200, 0..8),
            read_size in 1usize..4096,
        ) {
            let expected = one_shot(&key, iv, &plaintext);
            prop_assert_eq!(stream_encrypt(&key, iv, &plaintext, &input, read_size), expected.clone());
            prop_assert_eq!(stream_decrypt(&key, &expected, &input).unwrap(), plaintext);
        }

        #[test]
        fn any_flipped_byte_fails_the_tag(
            key in any::<[u8; 32]>(),
            plaintext in prop::collection::vec(any::<u8>(), 0..2000),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
            input in prop::collection::vec(1usize..300, 0..4),
        ) {
            let mut payload = encrypt(&key, &plaintext);
            let at = at.index(payload.len());
            payload[at] ^= 1 << bit;
            prop_assert!(matches!(stream_decrypt(&key, &payload, &input), Err(Layer1Error::TagMismatch)));
            prop_assert!(matches!(decrypt(&key, &payload), Err(Layer1Error::TagMismatch)));
        }

        #[test]
        fn any_truncation_fails(
            key in any::<[u8; 32]>(),
            plaintext in prop::collection::vec(any::<u8>(), 0..2000),
            cut in any::<prop::sample::Index>(),
        ) {
            let payload = encrypt(&key, &plaintext);
            let keep = cut.index(payload.len());
            prop_assert!(stream_decrypt(&key, &payload[..keep], &[]).is_err());
            prop_assert!(decrypt(&key, &payload[..keep]).is_err());
        }

        #[test]
        fn another_key_fails(
            key in any::<[u8; 32]>(),
            other in any::<[u8; 32]>(),
            plaintext in prop::collection::vec(any::<u8>(), 0..500),
        ) {
            prop_assume!(key != other);
            let payload = encrypt(&key, &plaintext);
            prop_assert!(matches!(stream_decrypt(&other, &payload, &[]), Err(Layer1Error::TagMismatch)));
        }
    }
}
