//! `privicore bench stream --size 1GiB`: one large object stored and fetched through the
//! upstream and downstream listeners, encrypted and decrypted (layer 1) on the client as
//! the bytes go by, as `privicore store` / `privicore fetch` do. Starts its own engine with
//! three hosted storage devices (`--devices`) and prints the throughput both ways, the
//! engine's resident memory idle and at its peak during the run, and the sequential write
//! speed of the disk under the engine's data directory, which bounds what the engine can
//! reach (every stored byte is written to the engine's spool and to each device).

use super::{BenchArgs, reference_ms, setup, spawn_engine};
use crate::cli::layer1::{self, DecryptWriter, EncryptReader};
use anyhow::Context as _;
use privicore_client::ACK_WAIT;
use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The size written to measure the disk (or the object's size, when smaller).
const DISK_PROBE: u64 = 256 * 1024 * 1024;
/// How often the engine's resident memory is sampled during the run.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// A plaintext of `len` bytes that repeats one random mebibyte, made as it is read: the
/// bench holds no copy of the object.
struct Pattern {
    block: Arc<Vec<u8>>,
    at: u64,
    len: u64,
}

impl Pattern {
    fn new(block: Arc<Vec<u8>>, len: u64) -> Self {
        Self { block, at: 0, len }
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let offset = (this.at % this.block.len() as u64) as usize;
        let n = (this.block.len() - offset)
            .min(buf.remaining())
            .min((this.len - this.at) as usize);
        buf.put_slice(&this.block[offset..offset + n]);
        this.at += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Takes the fetched plaintext and checks it against the pattern without keeping it.
struct Compare {
    block: Arc<Vec<u8>>,
    at: u64,
    differs: bool,
}

impl AsyncWrite for Compare {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut rest = buf;
        while !rest.is_empty() {
            let offset = (this.at % this.block.len() as u64) as usize;
            let n = (this.block.len() - offset).min(rest.len());
            this.differs |= rest[..n] != this.block[offset..offset + n];
            this.at += n as u64;
            rest = &rest[n..];
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Resident memory now and at its peak since the process started (KiB), from
/// `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// The highest resident memory sampled while the run goes on.
struct RssPeak {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: std::thread::JoinHandle<()>,
}

impl RssPeak {
    /// Samples on a thread of its own: the bench's runtime is busy encrypting.
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (peak, halt) = (peak_kib.clone(), stop.clone());
        let sampler = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(RSS_EVERY);
            }
        });
        Self {
            peak_kib,
            stop,
            sampler,
        }
    }

    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sampler.join();
        self.peak_kib.load(Ordering::Relaxed)
    }
}

/// Sequential write speed of the disk under `dir` in bytes per second: `len` bytes in
/// 1 MiB writes, then fsync, timed together; the file is removed afterwards.
fn disk_write_speed(dir: &Path, len: u64) -> anyhow::Result<f64> {
    let path = dir.join("bench-disk-probe.bin");
    let block: Vec<u8> = (0..1024 * 1024).map(|_| rand::random::<u8>()).collect();
    let started = Instant::now();
    let written = (|| -> io::Result<()> {
        let mut file = std::fs::File::create(&path)?;
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            file.write_all(&block[..n])?;
            left -= n as u64;
        }
        file.sync_all()
    })();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    written.with_context(|| format!("writing {}", path.display()))?;
    Ok(len as f64 / elapsed.as_secs_f64())
}

