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

fn next_n(sub: &mut Subscription) -> Option<u64> {
    sub.events.try_recv().ok()?.data["body"]["n"].as_u64()
}

fn hub(window: Duration, replay: usize) -> EventHub {
    EventHub::new(window, replay, 8)
}

#[test]
fn every_joined_socket_gets_every_event() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let mut a = hub.join(&caller(p, TokenOwner::Profile, "a"));
    let mut b = hub.join(&caller(p, TokenOwner::Profile, "b"));
    hub.dispatch(event(p, None, 1));
    assert_eq!(next_n(&mut a), Some(1));
    assert_eq!(next_n(&mut b), Some(1));
}

#[test]
fn events_before_a_join_are_replayed_once_in_order() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    hub.dispatch(event(p, None, 1));
    hub.dispatch(event(p, None, 2));
    let mut sub = hub.join(&caller(p, TokenOwner::Profile, "a"));
    assert_eq!(next_n(&mut sub), Some(1));
    assert_eq!(next_n(&mut sub), Some(2));
    assert!(hub.leave(sub.channel));
    let mut sub = hub.join(&caller(p, TokenOwner::Profile, "a"));
    assert_eq!(
        next_n(&mut sub),
        None,
        "delivered events are not replayed again"
    );
}

#[test]
fn replay_is_bounded_by_capacity_and_window() {
    let hub_ = hub(Duration::from_millis(0), 2);
    let p = ProfileId(CommandId::new().0);
    for n in 0..5 {
        hub_.dispatch(event(p, None, n));
    }
    std::thread::sleep(Duration::from_millis(5));
    hub_.prune();
    let mut sub = hub_.join(&caller(p, TokenOwner::Profile, "a"));
    assert_eq!(next_n(&mut sub), None);

    let hub = hub(Duration::from_secs(60), 2);
    for n in 0..5 {
        hub.dispatch(event(p, None, n));
    }
    let mut sub = hub.join(&caller(p, TokenOwner::Profile, "a"));
    assert_eq!(next_n(&mut sub), Some(3));
    assert_eq!(next_n(&mut sub), Some(4));
}

#[test]
fn a_replay_longer_than_the_socket_queue_is_queued_whole() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    for n in 0..20 {
        hub.dispatch(event(p, None, n));
    }
    let mut sub = hub.join(&caller(p, TokenOwner::Profile, "a"));
    for n in 0..20 {
        assert_eq!(next_n(&mut sub), Some(n));
    }
    hub.dispatch(event(p, None, 20));
    assert_eq!(next_n(&mut sub), Some(20));
}

#[test]
fn app_sockets_see_only_their_application() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let app = uuid::Uuid::new_v4();
    let owner = TokenOwner::App {
        application_id: app,
    };
    let mut sub = hub.join(&caller(p, owner, "a"));
    hub.dispatch(event(p, None, 1));
    hub.dispatch(event(p, Some(app), 2));
    assert_eq!(next_n(&mut sub), Some(2));
    assert_eq!(next_n(&mut sub), None);
}

#[test]
fn app_sockets_get_events_meant_for_a_scope_their_grant_holds() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let app = |token| {
        let owner = TokenOwner::App {
            application_id: uuid::Uuid::new_v4(),
        };
        caller(p, owner, token)
    };
    let mut manager = hub.join_with_scopes(&app("m"), vec!["directory:manage".into()]);
    let mut everything = hub.join_with_scopes(&app("a"), vec!["all".into()]);
    let mut devices = hub.join_with_scopes(&app("d"), vec!["device:manage".into()]);
    let mut profile = hub.join(&caller(p, TokenOwner::Profile, "p"));
    let BusEvent::Profile(mut notice) = event(p, None, 7) else {
        unreachable!()
    };
    notice.app_scope = Some("directory:manage".into());
    hub.dispatch(BusEvent::Profile(notice));
    assert_eq!(next_n(&mut manager), Some(7));
    assert_eq!(next_n(&mut everything), Some(7));
    assert_eq!(next_n(&mut profile), Some(7));
    assert_eq!(next_n(&mut devices), None);
}

#[test]
fn ended_tokens_end_their_channels_ahead_of_queued_events() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let mut a = hub.join(&caller(p, TokenOwner::Profile, "a"));
    let mut b = hub.join(&caller(p, TokenOwner::Profile, "b"));
    for n in 0..8 {
        hub.dispatch(event(p, None, n));
    }
    hub.dispatch(BusEvent::TokenEnded {
        token: TokenHash::of("a"),
        code: "auth.token_revoked".into(),
    });
    // The notice does not wait behind the eight queued events.
    assert_eq!(
        a.ended.try_recv(),
        Ok(Ended::Token {
            code: "auth.token_revoked".into()
        })
    );
    assert!(b.ended.try_recv().is_err());
    assert!(!hub.leave(a.channel));
    hub.dispatch(BusEvent::ProfileTokensEnded {
        profile_id: p,
        keep: None,
        code: "auth.token_revoked".into(),
    });
    assert!(matches!(b.ended.try_recv(), Ok(Ended::Token { .. })));
    assert_eq!(hub.joined_channels(), 0);
    assert_eq!(next_n(&mut a), Some(0), "queued events stay for the socket");
}

#[test]
fn a_lagging_socket_is_told_and_its_events_wait_for_the_next_join() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let mut slow = hub.join(&caller(p, TokenOwner::Profile, "a"));
    // Eight fit in the queue; the ninth finds it full.
    for n in 0..12 {
        hub.dispatch(event(p, None, n));
    }
    assert_eq!(slow.ended.try_recv(), Ok(Ended::Lagged));
    assert_eq!(hub.joined_channels(), 0);
    // The socket hands back what it could not write, as the WebSocket edge does.
    let mut unwritten = Vec::new();
    while let Ok(event) = slow.events.try_recv() {
        unwritten.push(event);
    }
    hub.requeue(slow.profile, unwritten);
    let mut next = hub.join(&caller(p, TokenOwner::Profile, "a"));
    for n in 0..12 {
        assert_eq!(next_n(&mut next), Some(n), "every event, in order");
    }
    assert_eq!(next_n(&mut next), None);
}

#[test]
fn requeued_events_are_dropped_when_another_socket_received_them() {
    let hub = hub(Duration::from_secs(60), 1000);
    let p = ProfileId(CommandId::new().0);
    let mut other = hub.join(&caller(p, TokenOwner::Profile, "b"));
    let mut slow = hub.join(&caller(p, TokenOwner::Profile, "a"));
    hub.dispatch(event(p, None, 1));
    assert!(hub.leave(slow.channel));
    hub.requeue(p, vec![slow.events.try_recv().unwrap()]);
    assert_eq!(next_n(&mut other), Some(1));
    assert!(hub.leave(other.channel));
    let mut next = hub.join(&caller(p, TokenOwner::Profile, "a"));
    assert_eq!(next_n(&mut next), None);
}
