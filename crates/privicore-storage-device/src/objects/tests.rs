use super::*;
use sha2::{Digest, Sha256};

const TOKEN: &str = "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5";
const OTHER: &str = "dtk-00000000-b367-4bfa-9f8c-ceb00d813be5";

fn object(token: &str, version: u32, chunks: &[Vec<u8>]) -> ObjectInfo {
    let mut h = Sha256::new();
    chunks.iter().for_each(|c| h.update(c));
    ObjectInfo {
        token: token.into(),
        version,
        chunk_count: chunks.len() as u32,
        digest: h.finalize().into(),
        layer2_header: vec![0; 30],
    }
}

/// The store in `dir`, under one fixed device master key.
fn open(dir: &tempfile::TempDir) -> ObjectStore {
    ObjectStore::open(dir.path(), [1; 32]).unwrap()
}

fn segment_files(root: &Path) -> Vec<PathBuf> {
    list_segments(&root.join(SEGMENTS))
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn put_read_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![1u8; 20], vec![2u8; 20], vec![3u8; 5]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    store
        .put(&object(TOKEN, 2, &chunks[..1]), &chunks[..1])
        .unwrap();
    assert_eq!(
        store.read(TOKEN, 1, 1, 8).unwrap(),
        (3, chunks[1..].to_vec())
    );
    assert_eq!(store.read(TOKEN, 3, 0, 8), Err(ReadError::NotFound));
    assert_eq!(
        store.read("../../etc/passwd", 1, 0, 8),
        Err(ReadError::NotFound)
    );
    drop(store);

    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 2);
    let (items, cursor) = reopened.inventory(None, 1, true);
    assert_eq!((items.len(), cursor.as_deref()), (1, Some("1")));
    assert_eq!(items[0].status, "ok");
    let (items, cursor) = reopened.inventory(cursor.as_deref(), 1, false);
    assert_eq!((items.len(), cursor), (1, None));

    assert_eq!(reopened.delete(TOKEN, Some(&[1])), vec![1]);
    assert_eq!(reopened.delete(TOKEN, None), vec![2]);
    assert_eq!(reopened.object_count(), 0);
    drop(reopened);
    assert_eq!(
        ObjectStore::open(dir.path(), [1; 32])
            .unwrap()
            .object_count(),
        0
    );
}

#[test]
fn a_batch_is_one_append_and_unsafe_tokens_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = vec![vec![9u8; 100]];
    let a = object(TOKEN, 1, &chunks);
    let bad = object("../escape", 1, &chunks);
    let b = object(OTHER, 1, &chunks);
    let results = store.put_many(&[(&a, &chunks), (&bad, &chunks), (&b, &chunks)]);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(store.read(OTHER, 1, 0, 1).unwrap().1, chunks);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn a_damaged_record_reads_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![1u8; 20]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    let at = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    let mut bytes = std::fs::read(&at.segment).unwrap();
    bytes[(at.offset + at.len - 1) as usize] ^= 0xff;
    std::fs::write(&at.segment, bytes).unwrap();
    assert_eq!(store.read(TOKEN, 1, 0, 1), Err(ReadError::Corrupt(Some(0))));
    assert_eq!(store.inventory(None, 10, true).0[0].status, "corrupt");
}

#[test]
fn a_torn_tail_is_cut_off_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![1u8; 50]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    store.put(&object(OTHER, 1, &chunks), &chunks).unwrap();
    drop(store);
    // The last 10 bytes of the second record never reached the disk: in a preallocated
    // segment they read as zeros.
    let at = ObjectStore::locate(dir.path(), OTHER, 1).unwrap().unwrap();
    File::options()
        .write(true)
        .open(&at.segment)
        .unwrap()
        .write_all_at(&[0; 10], at.offset + at.len - 10)
        .unwrap();
    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 1);
    assert_eq!(reopened.read(TOKEN, 1, 0, 1).unwrap().1, chunks);
    // The next write lands where the torn record was, and survives another reopen.
    reopened.put(&object(OTHER, 1, &chunks), &chunks).unwrap();
    drop(reopened);
    let again = open(&dir);
    assert_eq!(again.object_count(), 2);
    assert_eq!(again.read(OTHER, 1, 0, 1).unwrap().1, chunks);
}

#[test]
fn segments_grow_in_preallocated_steps_and_reopen_past_the_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![7u8; 100]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    let segment = segment_files(dir.path())[0].clone();
    let len = || std::fs::metadata(&segment).unwrap().len();
    let allocated = len();
    assert!(allocated >= PREALLOCATE / 2, "{allocated}");
    store.put(&object(TOKEN, 2, &chunks), &chunks).unwrap();
    assert_eq!(
        len(),
        allocated,
        "a write inside the allocation does not grow the file"
    );
    drop(store);

    let reopened = open(&dir);
    assert_eq!(
        len(),
        allocated,
        "zeros after the records are not a torn tail"
    );
    assert_eq!(reopened.object_count(), 2);
    reopened.put(&object(OTHER, 1, &chunks), &chunks).unwrap();
    drop(reopened);
    let again = open(&dir);
    assert_eq!(again.object_count(), 3);
    for (token, version) in [(TOKEN, 1), (TOKEN, 2), (OTHER, 1)] {
        assert_eq!(again.read(token, version, 0, 1).unwrap().1, chunks);
    }
}

