//! Behaviour every [`AuditLog`] adapter must show, on a fresh, empty log.

use crate::Timestamp;
use crate::audit::{AuditEntry, AuditKey, AuditKind, verify_chain};
use crate::ports::{AuditLog, StoreError};
use serde_json::json;

pub async fn run_audit(log: &dyn AuditLog) {
    let key = AuditKey::new([3; 32]);
    assert_eq!(log.audit_head().await.unwrap(), None);
    assert!(log.audit_records(0, 10).await.unwrap().is_empty());
    assert!(log.audit_tail(5).await.unwrap().is_empty());

    let mut head = None;
    let mut written = Vec::new();
    for i in 0..5 {
        let record = AuditEntry::new(
            AuditKind::DeviceApproved,
            "profile:p",
            format!("device:{i}"),
            "approved",
        )
        .with_details(json!({ "i": i, "text": "ü\n\"quoted\"" }))
        .seal(&key, Timestamp::from_unix(1_700_000_000 + i), head.as_ref());
        let next = record.head(&key);
        log.append_audit(std::slice::from_ref(&record), &next, head.as_ref(), &[])
            .await
            .expect("append");
        head = Some(next);
        written.push(record);
    }
    assert_eq!(log.audit_head().await.unwrap(), head);
    let read = log.audit_records(0, 100).await.unwrap();
    assert_eq!(read, written, "records read back field for field");
    verify_chain(&key, &read, head.as_ref()).expect("the stored chain verifies");
    assert_eq!(
        log.audit_records(2, 2).await.unwrap(),
        written[2..4].to_vec()
    );
    assert_eq!(log.audit_tail(2).await.unwrap(), written[3..].to_vec());
    assert_eq!(log.audit_tail(50).await.unwrap(), written);

    // A writer that did not see the last append cannot fork the chain.
    let stale = written[3].head(&key);
    let fork = AuditEntry::new(AuditKind::DeviceRemoved, "profile:q", "device:x", "removed").seal(
        &key,
        Timestamp::from_unix(1),
        Some(&stale),
    );
    let error = log
        .append_audit(
            std::slice::from_ref(&fork),
            &fork.head(&key),
            Some(&stale),
            &[],
        )
        .await
        .expect_err("a stale head is refused");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    // Nor start a second chain.
    let second = AuditEntry::new(AuditKind::DeviceRemoved, "profile:q", "device:x", "removed")
        .seal(&key, Timestamp::from_unix(1), None);
    let error = log
        .append_audit(std::slice::from_ref(&second), &second.head(&key), None, &[])
        .await
        .expect_err("a second genesis is refused");
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(log.audit_head().await.unwrap(), head);
    assert_eq!(log.audit_records(0, 100).await.unwrap(), written);
}
