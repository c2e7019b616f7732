//! The command pipeline: lanes of supervised workers. Commands with the same ordering key
//! share a lane and run in acceptance order; different keys run concurrently.

mod audited;
pub(crate) mod devices;
pub(crate) mod execute;
mod governance;
mod sync;
mod tokens;

pub(crate) use tokens::{exchange_at_acceptance, request_data};

use crate::engine::Core;
use crate::workers::{Supervisor, Worker};
use async_trait::async_trait;
use futures_util::FutureExt;
use privicore_domain::CommandId;
use privicore_domain::command::{CommandRecord, CommandState, Completion, Outcome};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::ports::StoreError;
use privicore_domain::{Error, Reason, Timestamp};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Commands whose plan reads nothing (a reservation) run at acceptance: record, effects and
/// outcome go into one transaction and no lane is involved.
pub(crate) fn plan_at_acceptance(
    command: &CommandRecord,
    now: Timestamp,
) -> Option<(Vec<privicore_domain::effect::Effect>, Outcome)> {
    tokens::reservation(command, now).map(|plan| (plan.effects, plan.outcome))
}

/// Publishes a durable outcome as `command_status` 2 or 3.
pub(crate) async fn publish_outcome(core: &Core, command: &CommandRecord, outcome: Outcome) {
    crate::observe::command_finished(command, &outcome);
    let (status, body) = match outcome {
        Outcome::Succeeded(result) => (2, result),
        Outcome::Failed(key) => {
            tracing::info!(command = %command.id, reason = %key, "command failed");
            (3, serde_json::Value::String(key))
        }
    };
    // The outcome is already durable; a lost event is recovered by /request-status.
    core.publish(BusEvent::Profile(ProfileEvent::command_status(
        command.profile_id,
        command.application_id,
        command.id,
        status,
        body,
    )))
    .await;
}

/// What a lane shares with acceptance: how many commands wait in it, and a gate held while
/// one of its commands runs (by the lane, or at acceptance).
#[derive(Default)]
struct LaneState {
    queued: AtomicUsize,
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// Held by a command running at acceptance: its lane runs nothing else meanwhile.
pub(crate) struct LaneClaim {
    _gate: tokio::sync::OwnedMutexGuard<()>,
}

pub(crate) struct Pipeline {
    lanes: Vec<mpsc::Sender<CommandRecord>>,
    states: Arc<Vec<LaneState>>,
    runner: Arc<Runner>,
    waiters: Waiters,
}

/// Who waits for which command to have run in its lane.
type Waiters = Arc<Mutex<HashMap<CommandId, oneshot::Sender<()>>>>;

/// Resolves once the command has run in its lane; forgets the wait when dropped.
pub(crate) struct Done {
    command: CommandId,
    ran: oneshot::Receiver<()>,
    waiters: Waiters,
}

impl std::future::Future for Done {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.ran).poll(cx).map(|_| ())
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .expect("waiters lock")
            .remove(&self.command);
    }
}

/// Room taken in a lane before the command is persisted, so an accepted command always
/// finds its place: a full lane refuses at acceptance instead of growing memory.
pub(crate) struct LaneSlot {
    permit: mpsc::OwnedPermit<CommandRecord>,
    lane: usize,
}

/// How long a refused client should wait before trying again.
const FULL_RETRY_AFTER_SECONDS: u64 = 1;

impl Pipeline {
    pub fn start(
        supervisor: &Supervisor,
        runner: Arc<Runner>,
        lanes: usize,
        per_lane: usize,
    ) -> Self {
        let states: Arc<Vec<LaneState>> =
            Arc::new((0..lanes).map(|_| LaneState::default()).collect());
        let waiters = Waiters::default();
        let senders = (0..lanes)
            .map(|index| {
                let (tx, rx) = mpsc::channel(per_lane.max(1));
                supervisor.spawn(Lane {
                    index,
                    queue: rx,
                    runner: runner.clone(),
                    states: states.clone(),
                    waiters: waiters.clone(),
                });
                tx
            })
            .collect();
        Self {
            lanes: senders,
            states,
            runner,
            waiters,
        }
    }

