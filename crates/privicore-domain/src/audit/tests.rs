use super::*;
use proptest::prelude::*;
use serde_json::json;

fn key() -> AuditKey {
    AuditKey::new([7; 32])
}

fn entry(i: usize) -> AuditEntry {
    let kind = AuditKind::ALL[i % AuditKind::ALL.len()].clone();
    let mut entry = AuditEntry::new(
        kind,
        format!("profile:{i:08}"),
        format!("device:{}", i * 7),
        if i.is_multiple_of(2) {
            "approved"
        } else {
            "rejected"
        },
    )
    .with_details(json!({ "n": i, "b": [1, 2], "a": { "z": "é", "y": null } }));
    if !i.is_multiple_of(3) {
        entry = entry.for_profile(ProfileId(uuid::Uuid::from_u128(i as u128 + 1)));
    }
    entry
}

/// A chain of `n` records and its head, as the engine appends them.
fn chain(n: usize) -> (Vec<AuditRecord>, Option<SealedHead>) {
    let key = key();
    let mut records = Vec::new();
    let mut head = None;
    for i in 0..n {
        let record = entry(i).seal(
            &key,
            Timestamp::from_unix(1_700_000_000 + i as i64),
            head.as_ref(),
        );
        head = Some(record.head(&key));
        records.push(record);
    }
    (records, head)
}

fn broken_at(records: &[AuditRecord], head: Option<&SealedHead>) -> u64 {
    verify_chain(&key(), records, head)
        .expect_err("the change must be detected")
        .seq
}

#[test]
fn an_untouched_chain_verifies() {
    let (records, head) = chain(5);
    let summary = verify_chain(&key(), &records, head.as_ref()).unwrap();
    assert_eq!(summary.records, 5);
    assert_eq!(summary.head, Some((5, records[4].hash)));
    assert_eq!(records[0].prev_hash, GENESIS);
    assert_eq!(records[3].prev_hash, records[2].hash);
    assert!(
        summary
            .to_string()
            .starts_with("audit log intact: 5 records")
    );
    let empty = verify_chain(&key(), &[], None).unwrap();
    assert_eq!(empty.records, 0);
}

#[test]
fn another_key_verifies_nothing() {
    let (records, head) = chain(3);
    let other = AuditKey::new([8; 32]);
    assert_eq!(
        verify_chain(&other, &records, head.as_ref())
            .unwrap_err()
            .seq,
        1
    );
}

#[test]
fn details_are_canonical_json() {
    let record = entry(1).seal(&key(), Timestamp::from_unix(0), None);
    assert_eq!(
        record.details,
        r#"{"a":{"y":null,"z":"é"},"b":[1,2],"n":1}"#
    );
    assert_eq!(
        canonical_json(&json!({"b": 1, "a": {"d": 2, "c": 3}})),
        r#"{"a":{"c":3,"d":2},"b":1}"#
    );
}

#[test]
fn kinds_have_unique_dotted_codes_that_round_trip() {
    let mut seen = std::collections::HashSet::new();
    for kind in AuditKind::ALL {
        let code = kind.code();
        assert!(code.contains('.'), "{code}");
        assert!(seen.insert(code), "duplicate {code}");
        assert_eq!(&AuditKind::from_code(code), kind);
    }
    assert_eq!(
        AuditKind::from_code("future.kind"),
        AuditKind::Other("future.kind".into())
    );
}

#[test]
fn field_boundaries_cannot_be_shifted() {
    // "ab" + "c" and "a" + "bc" must not encode alike.
    let key = key();
    let a = AuditEntry::new(AuditKind::VoteCast, "ab", "c", "x").seal(
        &key,
        Timestamp::from_unix(1),
        None,
    );
    let b = AuditEntry::new(AuditKind::VoteCast, "a", "bc", "x").seal(
        &key,
        Timestamp::from_unix(1),
        None,
    );
    assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    assert_ne!(a.hash, b.hash);
    // No profile and an empty profile differ too.
    let mut c = a.clone();
    c.profile_id = Some(String::new());
    assert_ne!(a.canonical_bytes(), c.canonical_bytes());
}

