//! Ballots: issued to authenticators on the bus and over HTTP, and the votes they cast.

use super::*;

/// The device channel key K_dc of a device with a pinned key.
pub(crate) fn channel_key(core: &Core, device: &Device) -> Option<[u8; 32]> {
    let pinned = device.public_key.as_deref()?;
    if let Some(key) = core.voting.cached_channel_key(device.id, pinned) {
        return Some(key);
    }
    let key = privicore_wire::SignedPublicKey::parse(pinned).ok()?;
    let pair = core.cab.key_pair()?;
    let derived = bus::channel_key(&pair.diffie_hellman(&key), &device.id.to_string());
    core.voting.cache_channel_key(device.id, pinned, derived);
    Some(derived)
}

/// The `ballot.issue` body of a ballot (also the items of List pending ballots); `mac` is
/// empty without a channel key.
pub(crate) fn issue_body(
    pool: &Pool,
    attempt: &Attempt,
    ballot: &Ballot,
    key: Option<&[u8; 32]>,
) -> bus::ballots::Issue {
    let mut issue = bus::ballots::Issue {
        ballot_id: ballot.id.to_string(),
        pool_id: pool.id.to_string(),
        attempt: attempt.number,
        max_attempts: pool.rules.max_attempts,
        origin: pool.origin.as_str().to_owned(),
        title: pool.title.clone(),
        question: pool.question.clone(),
        event: pool
            .event
            .as_ref()
            .map(|e| json!({ "eventId": e.event_id, "eventName": e.event_name, "label": e.label })),
        policy: pool
            .policy_id
            .map(|p| json!({ "policyId": p.to_string(), "name": pool.policy_name })),
        attributes: pool.attributes.clone(),
        requested_by: json!({
            "profileId": pool.requested_by.profile_id.to_string(),
            "applicationId": pool.requested_by.application_id.map(|a| a.to_string()),
            "clientId": pool.requested_by.client_id,
        }),
        strategy: pool.rules.strategy.as_str().to_owned(),
        opened_at: attempt.opened_at.rfc3339(),
        expires_at: attempt.deadline.rfc3339(),
        mac: String::new(),
    };
    if let Some(key) = key {
        issue.mac = issue.expected_mac(key);
    }
    issue
}

pub(super) async fn send_issue(core: &Core, pool: &Pool, attempt: &Attempt, ballot: &Ballot) {
    if !core.devices.connected(&ballot.device_id.to_string()) {
        return;
    }
    let Ok(Some(device)) = core.store.device(ballot.device_id).await else {
        return;
    };
    let Some(key) = channel_key(core, &device) else {
        return;
    };
    core.send(
        ballot.device_id,
        bus::ballots::ISSUE,
        issue_body(pool, attempt, ballot, Some(&key)),
    )
    .await;
}

/// Re-sends the device's open ballots (after its `device.welcome`).
pub(crate) async fn resend_ballots(core: &Core, device: &Device) -> Result<(), StoreError> {
    let Some(key) = channel_key(core, device) else {
        return Ok(());
    };
    for ballot in core.store.pending_ballots(device.id).await? {
        if ballot.profile_id != device.profile_id {
            continue;
        }
        let Some(pool) = core.store.pool(ballot.pool_id).await? else {
            continue;
        };
        let attempts = core.store.attempts(pool.id).await?;
        if let Some(attempt) = attempts.iter().find(|a| a.number == ballot.attempt) {
            core.send(
                device.id,
                bus::ballots::ISSUE,
                issue_body(&pool, attempt, &ballot, Some(&key)),
            )
            .await;
        }
    }
    Ok(())
}

/// The device's open, unanswered ballots with their pool and attempt, oldest first.
pub(crate) async fn pending_for(
    core: &Core,
    device: &Device,
) -> Result<Vec<bus::ballots::Issue>, StoreError> {
    let key = channel_key(core, device);
    let mut out = Vec::new();
    for ballot in core.store.pending_ballots(device.id).await? {
        if ballot.profile_id != device.profile_id {
            continue;
        }
        let Some(pool) = core.store.pool(ballot.pool_id).await? else {
            continue;
        };
        let attempts = core.store.attempts(pool.id).await?;
        if let Some(attempt) = attempts.iter().find(|a| a.number == ballot.attempt) {
            if attempt.deadline <= now(core) {
                continue;
            }
            out.push(issue_body(&pool, attempt, &ballot, key.as_ref()));
        }
    }
    Ok(out)
}

/// What a recorded vote answers (§6.3.2).
pub struct VoteRecorded {
    pub ballot_id: BallotId,
    pub pool_id: PoolId,
    pub attempt: u32,
    pub decision: Decision,
    pub recorded_at: Timestamp,
    pub pool_status: PoolStatus,
}

