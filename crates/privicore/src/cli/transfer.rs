//! `privicore store` and `privicore fetch`: the client payload (layer 1) travels inline up
//! to the inline exchange maximum, and through the streaming listeners beyond it
//! (docs/api/data-tokens.md §1.4, §1.5, §3.2–§3.6; docs/api/flows.md flows 2–4).
//!
//! Streamed payloads are encrypted and decrypted as the bytes go by, so a file of any
//! size (up to the 10 GiB upload limit) costs one read buffer of memory. A fetch into a
//! file writes a temporary file beside the target and renames it into place only once the
//! GCM tag verified; a fetch to standard output cannot take back what it wrote, so a
//! failed tag there ends with an error and a non-zero exit, and the output must be
//! discarded.

use super::layer1::{self, DecryptWriter, EncryptReader, OVERHEAD};
use super::progress::{self, Counted};
use super::{LocalProfile, connect};
use anyhow::Context as _;
use base64::Engine as _;
use privicore_client::{ACK_WAIT, Client, Session};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest client payload the inline exchange takes (§1.5); larger ones are uploaded.
pub const INLINE_MAX: u64 = 1024 * 1024;
/// The largest plaintext that still travels inline.
pub const INLINE_PLAINTEXT_MAX: u64 = INLINE_MAX - OVERHEAD;

/// Where `store` reads the plaintext from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Standard input, length unknown until it ends.
    Stdin,
}

impl Source {
    /// `-` means standard input.
    pub fn parse(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Self::Stdin
        } else {
            Self::File(arg.to_path_buf())
        }
    }
}

/// Where `fetch` writes the plaintext.
#[derive(Debug, Clone)]
pub enum Target {
    File(PathBuf),
    Stdout,
}

impl Target {
    /// `-` means standard output.
    pub fn parse(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Self::Stdout
        } else {
            Self::File(arg.to_path_buf())
        }
    }
}

/// How a payload travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Inline,
    Streamed,
}

#[derive(Debug, Clone)]
pub struct Stored {
    pub token: String,
    pub plaintext_len: u64,
    pub transport: Transport,
}

#[derive(Debug, Clone)]
pub struct Fetched {
    pub plaintext_len: u64,
    pub transport: Transport,
}

/// How long to wait for a streamed exchange to commit once its bytes are in: the engine
/// still replicates them to the devices, at no less than 8 MiB/s here.
fn commit_wait(stored_size: u64) -> Duration {
    ACK_WAIT + Duration::from_secs(stored_size / (8 * 1024 * 1024))
}

/// A plaintext ready to go: whole when it travels inline, a reader (and its length, when
/// known) when it is streamed.
enum Prepared {
    Inline(Vec<u8>),
    Streamed(Box<dyn AsyncRead + Send + Unpin>, Option<u64>),
}

/// Encrypts and stores `source`; the data token, with metadata (`fileName`, `size`) set.
/// `name` overrides the file name recorded (standard input records `stdin` without it).
pub async fn store(
    profile: &LocalProfile,
    source: &Source,
    context: &str,
    name: Option<&str>,
) -> anyhow::Result<Stored> {
    let key = profile.data_key()?;
    // The input is opened (and, when short, read) before logging in, so a missing file
    // costs no round trip.
    let prepared = match source {
        Source::File(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .with_context(|| format!("reading {}", path.display()))?;
            let len = file.metadata().await?.len();
            // Exactly the length measured: a file that grows meanwhile is cut there, one
            // that shrinks makes the upload incomplete (and refused).
            let mut plaintext = file.take(len);
            if len <= INLINE_PLAINTEXT_MAX {
                let mut buffered = Vec::with_capacity(len as usize);
                plaintext
                    .read_to_end(&mut buffered)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?;
                Prepared::Inline(buffered)
            } else {
                Prepared::Streamed(Box::new(plaintext), Some(len))
            }
        }
        Source::Stdin => {
            // Up to the inline limit first: a short input goes inline, a longer one is
            // streamed, starting with what was read, its length unknown (chunked).
            let mut stdin = tokio::io::stdin();
            let mut head = Vec::new();
            (&mut stdin)
                .take(INLINE_PLAINTEXT_MAX + 1)
                .read_to_end(&mut head)
                .await
                .context("reading standard input")?;
            if head.len() as u64 <= INLINE_PLAINTEXT_MAX {
                Prepared::Inline(head)
            } else {
                Prepared::Streamed(Box::new(std::io::Cursor::new(head).chain(stdin)), None)
            }
        }
    };
    let (me, session) = connect(profile).await?;
    let stored = match prepared {
        Prepared::Inline(plaintext) => {
            store_inline(&me, &session, &key, context, &plaintext).await?
        }
        Prepared::Streamed(plaintext, len) => {
            store_streamed(&me, &session, &key, context, plaintext, len).await?
        }
    };
    let name = name
        .map(str::to_owned)
        .or_else(|| match source {
            Source::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
            Source::Stdin => None,
        })
        .unwrap_or_else(|| "stdin".to_owned());
    let mut meta = serde_json::json!({ "token": stored.token, "fileName": name, "size": stored.plaintext_len });
    if let Some(ext) = Path::new(&name).extension().and_then(|e| e.to_str()) {
        meta["extension"] = serde_json::json!(ext);
    }
    me.configure_file_meta(meta)
        .await
        .context("recording the file name and size")?;
    Ok(stored)
}

