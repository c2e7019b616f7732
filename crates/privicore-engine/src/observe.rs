//! What operators watch: command latency (recorded as commands finish), the gauges read
//! when `/metrics` is scraped, and the dependency checks of `/health`. Nothing here runs
//! per request beyond one histogram record per finished command.

use crate::engine::Engine;
use crate::workers::WorkerTrouble;
use privicore_domain::command::{CommandRecord, Outcome};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Acceptance → outcome. The command id is a UUID v7 taken at acceptance, so its
/// millisecond timestamp is the acceptance time, also for commands resumed after a start.
pub(crate) fn command_finished(command: &CommandRecord, outcome: &Outcome) {
    let Some(accepted) = command.id.0.get_timestamp() else {
        return;
    };
    let (secs, nanos) = accepted.to_unix();
    let accepted = UNIX_EPOCH + Duration::new(secs, nanos);
    let took = SystemTime::now()
        .duration_since(accepted)
        .unwrap_or_default();
    let outcome = match outcome {
        Outcome::Succeeded(_) => "succeeded",
        Outcome::Failed(_) => "failed",
    };
    metrics::histogram!(
        "privicore_command_duration_seconds",
        "kind" => command.payload.kind(),
        "outcome" => outcome,
    )
    .record(took);
}

/// What `/health` reports, part by part.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// The store answers a real query and its write path is alive.
    pub database: bool,
    /// Events published now reach a live subscriber.
    pub bus: bool,
    /// The device inbox runs and every device the engine hosts itself is online.
    pub devices: bool,
    /// Hosted storage devices that are offline (their names are not given out here).
    pub devices_offline: u64,
    /// Supervised workers backing off after a failure, or ended before shutdown.
    pub troubled_workers: Vec<String>,
}

impl Health {
    pub fn workers(&self) -> bool {
        self.troubled_workers.is_empty()
    }
}

impl Engine {
    pub async fn health(&self) -> Health {
        let troubled = self.supervisor.troubled();
        let inbox_runs = !troubled.contains_key("device-inbox");
        let devices_offline = match &self.host {
            // Devices run as their own processes: their presence is the owner's concern
            // and shows in the metrics, not as a fault of the engine.
            None => Some(0),
            Some(_) => match self.store.storage_devices(None).await {
                Ok(devices) => Some(devices.iter().filter(|d| !self.online(d.id)).count() as u64),
                Err(_) => None,
            },
        };
        Health {
            database: self.store.ping().await.is_ok(),
            bus: self.bus.ping().await.is_ok(),
            devices: inbox_runs && devices_offline == Some(0),
            devices_offline: devices_offline.unwrap_or(0),
            troubled_workers: troubled
                .into_iter()
                .map(|(name, trouble)| match trouble {
                    WorkerTrouble::BackingOff(n) => {
                        format!("{name} (restarting after {n} failures)")
                    }
                    WorkerTrouble::Ended => format!("{name} (ended)"),
                })
                .collect(),
        }
    }

    /// Sets the gauges that are read rather than counted: called when `/metrics` is
    /// scraped, so the store is asked once per scrape and never on a request's path.
    pub async fn refresh_gauges(&self) {
        use metrics::gauge;
        gauge!("privicore_command_queue_depth").set(self.pipeline.queued() as f64);
        gauge!("privicore_replica_settle_queue_depth").set(self.coordinator.late.depth() as f64);
        if let Some(queued) = self.bus.queued() {
            gauge!("privicore_bus_queue_depth").set(queued as f64);
        }
        gauge!("privicore_websocket_channels").set(self.hub().joined_channels() as f64);
        let troubled = self.supervisor.troubled();
        let backing_off = troubled
            .values()
            .filter(|t| matches!(t, WorkerTrouble::BackingOff(_)))
            .count();
        gauge!("privicore_workers_backing_off").set(backing_off as f64);
        gauge!("privicore_workers_ended").set((troubled.len() - backing_off) as f64);

        if let Ok(devices) = self.store.storage_devices(None).await {
            let online = devices.iter().filter(|d| self.online(d.id)).count();
            gauge!("privicore_storage_devices", "presence" => "online").set(online as f64);
            gauge!("privicore_storage_devices", "presence" => "offline")
                .set((devices.len() - online) as f64);
        }
        match self.store.operational_counts().await {
            Ok(counts) => {
                // Every known state, so a state that emptied reads 0 rather than its last value.
                for state in ["pending", "confirmed", "missing", "deleting", "detached"] {
                    let n = counts
                        .replicas_by_state
                        .iter()
                        .find(|(s, _)| s == state)
                        .map_or(0, |(_, n)| *n);
                    gauge!("privicore_replicas", "state" => state).set(n as f64);
                }
                gauge!("privicore_spool_objects").set(counts.spool_objects as f64);
                gauge!("privicore_spool_bytes").set(counts.spool_bytes as f64);
            }
            Err(error) => tracing::warn!(%error, "metrics: store counts unavailable"),
        }
    }
}
