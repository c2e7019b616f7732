//! Evaluation of a command about to run (§2.2): the profile's active policies, the pools a
//! matching command opens, and what the pipeline does with a held command once they end.

use super::*;

/// The profile's active policies: from memory, read once per profile and policy change.
pub(crate) async fn active_policies(
    core: &Core,
    profile: ProfileId,
) -> Result<Arc<Vec<Policy>>, StoreError> {
    if let Some(p) = core.voting.policies.lock().expect("policies").get(&profile) {
        return Ok(p.clone());
    }
    let generation = core.voting.policy_generation(profile);
    let read = Arc::new(core.store.active_policies(profile).await?);
    // A policy that changed while this read ran may not be in it: cache only a read that
    // no change overtook (the next caller reads again).
    let mut cached = core.voting.policies.lock().expect("policies");
    if core.voting.policy_generation(profile) == generation {
        cached.insert(profile, read.clone());
    }
    Ok(read)
}

/// Whether an active policy holds this token command (§3.2), judged from the token's
/// context and risk group in hand, so that a command no policy holds keeps the acceptance
/// fast path with no store read.
pub(crate) async fn may_gate(
    core: &Core,
    command: &CommandRecord,
    context: &str,
    risk: Option<&Value>,
) -> Result<bool, StoreError> {
    let Some(event) = event_of(&command.payload) else {
        return Ok(false);
    };
    let policies = active_policies(core, command.profile_id).await?;
    if policies.is_empty() {
        return Ok(false);
    }
    let attributes = EventAttributes {
        context: Some(context.to_owned()),
        risk: risk.cloned(),
        ..Default::default()
    };
    Ok(policies.iter().any(|p| p.holds(event, &attributes)))
}

/// The catalogue event a command raises (§3.1), if it can be gated.
pub(super) fn event_of(payload: &CommandPayload) -> Option<&'static str> {
    Some(match payload {
        CommandPayload::ExchangeData { streamed: true, .. } => "102",
        CommandPayload::ExchangeData { .. } => "101",
        CommandPayload::ReplaceData { .. } => "103",
        CommandPayload::RequestData { .. } => "201",
        CommandPayload::DeleteData { .. } => "301",
        CommandPayload::RequestDevice { .. } => "401",
        CommandPayload::ApproveDevice { .. } => "402",
        CommandPayload::RemoveDevice { .. } => "403",
        CommandPayload::RegisterStorage { .. } => "501",
        CommandPayload::RemoveStorage { .. } => "502",
        CommandPayload::SyncDevice { .. } => "503",
        CommandPayload::RegisterPolicy { .. } => "701",
        CommandPayload::ActivatePolicy { .. } => "702",
        CommandPayload::DeactivatePolicy { .. } => "703",
        CommandPayload::DeletePolicy { .. } => "704",
        CommandPayload::RegisterAuthenticator { .. } => "801",
        CommandPayload::RemoveAuthenticator { .. } => "802",
        CommandPayload::SetVotingDefault { .. } => "803",
        CommandPayload::RegisterVotingConfiguration { .. }
        | CommandPayload::UpdateVotingConfiguration { .. } => "804",
        CommandPayload::ChangePassword { .. } => "901",
        CommandPayload::RegisterPublicKey { .. } => "902",
        CommandPayload::RegisterOauthApplication { .. } => "601",
        CommandPayload::RequestOauthCode { .. } => "602",
        CommandPayload::CreateDirectoryUser { .. } => "1001",
        CommandPayload::InviteToDirectory { .. } => "1002",
        CommandPayload::SetDirectoryUserPassword { .. } => "1003",
        CommandPayload::UpdateDirectoryUser { .. } => "1004",
        CommandPayload::CreateProfileDevice { .. } => "1005",
        CommandPayload::AddDirectoryStorage { .. } => "1006",
        _ => return None,
    })
}