/// Reserve → ack → temporary token → inline exchange → ack (flow 2).
async fn store_inline(
    me: &Client,
    session: &Session,
    key: &[u8; 32],
    context: &str,
    plaintext: &[u8],
) -> anyhow::Result<Stored> {
    let payload = layer1::encrypt(key, plaintext);
    let (token, _) = me.store_payload(session, context, &payload).await?;
    Ok(Stored {
        token,
        plaintext_len: plaintext.len() as u64,
        transport: Transport::Inline,
    })
}

/// Reserve → ack → temporary token → upload to its `streamUrl`, encrypting as the bytes
/// are read → ack (flow 3). `len` is the plaintext's, when known: the upload then
/// announces `len + 28` as its Content-Length, otherwise it is chunked.
async fn store_streamed(
    me: &Client,
    session: &Session,
    key: &[u8; 32],
    context: &str,
    plaintext: impl AsyncRead + Send + Unpin + 'static,
    len: Option<u64>,
) -> anyhow::Result<Stored> {
    let reserved = me.reserve_token_space(context, None).await?;
    session
        .wait_command(&reserved.command_id, ACK_WAIT)
        .await?
        .result()
        .context("reserving a token")?;
    let temporary = me.temporary_data_token(&reserved.command_id).await?;
    let url = temporary["streamUrl"]
        .as_str()
        .context("the temporary token came without a streamUrl")?;
    let payload_len = len.map(layer1::encrypted_len);
    let bar = progress::bar(payload_len, "uploading");
    let body = Counted::new(EncryptReader::new(key, plaintext), bar.clone());
    let uploaded = me.upload_stream(url, body, payload_len).await;
    bar.finish_and_clear();
    let accepted = uploaded.context("uploading")?;
    let waiting = progress::spinner("uploaded; the engine is storing it on the devices");
    let committed = session
        .wait_command(&accepted.command_id, commit_wait(accepted.stored_size))
        .await;
    waiting.finish_and_clear();
    committed?
        .result()
        .context("storing the uploaded payload")?;
    Ok(Stored {
        token: accepted.token,
        plaintext_len: accepted.stored_size.saturating_sub(OVERHEAD),
        transport: Transport::Streamed,
    })
}

/// Fetches `token` and decrypts it into `target`, inline or streamed as the engine
/// delivers it (`output_type` 0 or 1).
pub async fn fetch(
    profile: &LocalProfile,
    token: &str,
    target: &Target,
) -> anyhow::Result<Fetched> {
    let key = profile.data_key()?;
    let (me, session) = connect(profile).await?;
    let request = me.request_data(token).await?;
    session
        .wait_command(&request.command_id, ACK_WAIT)
        .await?
        .result()
        .context("requesting the data")?;
    // The delivery precedes the command's final status on the channel.
    let events = session.events_for(&request.request_id);
    let delivery = events
        .iter()
        .find(|e| e["type"] == "X-DPT-CAB-REQUEST-ID")
        .context("the request succeeded without delivering the data")?;
    match delivery["output_type"].as_u64() {
        Some(0) => {
            let payload = base64::engine::general_purpose::STANDARD
                .decode(delivery["body"].as_str().unwrap_or_default())
                .context("the inline delivery is not base64")?;
            // Checked before anything is written, so standard output gets nothing on failure.
            let plaintext_len = layer1::decrypt(&key, &payload)?.len() as u64;
            write_verified(&key, target, |out| async move {
                let mut out = out;
                out.write_all(&payload).await?;
                Ok(out)
            })
            .await?;
            Ok(Fetched {
                plaintext_len,
                transport: Transport::Inline,
            })
        }
        Some(1) => {
            // STREAM-READY repeats the URL; without it yet, the download listener waits
            // for readiness itself (§3.6).
            let url = events
                .iter()
                .find(|e| e["type"] == "STREAM-READY")
                .and_then(|ready| ready["streamUrl"].as_str())
                .or_else(|| delivery["body"].as_str())
                .context("the stream delivery carries no URL")?
                .to_owned();
            let size = delivery["size"].as_u64();
            let bar = progress::bar(size, "downloading");
            let fetched = write_verified(&key, target, |out| {
                let bar = bar.clone();
                async move {
                    let mut counted = Counted::new(out, bar);
                    me.download_stream(&url, &mut counted).await?;
                    Ok(counted.into_inner())
                }
            })
            .await;
            bar.finish_and_clear();
            Ok(Fetched {
                plaintext_len: fetched?,
                transport: Transport::Streamed,
            })
        }
        other => anyhow::bail!("unknown output_type {other:?} in the delivery"),
    }
}

