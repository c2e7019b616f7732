//! The command pipeline: lanes of supervised workers. Commands with the same ordering key
//! share a lane and run in acceptance order; different keys run concurrently.

mod devices;
mod execute;
mod sync;
mod tokens;

use crate::engine::Core;
use crate::workers::{Supervisor, Worker};
use async_trait::async_trait;
use futures_util::FutureExt;
use privicore_domain::command::{CommandRecord, Completion, Outcome};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use std::hash::{Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
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

pub(crate) struct Pipeline {
    lanes: Vec<mpsc::UnboundedSender<CommandRecord>>,
}

impl Pipeline {
    pub fn start(supervisor: &Supervisor, runner: Arc<Runner>, lanes: usize) -> Self {
        let senders = (0..lanes)
            .map(|index| {
                let (tx, rx) = mpsc::unbounded_channel();
                supervisor.spawn(Lane {
                    index,
                    queue: rx,
                    runner: runner.clone(),
                });
                tx
            })
            .collect();
        Self { lanes: senders }
    }

    pub fn submit(&self, command: CommandRecord) {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        command.ordering_key().hash(&mut hasher);
        let lane = (hasher.finish() % self.lanes.len() as u64) as usize;
        if self.lanes[lane].send(command).is_err() {
            // Only during shutdown; the command stays pending and resumes on restart.
            tracing::debug!("command lane closed; command left for the next start");
        }
    }
}

struct Lane {
    index: usize,
    queue: mpsc::UnboundedReceiver<CommandRecord>,
    runner: Arc<Runner>,
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
            self.runner.run(command, &shutdown).await;
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
        let mut wait = RETRY_START;
        loop {
            let attempt = AssertUnwindSafe(self.commit(&command)).catch_unwind().await;
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

    async fn commit(&self, command: &CommandRecord) -> Result<Option<Outcome>, StoreError> {
        let plan = execute::plan(&self.core, command).await?;
        for event in plan.before {
            self.core.publish(event).await;
        }
        let completion = Completion {
            command_id: command.id,
            outcome: plan.outcome.clone(),
            finished_at: Timestamp::now(),
        };
        match self
            .core
            .store
            .apply(&plan.effects, Some(&completion))
            .await
        {
            Ok(_) => {
                if command.payload.changes_devices() {
                    self.core.targets.forget(command.profile_id);
                }
                for notice in plan.notices {
                    self.core.publish(notice).await;
                }
                for action in plan.after {
                    execute::after_commit(&self.core, action).await;
                }
                Ok(Some(plan.outcome))
            }
            Err(e) => match e.business_reason() {
                Some(reason) => self.finish(command, Outcome::failed(reason)).await,
                None => Err(e),
            },
        }
    }

    async fn finish(
        &self,
        command: &CommandRecord,
        outcome: Outcome,
    ) -> Result<Option<Outcome>, StoreError> {
        let completion = Completion {
            command_id: command.id,
            outcome: outcome.clone(),
            finished_at: Timestamp::now(),
        };
        self.core.store.apply(&[], Some(&completion)).await?;
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
