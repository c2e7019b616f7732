//! [`DeviceBus`] over the broker (§6.2). Engine → device messages are published to the
//! durable direct exchange with publisher confirms, into the device's durable queue
//! (declared and bound by the engine on first use). Device messages are consumed from the
//! shared inbox with manual acknowledgement; a message is acknowledged once it is handed
//! to the engine, and one whose `user_id` or routing key does not belong to its
//! `deviceIdentifier` is dropped.
//!
//! `connected` is the broker's view: the device's queue has a consumer. It is refreshed
//! every second for each device the engine asked about or heard from, and set at once
//! when a message of the device arrives.

use crate::Names;
use crate::broker::Broker;
use crate::props;
use crate::publisher::{Publisher, unavailable};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use privicore_domain::ports::{BusError, DeviceBus};
use privicore_wire::bus::{Envelope, MAX_MESSAGE_BYTES};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Device messages unacknowledged in the engine at once.
const INBOX_PREFETCH: u16 = 256;
const INBOX_BUFFERED: usize = 1024;
const PRESENCE_EVERY: Duration = Duration::from_secs(1);

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
    /// Devices watched for presence, and whether their queue has a consumer.
    watched: HashMap<String, bool>,
}

pub struct AmqpDeviceBus {
    publisher: Publisher,
    users: DeviceUsers,
    state: Arc<Mutex<State>>,
    inbox_taken: Mutex<bool>,
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
        }
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
        let (_, channel) = self
            .broker()
            .channel()
            .await
            .ok_or_else(|| BusError::Unavailable("the broker connection is closed".into()))?;
        let declared = declare_device_queue(&channel, self.names(), device).await;
        let _ = channel.close(200, "declared").await;
        declared.map_err(unavailable)?;
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

/// Refreshes `watched` from the consumer counts of the devices' queues.
async fn watch_presence(broker: Arc<Broker>, state: Arc<Mutex<State>>) {
    let shutdown = broker.shutdown_token();
    let mut tick = tokio::time::interval(PRESENCE_EVERY);
    let mut channel: Option<Channel> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Only this task holds the last reference besides the bus: stop with the bus.
        if Arc::strong_count(&state) == 1 {
            return;
        }
        let devices: Vec<String> = state
            .lock()
            .expect("state lock")
            .watched
            .keys()
            .cloned()
            .collect();
        if devices.is_empty() {
            continue;
        }
        if !channel.as_ref().is_some_and(|c| c.status().connected()) {
            channel = tokio::select! {
                _ = shutdown.cancelled() => return,
                opened = broker.channel() => opened.map(|(_, c)| c),
            };
        }
        let Some(open) = channel.as_ref() else { return };
        for device in devices {
            match declare_device_queue(open, broker.names(), &device).await {
                Ok(consumers) => {
                    let mut state = state.lock().expect("state lock");
                    if let Some(connected) = state.watched.get_mut(&device) {
                        *connected = consumers > 0;
                    }
                    state.declared.insert(device);
                }
                Err(error) => {
                    tracing::debug!(%error, "presence check failed; retrying");
                    break;
                }
            }
        }
    }
}

/// The envelope of an inbox delivery, if it may be handed to the engine.
fn admit(users: &DeviceUsers, delivery: &Delivery) -> Option<Envelope> {
    if delivery.data.len() > MAX_MESSAGE_BYTES {
        tracing::warn!("dropping an oversized device message");
        return None;
    }
    let text = std::str::from_utf8(&delivery.data).ok()?;
    let Some(env) = Envelope::parse(text) else {
        tracing::warn!("dropping an unparseable device message");
        return None;
    };
    let user = delivery.properties.user_id().as_ref().map(|u| u.as_str());
    let routed = delivery.routing_key.as_str() == Names::device_routing_key(&env.device_identifier);
    if !users.allows(user, &env.device_identifier) || !routed {
        tracing::warn!(
            device = %env.device_identifier,
            "dropping a device message whose broker user or routing key is not the device's"
        );
        return None;
    }
    Some(env)
}

/// Moves the inbox into `tx`, acknowledging each message once the engine holds it;
/// resumes on every new connection (unacknowledged ones are redelivered).
async fn consume_inbox(
    broker: Arc<Broker>,
    users: DeviceUsers,
    state: Arc<Mutex<State>>,
    tx: mpsc::Sender<Envelope>,
) {
    let queue = broker.names().inbox_queue();
    loop {
        let channel = tokio::select! {
            _ = tx.closed() => None,
            channel = broker.channel() => channel,
        };
        let Some((_, channel)) = channel else { return };
        let consumer = async {
            channel
                .basic_qos(INBOX_PREFETCH, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    &queue,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        };
        let mut consumer = match consumer.await {
            Ok(consumer) => consumer,
            Err(error) => {
                tracing::warn!(%error, "cannot consume the engine inbox; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            let delivery = tokio::select! {
                _ = tx.closed() => {
                    let _ = channel.close(200, "inbox closed").await;
                    return;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    _ => break,
                },
            };
            if let Some(env) = admit(&users, &delivery) {
                state
                    .lock()
                    .expect("state lock")
                    .watched
                    .insert(env.device_identifier.clone(), true);
                if tx.send(env).await.is_err() {
                    // Not acknowledged: another engine (or the next start) takes it.
                    return;
                }
            }
            if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
                tracing::debug!(%error, "inbox acknowledgement lost; the message comes again");
            }
        }
    }
}

#[async_trait::async_trait]
impl DeviceBus for AmqpDeviceBus {
    async fn send(&self, device: &str, envelope: Envelope) -> Result<(), BusError> {
        self.ensure_queue(device).await?;
        let props = props::to_device(&envelope);
        let payload = envelope.to_text();
        self.publisher
            .publish(
                &self.names().devices_exchange(),
                device,
                payload.as_bytes(),
                props,
            )
            .await
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
        let (tx, mut rx) = mpsc::channel(INBOX_BUFFERED);
        tokio::spawn(consume_inbox(
            self.broker().clone(),
            self.users.clone(),
            self.state.clone(),
            tx,
        ));
        Ok(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed())
    }

    fn connected(&self, device: &str) -> bool {
        let mut state = self.state.lock().expect("state lock");
        *state.watched.entry(device.to_owned()).or_insert(false)
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