/// The boxed writer `write_verified` hands to its source.
type Sink = Box<dyn AsyncWrite + Send + Unpin>;

/// Runs `source`, which writes the layer-1 payload into the writer it is given, decrypts
/// it on the way into `target` and checks the tag; the plaintext length.
///
/// A file target is written as a temporary file in the same directory (mode 0600) and
/// renamed over `target` only after the tag verified; on any failure it is removed and
/// `target` is left as it was. Standard output receives the plaintext as it is decrypted;
/// when the tag then fails, the error says how many bytes were written, to be discarded.
pub async fn write_verified<F, Fut>(
    key: &[u8; 32],
    target: &Target,
    source: F,
) -> anyhow::Result<u64>
where
    F: FnOnce(DecryptWriter<Sink>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<DecryptWriter<Sink>>>,
{
    match target {
        Target::File(path) => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let partial = tempfile::Builder::new()
                .prefix(".privicore-fetch-")
                .suffix(".part")
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let file = tokio::fs::File::from_std(partial.as_file().try_clone()?);
            let writer: Sink = Box::new(tokio::io::BufWriter::with_capacity(256 * 1024, file));
            let written = source(DecryptWriter::new(key, writer))
                .await
                .with_context(|| format!("fetching into {} (nothing written)", path.display()))?;
            let (mut out, len) = written.finish().await.with_context(|| {
                format!(
                    "the fetched data did not verify; {} was not written",
                    path.display()
                )
            })?;
            out.shutdown().await?;
            drop(out);
            partial.as_file().sync_all()?;
            partial
                .persist(path)
                .with_context(|| format!("renaming the fetched file to {}", path.display()))?;
            Ok(len)
        }
        Target::Stdout => {
            let writer: Sink = Box::new(tokio::io::stdout());
            let written = source(DecryptWriter::new(key, writer)).await;
            let written = match written {
                Ok(w) => w,
                Err(e) => {
                    return Err(e.context(
                        "the fetch broke off: what was written to standard output is incomplete and must be discarded",
                    ));
                }
            };
            let decrypted = written.decrypted();
            let (mut out, len) = written.finish().await.map_err(|e| {
                anyhow::Error::new(e).context(format!(
                    "the fetched data did not verify: discard the {decrypted} bytes written to standard output"
                ))
            })?;
            out.flush().await?;
            Ok(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 32] {
        [4u8; 32]
    }

    async fn into_file(payload: Vec<u8>, path: &Path) -> anyhow::Result<u64> {
        write_verified(
            &key(),
            &Target::File(path.to_path_buf()),
            |mut out| async move {
                // Several writes, as a download would make them.
                for piece in payload.chunks(1000) {
                    out.write_all(piece).await?;
                }
                Ok(out)
            },
        )
        .await
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_verified_payload_is_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let plaintext: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let len = into_file(layer1::encrypt(&key(), &plaintext), &path)
            .await
            .unwrap();
        assert_eq!(len, 100_000);
        assert_eq!(std::fs::read(&path).unwrap(), plaintext);
        assert_eq!(leftovers(dir.path()), ["out.bin"]);
    }

    #[tokio::test]
    async fn a_tampered_payload_leaves_no_file_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let mut payload = layer1::encrypt(&key(), &[9u8; 50_000]);
        payload[30_000] ^= 0x40;
        let err = into_file(payload.clone(), &path).await.unwrap_err();
        assert!(format!("{err:#}").contains("did not verify"), "{err:#}");
        assert!(
            leftovers(dir.path()).is_empty(),
            "{:?}",
            leftovers(dir.path())
        );

        std::fs::write(&path, b"earlier").unwrap();
        into_file(payload, &path).await.unwrap_err();
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier");
        assert_eq!(leftovers(dir.path()), ["out.bin"]);
    }

    #[tokio::test]
    async fn a_broken_off_source_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let payload = layer1::encrypt(&key(), &[1u8; 10_000]);
        let err = write_verified(&key(), &Target::File(path.clone()), |mut out| async move {
            out.write_all(&payload[..5000]).await?;
            anyhow::bail!("connection reset")
        })
        .await
        .unwrap_err();
        assert!(format!("{err:#}").contains("connection reset"), "{err:#}");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn the_inline_limit_counts_the_iv_and_tag() {
        assert_eq!(INLINE_PLAINTEXT_MAX + 28, 1024 * 1024);
        assert_eq!(layer1::encrypted_len(INLINE_PLAINTEXT_MAX), INLINE_MAX);
        assert!(commit_wait(10 << 30) > commit_wait(0));
    }
}
