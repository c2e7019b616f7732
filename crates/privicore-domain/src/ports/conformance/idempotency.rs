use super::*;
use crate::idempotency::{IdempotencyKey, IdempotencySlot};

fn slot(path: &str) -> IdempotencySlot {
    let key = IdempotencyKey::parse("retry-1").unwrap();
    IdempotencySlot::new(Some(ProfileId(CommandId::new().0)), path, &key)
}

pub async fn idempotency_slots_are_claimed_once(store: &dyn MetadataStore) {
    let now = Timestamp::now();
    let (stale, abandoned) = (now.plus_seconds(-86_400), now.plus_seconds(-60));
    let first = slot("/data-token/reserve-token-space");
    let claim = |s: &IdempotencySlot, hash: &'static [u8], at: Timestamp| {
        let s = s.clone();
        async move {
            store
                .claim_idempotency_slot(&s, hash, at, stale, abandoned)
                .await
                .unwrap()
        }
    };
    assert_eq!(claim(&first, b"body", now).await, None, "first use claims");
    let running = claim(&first, b"body", now).await.expect("held");
    assert_eq!(
        (running.body_hash.as_slice(), running.reply),
        (&b"body"[..], None)
    );

    store
        .settle_idempotency_slot(&first, Some("{\"commandId\":\"c\"}"))
        .await
        .unwrap();
    let settled = claim(&first, b"other", now).await.expect("held");
    assert_eq!(settled.body_hash, b"body");
    assert_eq!(settled.reply.as_deref(), Some("{\"commandId\":\"c\"}"));

    // Another path, or another scope, is another slot.
    let other_path = IdempotencySlot {
        path: "/data-token/delete-data".into(),
        ..first.clone()
    };
    assert_eq!(claim(&other_path, b"body", now).await, None);
    assert_eq!(claim(&slot(&first.path), b"body", now).await, None);

    // A freed slot can be claimed again.
    store
        .settle_idempotency_slot(&other_path, None)
        .await
        .unwrap();
    assert_eq!(claim(&other_path, b"again", now).await, None);

    // An unsettled claim is given up once abandoned; a settled one only once stale.
    let old = slot("/device/remove");
    assert_eq!(claim(&old, b"x", now.plus_seconds(-120)).await, None);
    assert_eq!(
        claim(&old, b"y", now).await,
        None,
        "abandoned claim replaced"
    );
    store
        .settle_idempotency_slot(&old, Some("r"))
        .await
        .unwrap();
    assert!(claim(&old, b"z", now).await.is_some());

    let purged = store
        .purge_idempotency_slots(now.plus_seconds(1))
        .await
        .unwrap();
    assert!(purged >= 4, "purged {purged}");
    assert_eq!(
        claim(&first, b"fresh", now).await,
        None,
        "purged slots are free"
    );
}
