use super::*;
use privicore_domain::{CommandId, Timestamp};
use serde_json::json;

fn caller(profile: ProfileId, owner: TokenOwner, token: &str) -> Caller {
    Caller {
        profile_id: profile,
        token_hash: TokenHash::of(token),
        owner,
        issued_at: Timestamp::now(),
        expires_at: Timestamp::now().plus_seconds(60),
    }
}

fn event(profile: ProfileId, app: Option<uuid::Uuid>, n: u64) -> BusEvent {
    BusEvent::Profile(ProfileEvent::command_status(
        profile,
        app,
        CommandId::new(),
        2,
        json!({ "n": n }),
    ))
}

fn next_n(rx: &mut mpsc::Receiver<Outbound>) -> Option<u64> {
    match rx.try_recv().ok()? {
        Outbound::Event(data) => data["body"]["n"].as_u64(),
        Outbound::TokenEnded { .. } => None,
    }
}

#[test]
fn every_joined_socket_gets_every_event() {
    let hub = EventHub::new(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let (tx1, mut rx1) = mpsc::channel(8);
    let (tx2, mut rx2) = mpsc::channel(8);
    hub.join(&caller(p, TokenOwner::Profile, "a"), tx1);
    hub.join(&caller(p, TokenOwner::Profile, "b"), tx2);
    hub.dispatch(event(p, None, 1));
    assert_eq!(next_n(&mut rx1), Some(1));
    assert_eq!(next_n(&mut rx2), Some(1));
}

#[test]
fn events_before_a_join_are_replayed_once_in_order() {
    let hub = EventHub::new(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    hub.dispatch(event(p, None, 1));
    hub.dispatch(event(p, None, 2));
    let (tx, mut rx) = mpsc::channel(8);
    let channel = hub.join(&caller(p, TokenOwner::Profile, "a"), tx);
    assert_eq!(next_n(&mut rx), Some(1));
    assert_eq!(next_n(&mut rx), Some(2));
    assert!(hub.leave(channel));
    let (tx, mut rx) = mpsc::channel(8);
    hub.join(&caller(p, TokenOwner::Profile, "a"), tx);
    assert_eq!(
        next_n(&mut rx),
        None,
        "delivered events are not replayed again"
    );
}

#[test]
fn replay_is_bounded_by_capacity_and_window() {
    let hub = EventHub::new(Duration::from_millis(0), 2);
    let p = ProfileId(CommandId::new().0);
    for n in 0..5 {
        hub.dispatch(event(p, None, n));
    }
    std::thread::sleep(Duration::from_millis(5));
    hub.prune();
    let (tx, mut rx) = mpsc::channel(8);
    hub.join(&caller(p, TokenOwner::Profile, "a"), tx);
    assert_eq!(next_n(&mut rx), None);

    let hub = EventHub::new(Duration::from_secs(60), 2);
    for n in 0..5 {
        hub.dispatch(event(p, None, n));
    }
    let (tx, mut rx) = mpsc::channel(8);
    hub.join(&caller(p, TokenOwner::Profile, "a"), tx);
    assert_eq!(next_n(&mut rx), Some(3));
    assert_eq!(next_n(&mut rx), Some(4));
}

#[test]
fn app_sockets_see_only_their_application() {
    let hub = EventHub::new(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let app = uuid::Uuid::new_v4();
    let (tx, mut rx) = mpsc::channel(8);
    hub.join(
        &caller(
            p,
            TokenOwner::App {
                application_id: app,
            },
            "a",
        ),
        tx,
    );
    hub.dispatch(event(p, None, 1));
    hub.dispatch(event(p, Some(app), 2));
    assert_eq!(next_n(&mut rx), Some(2));
    assert_eq!(next_n(&mut rx), None);
}

#[test]
fn ended_tokens_leave_their_channels() {
    let hub = EventHub::new(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let (tx_a, mut rx_a) = mpsc::channel(8);
    let (tx_b, mut rx_b) = mpsc::channel(8);
    let a = hub.join(&caller(p, TokenOwner::Profile, "a"), tx_a);
    hub.join(&caller(p, TokenOwner::Profile, "b"), tx_b);
    hub.dispatch(BusEvent::TokenEnded {
        token: TokenHash::of("a"),
        code: "auth.token_revoked".into(),
    });
    assert!(matches!(rx_a.try_recv(), Ok(Outbound::TokenEnded { channel, .. }) if channel == a));
    assert!(rx_b.try_recv().is_err());
    assert!(!hub.leave(a));
    hub.dispatch(BusEvent::ProfileTokensEnded {
        profile_id: p,
        keep: None,
        code: "auth.token_revoked".into(),
    });
    assert!(matches!(rx_b.try_recv(), Ok(Outbound::TokenEnded { .. })));
    assert_eq!(hub.joined_channels(), 0);
}

#[test]
fn a_socket_that_cannot_keep_up_is_dropped() {
    let hub = EventHub::new(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let (tx, _rx) = mpsc::channel(1);
    hub.join(&caller(p, TokenOwner::Profile, "a"), tx);
    hub.dispatch(event(p, None, 1));
    hub.dispatch(event(p, None, 2));
    assert_eq!(hub.joined_channels(), 0);
}
