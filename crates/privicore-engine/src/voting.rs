//! Pools and gated commands (docs/api/voting-and-policy.md §1.4–1.6, §2, §6): opening
//! pools for commands that match active policies, holding the command, recording votes,
//! closing attempts at their deadlines (engine clock), and releasing the command.
//!
//! Every change of a pool runs under one lock, so tallies, deadlines and votes never race.
//! Every vote, pool opened/decided and held-command outcome is appended to the audit log
//! before it takes effect.

use crate::engine::Core;
use crate::workers::Worker;
use async_trait::async_trait;
use privicore_domain::audit::{AuditEntry, AuditKind, actor};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::{Effect, VotingEffect};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::governance::pool::tally;
use privicore_domain::governance::{
    AfterAttempt, Attempt, AttemptStatus, Ballot, Channel, Decision, EventAttributes, Policy, Pool,
    PoolEvent, PoolOrigin, PoolStatus, RequestedBy, Vote, VotingRules, WithdrawReason,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{
    BallotId, CommandId, Error, PoolId, ProfileId, Reason, Timestamp, VotingConfigurationId,
};
use privicore_wire::bus;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How often the deadline worker looks at the engine clock.
const TICK: Duration = Duration::from_millis(100);

/// The voting state an engine keeps in memory; the store has the durable truth.
pub(crate) struct Voting {
    /// Serializes every change of every pool.
    lock: tokio::sync::Mutex<()>,
    /// Active policies per profile, dropped when a policy changes.
    policies: Mutex<HashMap<ProfileId, Arc<Vec<Policy>>>>,
    /// Commands held for their pools.
    held: Mutex<HashSet<CommandId>>,
    /// Open pools and the deadline of their current attempt.
    deadlines: Mutex<HashMap<PoolId, Timestamp>>,
    /// The resources held commands occupy, and the later commands on them (lane order).
    order: Mutex<HeldResources>,
    /// Commands whose pools all resolved: the worker hands them back to their lane.
    release_tx: mpsc::UnboundedSender<CommandId>,
    /// Shared by every run of the worker, so a restarted worker takes the same queue.
    release_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<CommandId>>>,
}

/// Lane order around holds (docs/contract-decisions.md, "Commands behind a held command"):
/// while a command is held, later commands on the same resource wait behind it, in
/// acceptance order, and run in its lane right after it finished.
#[derive(Default)]
struct HeldResources {
    /// Resource (ordering key) → the held command occupying it.
    holder: HashMap<String, CommandId>,
    /// Resource → commands accepted after its holder, oldest first.
    parked: HashMap<String, VecDeque<CommandRecord>>,
}

/// The resource a held command occupies: only commands that name one (a token or a
/// device); profile-wide commands and manual votes do not stop their lane-mates.
fn occupied(command: &CommandRecord) -> Option<String> {
    if let CommandPayload::CreateVoting { .. } = command.payload {
        return None;
    }
    command.payload.resource()
}

impl Default for Voting {
    fn default() -> Self {
        let (release_tx, rx) = mpsc::unbounded_channel();
        Self {
            lock: Default::default(),
            policies: Default::default(),
            held: Default::default(),
            deadlines: Default::default(),
            order: Default::default(),
            release_tx,
            release_rx: Arc::new(tokio::sync::Mutex::new(rx)),
        }
    }
}

impl Voting {
    /// Forgets the cached active policies of a profile (a policy changed).
    pub(crate) fn forget_policies(&self, profile: ProfileId) {
        self.policies.lock().expect("policies").remove(&profile);
    }

    fn is_held(&self, command: CommandId) -> bool {
        self.held.lock().expect("held").contains(&command)
    }

    /// Marks `command` held, occupying its resource.
    fn hold(&self, command: &CommandRecord) {
        self.held.lock().expect("held").insert(command.id);
        if let Some(key) = occupied(command) {
            self.order
                .lock()
                .expect("order")
                .holder
                .insert(key, command.id);
        }
    }

    /// Parks `command` when another command holds its resource; it then runs right after
    /// that one finished (see [`Voting::next_parked`]). Returns whether it was parked.
    pub(crate) fn park(&self, command: &CommandRecord) -> bool {
        let Some(key) = command.payload.resource() else {
            return false;
        };
        let mut order = self.order.lock().expect("order");
        match order.holder.get(&key) {
            Some(holder) if *holder != command.id => {
                order
                    .parked
                    .entry(key)
                    .or_default()
                    .push_back(command.clone());
                true
            }
            _ => false,
        }
    }

    /// Whether a held command occupies `key`, or commands wait behind one: a command on
    /// it must go through its lane (not run at acceptance).
    pub(crate) fn resource_busy(&self, key: &str) -> bool {
        let order = self.order.lock().expect("order");
        order.holder.contains_key(key) || order.parked.get(key).is_some_and(|q| !q.is_empty())
    }

    /// The next command parked behind `key`, once no held command occupies it.
    pub(crate) fn next_parked(&self, key: &str) -> Option<CommandRecord> {
        let mut order = self.order.lock().expect("order");
        if order.holder.contains_key(key) {
            return None;
        }
        let queue = order.parked.get_mut(key)?;
        let next = queue.pop_front();
        if queue.is_empty() {
            order.parked.remove(key);
        }
        next
    }

    /// The command's outcome (with the end of its hold) is durable: it is no longer held
    /// and frees its resource. Until then a retry finds it still held, so it never opens
    /// pools twice.
    pub(crate) fn finished(&self, command: &CommandRecord) {
        if !self.held.lock().expect("held").remove(&command.id) {
            return;
        }
        if let Some(key) = occupied(command) {
            let mut order = self.order.lock().expect("order");
            if order.holder.get(&key) == Some(&command.id) {
                order.holder.remove(&key);
            }
        }
    }

    fn set_deadline(&self, pool: PoolId, deadline: Option<Timestamp>) {
        let mut d = self.deadlines.lock().expect("deadlines");
        match deadline {
            Some(at) => d.insert(pool, at),
            None => d.remove(&pool),
        };
    }

    fn due(&self, now: Timestamp) -> Vec<PoolId> {
        self.deadlines
            .lock()
            .expect("deadlines")
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect()
    }
}

fn now(core: &Core) -> Timestamp {
    core.config.clock.now()
}

/// The profile's active policies: from memory, read once per profile and policy change.
pub(crate) async fn active_policies(
    core: &Core,
    profile: ProfileId,
) -> Result<Arc<Vec<Policy>>, StoreError> {
    if let Some(p) = core.voting.policies.lock().expect("policies").get(&profile) {
        return Ok(p.clone());
    }
    let read = Arc::new(core.store.active_policies(profile).await?);
    core.voting
        .policies
        .lock()
        .expect("policies")
        .insert(profile, read.clone());
    Ok(read)
}

/// Whether a command of `profile` could be gated (it has an active policy): commands that
/// could are never run at acceptance.
pub(crate) async fn may_gate(core: &Core, profile: ProfileId) -> Result<bool, StoreError> {
    Ok(!active_policies(core, profile).await?.is_empty())
}

/// The catalogue event a command raises (§3.1), if it can be gated.
fn event_of(payload: &CommandPayload) -> Option<&'static str> {
    Some(match payload {
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
        _ => return None,
    })
}