/// The attributes of the command's event: for matching (§3.2) and for the ballots.
pub(super) async fn attributes(
    core: &Core,
    command: &CommandRecord,
) -> Result<Option<(EventAttributes, Value)>, StoreError> {
    let token = match &command.payload {
        CommandPayload::ExchangeData { token, .. }
        | CommandPayload::ReplaceData { token, .. }
        | CommandPayload::RequestData { token, .. }
        | CommandPayload::DeleteData { token } => Some(token.clone()),
        _ => None,
    };
    let device = match &command.payload {
        CommandPayload::RequestDevice { device_id, .. }
        | CommandPayload::ApproveDevice { device_id }
        | CommandPayload::RemoveDevice { device_id, .. }
        | CommandPayload::RegisterStorage { device_id }
        | CommandPayload::RemoveStorage { device_id, .. }
        | CommandPayload::SyncDevice { device_id, .. }
        | CommandPayload::RegisterAuthenticator { device_id }
        | CommandPayload::RemoveAuthenticator { device_id, .. } => Some(*device_id),
        _ => None,
    };
    let requester = json!(command.profile_id.to_string());
    let application = json!(command.application_id.map(|a| a.to_string()));
    // Template 10 (docs/api/directory.md §1.5): the directory concerned and the user.
    let directory = match &command.payload {
        CommandPayload::CreateDirectoryUser {
            directory_id,
            username,
            ..
        } => Some((*directory_id, Some(username.clone()), None)),
        CommandPayload::InviteToDirectory {
            directory_id,
            username,
            invited,
            ..
        } => Some((*directory_id, username.clone(), *invited)),
        CommandPayload::SetDirectoryUserPassword {
            directory_id,
            target,
            ..
        }
        | CommandPayload::UpdateDirectoryUser {
            directory_id,
            target,
            ..
        }
        | CommandPayload::CreateProfileDevice {
            directory_id,
            target,
            ..
        }
        | CommandPayload::AddDirectoryStorage {
            directory_id,
            target,
            ..
        } => Some((*directory_id, None, Some(*target))),
        _ => None,
    };
    if let Some((directory_id, username, target)) = directory {
        let name = core.store.directory(directory_id).await?.map(|d| d.name);
        let username = match (username, target) {
            (Some(u), _) => Some(u),
            (None, Some(t)) => core.store.profile(t).await?.map(|p| p.username),
            (None, None) => None,
        };
        return Ok(Some((
            EventAttributes {
                directory_id: Some(directory_id.to_string()),
                ..Default::default()
            },
            json!({
                "subject": command.payload.kind(),
                "directoryId": directory_id.to_string(),
                "directoryName": name,
                "targetUsername": username,
                "requester": requester,
                "application": application,
            }),
        )));
    }
    if let Some(token) = token {
        let row = core.store.data_token(&token).await?;
        let context = row.as_ref().map(|r| r.context.clone());
        let risk = row.as_ref().and_then(|r| r.meta_risk.clone());
        let version = match &command.payload {
            CommandPayload::ExchangeData { version, .. }
            | CommandPayload::ReplaceData { version, .. } => Some(*version),
            _ => row.as_ref().and_then(|r| r.version),
        };
        let size = match version {
            Some(v) => core
                .store
                .token_version(&token, v)
                .await?
                .map(|v| v.total_size),
            None => None,
        };
        let shown = json!({
            "token": token,
            "context": context,
            "size": size,
            "classification": risk.as_ref().and_then(|r| r.get("classification")).cloned(),
            "fileName": row.as_ref().and_then(|r| r.meta_file.as_ref()).and_then(|f| f.get("name")).cloned(),
            "requester": requester,
            "application": application,
        });
        return Ok(Some((
            EventAttributes {
                context,
                risk,
                ..Default::default()
            },
            shown,
        )));
    }
    if let Some(device_id) = device {
        let d = core.store.device(device_id).await?;
        let name = match &command.payload {
            CommandPayload::RequestDevice { name, .. } => Some(name.clone()),
            _ => d.map(|d| d.name),
        };
        return Ok(Some((
            EventAttributes::default(),
            json!({ "deviceIdentifier": device_id.to_string(), "deviceName": name, "requester": requester, "application": application }),
        )));
    }
    if matches!(command.payload, CommandPayload::RegisterPublicKey { .. }) {
        // Gated only when it replaces a key (§3.1, event 902).
        let has_key = core
            .store
            .profile(command.profile_id)
            .await?
            .is_some_and(|p| p.public_key.is_some());
        if !has_key {
            return Ok(None);
        }
    }
    if let CommandPayload::RegisterOauthApplication {
        client_id,
        name,
        scopes,
        ..
    }
    | CommandPayload::RequestOauthCode {
        client_id,
        scopes,
        nonce: name,
        ..
    } = &command.payload
    {
        // Event 601 concerns an application that has no client yet as far as policies
        // go: a `clientId` configuration always matches it (docs/api/voting-and-policy.md).
        let (name, matched_client) = match &command.payload {
            CommandPayload::RequestOauthCode { application_id, .. } => (
                core.store
                    .oauth_application(*application_id)
                    .await?
                    .map(|a| a.name),
                Some(client_id.clone()),
            ),
            _ => (Some(name.clone()), None),
        };
        return Ok(Some((
            EventAttributes {
                client_id: matched_client,
                ..Default::default()
            },
            json!({ "applicationName": name, "clientId": client_id, "scopes": scopes, "requester": requester, "application": application }),
        )));
    }
    Ok(Some((
        EventAttributes::default(),
        json!({ "subject": command.payload.kind(), "requester": requester, "application": application }),
    )))
}

