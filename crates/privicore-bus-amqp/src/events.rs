//! [`Bus`] over the broker: profile events and token-ended notices on two fanout
//! exchanges. Each subscription has one queue on each (named, not exclusive, and deleted
//! by the broker after a minute without a consumer), so a reconnect resumes the same
//! queues and nothing published meanwhile is lost for it. Notices are taken first.

use crate::broker::Broker;
use crate::publisher::{Publisher, unavailable};
use futures_util::StreamExt;
use futures_util::stream::{PollNext, select_with_strategy};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use privicore_domain::event::BusEvent;
use privicore_domain::ports::{Bus, BusError, EventStream};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A subscription's queue outlives a lost connection by this long.
const QUEUE_EXPIRES_MS: i32 = 60_000;
/// Deliveries unacknowledged per subscription queue.
const PREFETCH: u16 = 256;
/// Events held in memory per subscription queue before the broker holds the rest.
const BUFFERED: usize = 1024;

pub struct AmqpBus {
    publisher: Publisher,
}

impl AmqpBus {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            publisher: Publisher::new(broker),
        }
    }

    fn broker(&self) -> &Arc<Broker> {
        self.publisher.broker()
    }
}

fn is_notice(event: &BusEvent) -> bool {
    !matches!(event, BusEvent::Profile(_))
}

async fn declare(channel: &Channel, queue: &str, exchange: &str) -> Result<(), lapin::Error> {
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(QUEUE_EXPIRES_MS));
    channel
        .queue_declare(queue, QueueDeclareOptions::default(), args)
        .await?;
    channel
        .queue_bind(
            queue,
            exchange,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Moves one subscription queue into `tx` until the subscriber is gone, resuming on every
/// new connection.
async fn relay(broker: Arc<Broker>, queue: String, exchange: String, tx: mpsc::Sender<BusEvent>) {
    loop {
        let channel = tokio::select! {
            _ = tx.closed() => None,
            channel = broker.channel() => channel,
        };
        let Some((_, channel)) = channel else { return };
        let consumer = async {
            declare(&channel, &queue, &exchange).await?;
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
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
                tracing::debug!(%error, "cannot consume a bus subscription; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            let delivery = tokio::select! {
                _ = tx.closed() => {
                    let _ = channel.queue_delete(&queue, QueueDeleteOptions::default()).await;
                    let _ = channel.close(200, "unsubscribed").await;
                    return;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => delivery,
                    // The channel or connection went: resume on the next.
                    _ => break,
                },
            };
            match serde_json::from_slice::<BusEvent>(&delivery.data) {
                Ok(event) => {
                    if tx.send(event).await.is_err() {
                        continue;
                    }
                }
                Err(error) => tracing::warn!(%error, "dropping an unreadable bus event"),
            }
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    }
}

#[async_trait::async_trait]
impl Bus for AmqpBus {
    async fn publish(&self, event: BusEvent) -> Result<(), BusError> {
        let names = self.broker().names();
        let exchange = if is_notice(&event) {
            names.notices_exchange()
        } else {
            names.events_exchange()
        };
        let payload = serde_json::to_vec(&event)
            .map_err(|e| BusError::Unavailable(format!("unserializable event: {e}")))?;
        let props = BasicProperties::default().with_content_type("application/json".into());
        self.publisher.publish(&exchange, "", &payload, props).await
    }

    async fn subscribe(&self) -> Result<EventStream, BusError> {
        let broker = self.broker().clone();
        let names = broker.names().clone();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lanes = [
            (
                names.notices_exchange(),
                format!("{}.notices.{id}", names.prefix()),
            ),
            (
                names.events_exchange(),
                format!("{}.events.{id}", names.prefix()),
            ),
        ];
        // Bound before this returns: every event published after it is kept.
        let (_, channel) = broker
            .channel()
            .await
            .ok_or_else(|| BusError::Unavailable("the broker connection is closed".into()))?;
        for (exchange, queue) in &lanes {
            declare(&channel, queue, exchange)
                .await
                .map_err(unavailable)?;
        }
        let _ = channel.close(200, "declared").await;
        let mut receivers = Vec::new();
        for (exchange, queue) in lanes {
            let (tx, rx) = mpsc::channel(BUFFERED);
            tokio::spawn(relay(broker.clone(), queue, exchange, tx));
            receivers.push(tokio_stream_from(rx));
        }
        let events = receivers.pop().expect("two lanes");
        let notices = receivers.pop().expect("two lanes");
        let stream = select_with_strategy(notices, events, |_: &mut ()| PollNext::Left);
        Ok(stream.boxed())
    }

    async fn ping(&self) -> Result<(), BusError> {
        if self.broker().is_connected() {
            Ok(())
        } else {
            Err(BusError::Unavailable("no broker connection".into()))
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> futures_util::stream::BoxStream<'static, T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}
