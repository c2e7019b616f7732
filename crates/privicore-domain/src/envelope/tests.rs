use super::*;
use proptest::prelude::*;

fn ring() -> KeyRing {
    KeyRing::new(Kek::new("kek-1", [7; 32]).unwrap(), vec![])
}

const TOKEN: &str = "dtk-de1e9b84-b367-4bfa-9f8c-ceb00d813be5";

fn open_all(ring: &KeyRing, obj: &SealedObject) -> Result<Vec<u8>, EnvelopeError> {
    let opener = Opener::new(ring, &obj.header)?;
    let mut out = Vec::new();
    for (i, c) in obj.chunks.iter().enumerate() {
        out.extend(opener.open_chunk(i as u32, c)?);
    }
    Ok(out)
}

#[test]
fn header_layout_matches_the_contract() {
    let obj = seal(&ring(), TOKEN, 1, 1024 * 1024, &[1u8; 54]);
    let bytes = obj.header.to_bytes();
    assert_eq!(&bytes[..4], b"PVE1");
    assert_eq!(bytes[4..7], [1, 1, 40]);
    assert_eq!(bytes.len(), 27 + 40 + 1 + 5 + 60);
    assert_eq!(Header::parse(&bytes).unwrap(), obj.header);
    assert_eq!(obj.chunks.len(), 1);
    assert_eq!(obj.chunks[0].len(), 54 + 16);
}

#[test]
fn round_trip_across_chunk_boundaries() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    for cs in [1, 7, 4096, 10_000, 20_000] {
        let obj = seal(&ring(), TOKEN, 3, cs, &payload);
        assert_eq!(
            obj.header.core.chunk_count as usize,
            payload.len().div_ceil(cs as usize)
        );
        assert_eq!(open_all(&ring(), &obj).unwrap(), payload);
    }
}

#[test]
fn tampering_is_detected() {
    let payload = vec![9u8; 100];
    let obj = seal(&ring(), TOKEN, 1, 40, &payload);
    let opener = Opener::new(&ring(), &obj.header).unwrap();
    // Moved chunk.
    assert!(opener.open_chunk(0, &obj.chunks[1]).is_err());
    // Flipped bit.
    let mut bad = obj.chunks[0].clone();
    bad[3] ^= 1;
    assert_eq!(opener.open_chunk(0, &bad), Err(EnvelopeError::NotAuthentic));
    // Truncation: a full-size chunk offered as the last one.
    assert!(opener.open_chunk(2, &obj.chunks[1]).is_err());
    assert_eq!(
        opener.open_chunk(3, &obj.chunks[0]),
        Err(EnvelopeError::BadIndex)
    );
    // Another version's data key.
    let other = seal(&ring(), TOKEN, 2, 40, &payload);
    assert!(opener.open_chunk(0, &other.chunks[0]).is_err());
    // Unknown KEK.
    let other_ring = KeyRing::new(Kek::new("kek-2", [8; 32]).unwrap(), vec![]);
    assert!(matches!(
        Opener::new(&other_ring, &obj.header),
        Err(EnvelopeError::UnknownKek)
    ));
    // Same id, different key material.
    let forged = KeyRing::new(Kek::new("kek-1", [9; 32]).unwrap(), vec![]);
    assert!(matches!(
        Opener::new(&forged, &obj.header),
        Err(EnvelopeError::DekUnwrap)
    ));
}

#[test]
fn retired_keks_still_unwrap() {
    let old = Kek::new("kek-1", [7; 32]).unwrap();
    let obj = seal(
        &KeyRing::new(old.clone(), vec![]),
        TOKEN,
        1,
        64,
        b"payload-of-some-bytes-here!!!!",
    );
    let rotated = KeyRing::new(Kek::new("kek-2", [8; 32]).unwrap(), vec![old]);
    assert_eq!(
        open_all(&rotated, &obj).unwrap(),
        b"payload-of-some-bytes-here!!!!"
    );
}

#[test]
fn kek_ids_are_checked() {
    assert!(Kek::new("", [0; 32]).is_none());
    assert!(Kek::new("has space", [0; 32]).is_none());
    assert!(Kek::new(&"a".repeat(33), [0; 32]).is_none());
    assert!(format!("{:?}", Kek::new("k", [5; 32]).unwrap()) == "Kek(k)");
}

