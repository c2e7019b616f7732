//! A pool's life after it opened: tallies, attempts, deadlines, decisions and restarts.

use super::*;

/// A vote to record with the pool's next change: its audit record and its effect commit
/// together with whatever the vote decides (one transaction for the deciding vote).
pub(super) struct PendingVote {
    pub ballot_id: BallotId,
    pub vote: Vote,
    pub entry: AuditEntry,
    /// Directory pools: the voter profile's other open ballots of the attempt, withdrawn
    /// (`decided`) with this vote, which is the profile's.
    pub siblings: Vec<BallotId>,
}

impl PendingVote {
    /// Counts the vote in the ballots being tallied.
    fn count_in(&self, ballots: &mut [Ballot]) {
        for b in ballots.iter_mut() {
            if b.id == self.ballot_id {
                b.vote = Some(self.vote);
            } else if self.siblings.contains(&b.id) {
                b.withdrawn = Some(WithdrawReason::Decided);
            }
        }
    }

    fn effects(&self) -> Vec<Effect> {
        let mut effects: Vec<Effect> = vec![
            VotingEffect::RecordVote {
                ballot_id: self.ballot_id,
                vote: self.vote,
            }
            .into(),
        ];
        effects.extend(self.siblings.iter().map(|b| {
            Effect::from(VotingEffect::WithdrawBallot {
                ballot_id: *b,
                reason: WithdrawReason::Decided,
            })
        }));
        effects
    }
}

/// Writes `entries` (with `vote`'s first) and `effects` (with `vote`'s first) in one
/// transaction; a vote that cannot be recorded is not counted.
async fn record(
    core: &Core,
    vote: Option<PendingVote>,
    mut entries: Vec<AuditEntry>,
    mut effects: Vec<Effect>,
) -> Result<(), Error> {
    if let Some(vote) = vote {
        effects.splice(0..0, vote.effects());
        entries.insert(0, vote.entry);
    }
    if entries.is_empty() {
        core.store.apply(&effects, None).await?;
        return Ok(());
    }
    core.audit
        .record(entries, effects, None)
        .await
        .map(drop)
        .map_err(|_| Error::new(Reason::AuditUnavailable))
}

