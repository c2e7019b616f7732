//! Publishing with publisher confirms: a message counts as sent once the broker has taken
//! it (for persistent messages on durable queues: written). A publish that meets a dropped
//! connection is repeated on the next one, so a message may arrive twice; every receiver
//! deduplicates (§6.2: at least once).

use crate::broker::Broker;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::{BasicProperties, Channel};
use privicore_domain::ports::BusError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a publish keeps trying over reconnects before it reports the bus unavailable.
const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) struct Publisher {
    broker: Arc<Broker>,
    channel: Mutex<Option<(u64, Channel)>>,
}

impl Publisher {
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            channel: Mutex::new(None),
        }
    }

    /// The confirm-mode channel of the current connection.
    async fn channel(&self) -> Result<Channel, BusError> {
        let mut slot = self.channel.lock().await;
        if let Some((_, channel)) = slot.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (generation, channel) = self
            .broker
            .channel()
            .await
            .ok_or_else(|| BusError::Unavailable("the broker connection is closed".into()))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable)?;
        *slot = Some((generation, channel.clone()));
        Ok(channel)
    }

    /// One publish; `Ok(false)`: the broker returned a mandatory message (no queue bound).
    async fn once(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: &BasicProperties,
        mandatory: bool,
    ) -> Result<bool, BusError> {
        let channel = self.channel().await?;
        let confirm = channel
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions {
                    mandatory,
                    ..Default::default()
                },
                payload,
                props.clone(),
            )
            .await
            .map_err(unavailable)?;
        match confirm.await.map_err(unavailable)? {
            Confirmation::Ack(returned) => Ok(returned.is_none()),
            Confirmation::NotRequested => Ok(true),
            Confirmation::Nack(_) => Err(BusError::Unavailable(
                "the broker refused the message".into(),
            )),
        }
    }

    /// Publishes and waits for the broker's confirmation, across reconnects.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: BasicProperties,
    ) -> Result<(), BusError> {
        self.publish_routed(exchange, routing_key, payload, props, false)
            .await
            .map(|_| ())
    }

    /// Like `publish`; with `mandatory`, `Ok(false)` when no queue took the message.
    pub async fn publish_routed(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        props: BasicProperties,
        mandatory: bool,
    ) -> Result<bool, BusError> {
        patiently(|| self.once(exchange, routing_key, payload, &props, mandatory)).await
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }
}

/// Runs `attempt` until it succeeds, repeating it over reconnects for up to 30 s.
pub(crate) async fn patiently<T, F, Fut>(mut attempt: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BusError>>,
{
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(give_up, attempt()).await {
            Ok(Ok(done)) => return Ok(done),
            Ok(Err(error)) if tokio::time::Instant::now() < give_up => {
                tracing::debug!(%error, "broker operation failed; repeating on the next connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(BusError::Unavailable(format!(
                    "no broker answer within {PATIENCE:?}"
                )));
            }
        }
    }
}

pub(crate) fn unavailable(error: lapin::Error) -> BusError {
    BusError::Unavailable(error.to_string())
}