/// What the pipeline does with a command about to run.
pub(crate) enum Gate {
    /// Run it now; `release` ends its hold in the same write as its outcome.
    Run(Option<Release>),
    /// Held for its pools; it comes back when they resolved.
    Held,
    /// Fail it with this key (its pools did not approve, or none could start).
    Fail(Reason, Option<Release>),
    /// Finished already (a release handed over twice): nothing to do.
    Finished,
    /// A manual vote ended: the command succeeds with this body.
    Done(Value, Option<Release>),
}

/// The end of a held command's hold: the effect that ends it and the audit record of its
/// outcome, both committed with the command's outcome (one transaction).
pub(crate) struct Release {
    pub effect: Effect,
    pub record: AuditEntry,
}

/// The release of held `command` with `outcome` (`approved`, a pool status, or the key it
/// fails with).
pub(crate) fn release(command: &CommandRecord, outcome: &str, at: Timestamp) -> Release {
    Release {
        effect: VotingEffect::ReleaseCommand {
            command_id: command.id,
            outcome: outcome.to_owned(),
            at,
        }
        .into(),
        record: AuditEntry::new(
            AuditKind::CommandHeldOutcome,
            actor::ENGINE,
            format!("command:{}", command.id),
            outcome,
        )
        .for_profile(command.profile_id),
    }
}

/// Whether the stored command has finished (its lane got it once more than it should).
pub(super) async fn finished_already(
    core: &Core,
    command: &CommandRecord,
) -> Result<bool, StoreError> {
    Ok(!matches!(
        core.store.command(command.id).await?.map(|c| c.state),
        Some(privicore_domain::command::CommandState::Pending)
    ))
}

