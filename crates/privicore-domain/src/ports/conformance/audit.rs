//! Behaviour every [`AuditLog`] adapter must show, on a fresh, empty log.

use crate::Timestamp;
use crate::audit::{AuditEntry, AuditKey, AuditKind, Sealer, verify_chain};
use crate::ports::{AuditLog, StoreError};
use serde_json::json;
use std::sync::Arc;

fn entry(i: u64) -> AuditEntry {
    AuditEntry::new(
        AuditKind::DeviceApproved,
        "profile:p",
        format!("device:{i}"),
        "approved",
    )
    .with_details(json!({ "i": i, "text": "ü\n\"quoted\"" }))
}

pub async fn run_audit(log: &dyn AuditLog) {
    let key = Arc::new(AuditKey::new([3; 32]));
    let sealer = |seen: u64, at: u64| Sealer {
        key: key.clone(),
        at: Timestamp::from_unix(1_700_000_000 + at as i64),
        seen,
    };
    assert_eq!(log.audit_head().await.unwrap(), None);
    assert!(log.audit_records(0, 10).await.unwrap().is_empty());
    assert!(log.audit_tail(5).await.unwrap().is_empty());

    let mut written = Vec::new();
    for i in 0..4 {
        let records = log
            .append_audit(&sealer(i, i), &[entry(i)], &[], None)
            .await
            .expect("append");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].seq, i + 1, "sealed after the stored head");
        written.extend(records);
    }
    // Several entries in one append are consecutive.
    written.extend(
        log.append_audit(&sealer(4, 4), &[entry(4), entry(5)], &[], None)
            .await
            .expect("append two"),
    );
    let head = log.audit_head().await.unwrap();
    assert_eq!(head.as_ref().map(|h| h.seq), Some(6));
    let read = log.audit_records(0, 100).await.unwrap();
    assert_eq!(read, written, "records read back field for field");
    verify_chain(&key, &read, head.as_ref()).expect("the stored chain verifies");
    assert_eq!(
        log.audit_records(2, 2).await.unwrap(),
        written[2..4].to_vec()
    );
    assert_eq!(log.audit_tail(2).await.unwrap(), written[4..].to_vec());
    assert_eq!(log.audit_tail(50).await.unwrap(), written);

    // A head below what the engine saw (cut back), or one sealed under another key, is not
    // built on: nothing is written.
    let error = log
        .append_audit(&sealer(9, 9), &[entry(9)], &[], None)
        .await
        .expect_err("a head that went back is refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    let other = Sealer {
        key: Arc::new(AuditKey::new([4; 32])),
        ..sealer(6, 9)
    };
    let error = log
        .append_audit(&other, &[entry(9)], &[], None)
        .await
        .expect_err("a head under another key is refused");
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert_eq!(log.audit_head().await.unwrap(), head);
    assert_eq!(log.audit_records(0, 100).await.unwrap(), written);
}
