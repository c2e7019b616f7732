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

/// Sealed-chunk stand-ins as layer 2 cuts them: all `len` bytes but a shorter last one.
fn uniform_chunks(count: usize, len: usize, seed: u8) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let n = if i + 1 == count { len / 3 + 1 } else { len };
            vec![seed.wrapping_add(i as u8); n]
        })
        .collect()
}

fn upload(store: &ObjectStore, info: &ObjectInfo, chunks: &[Vec<u8>], order: &[usize]) -> u64 {
    let mut up = store.begin_upload(info).unwrap();
    for (n, i) in order.iter().enumerate() {
        let complete = up.write(*i as u32, &chunks[*i]).unwrap();
        assert_eq!(
            complete,
            n + 1 == order.len(),
            "complete only after the last"
        );
    }
    store.finish_upload(up).unwrap()
}

fn staging_files(root: &Path) -> usize {
    std::fs::read_dir(root.join(upload::STAGING)).map_or(0, |d| d.count())
}

#[test]
fn an_upload_becomes_the_active_segment_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let small = vec![vec![4u8; 50]];
    store.put(&object(OTHER, 1, &small), &small).unwrap();
    let chunks = uniform_chunks(7, 3000, 1);
    let info = object(TOKEN, 1, &chunks);
    let order: Vec<usize> = (0..7).collect();
    let bytes = upload(&store, &info, &chunks, &order);
    assert_eq!(staging_files(dir.path()), 0);
    assert_eq!(store.stored_len(TOKEN, 1), Some(bytes - HEADER_LEN));
    assert_eq!(store.read(TOKEN, 1, 0, 8).unwrap(), (7, chunks.clone()));
    // Later one-chunk objects append to the segment the upload became.
    store.put(&object(OTHER, 2, &small), &small).unwrap();
    let at = ObjectStore::locate(dir.path(), OTHER, 2).unwrap().unwrap();
    assert_eq!(
        at.segment,
        ObjectStore::locate(dir.path(), TOKEN, 1)
            .unwrap()
            .unwrap()
            .segment
    );
    drop(store);

    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 3);
    assert_eq!(reopened.read(TOKEN, 1, 3, 2).unwrap().1, chunks[3..5]);
    let (items, _) = reopened.inventory(None, 10, true);
    assert!(items.iter().all(|i| i.status == "ok"), "{items:?}");
    assert_eq!(reopened.read(OTHER, 2, 0, 1).unwrap().1, small);
}

#[test]
fn chunks_out_of_order_and_repeated_make_the_same_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(6, 500, 9);
    let info = object(TOKEN, 2, &chunks);
    let mut up = store.begin_upload(&info).unwrap();
    for i in [5, 3, 3, 0, 5, 4, 2] {
        assert!(!up.write(i, &chunks[i as usize]).unwrap());
    }
    assert!(up.write(1, &chunks[1]).unwrap());
    store.finish_upload(up).unwrap();
    assert_eq!(store.read(TOKEN, 2, 0, 6).unwrap().1, chunks);
}

#[test]
fn an_upload_that_is_not_the_announced_object_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(3, 200, 0);
    let mut wrong = object(TOKEN, 1, &chunks);
    wrong.digest[0] ^= 1;
    let mut up = store.begin_upload(&wrong).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        up.write(i as u32, c).unwrap();
    }
    assert!(matches!(
        store.finish_upload(up),
        Err(UploadError::Mismatch)
    ));

    // Chunks that are not all the same length but the last are no layer-2 object.
    let mut up = store.begin_upload(&object(TOKEN, 1, &chunks)).unwrap();
    up.write(0, &chunks[0]).unwrap();
    assert!(matches!(up.write(1, &[1; 10]), Err(UploadError::Mismatch)));
    assert!(matches!(up.write(3, &[1; 10]), Err(UploadError::Mismatch)));
    // A transfer dropped unfinished takes its staging file with it.
    assert_eq!(staging_files(dir.path()), 1);
    drop(up);
    assert_eq!(staging_files(dir.path()), 0);
    assert_eq!(store.object_count(), 0);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[test]
fn staging_left_by_a_crash_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(3, 200, 0);
    let mut up = store.begin_upload(&object(TOKEN, 1, &chunks)).unwrap();
    up.write(0, &chunks[0]).unwrap();
    // The process dies: nothing runs the upload's drop.
    std::mem::forget(up);
    drop(store);
    assert_eq!(staging_files(dir.path()), 1);
    let reopened = open(&dir);
    assert_eq!(staging_files(dir.path()), 0);
    assert_eq!(reopened.object_count(), 0);
}

#[test]
fn a_torn_batch_after_an_upload_is_cut_and_the_upload_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(4, 1000, 2);
    let info = object(TOKEN, 1, &chunks);
    upload(&store, &info, &chunks, &[0, 1, 2, 3]);
    let small = vec![vec![8u8; 60]];
    store.put(&object(OTHER, 1, &small), &small).unwrap();
    drop(store);
    let at = ObjectStore::locate(dir.path(), OTHER, 1).unwrap().unwrap();
    File::options()
        .write(true)
        .open(&at.segment)
        .unwrap()
        .write_all_at(&[0; 10], at.offset + at.len - 10)
        .unwrap();
    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 1);
    assert_eq!(reopened.read(TOKEN, 1, 0, 4).unwrap().1, chunks);
    drop(reopened);

    // Now the upload ends the log. It was flushed whole before it was linked, so a damaged
    // chunk in it is damage, not a torn write: it is reported, never cut off (and opening
    // does not read the whole object to find out).
    let up = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    let file = File::options()
        .read(true)
        .write(true)
        .open(&up.segment)
        .unwrap();
    let mut byte = [0u8; 1];
    let inside_chunk_2 = up.offset + up.len - 600;
    file.read_exact_at(&mut byte, inside_chunk_2).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], inside_chunk_2)
        .unwrap();
    let again = open(&dir);
    assert_eq!(again.object_count(), 1);
    assert_eq!(again.read(TOKEN, 1, 0, 1).unwrap().1, chunks[..1]);
    assert_eq!(again.read(TOKEN, 1, 0, 4), Err(ReadError::Corrupt(Some(2))));
}