/// Tallies the pool's current attempt, counting `vote` if one is cast, and moves it on if
/// the result can no longer change (or its deadline passed). Runs under the pool's lock.
/// Returns the pool's status.
pub(super) async fn advance(
    core: &Core,
    pool_id: PoolId,
    mut vote: Option<PendingVote>,
) -> Result<PoolStatus, Error> {
    let Some(mut pool) = core.store.pool(pool_id).await? else {
        core.voting.set_deadline(pool_id, None);
        return Ok(PoolStatus::Cancelled);
    };
    loop {
        if pool.status != PoolStatus::Open {
            core.voting.set_deadline(pool.id, None);
            if vote.is_some() {
                record(core, vote.take(), Vec::new(), Vec::new()).await?;
            }
            return Ok(pool.status);
        }
        let at = now(core);
        let attempts = core.store.attempts(pool.id).await?;
        let Some(mut attempt) = attempts
            .into_iter()
            .find(|a| a.number == pool.current_attempt)
        else {
            record(core, vote.take(), Vec::new(), Vec::new()).await?;
            return Ok(pool.status);
        };
        let mut ballots: Vec<Ballot> = core
            .store
            .ballots(pool.id)
            .await?
            .into_iter()
            .filter(|b| b.attempt == attempt.number)
            .collect();
        if let Some(v) = &vote {
            v.count_in(&mut ballots);
        }
        let passed = attempt.deadline <= at;
        let Some(result) = pool.tally(&ballots).decide(&pool.rules, passed) else {
            record(core, vote.take(), Vec::new(), Vec::new()).await?;
            // Undecided: due again at the attempt's own deadline.
            core.voting.set_deadline(pool.id, Some(attempt.deadline));
            if let Some(command) = pool.command_id {
                publish_progress(
                    core,
                    command,
                    pool.profile_id,
                    pool.requested_by.application_id,
                )
                .await;
            }
            return Ok(pool.status);
        };
        let reason = if passed && result != AttemptStatus::Passed {
            WithdrawReason::Expired
        } else {
            WithdrawReason::Decided
        };
        attempt.status = result;
        attempt.closed_at = Some(at);
        let mut effects: Vec<Effect> = vec![
            VotingEffect::SaveAttempt(attempt.clone()).into(),
            VotingEffect::WithdrawAttempt {
                pool_id: pool.id,
                attempt: attempt.number,
                reason,
            }
            .into(),
        ];
        let unanswered: Vec<Ballot> = ballots.into_iter().filter(Ballot::is_pending).collect();
        match pool.after_attempt(result) {
            AfterAttempt::NextAttempt(n) => match voters_of(core, &pool).await? {
                Ok(voters) => {
                    pool.current_attempt = n;
                    let next = Attempt::open(&pool, n, at);
                    let fresh: Vec<Ballot> = voters
                        .iter()
                        .map(|(p, d)| Ballot::issue_to(&pool, n, *p, *d, at))
                        .collect();
                    effects.push(VotingEffect::save_pool(pool.clone()).into());
                    effects.push(VotingEffect::SaveAttempt(next.clone()).into());
                    effects.push(VotingEffect::IssueBallots(fresh.clone()).into());
                    record(core, vote.take(), Vec::new(), effects).await?;
                    withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
                    core.voting.set_deadline(pool.id, Some(next.deadline));
                    for b in &fresh {
                        send_issue(core, &pool, &next, b).await;
                    }
                    continue;
                }
                Err(why) => {
                    let status = PoolStatus::Expired;
                    decide(core, &mut pool, status, Some(why), vote.take(), effects).await?;
                    withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
                }
            },
            AfterAttempt::Resolve(status) => {
                decide(core, &mut pool, status, None, vote.take(), effects).await?;
                withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
            }
        }
        after_decided(core, &pool).await?;
        return Ok(pool.status);
    }
}

/// Ends the pool with `effects` of its last attempt (and the `vote` that decided it), in
/// the transaction that appends its audit record.
pub(super) async fn decide(
    core: &Core,
    pool: &mut Pool,
    status: PoolStatus,
    failure: Option<Reason>,
    vote: Option<PendingVote>,
    mut effects: Vec<Effect>,
) -> Result<(), Error> {
    let at = now(core);
    let mut decided = pool.clone();
    decided.resolve(status, failure, at);
    let entry = AuditEntry::new(
        AuditKind::PoolDecided,
        actor::ENGINE,
        format!("pool:{}", pool.id),
        status.as_str(),
    )
    .for_profile(pool.profile_id)
    .with_details(json!({
        "attempts": decided.current_attempt,
        "failureKey": decided.failure_key,
        "command": decided.command_id.map(|c| c.to_string()),
    }));
    effects.push(VotingEffect::save_pool(decided.clone()).into());
    if let Err(error) = record(core, vote, vec![entry], effects).await {
        // Not recorded, not decided: due at once, so the worker tries again on its next
        // tick rather than at the attempt's deadline.
        core.voting.set_deadline(pool.id, Some(now(core)));
        return Err(error);
    }
    *pool = decided;
    core.voting.set_deadline(pool.id, None);
    Ok(())
}

pub(super) async fn withdraw_sent(
    core: &Core,
    pool: &Pool,
    attempt: &Attempt,
    unanswered: &[Ballot],
    reason: WithdrawReason,
) {
    for b in unanswered {
        core.send(
            b.device_id,
            bus::ballots::WITHDRAW,
            bus::ballots::Withdraw {
                ballot_id: b.id.to_string(),
                pool_id: pool.id.to_string(),
                attempt: attempt.number,
                reason: reason.as_str().to_owned(),
            },
        )
        .await;
    }
}

