//! Stores one large object in a storage device the way the bus delivers it (1 MiB layer-2
//! chunks, eight messages per batch), fetches it back in windows of eight, verifies it and
//! reopens the device, printing the peak resident memory of each phase (10 GiB on the
//! development VM: 13 MiB at most, store 150 MiB/s, fetch 330 MiB/s, verify 380 MiB/s):
//!
//! `cargo run --release -p privicore-storage-device --example large_object -- <MiB> [dir]`
//!
//! The chunks are generated, not sealed by an engine: the device never opens layer 2.

use privicore_storage_device::{DeviceIdentity, StorageDevice};
use privicore_wire::KeyPair;
use privicore_wire::bus::{self, Envelope, kind};
use sha2::{Digest, Sha256};
use std::time::Instant;

const TOKEN: &str = "dtk-00000000-0000-4000-8000-00000000b16b";
const CHUNK: usize = (1 << 20) + 16;

/// Chunk `i` of `count`: pseudo-random bytes, the last one shorter.
fn chunk(i: u32, count: u32) -> Vec<u8> {
    let len = if i + 1 == count { CHUNK / 3 } else { CHUNK };
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn phase(name: &str, started: Instant, bytes: u64) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:<10} {secs:>7.1} s  {:>7.0} MiB/s  peak RSS {:>6} MiB",
        bytes as f64 / secs / f64::from(1 << 20),
        peak_kib() / 1024
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1024);
    let temp = tempfile::tempdir().expect("temporary directory");
    let dir = args
        .next()
        .map_or_else(|| temp.path().to_path_buf(), Into::into);
    let engine = KeyPair::generate().public().clone();
    let count = mib.max(2);
    let total: u64 = (0..count).map(|i| chunk(i, count).len() as u64).sum();

    let mut h = Sha256::new();
    (0..count).for_each(|i| h.update(chunk(i, count)));
    let sha256 = hex::encode(h.finalize());
    println!("object: {count} chunks, {} MiB", total >> 20);

    let identity = DeviceIdentity::load_or_create(&dir, "dev-bench", engine.clone()).unwrap();
    let mut device = StorageDevice::open(&dir, identity).unwrap();
    reset_peak();
    let started = Instant::now();
    let mut answers = Vec::new();
    for first in (0..count).step_by(8) {
        let batch = (first..(first + 8).min(count))
            .map(|i| {
                let body = bus::StoreChunk {
                    transfer_id: "bench".into(),
                    token: TOKEN.into(),
                    version: 1,
                    chunk_index: i,
                    chunk_count: count,
                    total_size: total,
                    sha256: sha256.clone(),
                    header: vec![0; 130],
                    data: chunk(i, count).into(),
                };
                Envelope::new(kind::STORE_CHUNK, "dev-bench", None, body)
            })
            .collect();
        answers.extend(device.handle_batch(batch).replies);
    }
    assert_eq!(answers.len(), 1, "one answer, after the last chunk");
    assert_eq!(answers[0].kind, kind::STORED, "stored");
    phase("store", started, total);

    reset_peak();
    let started = Instant::now();
    let mut h = Sha256::new();
    for from in (0..count).step_by(8) {
        let fetch = bus::Fetch {
            fetch_id: "f".into(),
            token: TOKEN.into(),
            version: 1,
            from_chunk: from,
            count: 8,
        };
        let handled = device.handle(Envelope::new(kind::FETCH, "dev-bench", None, fetch));
        for mut reading in handled.reads {
            while let Some(reply) = device.next_reply(&mut reading) {
                h.update(reply.into_body::<bus::FetchChunk>().expect("a chunk").data);
            }
        }
    }
    assert_eq!(hex::encode(h.finalize()), sha256, "read back whole");
    phase("fetch", started, total);

    reset_peak();
    let started = Instant::now();
    let (items, _) = device.objects().inventory(None, 10, true);
    assert_eq!(items[0].status, "ok");
    phase("verify", started, total);

    drop(device);
    reset_peak();
    let started = Instant::now();
    let identity = DeviceIdentity::load_or_create(&dir, "dev-bench", engine).unwrap();
    let device = StorageDevice::open(&dir, identity).unwrap();
    assert_eq!(device.objects().object_count(), 1);
    phase("reopen", started, 0);
    // Offsets past 4 GiB survive the record header on disk.
    for i in [0, count - 1] {
        let (_, read) = device.objects().read(TOKEN, 1, i, 1).unwrap();
        assert_eq!(read[0], chunk(i, count), "chunk {i} after reopen");
    }
}