fn mb(bytes_per_second: f64) -> String {
    format!("{:.1} MB/s", bytes_per_second / 1e6)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A byte count in binary units, for the report.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.api.is_none() && args.ws.is_none(),
        "bench stream starts its own engine (it reads the engine's /proc entries and measures its disk)"
    );
    let size = args.size.map_or(64 * 1024 * 1024, |s| s as u64);
    anyhow::ensure!(
        size <= layer1::MAX_PLAINTEXT,
        "--size is above what one payload can carry"
    );
    let (engine, api, ws) = spawn_engine()?;
    let pid = engine.child.id();
    println!(
        "privicore bench stream: one object of {} ({size} B) stored and fetched through the upstream and downstream listeners, layer 1 on the client, {} hosted storage devices",
        human_size(size),
        args.devices
    );
    println!(
        "machine reference: {:.1} ms (a fixed single-threaded workload; lower is faster)",
        reference_ms()
    );
    let probe = DISK_PROBE.min(size.max(1024 * 1024));
    let dir = engine.dir.path().to_path_buf();
    let disk = tokio::task::spawn_blocking(move || disk_write_speed(&dir, probe)).await??;
    println!(
        "disk: sequential write of {} with fsync in the engine's data directory: {}",
        human_size(probe),
        mb(disk)
    );

    let b = setup(&api, &ws, args.devices).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = rss_kib(pid)?;
    println!(
        "engine idle rss: {} (with the profile and its devices)",
        mib(idle)
    );

    let mut block = vec![0u8; 1024 * 1024];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut block);
    let block = Arc::new(block);
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut *key);
    let storing = RssPeak::start(pid);

    // Store: reserve → temporary token → upload (encrypting as it is read) → commit.
    let reserved = b.api.reserve_token_space("/bench", None).await?;
    b.session
        .wait_command(&reserved.command_id, ACK_WAIT)
        .await?
        .result()?;
    let temporary = b.api.temporary_data_token(&reserved.command_id).await?;
    let url = temporary["streamUrl"]
        .as_str()
        .context("the temporary token came without a streamUrl")?;
    let payload_len = layer1::encrypted_len(size);
    let started = Instant::now();
    let body = EncryptReader::new(&key, Pattern::new(block.clone(), size));
    let accepted = b
        .api
        .upload_stream(url, body, Some(payload_len))
        .await
        .context("uploading")?;
    let uploaded = started.elapsed();
    anyhow::ensure!(
        accepted.stored_size == payload_len,
        "the engine stored {} bytes of {payload_len}",
        accepted.stored_size
    );
    b.session
        .wait_command(
            &accepted.command_id,
            ACK_WAIT + Duration::from_secs(size / (4 * 1024 * 1024)),
        )
        .await?
        .result()
        .context("committing the upload")?;
    let committed = started.elapsed();
    let store_peak = storing.finish();
    println!(
        "store  {}: upload {} ({:.2} s to the 202), stored {} ({:.2} s to the commit)",
        human_size(size),
        mb(payload_len as f64 / uploaded.as_secs_f64()),
        uploaded.as_secs_f64(),
        mb(payload_len as f64 / committed.as_secs_f64()),
        committed.as_secs_f64()
    );

    // Fetch: request-data → STREAM-READY → download, decrypting and comparing as it arrives.
    let fetching = RssPeak::start(pid);
    let started = Instant::now();
    let request = b.api.request_data(&accepted.token).await?;
    b.session
        .wait_command(&request.command_id, ACK_WAIT)
        .await?
        .result()
        .context("requesting the data")?;
    let requested = started.elapsed();
    let events = b.session.events_for(&request.request_id);
    let delivery = events
        .iter()
        .find(|e| e["type"] == "X-DPT-CAB-REQUEST-ID")
        .context("the request succeeded without delivering the data")?;
    anyhow::ensure!(
        delivery["output_type"] == 1,
        "the engine did not stream the object (output_type {})",
        delivery["output_type"]
    );
    let ready = events.iter().any(|e| e["type"] == "STREAM-READY");
    let url = delivery["body"]
        .as_str()
        .context("the stream delivery carries no URL")?
        .to_owned();
    let compare = Compare {
        block: block.clone(),
        at: 0,
        differs: false,
    };
    let mut decrypting = DecryptWriter::new(&key, compare);
    let received = b
        .api
        .download_stream(&url, &mut decrypting)
        .await
        .context("downloading")?;
    let (compare, plaintext) = decrypting.finish().await?;
    let fetched = started.elapsed();
    anyhow::ensure!(
        received == payload_len && plaintext == size && !compare.differs,
        "the fetched object differs from the stored one"
    );
    let fetch_peak = fetching.finish();
    println!(
        "fetch  {}: {} ({:.2} s, request-data answered after {:.0} ms{}), tag verified, content identical",
        human_size(size),
        mb(payload_len as f64 / fetched.as_secs_f64()),
        fetched.as_secs_f64(),
        requested.as_secs_f64() * 1000.0,
        if ready { " with STREAM-READY" } else { "" }
    );
    let (_, lifetime_peak) = rss_kib(pid)?;
    let (_, client_peak) = rss_kib(std::process::id())?;
    println!(
        "engine rss: idle {}, peak during the run {} (storing {}, fetching {}; sampled every {} ms; VmHWM since start {}) | bench client VmHWM {} | disk {}",
        mib(idle),
        mib(store_peak.max(fetch_peak)),
        mib(store_peak),
        mib(fetch_peak),
        RSS_EVERY.as_millis(),
        mib(lifetime_peak),
        mib(client_peak),
        mb(disk)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_pattern_repeats_its_block_and_compare_recognises_it() {
        let block = Arc::new((0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let mut data = Vec::new();
        Pattern::new(block.clone(), 2_500)
            .read_to_end(&mut data)
            .await
            .unwrap();
        assert_eq!(data.len(), 2_500);
        assert_eq!(data[..1000], block[..]);
        assert_eq!(data[2000..], block[..500]);

        let mut same = Compare {
            block: block.clone(),
            at: 0,
            differs: false,
        };
        for piece in data.chunks(333) {
            same.write_all(piece).await.unwrap();
        }
        assert!(!same.differs);
        data[1700] ^= 1;
        let mut other = Compare {
            block,
            at: 0,
            differs: false,
        };
        other.write_all(&data).await.unwrap();
        assert!(other.differs);
    }

    #[test]
    fn the_disk_probe_writes_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let speed = disk_write_speed(dir.path(), 3 * 1024 * 1024 + 17).unwrap();
        assert!(speed > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn sizes_read_back_in_binary_units() {
        assert_eq!(human_size(1000), "1000 B");
        assert_eq!(human_size(64 << 20), "64.00 MiB");
        assert_eq!(human_size(1 << 30), "1.00 GiB");
    }
}