/// A pool ended: cancel its siblings if it failed, release the command once all decided.
pub(super) async fn after_decided(core: &Core, pool: &Pool) -> Result<(), Error> {
    let Some(command) = pool.command_id else {
        return Ok(());
    };
    let siblings = core.store.command_pools(command).await?;
    if pool.status != PoolStatus::Approved {
        for mut other in siblings
            .into_iter()
            .filter(|p| p.status == PoolStatus::Open)
        {
            let attempts = core.store.attempts(other.id).await?;
            let mut effects: Vec<Effect> = Vec::new();
            let mut closed = None;
            if let Some(mut a) = attempts
                .into_iter()
                .find(|a| a.number == other.current_attempt)
            {
                a.status = AttemptStatus::Cancelled;
                a.closed_at = Some(now(core));
                effects.push(VotingEffect::SaveAttempt(a.clone()).into());
                effects.push(
                    VotingEffect::WithdrawAttempt {
                        pool_id: other.id,
                        attempt: a.number,
                        reason: WithdrawReason::Cancelled,
                    }
                    .into(),
                );
                closed = Some(a);
            }
            let unanswered: Vec<Ballot> = core
                .store
                .ballots(other.id)
                .await?
                .into_iter()
                .filter(|b| b.attempt == other.current_attempt && b.is_pending())
                .collect();
            decide(core, &mut other, PoolStatus::Cancelled, None, None, effects).await?;
            if let Some(a) = closed {
                withdraw_sent(core, &other, &a, &unanswered, WithdrawReason::Cancelled).await;
            }
        }
        let _ = core.voting.release_tx.send(command);
        return Ok(());
    }
    // Every pool decided (one refused whose siblings' cancellation failed included): the
    // held command's outcome follows from them all.
    if siblings.iter().all(|p| p.status != PoolStatus::Open) {
        let _ = core.voting.release_tx.send(command);
    } else {
        publish_progress(
            core,
            command,
            pool.profile_id,
            pool.requested_by.application_id,
        )
        .await;
    }
    Ok(())
}

/// An authenticator was removed (or lost the role): its unanswered ballots are withdrawn
/// (`device_removed`) and the attempts they belonged to are tallied again.
pub(crate) async fn device_left(core: &Core, device: DeviceId) -> Result<(), Error> {
    let _guard = core.voting.lock_all().await;
    let ballots = core.store.pending_ballots(device).await?;
    let mut pools = Vec::new();
    for b in &ballots {
        core.store
            .apply(
                &[VotingEffect::WithdrawBallot {
                    ballot_id: b.id,
                    reason: WithdrawReason::DeviceRemoved,
                }
                .into()],
                None,
            )
            .await?;
        core.send(
            device,
            bus::ballots::WITHDRAW,
            bus::ballots::Withdraw {
                ballot_id: b.id.to_string(),
                pool_id: b.pool_id.to_string(),
                attempt: b.attempt,
                reason: WithdrawReason::DeviceRemoved.as_str().to_owned(),
            },
        )
        .await;
        if !pools.contains(&b.pool_id) {
            pools.push(b.pool_id);
        }
    }
    for pool in pools {
        advance(core, pool, None).await?;
    }
    Ok(())
}

/// The voters of the pool's next attempt, as (profile, device), or why none can vote.
pub(super) async fn voters_of(
    core: &Core,
    pool: &Pool,
) -> Result<Result<Vec<(ProfileId, DeviceId)>, Reason>, StoreError> {
    if pool.origin == PoolOrigin::Directory {
        return super::directory::voters(core, pool, false).await;
    }
    let devices = core.store.authenticators(pool.profile_id).await?;
    Ok(pool
        .eligible(&devices)
        .map(|v| v.into_iter().map(|d| (pool.profile_id, d)).collect()))
}

/// Loads the holds and deadlines a previous run left (restart, also after `kill -9`).
pub(crate) async fn resume(core: &Core) -> Result<(), StoreError> {
    for held in core.store.held_commands().await? {
        match core.store.command(held.command_id).await? {
            Some(record) => core.voting.hold(&record),
            None => {
                core.voting
                    .held
                    .lock()
                    .expect("held")
                    .insert(held.command_id);
            }
        }
    }
    for pool in core.store.open_pools().await? {
        let attempts = core.store.attempts(pool.id).await?;
        if let Some(a) = attempts.iter().find(|a| a.number == pool.current_attempt) {
            core.voting.set_deadline(pool.id, Some(a.deadline));
        }
    }
    Ok(())
}