/// The attributes of the command's event: for matching (§3.2) and for the ballots.
async fn attributes(
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
    Ok(Some((
        EventAttributes::default(),
        json!({ "subject": command.payload.kind(), "requester": requester, "application": application }),
    )))
}

/// What the pipeline does with a command about to run.
pub(crate) enum Gate {
    /// Run it now; `release` ends its hold in the same write as its outcome.
    Run(Option<Effect>),
    /// Held for its pools; it comes back when they resolved.
    Held,
    /// Fail it with this key (its pools did not approve, or none could start).
    Fail(Reason, Option<Effect>),
    /// A manual vote ended: the command succeeds with this body.
    Done(Value, Option<Effect>),
}

fn release(command: CommandId, outcome: &str, at: Timestamp) -> Effect {
    VotingEffect::ReleaseCommand {
        command_id: command,
        outcome: outcome.to_owned(),
        at,
    }
    .into()
}

/// §2.2: decides whether a gateable command runs, is held, or fails for its vote.
pub(crate) async fn gate(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
    if core.voting.is_held(command.id) {
        return resolved_hold(core, command).await;
    }
    if let CommandPayload::CreateVoting { .. } = command.payload {
        return open_manual(core, command).await;
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
    let guard = core.voting.lock.lock().await;
    // Pools already opened for it (a retry after a failed write, or memory lost): never
    // open them twice; its hold resolves from the store.
    if !core.store.command_pools(command.id).await?.is_empty() {
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
            requested_by: RequestedBy {
                profile_id: command.profile_id,
                application_id: command.application_id,
            },
            voting_configuration_id: configuration.as_ref().map(|c| c.id),
            rules,
            skip: Vec::new(),
            status: PoolStatus::Open,
            current_attempt: 1,
            created_at: at,
            resolved_at: None,
            failure_key: None,
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
    // Audit before effect: a hold that cannot be recorded does not happen.
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
    for entry in audit {
        if core.audit.append(entry).await.is_err() {
            return Ok(Gate::Fail(Reason::AuditUnavailable, None));
        }
    }
    core.store.apply(&effects, None).await?;
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

fn question(command: &CommandRecord, label: &str, shown: &Value) -> String {
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
async fn resolved_hold(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
    let pools = core.store.command_pools(command.id).await?;
    if pools.iter().any(|p| p.status == PoolStatus::Open) {
        return Ok(Gate::Held);
    }
    let at = now(core);
    let subject = format!("command:{}", command.id);
    if let CommandPayload::CreateVoting { .. } = command.payload {
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
        let entry = AuditEntry::new(
            AuditKind::CommandHeldOutcome,
            actor::ENGINE,
            subject,
            outcome.clone(),
        )
        .for_profile(command.profile_id);
        if core.audit.append(entry).await.is_err() {
            return Ok(Gate::Fail(Reason::AuditUnavailable, None));
        }
        let rel = Some(release(command.id, &outcome, at));
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
    let entry = AuditEntry::new(
        AuditKind::CommandHeldOutcome,
        actor::ENGINE,
        subject,
        outcome.clone(),
    )
    .for_profile(command.profile_id);
    if core.audit.append(entry).await.is_err() {
        return Ok(Gate::Fail(Reason::AuditUnavailable, None));
    }
    let rel = Some(release(command.id, &outcome, at));
    if failed.is_some() {
        let reason = Reason::from_code(&outcome).unwrap_or(Reason::VotingRejected);
        return Ok(Gate::Fail(reason, rel));
    }
    // Approved: the command re-validates against current state as it runs (§2.2 step 4).
    Ok(Gate::Run(rel))
}

async fn last_counts(core: &Core, pool: &Pool) -> Result<(u32, u32), StoreError> {
    let ballots: Vec<Ballot> = core
        .store
        .ballots(pool.id)
        .await?
        .into_iter()
        .filter(|b| b.attempt == pool.current_attempt)
        .collect();
    let t = tally(&ballots);
    Ok((t.yes, t.no))
}

/// The manual vote of Create voting (§6.1.1): its pool id is the command id.
async fn open_manual(core: &Core, command: &CommandRecord) -> Result<Gate, StoreError> {
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
    let _guard = core.voting.lock.lock().await;
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
        requested_by: RequestedBy {
            profile_id: command.profile_id,
            application_id: command.application_id,
        },
        voting_configuration_id: Some(config.id),
        rules: VotingRules::resolve(Some(&config), &defaults),
        skip: skip.clone(),
        status: PoolStatus::Open,
        current_attempt: 1,
        created_at: at,
        resolved_at: None,
        failure_key: None,
    };
    let devices = core.store.authenticators(command.profile_id).await?;
    let voters = match pool.eligible(&devices) {
        Ok(v) => v,
        Err(reason) => return Ok(Gate::Fail(reason, None)),
    };
    let attempt = Attempt::open(&pool, 1, at);
    let ballots: Vec<Ballot> = voters
        .iter()
        .map(|d| Ballot::issue(&pool, 1, *d, at))
        .collect();
    let entry = AuditEntry::new(
        AuditKind::PoolOpened,
        actor::caller(command.profile_id, command.application_id),
        format!("pool:{}", pool.id),
        "opened",
    )
    .for_profile(command.profile_id)
    .with_details(json!({ "origin": "manual", "voters": voters.len(), "nonce": nonce }));
    if core.audit.append(entry).await.is_err() {
        return Ok(Gate::Fail(Reason::AuditUnavailable, None));
    }
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
    core.store.apply(&effects, None).await?;
    core.voting.held.lock().expect("held").insert(command.id);
    core.voting.set_deadline(pool.id, Some(attempt.deadline));
    for b in &ballots {
        send_issue(core, &pool, &attempt, b).await;
    }
    publish_progress(core, command.id, command.profile_id, command.application_id).await;
    Ok(Gate::Held)
}

/// The `pools` of a held command's `command_status: 1` body (§2.3).
async fn progress_body(core: &Core, command: CommandId) -> Result<Value, StoreError> {
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
        let t = tally(&ballots);
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

async fn publish_progress(
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

/// The device channel key K_dc of a device with a pinned key.
pub(crate) fn channel_key(core: &Core, device: &Device) -> Option<[u8; 32]> {
    let key = privicore_wire::SignedPublicKey::parse(device.public_key.as_deref()?).ok()?;
    let pair = core.cab.key_pair()?;
    Some(bus::channel_key(
        &pair.diffie_hellman(&key),
        &device.id.to_string(),
    ))
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
            "clientId": null,
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

async fn send_issue(core: &Core, pool: &Pool, attempt: &Attempt, ballot: &Ballot) {
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
    let _guard = core.voting.lock.lock().await;
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
    core.audit
        .append(entry)
        .await
        .map_err(|_| Error::new(Reason::AuditUnavailable))?;
    let vote = Vote {
        decision,
        voted_at: at,
        channel,
    };
    core.store
        .apply(
            &[VotingEffect::RecordVote {
                ballot_id: ballot.id,
                vote,
            }
            .into()],
            None,
        )
        .await?;
    let status = advance(core, pool.id, false).await?;
    Ok(VoteRecorded {
        ballot_id: ballot.id,
        pool_id: pool.id,
        attempt: ballot.attempt,
        decision,
        recorded_at: at,
        pool_status: status,
    })
}

/// Tallies the pool's current attempt and moves it on if the result can no longer change
/// (or its deadline passed). Runs under the voting lock. Returns the pool's status.
async fn advance(core: &Core, pool_id: PoolId, _tick: bool) -> Result<PoolStatus, StoreError> {
    let Some(mut pool) = core.store.pool(pool_id).await? else {
        core.voting.set_deadline(pool_id, None);
        return Ok(PoolStatus::Cancelled);
    };
    loop {
        if pool.status != PoolStatus::Open {
            core.voting.set_deadline(pool.id, None);
            return Ok(pool.status);
        }
        let at = now(core);
        let attempts = core.store.attempts(pool.id).await?;
        let Some(mut attempt) = attempts
            .into_iter()
            .find(|a| a.number == pool.current_attempt)
        else {
            return Ok(pool.status);
        };
        let ballots: Vec<Ballot> = core
            .store
            .ballots(pool.id)
            .await?
            .into_iter()
            .filter(|b| b.attempt == attempt.number)
            .collect();
        let passed = attempt.deadline <= at;
        let Some(result) = tally(&ballots).decide(&pool.rules, passed) else {
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
            AfterAttempt::NextAttempt(n) => {
                let devices = core.store.authenticators(pool.profile_id).await?;
                match pool.eligible(&devices) {
                    Ok(voters) => {
                        pool.current_attempt = n;
                        let next = Attempt::open(&pool, n, at);
                        let fresh: Vec<Ballot> = voters
                            .iter()
                            .map(|d| Ballot::issue(&pool, n, *d, at))
                            .collect();
                        effects.push(VotingEffect::save_pool(pool.clone()).into());
                        effects.push(VotingEffect::SaveAttempt(next.clone()).into());
                        effects.push(VotingEffect::IssueBallots(fresh.clone()).into());
                        core.store.apply(&effects, None).await?;
                        withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
                        core.voting.set_deadline(pool.id, Some(next.deadline));
                        for b in &fresh {
                            send_issue(core, &pool, &next, b).await;
                        }
                        continue;
                    }
                    Err(why) => {
                        let status = PoolStatus::Expired;
                        decide(core, &mut pool, status, Some(why), effects).await?;
                        withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
                    }
                }
            }
            AfterAttempt::Resolve(status) => {
                decide(core, &mut pool, status, None, effects).await?;
                withdraw_sent(core, &pool, &attempt, &unanswered, reason).await;
            }
        }
        after_decided(core, &pool).await?;
        return Ok(pool.status);
    }
}

/// Ends the pool (audited first) with `effects` of its last attempt.
async fn decide(
    core: &Core,
    pool: &mut Pool,
    status: PoolStatus,
    failure: Option<Reason>,
    mut effects: Vec<Effect>,
) -> Result<(), StoreError> {
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
    if core.audit.append(entry).await.is_err() {
        // Not recorded, not decided: the worker tries again on its next tick.
        return Err(StoreError::Unavailable("audit log unavailable".into()));
    }
    effects.push(VotingEffect::save_pool(decided.clone()).into());
    core.store.apply(&effects, None).await?;
    *pool = decided;
    core.voting.set_deadline(pool.id, None);
    Ok(())
}

async fn withdraw_sent(
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
async fn after_decided(core: &Core, pool: &Pool) -> Result<(), StoreError> {
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
            decide(core, &mut other, PoolStatus::Cancelled, None, effects).await?;
            if let Some(a) = closed {
                withdraw_sent(core, &other, &a, &unanswered, WithdrawReason::Cancelled).await;
            }
        }
        let _ = core.voting.release_tx.send(command);
        return Ok(());
    }
    if siblings.iter().all(|p| p.status == PoolStatus::Approved) {
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
pub(crate) async fn device_left(core: &Core, device: DeviceId) -> Result<(), StoreError> {
    let _guard = core.voting.lock.lock().await;
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
        advance(core, pool, false).await?;
    }
    Ok(())
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
    if pool.profile_id != profile
        || (application.is_some() && pool.requested_by.application_id != application)
    {
        return Err(Reason::VotingPoolNotFound.into());
    }
    let attempts = core.store.attempts(pool.id).await?;
    let ballots = core.store.ballots(pool.id).await?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            let of: Vec<Ballot> = ballots
                .iter()
                .filter(|b| b.attempt == a.number)
                .cloned()
                .collect();
            let t = tally(&of);
            let votes: Vec<Value> = of
                .iter()
                .filter_map(|b| {
                    b.vote.map(|v| {
                        json!({
                            "voter": b.device_id.to_string(),
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
        "directoryId": null,
        "policy": pool.policy_id.map(|p| json!({ "policyId": p.to_string(), "name": pool.policy_name })),
        "event": pool.event.as_ref().map(|e| json!({ "eventId": e.event_id, "eventName": e.event_name, "label": e.label })),
        "title": pool.title,
        "question": pool.question,
        "nonce": pool.nonce,
        "requestedBy": {
            "profileId": pool.requested_by.profile_id.to_string(),
            "applicationId": pool.requested_by.application_id.map(|a| a.to_string()),
            "clientId": null,
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

/// Closes attempts at their deadlines (engine clock) and hands decided commands back to
/// their lanes.
pub(crate) struct VotingWorker {
    pub core: Arc<Core>,
    pub pipeline: Arc<crate::pipeline::Pipeline>,
}

#[async_trait]
impl Worker for VotingWorker {
    fn name(&self) -> String {
        "voting-deadlines".into()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        // The queue outlives every run: a run restarted after a panic takes it again (the
        // previous run's guard went with its task).
        let queue = self.core.voting.release_rx.clone();
        let mut releases = queue.lock().await;
        // A release the previous run was handling when it stopped is looked for again: every
        // held command whose pools all decided goes back to its lane (releasing twice is
        // harmless; the lane finds it decided or already finished).
        self.requeue_decided().await;
        self.serve(&mut releases, &shutdown).await
    }
}

impl VotingWorker {
    async fn requeue_decided(&self) {
        let held: Vec<CommandId> = self
            .core
            .voting
            .held
            .lock()
            .expect("held")
            .iter()
            .copied()
            .collect();
        for command in held {
            match self.core.store.command_pools(command).await {
                Ok(pools)
                    if !pools.is_empty() && pools.iter().all(|p| p.status != PoolStatus::Open) =>
                {
                    let _ = self.core.voting.release_tx.send(command);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%command, %error, "could not read a held command's pools")
                }
            }
        }
    }

    async fn serve(
        &self,
        releases: &mut mpsc::UnboundedReceiver<CommandId>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(command) = releases.recv() => {
                    match self.core.store.command(command).await {
                        Ok(Some(record))
                            if matches!(record.state, privicore_domain::command::CommandState::Pending) =>
                        {
                            self.pipeline.resume(record).await
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%command, %error, "could not read a released command");
                            let _ = self.core.voting.release_tx.send(command);
                        }
                    }
                }
                _ = tick.tick() => {
                    let due = self.core.voting.due(now(&self.core));
                    for pool in due {
                        let _guard = self.core.voting.lock.lock().await;
                        if let Err(error) = advance(&self.core, pool, true).await {
                            tracing::warn!(%pool, %error, "could not close an attempt; retrying");
                        }
                    }
                }
            }
        }
    }
}

/// Longest `nonce` of Create voting (§6.1.1).
const MAX_NONCE: usize = 128;

impl crate::Engine {
    /// Create voting (§6.1.1): a manual pool; 202 with the command id (= the pool id).
    pub async fn create_voting(
        &self,
        caller: &privicore_domain::auth::Caller,
        configuration: &str,
        title: &str,
        question: &str,
        skip: Vec<DeviceId>,
        nonce: Option<String>,
    ) -> Result<CommandId, Error> {
        use privicore_domain::governance::IdOrName;
        use privicore_domain::governance::pool::check_text;
        check_text(title, 120, Reason::VotingInvalidTitle, "title")?;
        check_text(question, 2000, Reason::VotingInvalidQuestion, "question")?;
        if let Some(n) = &nonce
            && n.chars().count() > MAX_NONCE
        {
            return Err(Error::out_of_range("nonce", "at most 128 characters"));
        }
        let found = match IdOrName::parse(configuration) {
            IdOrName::Id(id) => match self
                .store
                .voting_configuration(VotingConfigurationId(id))
                .await?
            {
                Some(c) => Some(c),
                None => {
                    self.store
                        .voting_configuration_by_name(caller.profile_id, configuration)
                        .await?
                }
            },
            IdOrName::Name(name) => {
                self.store
                    .voting_configuration_by_name(caller.profile_id, &name)
                    .await?
            }
        };
        let Some(config) = found.filter(|c| c.profile_id == caller.profile_id) else {
            return Err(Reason::VotingConfigurationNotFound.into());
        };
        let command = self.command_for(
            caller,
            CommandPayload::CreateVoting {
                configuration: config.id,
                title: title.to_owned(),
                question: question.to_owned(),
                skip,
                nonce,
            },
        );
        self.accept_with(command, Vec::new()).await
    }

    /// Check pool status (§6.1.2).
    pub async fn pool_status(
        &self,
        caller: &privicore_domain::auth::Caller,
        pool_id: &str,
    ) -> Result<Value, Error> {
        let id = pool_id
            .parse::<PoolId>()
            .map_err(|_| Error::new(Reason::VotingPoolNotFound))?;
        pool_status(self, caller.profile_id, caller.application_id(), id).await
    }

    /// The device whose Basic credentials these are (§6.3), if approved.
    pub async fn device_by_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Device, Error> {
        let invalid = || Error::new(Reason::DeviceInvalidCredentials);
        let device = self
            .store
            .device_by_client_id(client_id)
            .await?
            .ok_or_else(invalid)?;
        let given = privicore_domain::secret::TokenHash::of(client_secret);
        let ok = device.credentials.as_ref().is_some_and(|c| {
            privicore_domain::secret::secrets_equal(
                c.client_secret.to_hex().as_bytes(),
                given.to_hex().as_bytes(),
            )
        });
        if !ok || device.status != privicore_domain::device::DeviceStatus::Approved {
            return Err(invalid());
        }
        Ok(device)
    }

    /// List pending ballots (§6.3.1): the device's open, unanswered ballots, oldest first;
    /// marks it as seen.
    pub async fn pending_ballots(
        &self,
        device: &Device,
        page: privicore_domain::data_token::Page,
    ) -> Result<(Vec<Value>, u64), Error> {
        self.presence.touch(device.id, None);
        let all = pending_for(self, device).await?;
        let total = all.len() as u64;
        let items = all
            .into_iter()
            .skip(((page.page.max(1) - 1) * page.per_page) as usize)
            .take(page.per_page as usize)
            .map(|mut i| {
                let mut v = serde_json::to_value(&i).unwrap_or(Value::Null);
                if i.mac.is_empty() {
                    v["mac"] = Value::Null;
                }
                i.mac.clear();
                v
            })
            .collect();
        Ok((items, total))
    }

    /// Cast vote (§6.3.2) over HTTP. A `mac` is verified when present; it covers
    /// `votedAt` as sent (required with a MAC).
    pub async fn cast_vote(
        &self,
        device: &Device,
        ballot_id: &str,
        decision: &str,
        mac: Option<&str>,
        voted_at: Option<&str>,
    ) -> Result<VoteRecorded, Error> {
        let ballot = ballot_id
            .parse::<BallotId>()
            .map_err(|_| Error::new(Reason::BallotNotFound))?;
        let decision = Decision::parse(decision)
            .ok_or_else(|| Error::new(Reason::BallotInvalidDecision).with_field("decision"))?;
        if let Some(mac) = mac {
            let key = channel_key(self, device);
            let vote = bus::ballots::Vote {
                ballot_id: ballot_id.to_owned(),
                decision: decision.as_str().to_owned(),
                voted_at: voted_at.unwrap_or_default().to_owned(),
                mac: mac.to_owned(),
            };
            if !key.is_some_and(|k| vote.verifies(&k)) {
                return Err(Error::new(Reason::BallotInvalidMac).with_field("mac"));
            }
        }
        cast(self, device, ballot, decision, Channel::Http).await
    }
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
    let Some(device) = core.store.device(device_id).await? else {
        return Ok(refuse(vote.ballot_id, Reason::BallotNotFound));
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

#[cfg(test)]
mod tests {
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
}
