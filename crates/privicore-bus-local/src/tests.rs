use super::*;
use privicore_domain::event::ProfileEvent;
use privicore_domain::{CommandId, ProfileId};

fn event(n: u8) -> BusEvent {
    let id = CommandId::new();
    BusEvent::Profile(ProfileEvent::command_status(
        ProfileId(id.0),
        None,
        id,
        2,
        serde_json::json!({ "n": n }),
    ))
}

#[tokio::test]
async fn every_subscriber_sees_every_event_in_order() {
    let bus = LocalBus::new(16);
    let mut a = bus.subscribe().await.unwrap();
    let mut b = bus.subscribe().await.unwrap();
    for n in 0..3 {
        bus.publish(event(n)).await.unwrap();
    }
    for stream in [&mut a, &mut b] {
        for n in 0..3 {
            let BusEvent::Profile(e) = stream.next().await.unwrap() else {
                panic!("profile event expected")
            };
            assert_eq!(e.data["body"]["n"], n);
        }
    }
}

#[tokio::test]
async fn publishing_without_subscribers_succeeds() {
    LocalBus::new(4).publish(event(1)).await.unwrap();
}

#[tokio::test]
async fn a_full_subscriber_slows_publishers_and_loses_nothing() {
    let bus = std::sync::Arc::new(LocalBus::new(4));
    let mut stream = bus.subscribe().await.unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0..20 {
                bus.publish(event(n)).await.unwrap();
            }
        })
    };
    // The publisher cannot run ahead by more than the queue holds.
    tokio::task::yield_now().await;
    assert!(!publisher.is_finished());
    for n in 0..20 {
        let BusEvent::Profile(e) = stream.next().await.unwrap() else {
            panic!("profile event expected")
        };
        assert_eq!(e.data["body"]["n"], n);
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn token_ended_notices_overtake_queued_events() {
    let bus = LocalBus::new(64);
    let mut stream = bus.subscribe().await.unwrap();
    for n in 0..10 {
        bus.publish(event(n)).await.unwrap();
    }
    bus.publish(BusEvent::TokenEnded {
        token: privicore_domain::secret::TokenHash::of("t"),
        code: "auth.token_revoked".into(),
    })
    .await
    .unwrap();
    assert!(matches!(
        stream.next().await,
        Some(BusEvent::TokenEnded { .. })
    ));
    assert!(matches!(stream.next().await, Some(BusEvent::Profile(_))));
}

#[tokio::test]
async fn a_dropped_subscriber_never_blocks_publishers() {
    let bus = LocalBus::new(1);
    let gone = bus.subscribe().await.unwrap();
    drop(gone);
    let mut live = bus.subscribe().await.unwrap();
    for n in 0..3 {
        bus.publish(event(n)).await.unwrap();
        assert!(live.next().await.is_some());
    }
    assert_eq!(bus.current().len(), 1, "the dropped one is forgotten");
}

#[tokio::test]
async fn ping_answers_while_a_subscriber_reads_and_queued_counts_waiting_events() {
    let bus = LocalBus::new(16);
    assert!(bus.ping().await.is_err(), "nobody would receive an event");
    let mut stream = bus.subscribe().await.unwrap();
    bus.ping().await.unwrap();
    bus.publish(event(1)).await.unwrap();
    bus.publish(event(2)).await.unwrap();
    assert_eq!(bus.queued(), Some(2));
    stream.next().await.unwrap();
    assert_eq!(bus.queued(), Some(1));
    drop(stream);
    assert!(bus.ping().await.is_err(), "the only subscriber is gone");
}