#[test]
fn a_deleted_middle_record_is_named() {
    let (mut records, head) = chain(6);
    records.remove(2);
    let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
    assert_eq!(error.seq, 3);
    assert_eq!(error.problem, Problem::Missing { next_found: 4 });
    assert!(error.to_string().contains("record 3 is missing"), "{error}");
}

#[test]
fn a_cut_off_tail_is_named_by_the_head() {
    let (mut records, head) = chain(6);
    records.truncate(4);
    let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
    assert_eq!(error.seq, 5);
    assert_eq!(error.problem, Problem::Truncated { head_seq: 6 });
    // Everything gone but the head.
    assert_eq!(broken_at(&[], head.as_ref()), 1);
    // The head gone too, while records remain.
    let (records, _) = chain(3);
    let error = verify_chain(&key(), &records, None).unwrap_err();
    assert_eq!((error.seq, error.problem), (4, Problem::HeadMissing));
}

#[test]
fn an_older_head_does_not_cover_a_longer_chain() {
    let (records, _) = chain(4);
    let old_head = records[1].head(&key());
    let error = verify_chain(&key(), &records, Some(&old_head)).unwrap_err();
    assert_eq!(
        (error.seq, error.problem),
        (3, Problem::BeyondHead { head_seq: 2 })
    );
}

#[test]
fn a_head_with_a_forged_seq_does_not_verify() {
    let (mut records, head) = chain(5);
    records.truncate(3);
    let mut forged = head.unwrap();
    forged.seq = 3;
    forged.hash = records[2].hash;
    assert_eq!(
        verify_chain(&key(), &records, Some(&forged))
            .unwrap_err()
            .problem,
        Problem::HeadAltered
    );
}

#[test]
fn swapped_records_are_named() {
    let (mut records, head) = chain(5);
    records.swap(1, 3);
    // Stored by seq, a swap of whole rows shows as a record out of place.
    assert_eq!(broken_at(&records, head.as_ref()), 2);
    // Swapping the contents but keeping the seqs breaks the MAC of the first.
    let (mut records, head) = chain(5);
    let (a, b) = (records[1].seq, records[3].seq);
    records.swap(1, 3);
    records[1].seq = a;
    records[3].seq = b;
    assert_eq!(broken_at(&records, head.as_ref()), 2);
}

/// Where a byte edit lands in a stored record.
#[derive(Debug, Clone)]
enum Field {
    Seq,
    At,
    Profile,
    Kind,
    Actor,
    Subject,
    Outcome,
    Details,
    Prev,
    Hash,
}

fn edit_string(s: &mut String, at: usize, flip: u8) {
    let mut bytes = std::mem::take(s).into_bytes();
    if bytes.is_empty() {
        bytes.push(flip);
    } else {
        let i = at % bytes.len();
        bytes[i] ^= flip;
    }
    *s = String::from_utf8_lossy(&bytes).into_owned();
}

fn edit(record: &mut AuditRecord, field: &Field, at: usize, flip: u8) {
    let byte = at % 8;
    match field {
        Field::Seq => {
            let mut b = record.seq.to_be_bytes();
            b[byte] ^= flip;
            record.seq = u64::from_be_bytes(b);
        }
        Field::At => {
            let mut b = record.at.unix().to_be_bytes();
            b[byte] ^= flip;
            record.at = Timestamp::from_unix(i64::from_be_bytes(b));
        }
        Field::Profile => match &mut record.profile_id {
            Some(p) => edit_string(p, at, flip),
            None => record.profile_id = Some(String::from_utf8_lossy(&[flip]).into_owned()),
        },
        Field::Kind => {
            let mut code = record.kind.code().to_owned();
            edit_string(&mut code, at, flip);
            record.kind = AuditKind::from_code(&code);
        }
        Field::Actor => edit_string(&mut record.actor, at, flip),
        Field::Subject => edit_string(&mut record.subject, at, flip),
        Field::Outcome => edit_string(&mut record.outcome, at, flip),
        Field::Details => edit_string(&mut record.details, at, flip),
        Field::Prev => record.prev_hash[at % 32] ^= flip,
        Field::Hash => record.hash[at % 32] ^= flip,
    }
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::Seq),
        Just(Field::At),
        Just(Field::Profile),
        Just(Field::Kind),
        Just(Field::Actor),
        Just(Field::Subject),
        Just(Field::Outcome),
        Just(Field::Details),
        Just(Field::Prev),
        Just(Field::Hash),
    ]
}

