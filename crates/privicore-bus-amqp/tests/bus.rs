//! The events port over a real broker.

mod common;

use futures_util::StreamExt;
use privicore_bus_amqp::{AmqpBus, remove_topology};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::ports::Bus;
use privicore_domain::{CommandId, ProfileId};
use std::time::Duration;

fn event(n: u32) -> BusEvent {
    let id = CommandId::new();
    BusEvent::Profile(ProfileEvent::command_status(
        ProfileId(id.0),
        None,
        id,
        2,
        serde_json::json!({ "n": n }),
    ))
}

fn n(event: &BusEvent) -> Option<u64> {
    match event {
        BusEvent::Profile(e) => e.data["body"]["n"].as_u64(),
        _ => None,
    }
}

async fn next(stream: &mut privicore_domain::ports::EventStream) -> BusEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream is open")
}

#[tokio::test]
async fn subscribers_on_two_replicas_both_receive_what_either_publishes() {
    let Some(url) = common::url("subscribers_on_two_replicas") else {
        return;
    };
    let names = common::names();
    let a = AmqpBus::new(common::broker(&url, &names).await);
    let b = AmqpBus::new(common::broker(&url, &names).await);
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    a.publish(event(1)).await.unwrap();
    b.publish(event(2)).await.unwrap();
    for stream in [&mut on_a, &mut on_b] {
        let mut seen = vec![n(&next(stream).await), n(&next(stream).await)];
        seen.sort();
        assert_eq!(seen, vec![Some(1), Some(2)]);
    }
    remove_topology(&url, &names, &[]).await.unwrap();
}

#[tokio::test]
async fn a_token_ended_notice_overtakes_a_flood_of_events() {
    let Some(url) = common::url("a_token_ended_notice_overtakes") else {
        return;
    };
    let names = common::names();
    let bus = AmqpBus::new(common::broker(&url, &names).await);
    let mut stream = bus.subscribe().await.unwrap();
    const FLOOD: u32 = 4000;
    for batch in (0..FLOOD).collect::<Vec<_>>().chunks(200) {
        let publishes = batch.iter().map(|i| bus.publish(event(*i)));
        for result in futures_util::future::join_all(publishes).await {
            result.unwrap();
        }
    }
    let notice = BusEvent::TokenEnded {
        token: privicore_domain::secret::TokenHash::of("dtk-ended"),
        code: "auth.token_revoked".into(),
    };
    bus.publish(notice).await.unwrap();
    let mut position = None;
    let mut events = 0;
    while events < FLOOD {
        match next(&mut stream).await {
            BusEvent::TokenEnded { .. } => position = Some(events),
            _ => events += 1,
        }
        if position.is_some() {
            break;
        }
    }
    let position = position.expect("the notice arrives");
    eprintln!("the notice arrived after {position} of {FLOOD} events");
    // One queue would hand it over after all 4000 events.
    assert!(
        position < FLOOD / 2,
        "the notice waited behind {position} events"
    );
    drop(stream);
    remove_topology(&url, &names, &[]).await.unwrap();
}
