use crate::config::EngineConfig;
use crate::hub::{EventHub, HubWorker};
use crate::inbox::InboxWorker;
use crate::limits::Limits;
use crate::pipeline::{Pipeline, Runner};
use crate::replication::{Coordinator, Presence};
use crate::workers::{Periodic, Supervisor};
use privicore_domain::command::{CommandRecord, RETENTION_SECONDS};
use privicore_domain::data_token::DataToken;
use privicore_domain::device::{Device, DeviceId};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::envelope::KeyRing;
use privicore_domain::event::BusEvent;
use privicore_domain::idempotency::RETENTION_SECONDS as IDEMPOTENCY_RETENTION_SECONDS;
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::ports::{AuditLog, Bus, DeviceBus, MetadataStore};
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The spool keeps an object at most this long after its commit (§5.2.7); later gaps are
/// closed by Synchronize device.
const SPOOL_RETENTION_SECONDS: i64 = 24 * 3600;

/// Longest a synchronous command (`accept_committed`) holds its 202 for the command to run.
const COMMITTED_WAIT: Duration = Duration::from_secs(10);

/// Runs storage devices inside the engine process (the embedded default).
pub trait DeviceHost: Send + Sync + 'static {
    /// Starts hosting the device if it is not hosted yet.
    fn host(&self, device: &Device);
    fn unhost(&self, device: DeviceId);
    /// A hosted device waiting to reconnect tries now (its pinned key was just cleared).
    fn retry_now(&self, _device: DeviceId) {}
}

/// The outside world, as ports.
pub struct Adapters {
    pub store: Arc<dyn MetadataStore>,
    pub bus: Arc<dyn Bus>,
    pub devices: Arc<dyn DeviceBus>,
    pub keyring: KeyRing,
    pub host: Option<Arc<dyn DeviceHost>>,
    /// The engine (CAB) key, opened; `None` loads it from the store (or creates it) as
    /// stored, for engines whose keys are not sealed.
    pub engine_key: Option<EngineKeyRecord>,
    pub secrets: crate::EngineSecrets,
    /// Where governance decisions are recorded (docs/audit.md); usually the metadata store.
    pub audit: Arc<dyn AuditLog>,
}

/// Everything commands and workers need; shared by the engine, its lanes and workers.
pub struct Core {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) devices: Arc<dyn DeviceBus>,
    /// Swapped whole by KEK rotation; readers take the current ring.
    pub(crate) keyring: std::sync::RwLock<Arc<KeyRing>>,
    pub(crate) secrets: crate::EngineSecrets,
    pub(crate) host: Option<Arc<dyn DeviceHost>>,
    pub(crate) config: EngineConfig,
    pub(crate) cab: EngineKeyRecord,
    pub(crate) coordinator: Coordinator,
    pub(crate) presence: Presence,
    pub(crate) auth_cache: crate::access::AuthCache,
    pub(crate) fresh: crate::hot::Fresh,
    pub(crate) targets: crate::hot::Targets,
    pub(crate) committed: crate::hot::Committed,
    pub(crate) holders: crate::hot::Holders,
    pub(crate) claims: crate::claims::Claims,
    /// Devices with a synchronization running.
    pub(crate) syncing: crate::claims::Claims,
    pub(crate) holds: crate::holds::Holds,
    pub(crate) audit: crate::audit::AuditTrail,
    pub(crate) voting: crate::voting::Voting,
    /// Upload and download values handed out, and uploads fanned out while they arrived.
    pub(crate) streams: crate::streams::Registry,
}

impl Core {
    pub(crate) fn keyring(&self) -> Arc<KeyRing> {
        self.keyring.read().expect("keyring lock").clone()
    }

    /// Publishes, unless the event's command is held until its 202 is written.
    pub(crate) async fn publish(&self, event: BusEvent) {
        if let Some(event) = self.holds.intercept(event) {
            self.publish_now(event).await;
        }
    }

    pub(crate) async fn publish_now(&self, event: BusEvent) {
        if let Err(error) = self.bus.publish(event).await {
            tracing::warn!(%error, "could not publish an event");
        }
    }