/// A pool and what check-pool-status shows of it (§6.1.2), if `profile` may read it.
pub(crate) async fn pool_status(
    core: &Core,
    profile: ProfileId,
    application: Option<uuid::Uuid>,
    pool_id: PoolId,
) -> Result<Value, Error> {
    let Some(pool) = core.store.pool(pool_id).await? else {
        return Err(Reason::VotingPoolNotFound.into());
    };
    if application.is_some() && pool.requested_by.application_id != application {
        return Err(Reason::VotingPoolNotFound.into());
    }
    let ballots = core.store.ballots(pool.id).await?;
    if pool.profile_id != profile
        && !super::directory::may_read(core, &pool, &ballots, profile).await?
    {
        return Err(Reason::VotingPoolNotFound.into());
    }
    let attempts = core.store.attempts(pool.id).await?;
    let client_id = match (
        &pool.requested_by.client_id,
        pool.requested_by.application_id,
    ) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(app)) => core
            .store
            .oauth_application(app)
            .await?
            .map(|a| a.client_id),
        (None, None) => None,
    };
    let directory = pool.origin == PoolOrigin::Directory;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            let of: Vec<Ballot> = ballots
                .iter()
                .filter(|b| b.attempt == a.number)
                .cloned()
                .collect();
            let t = pool.tally(&of);
            let votes: Vec<Value> = of
                .iter()
                .filter_map(|b| {
                    b.vote.map(|v| {
                        let voter = if directory {
                            b.profile_id.to_string()
                        } else {
                            b.device_id.to_string()
                        };
                        json!({
                            "voter": voter,
                            "deviceIdentifier": b.device_id.to_string(),
                            "decision": v.decision.as_str(),
                            "votedAt": v.voted_at.rfc3339(),
                        })
                    })
                })
                .collect();
            json!({
                "attempt": a.number,
                "status": a.status.as_str(),
                "openedAt": a.opened_at.rfc3339(),
                "deadline": a.deadline.rfc3339(),
                "closedAt": a.closed_at.map(Timestamp::rfc3339),
                "ballotsIssued": t.issued,
                "yes": t.yes,
                "no": t.no,
                "outstanding": if a.status == AttemptStatus::Open { t.outstanding() } else { 0 },
                "votes": votes,
            })
        })
        .collect();
    Ok(json!({
        "poolId": pool.id.to_string(),
        "origin": pool.origin.as_str(),
        "status": pool.status.as_str(),
        "profileId": pool.profile_id.to_string(),
        "commandId": pool.command_id.map(|c| c.to_string()),
        "directoryId": pool.directory_id.map(|d| d.to_string()),
        "policy": pool.policy_id.map(|p| json!({ "policyId": p.to_string(), "name": pool.policy_name })),
        "event": pool.event.as_ref().map(|e| json!({ "eventId": e.event_id, "eventName": e.event_name, "label": e.label })),
        "title": pool.title,
        "question": pool.question,
        "nonce": pool.nonce,
        "requestedBy": {
            "profileId": pool.requested_by.profile_id.to_string(),
            "applicationId": pool.requested_by.application_id.map(|a| a.to_string()),
            "clientId": client_id,
        },
        "votingConfigurationId": pool.voting_configuration_id.map(|c: VotingConfigurationId| c.to_string()),
        "strategy": pool.rules.strategy.as_str(),
        "percentageRequired": pool.rules.percentage,
        "quorumSize": pool.rules.quorum_size,
        "timeLimit": pool.rules.time_limit,
        "maxAttempts": pool.rules.max_attempts,
        "currentAttempt": pool.current_attempt,
        "attempts": attempts,
        "createdAt": pool.created_at.rfc3339(),
        "resolvedAt": pool.resolved_at.map(Timestamp::rfc3339),
        "failureKey": pool.failure_key,
    }))
}