proptest! {
    #[test]
    fn any_single_byte_edit_is_detected_at_or_before_its_record(
        n in 1usize..12,
        target in 0usize..12,
        field in field(),
        at in 0usize..64,
        flip in 1u8..=255,
    ) {
        let (mut records, head) = chain(n);
        let target = target % n;
        edit(&mut records[target], &field, at, flip);
        // The store returns rows by seq.
        records.sort_by_key(|r| r.seq);
        let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
        prop_assert!(error.seq <= target as u64 + 1, "{error} for record {}", target + 1);
    }

    #[test]
    fn any_single_byte_edit_of_the_head_is_detected(
        n in 1usize..8,
        at in 0usize..48,
        flip in 1u8..=255,
    ) {
        let (records, head) = chain(n);
        let mut head = head.unwrap();
        match at {
            0..8 => {
                let mut b = head.seq.to_be_bytes();
                b[at] ^= flip;
                head.seq = u64::from_be_bytes(b);
            }
            8..40 => head.hash[at - 8] ^= flip,
            _ => head.mac[at - 40] ^= flip,
        }
        prop_assert!(verify_chain(&key(), &records, Some(&head)).is_err());
    }

    #[test]
    fn any_deletion_is_detected(n in 1usize..12, target in 0usize..12) {
        let (mut records, head) = chain(n);
        let target = target % n;
        records.remove(target);
        let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
        prop_assert_eq!(error.seq, target as u64 + 1);
    }

    #[test]
    fn any_reorder_is_detected(n in 2usize..12, a in 0usize..12, b in 0usize..12) {
        let (mut records, head) = chain(n);
        let (a, b) = (a % n, b % n);
        prop_assume!(a != b);
        // Rows keep their place but trade contents, seq included or not.
        records.swap(a, b);
        let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
        prop_assert_eq!(error.seq, a.min(b) as u64 + 1);
        let (mut renumbered, head) = chain(n);
        let (sa, sb) = (renumbered[a].seq, renumbered[b].seq);
        renumbered.swap(a, b);
        renumbered[a].seq = sa;
        renumbered[b].seq = sb;
        let error = verify_chain(&key(), &renumbered, head.as_ref()).unwrap_err();
        prop_assert_eq!(error.seq, a.min(b) as u64 + 1);
    }

    #[test]
    fn any_insertion_is_detected(
        n in 1usize..10,
        at in 0usize..11,
        forged_key in any::<[u8; 32]>(),
    ) {
        let (mut records, head) = chain(n);
        let at = at % (n + 1);
        // A record sealed with another key, placed between two records (renumbering the
        // rest, as an insertion in a seq-keyed table must) or at the end.
        let forger = AuditKey::new(forged_key);
        prop_assume!(forged_key != [7; 32]);
        let prev = (at > 0).then(|| records[at - 1].head(&forger));
        let forged = entry(99).seal(&forger, Timestamp::from_unix(1), prev.as_ref());
        records.insert(at, forged);
        for r in records.iter_mut().skip(at + 1) {
            r.seq += 1;
        }
        let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
        prop_assert_eq!(error.seq, at as u64 + 1);
    }

    #[test]
    fn any_truncation_of_the_tail_is_detected(n in 1usize..12, keep in 0usize..12) {
        let (mut records, head) = chain(n);
        let keep = keep % n;
        records.truncate(keep);
        let error = verify_chain(&key(), &records, head.as_ref()).unwrap_err();
        prop_assert_eq!(error.seq, keep as u64 + 1);
    }
}