    /// Applies effects outside a command (synchronous writes, bookkeeping).
    pub(crate) async fn apply(&self, effects: Vec<DataEffect>) -> Result<Vec<u64>, Error> {
        let effects: Vec<Effect> = effects.into_iter().map(Effect::from).collect();
        Ok(self.store.apply(&effects, None).await?)
    }

    pub(crate) async fn owned_token(
        &self,
        token: &str,
        caller: &privicore_domain::auth::Caller,
    ) -> Result<DataToken, Error> {
        crate::tokens::owned_token(self, token, caller).await
    }
}

/// The running engine; cheap to share behind an `Arc`.
pub struct Engine {
    core: Arc<Core>,
    pub(crate) pipeline: Arc<Pipeline>,
    pub(crate) limits: Arc<Limits>,
    hub: Arc<EventHub>,
    supervisor: Supervisor,
}

impl Engine {
    /// The shared core, for work that outlives a call (a download's chunk fetching).
    pub(crate) fn shared_core(&self) -> Arc<Core> {
        self.core.clone()
    }
}

impl Deref for Engine {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// What `/health` reports.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub database: bool,
    pub bus: bool,
}

impl Engine {
    /// Loads (or creates, once) the engine key, starts the workers and resumes the
    /// commands a previous run left unfinished.
    pub async fn start(adapters: Adapters, config: EngineConfig) -> Result<Arc<Self>, Error> {
        let Adapters {
            store,
            bus,
            devices,
            keyring,
            host,
            engine_key,
            secrets,
            audit,
        } = adapters;
        let cab = match engine_key {
            Some(key) => key,
            None => match store.engine_key().await? {
                Some(key) => key,
                None => {
                    let key = store
                        .ensure_engine_key(&EngineKeyRecord::generate(Timestamp::now()))
                        .await?;
                    tracing::info!(key_id = %key.key_id, "generated the engine (CAB) key pair");
                    key
                }
            },
        };
        let supervisor = Supervisor::new(CancellationToken::new());
        let audit =
            crate::audit::AuditTrail::new(audit, secrets.audit().clone(), config.clock.clone());
        audit.check().await;
        let core = Arc::new(Core {
            store: store.clone(),
            bus: bus.clone(),
            devices: devices.clone(),
            keyring: std::sync::RwLock::new(Arc::new(keyring)),
            secrets,
            host,
            config: config.clone(),
            cab,
            coordinator: Coordinator::default(),
            presence: Presence::default(),
            auth_cache: Default::default(),
            fresh: Default::default(),
            targets: Default::default(),
            committed: Default::default(),
            holders: Default::default(),
            claims: Default::default(),
            syncing: Default::default(),
            holds: Default::default(),
            audit,
            voting: Default::default(),
            streams: Default::default(),
        });

        // Subscribe before anything can publish, so no event escapes the hub.
        let hub = Arc::new(EventHub::new(
            config.replay_window,
            config.replay_capacity,
            config.socket_queue,
        ));
        let events = bus.subscribe().await.map_err(Error::internal)?;
        supervisor.spawn(HubWorker::new(hub.clone(), bus.clone(), events));
        let inbox = devices.inbox().await.map_err(Error::internal)?;
        supervisor.spawn(InboxWorker::new(core.clone(), inbox));
        if let Some(settle) = crate::replication::SettleWorker::new(core.clone()) {
            supervisor.spawn(settle);
        }

        let runner = Arc::new(Runner::new(core.clone()));
        let pipeline = Arc::new(Pipeline::start(
            &supervisor,
            runner,
            config.command_lanes.max(1),
            config.commands_per_lane,
        ));

        // Holds and deadlines before the commands they hold come back.
        crate::voting::resume(&core).await?;
        supervisor.spawn(crate::voting::VotingWorker {
            core: core.clone(),
            pipeline: pipeline.clone(),
        });

        let mut pending = store.unfinished_commands().await?;
        crate::streams::release_stranded_uploads(&core, &pending).await?;
        crate::streams::restore_replacements(&core, &mut pending).await?;
        // A held command comes back through the voting worker once its pools decided;
        // resuming it here as well would run a decided one twice.
        pending.retain(|command| !core.voting.is_held(command.id));
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming unfinished commands");
            // More than a lane holds may be pending: resuming waits for room, off the start.
            let resuming = pipeline.clone();
            tokio::spawn(async move {
                for command in pending {
                    resuming.resume(command).await;
                }
            });
        }

