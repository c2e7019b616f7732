//! Pools, attempts, ballots and held commands.

use super::*;
use crate::effect::VotingEffect;
use crate::governance::pool::{
    Attempt, AttemptStatus, Ballot, Channel, Decision, Pool, PoolOrigin, PoolStatus, RequestedBy,
    Vote, WithdrawReason,
};
use crate::governance::{VotingDefaults, VotingRules};
use crate::{PoolId, Reason};

async fn write(
    store: &dyn MetadataStore,
    effects: Vec<VotingEffect>,
) -> Result<Vec<u64>, StoreError> {
    let effects: Vec<Effect> = effects.into_iter().map(Effect::from).collect();
    store.apply(&effects, None).await
}

fn pool_of(profile: &Profile, command: Option<CommandId>) -> Pool {
    Pool {
        id: PoolId(CommandId::new().0),
        profile_id: profile.id,
        origin: PoolOrigin::Policy,
        command_id: command,
        policy_id: None,
        policy_name: Some("p".into()),
        event: None,
        title: "Approve".into(),
        question: "May I?".into(),
        nonce: Some("HR-1".into()),
        attributes: json!({ "context": "/x" }),
        requested_by: RequestedBy {
            profile_id: profile.id,
            application_id: None,
            client_id: None,
        },
        voting_configuration_id: None,
        rules: VotingRules::resolve(None, &VotingDefaults::default()),
        skip: vec![DeviceId::new()],
        status: PoolStatus::Open,
        current_attempt: 1,
        created_at: Timestamp(1_700_000_000),
        resolved_at: None,
        failure_key: None,
        directory_id: None,
        voter_profiles: vec![],
    }
}

pub(super) async fn pools_attempts_ballots_and_holds_are_durable(store: &dyn MetadataStore) {
    let p = stored_profile(store, "voting-owner").await;
    let command = CommandId::new();
    let mut pool = pool_of(&p, Some(command));
    let attempt = Attempt::open(&pool, 1, Timestamp(1_700_000_000));
    let (a, b) = (DeviceId::new(), DeviceId::new());
    let ballots = vec![
        Ballot::issue(&pool, 1, a, Timestamp(1_700_000_000)),
        Ballot::issue(&pool, 1, b, Timestamp(1_700_000_000)),
    ];
    write(
        store,
        vec![
            VotingEffect::HoldCommand {
                command_id: command,
                profile_id: p.id,
                at: Timestamp(1_700_000_000),
            },
            VotingEffect::save_pool(pool.clone()),
            VotingEffect::SaveAttempt(attempt.clone()),
            VotingEffect::IssueBallots(ballots.clone()),
        ],
    )
    .await
    .expect("open the pool");
    assert_eq!(store.pool(pool.id).await.unwrap(), Some(pool.clone()));
    assert_eq!(
        store.command_pools(command).await.unwrap(),
        vec![pool.clone()]
    );
    assert!(store.open_pools().await.unwrap().contains(&pool));
    assert_eq!(
        store.attempts(pool.id).await.unwrap(),
        vec![attempt.clone()]
    );
    assert_eq!(store.ballots(pool.id).await.unwrap(), ballots);
    assert_eq!(
        store.pending_ballots(a).await.unwrap(),
        vec![ballots[0].clone()]
    );
    let held = store.held_command(command).await.unwrap().expect("held");
    assert_eq!(held.released, None);
    assert!(
        store
            .held_commands()
            .await
            .unwrap()
            .iter()
            .any(|h| h.command_id == command)
    );

    // One vote per ballot.
    let vote = Vote {
        decision: Decision::Yes,
        voted_at: Timestamp(1_700_000_010),
        channel: Channel::Bus,
    };
    write(
        store,
        vec![VotingEffect::RecordVote {
            ballot_id: ballots[0].id,
            vote,
        }],
    )
    .await
    .expect("first vote");
    let again = write(
        store,
        vec![VotingEffect::RecordVote {
            ballot_id: ballots[0].id,
            vote,
        }],
    )
    .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Reason::BallotAlreadyVoted))),
        "{again:?}"
    );
    let read = store.ballot(ballots[0].id).await.unwrap().unwrap();
    assert_eq!(read.vote, Some(vote));
    assert!(store.pending_ballots(a).await.unwrap().is_empty());
    let unknown = write(
        store,
        vec![VotingEffect::RecordVote {
            ballot_id: crate::BallotId(uuid::Uuid::new_v4()),
            vote,
        }],
    )
    .await;
    assert!(matches!(
        unknown,
        Err(StoreError::Conflict(Reason::BallotNotFound))
    ));

    // Closing the attempt withdraws the unanswered ballot and refuses late votes.
    let mut closed = attempt.clone();
    closed.status = AttemptStatus::Passed;
    closed.closed_at = Some(Timestamp(1_700_000_011));
    pool.resolve(PoolStatus::Approved, None, Timestamp(1_700_000_011));
    let n = write(
        store,
        vec![
            VotingEffect::SaveAttempt(closed.clone()),
            VotingEffect::WithdrawAttempt {
                pool_id: pool.id,
                attempt: 1,
                reason: WithdrawReason::Decided,
            },
            VotingEffect::save_pool(pool.clone()),
            VotingEffect::ReleaseCommand {
                command_id: command,
                outcome: "approved".into(),
                at: Timestamp(1_700_000_012),
            },
        ],
    )
    .await
    .unwrap();
    assert_eq!(n[1], 1, "one unanswered ballot withdrawn");
    let late = write(
        store,
        vec![VotingEffect::RecordVote {
            ballot_id: ballots[1].id,
            vote,
        }],
    )
    .await;
    assert!(
        matches!(late, Err(StoreError::Conflict(Reason::BallotClosed))),
        "{late:?}"
    );
    assert_eq!(
        store
            .ballot(ballots[1].id)
            .await
            .unwrap()
            .unwrap()
            .withdrawn,
        Some(WithdrawReason::Decided)
    );
    assert_eq!(store.attempts(pool.id).await.unwrap(), vec![closed]);
    assert!(
        !store
            .open_pools()
            .await
            .unwrap()
            .iter()
            .any(|o| o.id == pool.id)
    );
    assert_eq!(
        store.pool(pool.id).await.unwrap().unwrap().status,
        PoolStatus::Approved
    );
    let held = store.held_command(command).await.unwrap().unwrap();
    assert_eq!(
        held.released,
        Some((Timestamp(1_700_000_012), "approved".into()))
    );
    assert!(
        !store
            .held_commands()
            .await
            .unwrap()
            .iter()
            .any(|h| h.command_id == command)
    );
    assert_eq!(store.pool(PoolId(CommandId::new().0)).await.unwrap(), None);
}
