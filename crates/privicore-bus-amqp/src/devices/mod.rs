//! [`DeviceBus`] over the broker (§6.2). Engine → device messages are published to the
//! durable direct exchange with publisher confirms, into the device's durable queue
//! (declared and bound by the engine on first use). Device messages are consumed from the
//! shared inbox with manual acknowledgement; a message is acknowledged once it is handed
//! to the engine, and one whose `user_id` or routing key does not belong to its
//! `deviceIdentifier` is dropped.
//!
//! Several engine replicas share the inbox, but the answer to a message must reach the
//! replica that waits for it (a fetch's chunks, a store's confirmation). Every engine
//! message therefore carries `reply_to = reply.<replica>`; the device publishes its answer
//! with routing key `reply.<replica>.<id>`, bound to that replica's own queue. Heartbeats
//! go out as `presence.<id>`, bound to every replica's queue, so each replica knows which
//! devices are alive. A device that ignores `reply_to` still reaches the shared inbox.
//!
//! `connected` is the broker's view: the device's queue has a consumer. It is checked
//! every 2 s for each device the engine asked about or heard from while it counts as
//! connected (every 30 s while not), and set at once when a message of the device arrives.

mod inbox;
mod presence;

use crate::Names;
use crate::broker::Broker;
use crate::props;
use crate::publisher::{Publisher, patiently, unavailable};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use inbox::{consume_inbox, declare_replica_queue};
use lapin::Channel;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use presence::{Seen, watch_presence};
use privicore_domain::ports::{BusError, DeviceBus};
use privicore_wire::bus::Envelope;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

const INBOX_BUFFERED: usize = 1024;

/// Which broker user may speak for a device: the `user_id` its messages must carry.
#[derive(Debug, Clone)]
pub enum DeviceUsers {
    /// One broker account for every device (the bundles carry it).
    Shared(String),
    /// One account per device, named `<prefix><deviceIdentifier>` (the spec's
    /// `device-<id>`).
    PerDevice { prefix: String },
}

impl DeviceUsers {
    fn allows(&self, user_id: Option<&str>, device: &str) -> bool {
        let Some(user) = user_id else { return false };
        match self {
            DeviceUsers::Shared(name) => user == name,
            DeviceUsers::PerDevice { prefix } => user
                .strip_prefix(prefix.as_str())
                .is_some_and(|id| id == device),
        }
    }
}

#[derive(Default)]
struct State {
    /// Device queues declared (and bound) on the broker by this engine.
    declared: HashSet<String>,
    /// Devices watched for presence.
    watched: HashMap<String, Seen>,
}

pub struct AmqpDeviceBus {
    publisher: Publisher,
    users: DeviceUsers,
    state: Arc<Mutex<State>>,
    inbox_taken: Mutex<bool>,
    /// This engine replica's name in routing keys.
    replica: String,
    /// Once the replica's queue exists, messages ask for answers there.
    replica_ready: AtomicBool,
}

impl AmqpDeviceBus {
    pub fn new(broker: Arc<Broker>, users: DeviceUsers) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        tokio::spawn(watch_presence(broker.clone(), state.clone()));
        Self {
            publisher: Publisher::new(broker),
            users,
            state,
            inbox_taken: Mutex::new(false),
            replica: uuid::Uuid::new_v4().simple().to_string()[..16].to_owned(),
            replica_ready: AtomicBool::new(false),
        }
    }

    /// This replica's name in `reply_to` and its queue's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn broker(&self) -> &Arc<Broker> {
        self.publisher.broker()
    }

    fn names(&self) -> &Names {
        self.broker().names()
    }

    /// Declares the device's queue and binds it, once per engine (queues are durable).
    async fn ensure_queue(&self, device: &str) -> Result<(), BusError> {
        if self
            .state
            .lock()
            .expect("state lock")
            .declared
            .contains(device)
        {
            return Ok(());
        }
        patiently(|| async {
            let (_, channel) =
                self.broker().channel().await.ok_or_else(|| {
                    BusError::Unavailable("the broker connection is closed".into())
                })?;
            let declared = declare_device_queue(&channel, self.names(), device).await;
            let _ = channel.close(200, "declared").await;
            declared.map_err(unavailable)
        })
        .await?;
        self.state
            .lock()
            .expect("state lock")
            .declared
            .insert(device.to_owned());
        Ok(())
    }
}

