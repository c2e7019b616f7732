use super::*;
use crate::at_rest::ObjectInfo;
use privicore_wire::KeyPair;
use sha2::{Digest, Sha256};
use std::time::Duration;

const TOKEN: &str = "dtk-00000000-0000-4000-8000-0000000000aa";

fn device(dir: &tempfile::TempDir) -> StorageDevice {
    let engine = KeyPair::generate().public().clone();
    let identity = DeviceIdentity::load_or_create(dir.path(), "dev-1", engine).unwrap();
    StorageDevice::open(dir.path(), identity).unwrap()
}

/// Sealed-chunk stand-ins: every chunk but the last `len` bytes, as layer 2 cuts them.
fn chunks(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| vec![i as u8; if i + 1 == count { len / 2 } else { len }])
        .collect()
}

fn digest(chunks: &[Vec<u8>]) -> String {
    let mut h = Sha256::new();
    chunks.iter().for_each(|c| h.update(c));
    hex::encode(h.finalize())
}

fn store_chunk(transfer: &str, chunks: &[Vec<u8>], index: usize) -> Envelope {
    Envelope::new(
        kind::STORE_CHUNK,
        "dev-1",
        None,
        bus::StoreChunk {
            transfer_id: transfer.into(),
            token: TOKEN.into(),
            version: 1,
            chunk_index: index as u32,
            chunk_count: chunks.len() as u32,
            total_size: chunks.iter().map(|c| c.len() as u64).sum(),
            sha256: digest(chunks),
            header: vec![1, 2, 3],
            data: chunks[index].clone().into(),
        },
    )
}

fn fetch_window(from: u32, count: u32) -> Envelope {
    Envelope::new(
        kind::FETCH,
        "dev-1",
        None,
        bus::Fetch {
            fetch_id: "f".into(),
            token: TOKEN.into(),
            version: 1,
            from_chunk: from,
            count,
        },
    )
}

fn staged_files(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path().join("staging")).map_or(0, |d| d.count())
}

#[test]
fn a_many_chunk_object_is_staged_on_disk_and_answered_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = device(&dir);
    let chunks = chunks(6, 70 * 1024);
    for i in 0..5 {
        let handled = device.handle(store_chunk("t1", &chunks, i));
        assert!(
            handled.replies.is_empty(),
            "no answer before the last chunk"
        );
    }
    assert_eq!((device.transfers_in_progress(), staged_files(&dir)), (1, 1));
    let handled = device.handle(store_chunk("t1", &chunks, 5));
    let stored = handled.replies[0].body::<bus::Stored>().unwrap();
    assert_eq!(stored.sha256, digest(&chunks));
    assert!(stored.bytes_stored > 5 * 70 * 1024);
    assert_eq!((device.transfers_in_progress(), staged_files(&dir)), (0, 0));

    // A window of a large object is answered a chunk at a time.
    let mut handled = device.handle(fetch_window(2, 8));
    assert!(handled.replies.is_empty());
    let mut reading = handled.reads.pop().unwrap();
    let mut got = Vec::new();
    while let Some(reply) = device.next_reply(&mut reading) {
        let chunk = reply.body::<bus::FetchChunk>().unwrap();
        assert_eq!(
            (chunk.chunk_index, chunk.chunk_count),
            (got.len() as u32 + 2, 6)
        );
        got.push(chunk.data);
    }
    assert_eq!(got, chunks[2..]);

    // The same object sent again is answered at its last chunk only.
    assert!(
        device
            .handle(store_chunk("t2", &chunks, 0))
            .replies
            .is_empty()
    );
    let again = device.handle(store_chunk("t2", &chunks, 5));
    assert_eq!(
        again.replies[0].body::<bus::Stored>().unwrap().bytes_stored,
        0
    );
    assert_eq!(device.transfers_in_progress(), 0);
}

