use super::*;
use crate::counter::Counter;

pub async fn counters_count_within_their_window(store: &dyn MetadataStore) {
    let key = format!("login:192.0.2.1:{}", CommandId::new());
    let t0 = Timestamp::from_unix(1_700_000_000);
    assert_eq!(store.counter(&key, t0).await.unwrap(), None, "absent");

    let first = store.hit_counter(&key, t0, 900).await.unwrap();
    assert_eq!(
        first,
        Counter {
            count: 1,
            window_end: t0.plus_seconds(900),
            last_at: t0,
        }
    );
    let later = t0.plus_seconds(60);
    let second = store.hit_counter(&key, later, 900).await.unwrap();
    assert_eq!(
        (second.count, second.window_end, second.last_at),
        (2, t0.plus_seconds(900), later),
        "the running window keeps its end"
    );
    assert_eq!(store.counter(&key, later).await.unwrap(), Some(second));

    // Another key is another counter.
    let other = format!("register:{}", CommandId::new());
    assert_eq!(
        store.hit_counter(&other, later, 3600).await.unwrap().count,
        1
    );

    // At the window's end the counter is gone for readers, and the next hit starts anew.
    let end = t0.plus_seconds(900);
    assert_eq!(store.counter(&key, end).await.unwrap(), None);
    let fresh = store.hit_counter(&key, end, 900).await.unwrap();
    assert_eq!((fresh.count, fresh.window_end), (1, end.plus_seconds(900)));

    store.clear_counter(&key).await.unwrap();
    assert_eq!(store.counter(&key, end).await.unwrap(), None, "cleared");

    let purged = store
        .purge_counters(later.plus_seconds(3601))
        .await
        .unwrap();
    assert!(purged >= 1, "purged {purged}");
    assert_eq!(store.counter(&other, later).await.unwrap(), None, "purged");
}