/// Records a vote of `device` (§6.4) and tallies right after.
pub(crate) async fn cast(
    core: &Core,
    device: &Device,
    ballot_id: BallotId,
    decision: Decision,
    channel: Channel,
) -> Result<VoteRecorded, Error> {
    // The pool's lock is found from the ballot; both are read again under it.
    let Some(ballot) = core.store.ballot(ballot_id).await? else {
        return Err(Reason::BallotNotFound.into());
    };
    let Some(pool) = core.store.pool(ballot.pool_id).await? else {
        return Err(Reason::BallotNotFound.into());
    };
    let _guard = core.voting.lock(pool_key(&pool)).await;
    let at = now(core);
    let Some(ballot) = core.store.ballot(ballot_id).await? else {
        return Err(Reason::BallotNotFound.into());
    };
    // Another profile's (or device's) ballot is indistinguishable from an unknown one.
    if ballot.profile_id != device.profile_id || ballot.device_id != device.id {
        return Err(Reason::BallotNotFound.into());
    }
    let Some(pool) = core.store.pool(ballot.pool_id).await? else {
        return Err(Reason::BallotNotFound.into());
    };
    let attempts = core.store.attempts(pool.id).await?;
    let Some(attempt) = attempts.iter().find(|a| a.number == ballot.attempt) else {
        return Err(Reason::BallotNotFound.into());
    };
    if let Some(reason) = ballot.refuses(device.id, attempt) {
        return Err(reason.into());
    }
    if attempt.deadline <= at {
        return Err(Reason::BallotClosed.into());
    }
    let entry = AuditEntry::new(
        AuditKind::VoteCast,
        actor::device(device.id),
        format!("pool:{}", pool.id),
        decision.as_str(),
    )
    .for_profile(pool.profile_id)
    .with_details(json!({
        "ballot": ballot.id.to_string(),
        "device": device.id.to_string(),
        "attempt": ballot.attempt,
        "channel": channel.as_str(),
        "at": at.rfc3339(),
    }));
    // Directory pools: the profile's first vote is its vote; its other ballots go.
    let siblings: Vec<Ballot> = if pool.origin == PoolOrigin::Directory {
        core.store
            .ballots(pool.id)
            .await?
            .into_iter()
            .filter(|b| {
                b.attempt == ballot.attempt
                    && b.profile_id == ballot.profile_id
                    && b.id != ballot.id
                    && b.is_pending()
            })
            .collect()
    } else {
        Vec::new()
    };
    let vote = PendingVote {
        ballot_id: ballot.id,
        vote: Vote {
            decision,
            voted_at: at,
            channel,
        },
        entry,
        siblings: siblings.iter().map(|b| b.id).collect(),
    };
    let status = advance(core, pool.id, Some(vote)).await?;
    withdraw_sent(core, &pool, attempt, &siblings, WithdrawReason::Decided).await;
    Ok(VoteRecorded {
        ballot_id: ballot.id,
        pool_id: pool.id,
        attempt: ballot.attempt,
        decision,
        recorded_at: at,
        pool_status: status,
    })
}

/// `ballot.vote` from a device on the bus (§6.2): MAC required, answered with
/// `ballot.vote_result`.
pub(crate) async fn bus_vote(
    core: &Core,
    device_id: DeviceId,
    vote: Option<bus::ballots::Vote>,
) -> Result<bus::ballots::VoteResult, Error> {
    let refuse = |ballot: String, reason: Reason| bus::ballots::VoteResult {
        ballot_id: ballot,
        accepted: false,
        error: Some(reason.code().to_owned()),
        pool_status: None,
    };
    let Some(vote) = vote else {
        return Ok(refuse(String::new(), Reason::BallotNotFound));
    };
    // A device no longer approved votes on nothing, whatever connection it still holds.
    let device = match core.store.device(device_id).await? {
        Some(device) if device.status == privicore_domain::device::DeviceStatus::Approved => device,
        _ => return Ok(refuse(vote.ballot_id, Reason::BallotNotFound)),
    };
    let Some(key) = channel_key(core, &device) else {
        return Ok(refuse(vote.ballot_id, Reason::BallotInvalidMac));
    };
    if !vote.verifies(&key) {
        return Ok(refuse(vote.ballot_id, Reason::BallotInvalidMac));
    }
    let Some(decision) = Decision::parse(&vote.decision) else {
        return Ok(refuse(vote.ballot_id, Reason::BallotInvalidDecision));
    };
    let Ok(ballot) = vote.ballot_id.parse::<BallotId>() else {
        return Ok(refuse(vote.ballot_id, Reason::BallotNotFound));
    };
    match cast(core, &device, ballot, decision, Channel::Bus).await {
        Ok(done) => Ok(bus::ballots::VoteResult {
            ballot_id: vote.ballot_id,
            accepted: true,
            error: None,
            pool_status: Some(done.pool_status.as_str().to_owned()),
        }),
        Err(e) if e.reason == Reason::AuditUnavailable || e.reason == Reason::InternalError => {
            Err(e)
        }
        Err(e) => Ok(refuse(vote.ballot_id, e.reason)),
    }
}