#[test]
fn a_batch_larger_than_one_step_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![3u8; PREALLOCATE as usize + 10]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    let segment = segment_files(dir.path())[0].clone();
    let allocated = std::fs::metadata(&segment).unwrap().len();
    assert!(allocated >= PREALLOCATE * 3 / 2, "{allocated}");
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.read(TOKEN, 1, 0, 1).unwrap().1, chunks);
}

#[test]
fn deleted_bytes_are_erased_and_empty_segments_removed() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![0x5au8; 64]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    let at = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    assert_eq!(store.delete(TOKEN, None), vec![1]);
    assert_eq!(ObjectStore::locate(dir.path(), TOKEN, 1).unwrap(), None);
    let bytes = std::fs::read(&at.segment).unwrap();
    assert!(
        bytes[at.offset as usize..(at.offset + at.len) as usize]
            .iter()
            .all(|b| *b == 0)
    );
    // A full segment whose records are all erased goes away once it is not the active one.
    {
        let mut inner = store.lock();
        inner.active_len = SEGMENT_ROLL;
    }
    store.put(&object(OTHER, 1, &chunks), &chunks).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 2);
    store.put(&object(TOKEN, 2, &chunks), &chunks).unwrap();
    drop(store);
    let reopened = open(&dir);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(reopened.object_count(), 2);
}

#[test]
fn files_of_earlier_builds_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![7u8; 30]];
    let info = object(TOKEN, 3, &chunks);
    let legacy = dir.path().join("objects").join(TOKEN);
    std::fs::create_dir_all(&legacy).unwrap();
    std::fs::write(
        legacy.join("3.pvd"),
        at_rest::encode(&[1; 32], &info, &chunks),
    )
    .unwrap();
    let store = open(&dir);
    assert_eq!(store.read(TOKEN, 3, 0, 1).unwrap().1, chunks);
    assert!(!dir.path().join("objects").exists());
}

proptest::proptest! {
    /// Whatever bytes a segment holds, opening and reading never panics.
    #[test]
    fn arbitrary_segments_never_panic(garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..400), keep in 0usize..200) {
        let dir = tempfile::tempdir().unwrap();
        let chunks = vec![vec![1u8; 40]];
        {
            let store = open(&dir);
            store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
        }
        let segment = segment_files(dir.path())[0].clone();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes.truncate(keep.min(bytes.len()));
        bytes.extend_from_slice(&garbage);
        std::fs::write(&segment, bytes).unwrap();
        let store = open(&dir);
        let _ = store.read(TOKEN, 1, 0, 1);
        let _ = store.inventory(None, 10, true);
    }
}

#[test]
fn a_mostly_erased_segment_is_compacted_into_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![0x33u8; 200]];
    let token = |i: u32| format!("dtk-{i:08x}-b367-4bfa-9f8c-ceb00d813be5");
    let store = open(&dir);
    for i in 0..4 {
        store.put(&object(&token(i), 1, &chunks), &chunks).unwrap();
    }
    store.lock().active_len = SEGMENT_ROLL;
    store.put(&object(&token(9), 1, &chunks), &chunks).unwrap();
    let first = segment_files(dir.path())[0].clone();
    assert_eq!(store.delete(&token(0), None), vec![1]);
    assert_eq!(store.delete(&token(1), None), vec![1]);
    assert!(first.exists(), "half live: kept");
    assert_eq!(store.delete(&token(2), None), vec![1]);
    assert!(!first.exists(), "a quarter live: compacted away");
    assert_eq!(store.read(&token(3), 1, 0, 1).unwrap().1, chunks);
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 2);
    assert_eq!(reopened.read(&token(3), 1, 0, 1).unwrap().1, chunks);
    assert_eq!(reopened.read(&token(9), 1, 0, 1).unwrap().1, chunks);
    assert_eq!(reopened.inventory(None, 10, true).0.len(), 2);
}

#[test]
fn segment_files_are_opened_on_use_and_released_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let chunks = vec![vec![5u8; 64]];
    let store = open(&dir);
    store.put(&object(TOKEN, 1, &chunks), &chunks).unwrap();
    assert_eq!(store.open_handles(), 1);
    store.release_handles();
    assert_eq!(store.open_handles(), 0);
    assert_eq!(store.read(TOKEN, 1, 0, 1).unwrap(), (1, chunks.clone()));
    assert_eq!(store.open_handles(), 1, "a read opens the segment again");
    drop(store);

    let reopened = open(&dir);
    assert_eq!(
        reopened.open_handles(),
        0,
        "opening indexes without keeping files open"
    );
    reopened.put(&object(OTHER, 1, &chunks), &chunks).unwrap();
    assert_eq!(reopened.delete(TOKEN, None), vec![1]);
    assert_eq!(reopened.read(OTHER, 1, 0, 1).unwrap(), (1, chunks));
}