proptest! {
    #[test]
    fn any_payload_round_trips(payload in proptest::collection::vec(any::<u8>(), 1..3000), cs in 1u32..700) {
        let obj = seal(&ring(), TOKEN, 1, cs, &payload);
        prop_assert_eq!(open_all(&ring(), &obj).unwrap(), payload);
        prop_assert_eq!(obj.digest, object_digest(obj.chunks.iter().map(Vec::as_slice)));
    }

    #[test]
    fn header_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Header::parse(&bytes);
    }

    #[test]
    fn header_parser_refuses_truncations(cut in 0usize..132) {
        let obj = seal(&ring(), TOKEN, 1, 10, &[1u8; 30]);
        let bytes = obj.header.to_bytes();
        prop_assert!(Header::parse(&bytes[..cut.min(bytes.len() - 1)]).is_err());
    }
}

#[test]
fn rewrap_moves_the_data_key_to_the_active_kek_and_keeps_the_chunks() {
    let old = Kek::new("kek-1", [7; 32]).unwrap();
    let obj = seal(&ring(), TOKEN, 3, 16, &[5u8; 40]);
    let rotated = KeyRing::new(Kek::new("kek-2", [9; 32]).unwrap(), vec![old]);
    let header = rewrap(&rotated, &obj.header).unwrap();
    assert_eq!(header.kek_id, "kek-2");
    assert_eq!(header.core, obj.header.core);
    let only_new = KeyRing::new(Kek::new("kek-2", [9; 32]).unwrap(), vec![]);
    let moved = SealedObject {
        header,
        ..obj.clone()
    };
    assert_eq!(open_all(&only_new, &moved).unwrap(), vec![5u8; 40]);
    assert_eq!(
        open_all(&only_new, &obj).unwrap_err(),
        EnvelopeError::UnknownKek
    );
}

#[test]
fn a_sealer_fed_chunk_by_chunk_matches_the_opener_and_the_digest() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 31) as u8).collect();
    let mut sealer = Sealer::new(&ring(), TOKEN, 2, 4096, payload.len() as u64);
    let chunks: Vec<Vec<u8>> = payload
        .chunks(4096)
        .map(|c| sealer.seal_next(c).unwrap())
        .collect();
    let header = sealer.header();
    assert_eq!(sealer.next_index(), 3);
    let digest = sealer.finish().unwrap();
    assert_eq!(digest, object_digest(chunks.iter().map(Vec::as_slice)));
    let obj = SealedObject {
        header,
        chunks,
        digest,
    };
    assert_eq!(open_all(&ring(), &obj).unwrap(), payload);
}

#[test]
fn a_sealer_refuses_wrong_lengths_extra_chunks_and_an_early_finish() {
    let mut sealer = Sealer::new(&ring(), TOKEN, 1, 10, 25);
    assert_eq!(sealer.seal_next(&[0; 9]), Err(EnvelopeError::BadLength));
    sealer.seal_next(&[0; 10]).unwrap();
    sealer.seal_next(&[0; 10]).unwrap();
    // The last chunk is the remainder.
    assert_eq!(sealer.seal_next(&[0; 10]), Err(EnvelopeError::BadLength));
    sealer.seal_next(&[0; 5]).unwrap();
    assert_eq!(sealer.seal_next(&[0; 1]), Err(EnvelopeError::BadIndex));
    assert!(sealer.finish().is_ok());
    let early = Sealer::new(&ring(), TOKEN, 1, 10, 25);
    assert_eq!(early.finish(), Err(EnvelopeError::BadIndex));
}

#[test]
fn staged_chunks_open_only_at_their_index_and_under_their_key() {
    let key = StagingKey::generate();
    let sealed = key.seal(4, b"client bytes");
    assert_eq!(key.open(4, &sealed).unwrap(), b"client bytes");
    assert_eq!(key.open(5, &sealed), Err(EnvelopeError::NotAuthentic));
    assert_eq!(
        StagingKey::generate().open(4, &sealed),
        Err(EnvelopeError::NotAuthentic)
    );
}