#[test]
fn an_uploaded_object_is_erased_and_its_segment_removed_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(3, 4000, 0x77);
    upload(&store, &object(TOKEN, 1, &chunks), &chunks, &[0, 1, 2]);
    let at = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    // A second upload closes the first one's segment.
    upload(&store, &object(TOKEN, 2, &chunks), &chunks, &[0, 1, 2]);
    assert!(at.segment.exists());
    assert_eq!(store.delete(TOKEN, Some(&[1])), vec![1]);
    assert!(!at.segment.exists(), "nothing live in a closed segment");
    // The active upload segment is erased in place.
    let active = ObjectStore::locate(dir.path(), TOKEN, 2).unwrap().unwrap();
    assert_eq!(store.delete(TOKEN, None), vec![2]);
    let bytes = std::fs::read(&active.segment).unwrap();
    assert!(bytes[active.offset as usize..].iter().all(|b| *b == 0));
    drop(store);
    assert_eq!(open(&dir).object_count(), 0);
}

#[test]
fn a_compaction_copies_an_uploaded_object_a_piece_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(3, PIECE as usize / 2, 0x21);
    upload(&store, &object(TOKEN, 1, &chunks), &chunks, &[0, 1, 2]);
    // Fill the upload's segment past half with one-chunk objects, then close it.
    let filler = vec![vec![1u8; PIECE as usize]];
    let token = |i: u32| format!("dtk-{i:08x}-b367-4bfa-9f8c-ceb00d813be5");
    for i in 0..3 {
        store.put(&object(&token(i), 1, &filler), &filler).unwrap();
    }
    store.lock().active_len = SEGMENT_ROLL;
    store.put(&object(OTHER, 1, &filler), &filler).unwrap();
    let first = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    for i in 0..3 {
        store.delete(&token(i), None);
    }
    assert!(!first.segment.exists(), "compacted away");
    assert_eq!(store.read(TOKEN, 1, 0, 3).unwrap().1, chunks);
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.read(TOKEN, 1, 0, 3).unwrap().1, chunks);
    assert!(
        reopened
            .inventory(None, 10, true)
            .0
            .iter()
            .all(|i| i.status == "ok")
    );
}

#[test]
fn a_deleted_upload_that_fills_the_active_segment_is_unlinked_not_zeroed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let chunks = uniform_chunks(3, 2000, 0x42);
    upload(&store, &object(TOKEN, 1, &chunks), &chunks, &[0, 1, 2]);
    let at = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    {
        // As if the upload were a large one: its segment is full.
        let mut inner = store.lock();
        let active = inner.active;
        inner.segments.get_mut(&active).unwrap().size = SEGMENT_ROLL;
    }
    assert_eq!(store.delete(TOKEN, None), vec![1]);
    assert!(
        !at.segment.exists(),
        "the log rolled over and the file went"
    );
    let small = vec![vec![1u8; 10]];
    store.put(&object(OTHER, 1, &small), &small).unwrap();
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 1);
    assert_eq!(reopened.read(OTHER, 1, 0, 1).unwrap().1, small);
}

#[test]
fn a_deleted_upload_with_objects_after_it_is_compacted_away_not_zeroed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let before = vec![vec![3u8; 10]];
    store.put(&object(OTHER, 1, &before), &before).unwrap();
    let first = segment_files(dir.path())[0].clone();
    let chunks = uniform_chunks(3, 5000, 0x42);
    upload(&store, &object(TOKEN, 1, &chunks), &chunks, &[2, 0, 1]);
    let at = ObjectStore::locate(dir.path(), TOKEN, 1).unwrap().unwrap();
    let trimmed = std::fs::metadata(&first).unwrap().len();
    let first_len = ObjectStore::locate(dir.path(), OTHER, 1).unwrap().unwrap();
    assert_eq!(
        trimmed,
        first_len.offset + first_len.len,
        "the closed segment lost its preallocated zeros"
    );
    let small = vec![vec![7u8; 30]];
    store.put(&object(OTHER, 2, &small), &small).unwrap();
    {
        // As if the upload were a large one: its segment is full.
        let mut inner = store.lock();
        let active = inner.active;
        inner.segments.get_mut(&active).unwrap().size = SEGMENT_ROLL;
    }
    assert_eq!(store.delete(TOKEN, None), vec![1]);
    assert!(!at.segment.exists(), "compacted into a new segment");
    assert_eq!(store.read(OTHER, 2, 0, 1).unwrap().1, small);
    drop(store);
    let reopened = open(&dir);
    assert_eq!(reopened.object_count(), 2);
    assert_eq!(reopened.read(OTHER, 1, 0, 1).unwrap().1, before);
    assert_eq!(reopened.read(OTHER, 2, 0, 1).unwrap().1, small);
}
