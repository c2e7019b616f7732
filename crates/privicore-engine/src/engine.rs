use crate::config::EngineConfig;
use crate::hub::{EventHub, HubWorker};
use crate::limits::RateLimiter;
use crate::pipeline::{Pipeline, Runner};
use crate::workers::{Periodic, Supervisor};
use privicore_domain::command::{CommandRecord, RETENTION_SECONDS};
use privicore_domain::keys::EngineKeyRecord;
use privicore_domain::ports::{Bus, MetadataStore};
use privicore_domain::{CommandId, Error, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) struct Limiters {
    pub failed_logins: RateLimiter,
    pub registrations: RateLimiter,
    pub generate_keys: RateLimiter,
}

/// The running engine; cheap to share behind an `Arc`.
pub struct Engine {
    pub(crate) store: Arc<dyn MetadataStore>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) config: EngineConfig,
    pub(crate) pipeline: Pipeline,
    pub(crate) cab: EngineKeyRecord,
    pub(crate) limits: Limiters,
    hub: Arc<EventHub>,
    supervisor: Supervisor,
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
    pub async fn start(
        store: Arc<dyn MetadataStore>,
        bus: Arc<dyn Bus>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, Error> {
        let cab = match store.engine_key().await? {
            Some(key) => key,
            None => {
                let key = store
                    .ensure_engine_key(&EngineKeyRecord::generate(Timestamp::now()))
                    .await?;
                tracing::info!(key_id = %key.key_id, "generated the engine (CAB) key pair");
                key
            }
        };
        let supervisor = Supervisor::new(CancellationToken::new());

        // Subscribe before anything can publish, so no event escapes the hub.
        let hub = Arc::new(EventHub::new(config.replay_window, config.replay_capacity));
        let events = bus.subscribe().await.map_err(Error::internal)?;
        supervisor.spawn(HubWorker::new(hub.clone(), bus.clone(), events));

        let runner = Arc::new(Runner::new(store.clone(), bus.clone()));
        let pipeline = Pipeline::start(&supervisor, runner, config.command_lanes.max(1));

        let pending = store.unfinished_commands().await?;
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming unfinished commands");
        }
        for command in pending {
            pipeline.submit(command);
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
                    Ok(())
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

        let limits = Limiters {
            failed_logins: RateLimiter::new(
                config.limits.failed_logins_per_15min,
                Duration::from_secs(15 * 60),
            ),
            registrations: RateLimiter::new(
                config.limits.registrations_per_hour,
                Duration::from_secs(3600),
            ),
            generate_keys: RateLimiter::new(
                config.limits.generate_keys_per_minute,
                Duration::from_secs(60),
            ),
        };
        Ok(Arc::new(Self {
            store,
            bus,
            config,
            pipeline,
            cab,
            limits,
            hub,
            supervisor,
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
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

    /// Persists the command (durably) and hands it to its lane. Returns once it is safe
    /// to answer 202.
    pub(crate) async fn accept(&self, command: CommandRecord) -> Result<CommandId, Error> {
        self.store.insert_command(&command).await?;
        let id = command.id;
        tracing::info!(command = %id, kind = command.payload.kind(), "command accepted");
        self.pipeline.submit(command);
        Ok(id)
    }
}