/// The device's durable queue, bound to the devices exchange by its identifier. Returns
/// how many consumers it has.
async fn declare_device_queue(
    channel: &Channel,
    names: &Names,
    device: &str,
) -> Result<u32, lapin::Error> {
    let queue = names.device_queue(device);
    let declared = channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            &queue,
            &names.devices_exchange(),
            device,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(declared.consumer_count())
}

#[async_trait::async_trait]
impl DeviceBus for AmqpDeviceBus {
    async fn send(&self, device: &str, envelope: Envelope) -> Result<(), BusError> {
        self.ensure_queue(device).await?;
        let mut props = props::to_device(&envelope);
        if self.replica_ready.load(Ordering::Acquire) {
            props = props.with_reply_to(Names::reply_to(&self.replica).into());
        }
        let payload = envelope.to_text();
        let exchange = self.names().devices_exchange();
        // Mandatory: a queue lost with the broker's data is declared again, not missed.
        for _ in 0..2 {
            let routed = self
                .publisher
                .publish_routed(&exchange, device, payload.as_bytes(), props.clone(), true)
                .await?;
            if routed {
                return Ok(());
            }
            tracing::warn!(
                device,
                "a device queue was missing on the broker; declaring it again"
            );
            self.state
                .lock()
                .expect("state lock")
                .declared
                .remove(device);
            self.ensure_queue(device).await?;
        }
        Err(BusError::Unavailable(
            "the device queue cannot be found on the broker".into(),
        ))
    }

    async fn inbox(&self) -> Result<BoxStream<'static, Envelope>, BusError> {
        {
            let mut taken = self.inbox_taken.lock().expect("inbox lock");
            if *taken {
                return Err(BusError::Unavailable(
                    "the engine inbox is already taken".into(),
                ));
            }
            *taken = true;
        }
        let Some((_, channel)) = self.broker().channel().await else {
            *self.inbox_taken.lock().expect("inbox lock") = false;
            return Err(BusError::Unavailable(
                "the broker connection is closed".into(),
            ));
        };
        let declared = declare_replica_queue(&channel, self.names(), &self.replica).await;
        let _ = channel.close(200, "declared").await;
        if let Err(error) = declared {
            *self.inbox_taken.lock().expect("inbox lock") = false;
            return Err(unavailable(error));
        }
        self.replica_ready.store(true, Ordering::Release);
        let (tx, mut rx) = mpsc::channel(INBOX_BUFFERED);
        for replica in [None, Some(self.replica.clone())] {
            tokio::spawn(consume_inbox(
                self.broker().clone(),
                self.users.clone(),
                self.state.clone(),
                tx.clone(),
                replica,
            ));
        }
        Ok(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    fn connected(&self, device: &str) -> bool {
        let mut state = self.state.lock().expect("state lock");
        *state
            .watched
            .entry(device.to_owned())
            .or_insert(Seen::Unknown)
            == Seen::Up
    }

    /// Deletes the device's queue (the broker cancels the device's consumer and drops
    /// what was queued) and declares it again, empty, for the device's next connection.
    async fn disconnect(&self, device: &str) {
        {
            let mut state = self.state.lock().expect("state lock");
            state.declared.remove(device);
            state.watched.remove(device);
        }
        let Some((_, channel)) = self.broker().channel().await else {
            return;
        };
        let queue = self.names().device_queue(device);
        if let Err(error) = channel
            .queue_delete(&queue, QueueDeleteOptions::default())
            .await
        {
            tracing::warn!(%error, "could not delete a device queue");
        }
        let _ = channel.close(200, "disconnected").await;
        if let Err(error) = self.ensure_queue(device).await {
            tracing::warn!(%error, "could not declare a device queue again");
        }
    }
}