/// §2.2: decides whether a gateable command runs, is held, or fails for its vote.
pub(crate) async fn gate(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
    if core.voting.is_held(command.id) {
        return resolved_hold(core, command).await;
    }
    if let CommandPayload::CreateVoting { .. } = command.payload {
        return open_manual(core, command).await;
    }
    if let CommandPayload::CreateDirectoryVoting { .. } = command.payload {
        return super::directory::open(core, command).await;
    }
    let Some(event_id) = event_of(&command.payload) else {
        return Ok(Gate::Run(None));
    };
    let policies = active_policies(core, command.profile_id).await?;
    if policies.is_empty()
        || !policies
            .iter()
            .any(|p| p.event_ids.iter().any(|e| e == event_id))
    {
        return Ok(Gate::Run(None));
    }
    let Some((attrs, shown)) = attributes(core, command).await? else {
        return Ok(Gate::Run(None));
    };
    let matching: Vec<&Policy> = policies
        .iter()
        .filter(|p| p.holds(event_id, &attrs))
        .collect();
    if matching.is_empty() {
        return Ok(Gate::Run(None));
    }
    let guard = core.voting.lock(command.id.0).await;
    // Pools already opened for it (a retry after a failed write, or memory lost): never
    // open them twice; its hold resolves from the store.
    if !core.store.command_pools(command.id).await?.is_empty() {
        if finished_already(core, command).await? {
            return Ok(Gate::Finished);
        }
        core.voting.hold(command);
        drop(guard);
        return resolved_hold(core, command).await;
    }
    let at = now(core);
    let devices = core.store.authenticators(command.profile_id).await?;
    let defaults = core.store.voting_defaults(command.profile_id).await?;
    let (template_event, label) = privicore_domain::governance::templates::event_of(event_id)
        .map(|(_, e)| (e.name.to_owned(), e.label.to_owned()))
        .unwrap_or_else(|| (event_id.to_owned(), event_id.to_owned()));
    let mut opened = Vec::new();
    for policy in matching {
        let configuration = match policy.voting_configuration_id {
            Some(id) => core.store.voting_configuration(id).await?,
            None => None,
        };
        let rules = VotingRules::resolve(configuration.as_ref(), &defaults);
        let pool = Pool {
            id: PoolId(uuid::Uuid::now_v7()),
            profile_id: command.profile_id,
            origin: PoolOrigin::Policy,
            command_id: Some(command.id),
            policy_id: Some(policy.id),
            policy_name: Some(policy.name.clone()),
            event: Some(PoolEvent {
                event_id: event_id.to_owned(),
                event_name: template_event.clone(),
                label: label.clone(),
            }),
            title: format!("Approve: {label}"),
            question: question(command, &label, &shown),
            nonce: None,
            attributes: shown.clone(),
            requested_by: requested_by(core, command).await?,
            voting_configuration_id: configuration.as_ref().map(|c| c.id),
            rules,
            skip: Vec::new(),
            status: PoolStatus::Open,
            current_attempt: 1,
            created_at: at,
            resolved_at: None,
            failure_key: None,
            directory_id: None,
            voter_profiles: Vec::new(),
        };
        // Nothing is opened unless every pool can start (§1.6).
        let voters = match pool.eligible(&devices) {
            Ok(v) => v,
            Err(reason) => return Ok(Gate::Fail(reason, None)),
        };
        opened.push((pool, voters));
    }
    let mut effects: Vec<Effect> = vec![
        VotingEffect::HoldCommand {
            command_id: command.id,
            profile_id: command.profile_id,
            at,
        }
        .into(),
    ];
    let mut issued = Vec::new();
    for (pool, voters) in &opened {
        let attempt = Attempt::open(pool, 1, at);
        let ballots: Vec<Ballot> = voters
            .iter()
            .map(|d| Ballot::issue(pool, 1, *d, at))
            .collect();
        effects.push(VotingEffect::save_pool(pool.clone()).into());
        effects.push(VotingEffect::SaveAttempt(attempt.clone()).into());
        effects.push(VotingEffect::IssueBallots(ballots.clone()).into());
        issued.push((pool, attempt, ballots));
    }
    // Recorded with its effects: a hold that cannot be recorded does not happen.
    let subject = format!("command:{}", command.id);
    let mut audit = vec![
        AuditEntry::new(
            AuditKind::CommandHeld,
            actor::ENGINE,
            subject.clone(),
            "held",
        )
        .for_profile(command.profile_id)
        .with_details(json!({ "eventId": event_id, "pools": opened.iter().map(|(p, _)| p.id.to_string()).collect::<Vec<_>>() })),
    ];
    for (pool, voters) in &opened {
        audit.push(
            AuditEntry::new(
                AuditKind::PoolOpened,
                actor::ENGINE,
                format!("pool:{}", pool.id),
                "opened",
            )
            .for_profile(command.profile_id)
            .with_details(json!({ "command": command.id.to_string(), "policy": pool.policy_id.map(|p| p.to_string()), "voters": voters.len() })),
        );
    }
    if core.audit.record(audit, effects, None).await.is_err() {
        return Ok(Gate::Fail(Reason::AuditUnavailable, None));
    }
    core.voting.hold(command);
    for (pool, attempt, ballots) in &issued {
        core.voting.set_deadline(pool.id, Some(attempt.deadline));
        for b in ballots {
            send_issue(core, pool, attempt, b).await;
        }
    }
    publish_progress(core, command.id, command.profile_id, command.application_id).await;
    Ok(Gate::Held)
}

/// Who asked for a vote: the command's profile and application, with the application's
/// client id (docs/api/oauth.md §1.2: pools and ballots are attributed to it).
pub(super) async fn requested_by(
    core: &Core,
    command: &CommandRecord,
) -> Result<RequestedBy, StoreError> {
    let client_id = match command.application_id {
        Some(app) => core
            .store
            .oauth_application(app)
            .await?
            .map(|a| a.client_id),
        None => None,
    };
    Ok(RequestedBy {
        profile_id: command.profile_id,
        application_id: command.application_id,
        client_id,
    })
}

pub(super) fn question(command: &CommandRecord, label: &str, shown: &Value) -> String {
    let mut q = format!("{label} requested by profile {}", command.profile_id);
    if let Some(context) = shown.get("context").and_then(Value::as_str) {
        q.push_str(&format!(" in context {context}"));
    }
    if let Some(size) = shown.get("size").and_then(Value::as_u64) {
        q.push_str(&format!(" ({size} bytes)"));
    }
    if let Some(name) = shown.get("deviceName").and_then(Value::as_str) {
        q.push_str(&format!(" for device {name}"));
    }
    q.push('.');
    q
}