#[test]
fn chunks_in_any_order_make_the_object_and_a_wrong_digest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = device(&dir);
    let chunks = chunks(5, 1000);
    let mut replies = Vec::new();
    for i in [4, 2, 2, 0, 3, 1] {
        replies.extend(device.handle(store_chunk("t1", &chunks, i)).replies);
    }
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].kind, kind::STORED);
    assert_eq!(device.objects().read(TOKEN, 1, 0, 8).unwrap().1, chunks);

    let mut forged = chunks.clone();
    forged[1][0] ^= 1;
    let other = "dtk-00000000-0000-4000-8000-0000000000bb";
    let mut last = None;
    for i in 0..5 {
        let mut env = store_chunk("t3", &forged, i);
        let mut body = env.into_body::<bus::StoreChunk>().unwrap();
        body.token = other.into();
        body.sha256 = digest(&chunks);
        env = Envelope::new(kind::STORE_CHUNK, "dev-1", None, body);
        last = device.handle(env).replies.pop();
    }
    let failed = last.unwrap().body::<bus::StoreFailed>().unwrap();
    assert_eq!(failed.reason, "digest_mismatch");
    assert_eq!(device.objects().digest_of(other, 1), None);
    assert_eq!(staged_files(&dir), 0);
}

#[test]
fn an_idle_transfer_is_discarded_and_answered_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let mut device = device(&dir);
    let chunks = chunks(3, 100);
    let first = store_chunk("t1", &chunks, 0);
    let id = first.message_id.clone();
    assert!(device.handle(first).replies.is_empty());
    let mut out = Handled::default();
    device.sweep_staging(Instant::now(), &mut out);
    assert!(out.replies.is_empty(), "not idle yet");
    device.sweep_staging(Instant::now() + Duration::from_secs(601), &mut out);
    let reply = out.replies.pop().unwrap();
    assert_eq!(reply.correlation_id.as_deref(), Some(id.as_str()));
    let failed = reply.body::<bus::StoreFailed>().unwrap();
    assert_eq!(
        (failed.transfer_id.as_str(), failed.reason.as_str()),
        ("t1", "incomplete")
    );
    assert_eq!((device.transfers_in_progress(), staged_files(&dir)), (0, 0));
}

fn fetch(token: &str) -> Envelope {
    Envelope::new(
        kind::FETCH,
        "dev-1",
        None,
        bus::Fetch {
            fetch_id: "f".into(),
            token: token.into(),
            version: 1,
            from_chunk: 0,
            count: 1,
        },
    )
}

fn put(device: &StorageDevice, token: &str, size: usize) {
    let info = ObjectInfo {
        token: token.into(),
        version: 1,
        chunk_count: 1,
        digest: [7; 32],
        layer2_header: vec![1, 2, 3],
    };
    device.objects().put(&info, &[vec![9; size]]).unwrap();
}

#[test]
fn only_fetches_of_small_held_objects_count_as_small_reads() {
    let dir = tempfile::tempdir().unwrap();
    let engine = KeyPair::generate().public().clone();
    let identity = DeviceIdentity::load_or_create(dir.path(), "dev-1", engine).unwrap();
    let device = StorageDevice::open(dir.path(), identity).unwrap();
    let small = "dtk-00000000-0000-4000-8000-000000000001";
    let large = "dtk-00000000-0000-4000-8000-000000000002";
    let absent = "dtk-00000000-0000-4000-8000-000000000003";
    put(&device, small, 1024);
    put(&device, large, 100 * 1024);

    assert!(device.only_small_reads(&[fetch(small), fetch(small)]));
    assert!(!device.only_small_reads(&[fetch(large)]));
    assert!(!device.only_small_reads(&[fetch(absent)]));
    let store = Envelope::new(kind::DELETE, "dev-1", None, serde_json::json!({}));
    assert!(!device.only_small_reads(&[fetch(small), store]));
}

#[tokio::test]
async fn a_session_streams_a_large_fetch_and_stores_a_transfer_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let device = device(&dir);
    let (link, to_device, mut from_device) = crate::link::channel_pair();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let session = tokio::spawn(device.run(link, shutdown.clone()));
    assert_eq!(from_device.recv().await.unwrap().kind, kind::HELLO);

    let chunks = chunks(4, 100 * 1024);
    for i in 0..4 {
        to_device.send(store_chunk("t1", &chunks, i)).unwrap();
    }
    let stored = from_device.recv().await.unwrap();
    assert_eq!(stored.kind, kind::STORED);

    to_device.send(fetch_window(1, 8)).unwrap();
    for i in 1..4 {
        let reply = from_device.recv().await.unwrap();
        let chunk = reply.into_body::<bus::FetchChunk>().unwrap();
        assert_eq!(chunk.chunk_index, i);
        assert_eq!(chunk.data, chunks[i as usize]);
    }
    shutdown.cancel();
    assert!(matches!(session.await.unwrap(), SessionEnd::Shutdown));
    assert!(from_device.try_recv().is_err(), "nothing past the window");
}