        if let Some(host) = &core.host {
            for device in store.storage_devices(None).await? {
                host.host(&device);
            }
        }

        let purge_store = store.clone();
        supervisor.spawn(Periodic {
            name: "purge-expired",
            every: Duration::from_secs(300),
            job: move || {
                let store = purge_store.clone();
                async move {
                    let now = Timestamp::now();
                    store
                        .purge_finished_commands(now.plus_seconds(-RETENTION_SECONDS))
                        .await
                        .map_err(|e| e.to_string())?;
                    store
                        .purge_expired_tokens(now)
                        .await
                        .map_err(|e| e.to_string())?;
                    store
                        .purge_spool(now.plus_seconds(-SPOOL_RETENTION_SECONDS))
                        .await
                        .map_err(|e| e.to_string())?;
                    store
                        .purge_idempotency_slots(now.plus_seconds(-IDEMPOTENCY_RETENTION_SECONDS))
                        .await
                        .map_err(|e| e.to_string())?;
                    store.purge_counters(now).await.map_err(|e| e.to_string())?;
                    store
                        .purge_oauth(now.plus_seconds(-privicore_domain::oauth::KEEP_SECONDS))
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(())
                }
            },
        });
        // docs/api/directory.md §1.2: history past its retention, by the engine clock.
        let purge_core = core.clone();
        supervisor.spawn(Periodic {
            name: "directory-purge",
            every: Duration::from_millis(core.config.directories.purge_interval_ms.max(10)),
            job: move || {
                let core = purge_core.clone();
                async move {
                    let before = core
                        .config
                        .clock
                        .now()
                        .plus_seconds(-privicore_domain::directory::HISTORY_RETENTION_SECONDS);
                    let purged = core
                        .store
                        .purge_directory_history(before)
                        .await
                        .map_err(|e| e.to_string())?;
                    if purged > 0 {
                        tracing::info!(rows = purged, "directory history purged");
                    }
                    Ok(())
                }
            },
        });
        let expiry_core = core.clone();
        supervisor.spawn(Periodic {
            name: "reservation-expiry",
            every: Duration::from_secs(1),
            job: move || {
                let core = expiry_core.clone();
                async move {
                    crate::tokens::expire_reservations(&core)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        });
        let prune_hub = hub.clone();
        supervisor.spawn(Periodic {
            name: "replay-prune",
            every: Duration::from_secs(10),
            job: move || {
                prune_hub.prune();
                async { Ok(()) }
            },
        });

        let limits = Arc::new(Limits::new(&config.limits));
        let idle_limits = limits.clone();
        supervisor.spawn(Periodic {
            name: "limits-forget-idle",
            every: Duration::from_secs(10),
            job: move || {
                idle_limits.forget_idle();
                async { Ok(()) }
            },
        });
        Ok(Arc::new(Self {
            core,
            pipeline,
            limits,
            hub,
            supervisor,
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The in-memory request limits, for the edge.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn hub(&self) -> &Arc<EventHub> {
        &self.hub
    }

    /// Cancelled when the engine shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.supervisor.shutdown_token()
    }

    /// Stops every worker; unfinished commands stay persisted and resume on next start.
    pub async fn shutdown(&self) {
        self.supervisor.stop().await;
    }

    pub async fn health(&self) -> Health {
        Health {
            database: self.store.ping().await.is_ok(),
            bus: self.bus.ping().await.is_ok(),
        }
    }

    /// Persists the command (durably, with `effects`) and hands it to its lane. Returns
    /// once it is safe to answer 202.
    pub(crate) async fn accept_with(
        &self,
        command: CommandRecord,
        effects: Vec<Effect>,
    ) -> Result<CommandId, Error> {
        let slot = self.pipeline.slot(&command)?;
        self.holds.hold_if_scoped(&self.core, command.id);
        self.store.insert_command(&command, &effects).await?;
        self.keep_fresh(effects);
        let id = command.id;
        tracing::debug!(command = %id, kind = command.payload.kind(), "command accepted");
        self.pipeline.submit(slot, command);
        Ok(id)
    }

    /// Hands a command recorded pending earlier (a streamed replacement whose upload just
    /// completed) to its lane, with the effects that make it runnable.
    pub(crate) async fn submit_recorded(
        &self,
        command: CommandRecord,
        effects: Vec<Effect>,
    ) -> Result<CommandId, Error> {
        let slot = self.pipeline.slot(&command)?;
        self.holds.hold_if_scoped(&self.core, command.id);
        self.store.apply(&effects, None).await?;
        self.keep_fresh(effects);
        let id = command.id;
        self.pipeline.submit(slot, command);
        Ok(id)
    }

    /// Accepts the command and answers once it has run (committed and its after-commit
    /// work done), so the client can use its effect right after the 202. The event still
    /// follows the 202. A lane busy for longer than `COMMITTED_WAIT` answers meanwhile.
    pub(crate) async fn accept_committed(
        &self,
        command: CommandRecord,
    ) -> Result<CommandId, Error> {
        if crate::pipeline::plan_at_acceptance(&command, command.created_at).is_some() {
            return self.accept(command).await;
        }
        let done = self.pipeline.when_done(command.id);
        let id = self.accept_with(command, Vec::new()).await?;
        if tokio::time::timeout(COMMITTED_WAIT, done).await.is_err() {
            tracing::debug!(command = %id, "command still queued; answering before it ran");
        }
        Ok(id)
    }

    /// Data writes wait while late device answers pile up behind the store.
    pub(crate) fn admit_data_write(&self) -> Result<(), Error> {
        if self.coordinator.late.backlogged() {
            return Err(Error::new(Reason::ServiceUnavailable)
                .with_message(
                    "The engine is catching up with its storage devices; try again shortly.",
                )
                .with_retry_after(1));
        }
        Ok(())
    }

    /// A sealed version persisted with its command is kept for that command's replication.
    fn keep_fresh(&self, effects: Vec<Effect>) {
        let mut version = None;
        let mut chunks = None;
        for effect in effects {
            if let Effect::Data(data) = effect {
                match *data {
                    DataEffect::PutTokenVersion(v) => version = Some(v),
                    DataEffect::PutSpool { chunks: c, .. } => chunks = Some(c),
                    _ => {}
                }
            }
        }
        if let (Some(version), Some(chunks)) = (version, chunks) {
            self.fresh.keep(version, chunks);
        }
    }

    /// A new command of the caller's profile, attributed to its application if any.
    pub(crate) fn command_for(
        &self,
        caller: &privicore_domain::auth::Caller,
        payload: privicore_domain::command::CommandPayload,
    ) -> CommandRecord {
        CommandRecord::new(
            CommandId::new(),
            caller.profile_id,
            caller.application_id(),
            payload,
        )
    }

    pub(crate) async fn accept(&self, command: CommandRecord) -> Result<CommandId, Error> {
        let Some((effects, outcome)) =
            crate::pipeline::plan_at_acceptance(&command, command.created_at)
        else {
            return self.accept_with(command, Vec::new()).await;
        };
        self.finish_at_acceptance(command, effects, outcome).await
    }

    /// Records the command already finished with `outcome`, then publishes the outcome.
    pub(crate) async fn finish_at_acceptance(
        &self,
        mut command: CommandRecord,
        effects: Vec<Effect>,
        outcome: privicore_domain::command::Outcome,
    ) -> Result<CommandId, Error> {
        command.state = privicore_domain::command::CommandState::Finished {
            outcome: outcome.clone(),
            finished_at: Timestamp::now(),
        };
        self.holds.hold_if_scoped(&self.core, command.id);
        self.store.insert_command(&command, &effects).await?;
        tracing::debug!(command = %command.id, kind = command.payload.kind(), "command accepted and executed");
        crate::pipeline::publish_outcome(self, &command, outcome).await;
        Ok(command.id)
    }

    /// Commands whose events wait for their 202 (for tests and metrics).
    pub fn held_commands(&self) -> usize {
        self.holds.held()
    }

    /// Replicas marked `missing` because a copy failed to authenticate or was absent.
    pub fn replicas_marked_missing(&self) -> u64 {
        self.coordinator.missing_count()
    }
}