/// A held command came back to its lane: its pools decided.
pub(super) async fn resolved_hold(
    core: &Core,
    command: &CommandRecord,
) -> Result<Gate, StoreError> {
    let pools = core.store.command_pools(command.id).await?;
    if pools.iter().any(|p| p.status == PoolStatus::Open) {
        return Ok(Gate::Held);
    }
    let at = now(core);
    if let CommandPayload::CreateVoting { .. } | CommandPayload::CreateDirectoryVoting { .. } =
        command.payload
    {
        let Some(pool) = pools.first() else {
            return Ok(Gate::Fail(Reason::InternalError, None));
        };
        let key = pool.failure_key.clone();
        let ran = matches!(
            key.as_deref(),
            None | Some("voting.rejected") | Some("voting.expired")
        );
        let outcome = if ran {
            pool.status.as_str().to_owned()
        } else {
            key.clone().unwrap_or_default()
        };
        let rel = Some(release(command, &outcome, at));
        if ran {
            let (yes, no) = last_counts(core, pool).await?;
            return Ok(Gate::Done(
                json!({
                    "poolId": pool.id.to_string(),
                    "status": pool.status.as_str(),
                    "attempts": pool.current_attempt,
                    "yes": yes,
                    "no": no,
                    "nonce": pool.nonce,
                    "resolvedAt": pool.resolved_at.map(Timestamp::rfc3339),
                }),
                rel,
            ));
        }
        let reason = key
            .as_deref()
            .and_then(Reason::from_code)
            .unwrap_or(Reason::VotingExpired);
        return Ok(Gate::Fail(reason, rel));
    }
    // The key of the earliest-created pool that did not approve (§2.4).
    let failed = pools
        .iter()
        .filter(|p| p.status != PoolStatus::Approved && p.status != PoolStatus::Cancelled)
        .min_by_key(|p| (p.created_at, p.id))
        .or_else(|| pools.iter().find(|p| p.status != PoolStatus::Approved));
    let outcome = match failed {
        Some(p) => p
            .failure_key
            .clone()
            .unwrap_or_else(|| Reason::VotingRejected.code().into()),
        None => "approved".to_owned(),
    };
    let rel = Some(release(command, &outcome, at));
    if failed.is_some() {
        let reason = Reason::from_code(&outcome).unwrap_or(Reason::VotingRejected);
        return Ok(Gate::Fail(reason, rel));
    }
    // Approved: the command re-validates against current state as it runs (§2.2 step 4).
    Ok(Gate::Run(rel))
}

pub(super) async fn last_counts(core: &Core, pool: &Pool) -> Result<(u32, u32), StoreError> {
    let ballots: Vec<Ballot> = core
        .store
        .ballots(pool.id)
        .await?
        .into_iter()
        .filter(|b| b.attempt == pool.current_attempt)
        .collect();
    let t = pool.tally(&ballots);
    Ok((t.yes, t.no))
}

/// The manual vote of Create voting (§6.1.1): its pool id is the command id.
pub(super) async fn open_manual(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
    let CommandPayload::CreateVoting {
        configuration,
        title,
        question,
        skip,
        nonce,
    } = &command.payload
    else {
        return Ok(Gate::Run(None));
    };
    let guard = core.voting.lock(command.id.0).await;
    // Its pool opened before (a retry, or a release handed over twice): never reopen it.
    if !core.store.command_pools(command.id).await?.is_empty() {
        if finished_already(core, command).await? {
            return Ok(Gate::Finished);
        }
        core.voting.hold(command);
        drop(guard);
        return resolved_hold(core, command).await;
    }
    let config = core
        .store
        .voting_configuration(*configuration)
        .await?
        .filter(|c| c.profile_id == command.profile_id);
    let Some(config) = config else {
        return Ok(Gate::Fail(Reason::VotingConfigurationNotFound, None));
    };
    let defaults = core.store.voting_defaults(command.profile_id).await?;
    let at = now(core);
    let pool = Pool {
        id: PoolId(command.id.0),
        profile_id: command.profile_id,
        origin: PoolOrigin::Manual,
        command_id: Some(command.id),
        policy_id: None,
        policy_name: None,
        event: None,
        title: title.clone(),
        question: question.clone(),
        nonce: nonce.clone(),
        attributes: json!({}),
        requested_by: requested_by(core, command).await?,
        voting_configuration_id: Some(config.id),
        rules: VotingRules::resolve(Some(&config), &defaults),
        skip: skip.clone(),
        status: PoolStatus::Open,
        current_attempt: 1,
        created_at: at,
        resolved_at: None,
        failure_key: None,
        directory_id: None,
        voter_profiles: Vec::new(),
    };
    let devices = core.store.authenticators(command.profile_id).await?;
    let voters = match pool.eligible(&devices) {
        Ok(v) => v,
        Err(reason) => return Ok(Gate::Fail(reason, None)),
    };
    let voters = voters.into_iter().map(|d| (pool.profile_id, d)).collect();
    let details = json!({ "origin": "manual", "nonce": nonce });
    start_pool(core, command, pool, voters, details).await
}

