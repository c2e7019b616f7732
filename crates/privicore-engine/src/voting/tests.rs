use super::*;
fn command(payload: CommandPayload) -> CommandRecord {
    CommandRecord::new(
        CommandId::new(),
        ProfileId(uuid::Uuid::now_v7()),
        None,
        payload,
    )
}

fn delete(token: &str) -> CommandRecord {
    command(CommandPayload::DeleteData {
        token: token.into(),
    })
}

#[test]
fn later_commands_on_a_held_resource_wait_and_come_back_in_order_once_it_finished() {
    let voting = Voting::default();
    let held = delete("dtk-a");
    voting.hold(&held);
    assert!(voting.resource_busy("dtk-a"));
    // The held command itself is never parked behind itself.
    assert!(!voting.park(&held));
    let (first, second) = (delete("dtk-a"), delete("dtk-a"));
    assert!(voting.park(&first));
    assert!(voting.park(&second));
    // Another resource is not held up.
    assert!(!voting.park(&delete("dtk-b")));
    assert!(voting.next_parked("dtk-a").is_none(), "still held");
    voting.finished(&held);
    assert!(voting.resource_busy("dtk-a"), "parked commands still wait");
    assert_eq!(voting.next_parked("dtk-a").map(|c| c.id), Some(first.id));
    // The first one is held in turn: the second waits behind it.
    voting.hold(&first);
    assert!(voting.next_parked("dtk-a").is_none());
    voting.finished(&first);
    assert_eq!(voting.next_parked("dtk-a").map(|c| c.id), Some(second.id));
    assert!(voting.next_parked("dtk-a").is_none());
    assert!(!voting.resource_busy("dtk-a"));
}

#[test]
fn a_manual_vote_occupies_no_resource_and_release_ends_only_with_finished() {
    let voting = Voting::default();
    let manual = command(CommandPayload::CreateVoting {
        configuration: VotingConfigurationId(uuid::Uuid::now_v7()),
        title: "t".into(),
        question: "q".into(),
        skip: Vec::new(),
        nonce: None,
    });
    voting.hold(&manual);
    assert!(!voting.resource_busy(&manual.ordering_key()));
    // Held until its outcome is durable (`finished`), whatever happened in between.
    assert!(voting.is_held(manual.id));
    voting.finished(&manual);
    assert!(!voting.is_held(manual.id));
}

#[tokio::test]
async fn the_release_queue_survives_a_worker_run_that_stopped() {
    let voting = Voting::default();
    let id = CommandId::new();
    {
        // A run that panics drops its guard with it.
        let queue = voting.release_rx.clone();
        let _run = queue.lock().await;
    }
    voting.release_tx.send(id).unwrap();
    let queue = voting.release_rx.clone();
    let mut again = queue.lock().await;
    assert_eq!(again.recv().await, Some(id));
}

#[tokio::test]
async fn pools_of_different_commands_change_side_by_side_and_lock_all_waits_for_them() {
    use futures_util::FutureExt;
    let voting = Voting::default();
    let (one, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let first = voting.lock(one).await;
    assert!(
        voting.lock(other).now_or_never().is_some(),
        "another command's pools are not held up"
    );
    assert!(
        voting.lock(one).now_or_never().is_none(),
        "the same command's pools wait"
    );
    assert!(
        voting.lock_all().now_or_never().is_none(),
        "a change across all pools waits for every pool lock"
    );
    drop(first);
    let all = voting
        .lock_all()
        .now_or_never()
        .expect("free once released");
    assert!(voting.lock(other).now_or_never().is_none());
    drop(all);
    voting.prune_locks();
    assert!(voting.locks.lock().unwrap().is_empty(), "unused locks go");
}

#[test]
fn a_policy_change_makes_an_earlier_read_of_the_policies_stale() {
    let voting = Voting::default();
    let profile = ProfileId(uuid::Uuid::now_v7());
    let before = voting.policy_generation(profile);
    voting.forget_policies(profile);
    assert_ne!(voting.policy_generation(profile), before);
    assert_eq!(
        voting.policy_generation(ProfileId(uuid::Uuid::now_v7())),
        0,
        "other profiles are untouched"
    );
}