    /// Commands queued or running in all lanes (a sum over the lanes, for `/metrics`).
    pub fn queued(&self) -> usize {
        self.states
            .iter()
            .map(|s| s.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Resolves once `command` has run in its lane (register before accepting it).
    pub fn when_done(&self, command: CommandId) -> Done {
        let (tx, ran) = oneshot::channel();
        self.waiters
            .lock()
            .expect("waiters lock")
            .insert(command, tx);
        Done {
            command,
            ran,
            waiters: self.waiters.clone(),
        }
    }

    fn lane_of(&self, command: &CommandRecord) -> usize {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        command.ordering_key().hash(&mut hasher);
        (hasher.finish() % self.lanes.len() as u64) as usize
    }

    /// Room for `command` in its lane, or `service.unavailable` when the lane is full.
    pub fn slot(&self, command: &CommandRecord) -> Result<LaneSlot, Error> {
        let lane = self.lane_of(command);
        match self.lanes[lane].clone().try_reserve_owned() {
            Ok(permit) => Ok(LaneSlot { permit, lane }),
            Err(_) => {
                tracing::debug!(lane, "command lane full; refusing the command");
                Err(Error::new(Reason::ServiceUnavailable)
                    .with_message("The engine is busy; try again shortly.")
                    .with_retry_after(FULL_RETRY_AFTER_SECONDS))
            }
        }
    }

    /// Hands an accepted command to the room taken for it.
    pub fn submit(&self, slot: LaneSlot, command: CommandRecord) {
        self.states[slot.lane].queued.fetch_add(1, Ordering::SeqCst);
        slot.permit.send(command);
    }

    /// Resumes a command left pending by an earlier run, waiting for room in its lane.
    pub async fn resume(&self, command: CommandRecord) {
        let lane = self.lane_of(&command);
        self.states[lane].queued.fetch_add(1, Ordering::SeqCst);
        if self.lanes[lane].send(command).await.is_err() {
            self.states[lane].queued.fetch_sub(1, Ordering::SeqCst);
            // Only during shutdown; the command stays pending and resumes on restart.
            tracing::debug!("command lane closed; command left for the next start");
        }
    }

    /// The command's lane, when no earlier command on its resource is queued or running:
    /// running it now keeps acceptance order, and anything submitted meanwhile waits.
    pub fn claim_idle_lane(&self, command: &CommandRecord) -> Option<LaneClaim> {
        let state = &self.states[self.lane_of(command)];
        if state.queued.load(Ordering::SeqCst) != 0 {
            return None;
        }
        // A held command occupies its resource: later commands on it wait in the lane.
        if self
            .runner
            .core
            .voting
            .resource_busy(&command.ordering_key())
        {
            return None;
        }
        let gate = state.gate.clone().try_lock_owned().ok()?;
        // A command submitted between the count and the lock goes first.
        (state.queued.load(Ordering::SeqCst) == 0).then_some(LaneClaim { _gate: gate })
    }

    /// Records a command planned at acceptance: the record goes in already finished, in one
    /// write, and its events follow (docs/api/README.md §7.7: nothing is published for a command that
    /// is not yet durable). When the write meets a conflict, the command fails with its
    /// reason and `undo` runs instead of the plan's after-commit work.
    pub async fn record_at_acceptance(
        &self,
        mut command: CommandRecord,
        mut plan: execute::Plan,
        undo: Vec<execute::After>,
    ) -> Result<(), StoreError> {
        let core = &self.runner.core;
        core.holds.hold_if_scoped(core, command.id);
        command.state = CommandState::Finished {
            outcome: plan.outcome.clone(),
            finished_at: Timestamp::now(),
        };
        if let Err(e) = core.store.insert_command(&command, &plan.effects).await {
            let Some(reason) = e.business_reason() else {
                return Err(e);
            };
            plan = execute::Plan::fail(reason);
            plan.after = undo;
            command.state = CommandState::Finished {
                outcome: plan.outcome.clone(),
                finished_at: Timestamp::now(),
            };
            core.store.insert_command(&command, &[]).await?;
        }
        tracing::debug!(command = %command.id, kind = command.payload.kind(), "command accepted and executed");
        for event in std::mem::take(&mut plan.before) {
            core.publish(event).await;
        }
        let outcome = self.runner.committed(&command, plan).await;
        publish_outcome(core, &command, outcome).await;
        Ok(())
    }
}

struct Lane {
    index: usize,
    queue: mpsc::Receiver<CommandRecord>,
    runner: Arc<Runner>,
    states: Arc<Vec<LaneState>>,
    waiters: Waiters,
}

#[async_trait]
impl Worker for Lane {
    fn name(&self) -> String {
        format!("command-lane-{}", self.index)
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        loop {
            let command = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = self.queue.recv() => match next {
                    Some(command) => command,
                    None => return Ok(()),
                },
            };
            let state = &self.states[self.index];
            let gate = state.gate.lock().await;
            let id = command.id;
            let key = command.ordering_key();
            self.runner.run(command, &shutdown).await;
            // Commands that waited behind a held command on this resource run right after it
            // finished, in acceptance order, before anything else in the lane.
            while let Some(next) = self.runner.core.voting.next_parked(&key) {
                self.runner.run(next, &shutdown).await;
            }
            drop(gate);
            state.queued.fetch_sub(1, Ordering::SeqCst);
            let waiter = self.waiters.lock().expect("waiters lock").remove(&id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(());
            }
        }
    }
}

/// Executes one command: plan, commit effects with the outcome, publish the event.
pub(crate) struct Runner {
    core: Arc<Core>,
}

const RETRY_START: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl Runner {
    pub fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    async fn run(&self, command: CommandRecord, shutdown: &CancellationToken) {
        // Behind a held command on the same resource: it waits until that one finished.
        if self.core.voting.park(&command) {
            tracing::debug!(command = %command.id, "waiting behind a held command");
            return;
        }
        let mut wait = RETRY_START;
        // A decision recorded in the audit log is not recorded again when its commit is
        // retried.
        let mut audited = None;
        loop {
            let attempt = AssertUnwindSafe(self.commit(&command, &mut audited))
                .catch_unwind()
                .await;
            let outcome = match attempt {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(StoreError::Unavailable(detail))) => {
                    tracing::warn!(command = %command.id, %detail, ?wait, "store unavailable; retrying command");
                    tokio::select! {
                        // Left pending: it resumes on the next start.
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                    continue;
                }
                Ok(Err(error)) => {
                    tracing::error!(command = %command.id, %error, "command failed internally");
                    self.fail_internally(&command).await
                }
                Err(_) => {
                    tracing::error!(command = %command.id, "command panicked");
                    self.fail_internally(&command).await
                }
            };
            if let Some(outcome) = outcome {
                publish_outcome(&self.core, &command, outcome).await;
            }
            return;
        }
    }

    async fn commit(
        &self,
        command: &CommandRecord,
        audited: &mut Option<privicore_domain::audit::AuditEntry>,
    ) -> Result<Option<Outcome>, StoreError> {
        // Gated commands (docs/api/voting-and-policy.md §2.2) wait for their pools.
        let release = match crate::voting::gate(&self.core, command).await? {
            crate::voting::Gate::Run(release) => release,
            crate::voting::Gate::Held | crate::voting::Gate::Finished => return Ok(None),
            crate::voting::Gate::Fail(reason, release) => {
                // A refused command gives back what its acceptance took (§2.4).
                let effects = tokens::refused(&self.core, command, Timestamp::now()).await?;
                return self
                    .finish_effects(command, Outcome::failed(reason), effects, release)
                    .await;
            }
            crate::voting::Gate::Done(result, release) => {
                return self
                    .finish_effects(command, Outcome::Succeeded(result), Vec::new(), release)
                    .await;
            }
        };
        let mut plan = execute::plan(&self.core, command).await?;
        if let Some(release) = &release {
            plan.effects.push(release.effect.clone());
        }
        // A governance decision is recorded before it takes effect; one that cannot be
        // recorded is not carried out (docs/audit.md).
        if audited.is_none()
            && let Some(entry) = audited::entry(command, &plan.outcome)
        {
            if self.core.audit.append(entry.clone()).await.is_err() {
                return self
                    .finish(command, Outcome::failed(Reason::AuditUnavailable))
                    .await;
            }
            *audited = Some(entry);
        }
        for event in std::mem::take(&mut plan.before) {
            self.core.publish(event).await;
        }
        let completion = Completion {
            command_id: command.id,
            outcome: plan.outcome.clone(),
            finished_at: Timestamp::now(),
        };
        // A held command's outcome is recorded in the transaction that carries it out.
        let written = match &release {
            Some(release) => self
                .core
                .audit
                .record(
                    vec![release.record.clone()],
                    plan.effects.clone(),
                    Some(&completion),
                )
                .await
                .map(drop),
            None => self
                .core
                .store
                .apply(&plan.effects, Some(&completion))
                .await
                .map(drop),
        };
        match written {
            Ok(()) => {
                self.core.voting.finished(command);
                Ok(Some(self.committed(command, plan).await))
            }
            Err(e) => match e.business_reason() {
                Some(reason) => {
                    if let Some(recorded) = audited.take() {
                        let entry = audited::not_applied(&recorded, reason.code());
                        if let Err(error) = self.core.audit.append(entry).await {
                            tracing::error!(command = %command.id, %error, "could not record that an audited decision did not take effect");
                        }
                    }
                    // A held command that fails as it runs still ends its hold.
                    let release = release
                        .map(|_| crate::voting::release(command, reason.code(), Timestamp::now()));
                    self.finish_effects(command, Outcome::failed(reason), Vec::new(), release)
                        .await
                }
                None => Err(e),
            },
        }
    }

    /// What follows a durable commit: caches, notices, after-commit work.
    async fn committed(&self, command: &CommandRecord, plan: execute::Plan) -> Outcome {
        if command.payload.changes_devices() {
            self.core.targets.forget(command.profile_id);
        }
        use privicore_domain::command::CommandPayload as P;
        match &command.payload {
            P::RegisterPolicy { .. }
            | P::ActivatePolicy { .. }
            | P::DeactivatePolicy { .. }
            | P::DeletePolicy { .. } => self.core.voting.forget_policies(command.profile_id),
            // A removed device (credentials revoked) takes its unanswered ballots with it and
            // its attempts are tallied again (§1.6 reachability). Removing only the
            // authenticator role keeps the ballots it holds valid until their attempts close
            // (§4.8): no new ballots, but its late votes still count.
            P::RemoveDevice { device_id, .. } if matches!(plan.outcome, Outcome::Succeeded(_)) => {
                if let Err(error) = crate::voting::device_left(&self.core, *device_id).await {
                    tracing::warn!(device = %device_id, %error, "could not withdraw the ballots of a removed device");
                }
            }
            _ => {}
        }
        for notice in plan.notices {
            self.core.publish(notice).await;
        }
        for action in plan.after {
            execute::after_commit(&self.core, action).await;
        }
        plan.outcome
    }

    async fn finish(
        &self,
        command: &CommandRecord,
        outcome: Outcome,
    ) -> Result<Option<Outcome>, StoreError> {
        self.finish_effects(command, outcome, Vec::new(), None)
            .await
    }

    /// Records the outcome with `effects`, and with the end of the command's hold (and its
    /// audit record) if it was held.
    async fn finish_effects(
        &self,
        command: &CommandRecord,
        outcome: Outcome,
        mut effects: Vec<privicore_domain::effect::Effect>,
        release: Option<crate::voting::Release>,
    ) -> Result<Option<Outcome>, StoreError> {
        let completion = Completion {
            command_id: command.id,
            outcome: outcome.clone(),
            finished_at: Timestamp::now(),
        };
        match release {
            Some(release) => {
                effects.push(release.effect);
                self.core
                    .audit
                    .record(vec![release.record], effects, Some(&completion))
                    .await?;
            }
            None => {
                self.core.store.apply(&effects, Some(&completion)).await?;
            }
        }
        // Durable: only now does the command stop being held (a retry never reopens pools).
        self.core.voting.finished(command);
        Ok(Some(outcome))
    }

    async fn fail_internally(&self, command: &CommandRecord) -> Option<Outcome> {
        match self
            .finish(command, Outcome::failed(Reason::InternalError))
            .await
        {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(command = %command.id, %error, "could not record the failure; command stays pending");
                None
            }
        }
    }
}
