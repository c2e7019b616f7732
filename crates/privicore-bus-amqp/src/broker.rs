//! One supervised broker connection: opened with back-off, the topology declared on each
//! open, and opened again when it drops. Users wait for the current connection and learn
//! of a new one through a watch channel.

use crate::Names;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How often a live connection is checked besides the error callback.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The connection in use and its generation (one more on every reconnect).
#[derive(Clone)]
pub(crate) struct Live {
    pub generation: u64,
    pub connection: Arc<Connection>,
}

pub struct Broker {
    names: Names,
    current: watch::Receiver<Option<Live>>,
    shutdown: CancellationToken,
}

impl Broker {
    /// Starts the supervisor; the first connection is attempted at once. Needs a Tokio
    /// runtime.
    pub fn start(url: &str, names: Names) -> Arc<Self> {
        let (tx, current) = watch::channel(None);
        let shutdown = CancellationToken::new();
        tokio::spawn(supervise(
            url.to_owned(),
            names.clone(),
            tx,
            shutdown.clone(),
        ));
        Arc::new(Self {
            names,
            current,
            shutdown,
        })
    }

    /// Starts and waits for the first connection (at most `patience`).
    pub async fn connect(url: &str, names: Names, patience: Duration) -> Result<Arc<Self>, String> {
        let broker = Self::start(url, names);
        match tokio::time::timeout(patience, broker.live()).await {
            Ok(Some(_)) => Ok(broker),
            _ => {
                broker.close();
                Err(format!("no broker connection within {patience:?}"))
            }
        }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Whether a connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|l| l.connection.status().connected())
    }

    /// The current connection, waiting for one; `None` once closed.
    pub(crate) async fn live(&self) -> Option<Live> {
        let mut rx = self.current.clone();
        loop {
            if self.shutdown.is_cancelled() {
                return None;
            }
            if let Some(live) = rx.borrow_and_update().clone()
                && live.connection.status().connected()
            {
                return Some(live);
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                changed = rx.changed() => if changed.is_err() { return None },
                // A drop the supervisor has not noticed yet.
                _ = tokio::time::sleep(CHECK_EVERY) => {}
            }
        }
    }

    /// A new channel on the current connection, waiting for one.
    pub(crate) async fn channel(&self) -> Option<(u64, Channel)> {
        loop {
            let live = self.live().await?;
            match live.connection.create_channel().await {
                Ok(channel) => return Some((live.generation, channel)),
                Err(error) => {
                    tracing::debug!(%error, "cannot open a broker channel; waiting");
                    tokio::time::sleep(FIRST_RETRY).await;
                }
            }
        }
    }

    pub(crate) fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn open(url: &str, names: &Names) -> Result<Connection, lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(format!("privicore-engine {}", names.prefix()).into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect(url, props).await?;
    declare(&connection, names).await?;
    Ok(connection)
}

/// The engine declares every exchange and the inbox (§6.2); devices declare nothing.
async fn declare(connection: &Connection, names: &Names) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let none = FieldTable::default;
    for (name, kind) in [
        (names.devices_exchange(), ExchangeKind::Direct),
        (names.engine_exchange(), ExchangeKind::Topic),
        (names.events_exchange(), ExchangeKind::Fanout),
        (names.notices_exchange(), ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(&name, kind, durable, none())
            .await?;
    }
    let inbox = names.inbox_queue();
    channel
        .queue_declare(
            &inbox,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            none(),
        )
        .await?;
    channel
        .queue_bind(
            &inbox,
            &names.engine_exchange(),
            "device.#",
            QueueBindOptions::default(),
            none(),
        )
        .await?;
    let _ = channel.close(200, "declared").await;
    Ok(())
}

async fn supervise(
    url: String,
    names: Names,
    tx: watch::Sender<Option<Live>>,
    shutdown: CancellationToken,
) {
    let mut retry = FIRST_RETRY;
    let mut generation = 0;
    loop {
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            opened = open(&url, &names) => opened,
        };
        match opened {
            Ok(connection) => {
                retry = FIRST_RETRY;
                generation += 1;
                let lost = CancellationToken::new();
                let signal = Mutex::new(Some(lost.clone()));
                connection.on_error(move |error| {
                    tracing::warn!(%error, "broker connection lost");
                    if let Some(lost) = signal.lock().expect("signal lock").take() {
                        lost.cancel();
                    }
                });
                let connection = Arc::new(connection);
                tracing::info!(generation, "connected to the broker");
                tx.send_replace(Some(Live {
                    generation,
                    connection: connection.clone(),
                }));
                let mut check = tokio::time::interval(CHECK_EVERY);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            tx.send_replace(None);
                            let _ = connection.close(200, "shutting down").await;
                            return;
                        }
                        _ = lost.cancelled() => break,
                        _ = check.tick() => if !connection.status().connected() { break },
                    }
                }
                tx.send_replace(None);
            }
            Err(error) => tracing::warn!(%error, ?retry, "cannot connect to the broker"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Deletes the exchanges and queues of `names` that an engine declares, and the queues of
/// `devices` (used by tests that made their own prefix; a production broker keeps them).
pub async fn remove_topology(
    url: &str,
    names: &Names,
    devices: &[&str],
) -> Result<(), lapin::Error> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect(url, props).await?;
    let channel = connection.create_channel().await?;
    let mut queues = vec![names.inbox_queue()];
    queues.extend(devices.iter().map(|d| names.device_queue(d)));
    for queue in queues {
        channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await?;
    }
    for exchange in [
        names.devices_exchange(),
        names.engine_exchange(),
        names.events_exchange(),
        names.notices_exchange(),
    ] {
        channel
            .exchange_delete(&exchange, ExchangeDeleteOptions::default())
            .await?;
    }
    connection.close(200, "removed").await
}