/// Opens `pool` for `command` (a manual or directory vote) with ballots to `voters`, and
/// holds the command until it ends.
pub(super) async fn start_pool(
    core: &Core,
    command: &CommandRecord,
    pool: Pool,
    voters: Vec<(ProfileId, DeviceId)>,
    mut details: Value,
) -> Result<Gate, StoreError> {
    let at = pool.created_at;
    let attempt = Attempt::open(&pool, 1, at);
    let ballots: Vec<Ballot> = voters
        .iter()
        .map(|(p, d)| Ballot::issue_to(&pool, 1, *p, *d, at))
        .collect();
    details["voters"] = json!(voters.len());
    let entry = AuditEntry::new(
        AuditKind::PoolOpened,
        actor::caller(command.profile_id, command.application_id),
        format!("pool:{}", pool.id),
        "opened",
    )
    .for_profile(command.profile_id)
    .with_details(details);
    let effects: Vec<Effect> = vec![
        VotingEffect::HoldCommand {
            command_id: command.id,
            profile_id: command.profile_id,
            at,
        }
        .into(),
        VotingEffect::save_pool(pool.clone()).into(),
        VotingEffect::SaveAttempt(attempt.clone()).into(),
        VotingEffect::IssueBallots(ballots.clone()).into(),
    ];
    if core.audit.record(vec![entry], effects, None).await.is_err() {
        // Not a refusal: the lane tries again once the log takes records.
        return Err(StoreError::Unavailable(
            "the audit log did not take a vote's opening".into(),
        ));
    }
    core.voting.held.lock().expect("held").insert(command.id);
    core.voting.set_deadline(pool.id, Some(attempt.deadline));
    for b in &ballots {
        send_issue(core, &pool, &attempt, b).await;
    }
    publish_progress(core, command.id, command.profile_id, command.application_id).await;
    Ok(Gate::Held)
}

/// The `pools` of a held command's `command_status: 1` body (§2.3).
pub(super) async fn progress_body(core: &Core, command: CommandId) -> Result<Value, StoreError> {
    let mut pools = Vec::new();
    for pool in core.store.command_pools(command).await? {
        let attempts = core.store.attempts(pool.id).await?;
        let current = attempts.iter().find(|a| a.number == pool.current_attempt);
        let ballots: Vec<Ballot> = core
            .store
            .ballots(pool.id)
            .await?
            .into_iter()
            .filter(|b| b.attempt == pool.current_attempt)
            .collect();
        let t = pool.tally(&ballots);
        pools.push(json!({
            "poolId": pool.id.to_string(),
            "policyId": pool.policy_id.map(|p| p.to_string()),
            "policyName": pool.policy_name,
            "eventId": pool.event.as_ref().map(|e| e.event_id.clone()),
            "status": pool.status.as_str(),
            "strategy": pool.rules.strategy.as_str(),
            "quorumSize": pool.rules.quorum_size,
            "attempt": pool.current_attempt,
            "maxAttempts": pool.rules.max_attempts,
            "deadline": current.map(|a| a.deadline.rfc3339()),
            "ballotsIssued": t.issued,
            "yes": t.yes,
            "no": t.no,
            "outstanding": t.outstanding(),
        }));
    }
    Ok(json!({ "state": "awaiting_vote", "pools": pools }))
}

pub(super) async fn publish_progress(
    core: &Core,
    command: CommandId,
    profile: ProfileId,
    application: Option<uuid::Uuid>,
) {
    match progress_body(core, command).await {
        Ok(body) => {
            core.publish(BusEvent::Profile(ProfileEvent::command_status(
                profile,
                application,
                command,
                1,
                body,
            )))
            .await
        }
        Err(error) => tracing::warn!(%command, %error, "could not read a held command's pools"),
    }
}
