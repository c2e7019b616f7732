//! The engine's side of device → engine traffic: the shared inbox and this replica's
//! queue of answers and heartbeats, consumed with manual acknowledgement.

use super::{DeviceUsers, Seen, State};
use crate::Names;
use crate::broker::Broker;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use privicore_wire::bus::{Envelope, MAX_MESSAGE_BYTES, kind};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Device messages unacknowledged in the engine at once.
const INBOX_PREFETCH: u16 = 256;
/// A replica's queue outlives its connection by this long (a reconnect finds it).
const REPLICA_QUEUE_EXPIRES_MS: i32 = 5 * 60_000;

/// The replica's queue of answers and heartbeats, bound to both routing patterns.
pub(super) async fn declare_replica_queue(
    channel: &Channel,
    names: &Names,
    replica: &str,
) -> Result<(), lapin::Error> {
    let queue = names.replica_queue(replica);
    let mut args = FieldTable::default();
    args.insert(
        "x-expires".into(),
        lapin::types::AMQPValue::LongInt(REPLICA_QUEUE_EXPIRES_MS),
    );
    channel
        .queue_declare(&queue, QueueDeclareOptions::default(), args)
        .await?;
    for key in [
        format!("{}.*", Names::reply_to(replica)),
        "presence.*".to_owned(),
    ] {
        channel
            .queue_bind(
                &queue,
                &names.engine_exchange(),
                &key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
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
    if !users.allows(user, &env.device_identifier)
        || !routed_for(delivery.routing_key.as_str(), &env)
    {
        tracing::warn!(
            device = %env.device_identifier,
            "dropping a device message whose broker user or routing key is not the device's"
        );
        return None;
    }
    Some(env)
}

/// Whether the routing key is one the device may use for this message: `device.<id>`,
/// `reply.<replica>.<id>`, or `presence.<id>` for a heartbeat.
fn routed_for(key: &str, env: &Envelope) -> bool {
    let id = env.device_identifier.as_str();
    let mut parts = key.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("device"), Some(d), None, None) => d == id,
        (Some("presence"), Some(d), None, None) => d == id && env.kind == kind::HEARTBEAT,
        (Some("reply"), Some(_), Some(d), None) => d == id,
        _ => false,
    }
}

/// Moves the inbox into `tx`, acknowledging each message once the engine holds it;
/// resumes on every new connection (unacknowledged ones are redelivered).
pub(super) async fn consume_inbox(
    broker: Arc<Broker>,
    users: DeviceUsers,
    state: Arc<Mutex<State>>,
    tx: mpsc::Sender<Envelope>,
    replica: Option<String>,
) {
    let queue = match &replica {
        Some(replica) => broker.names().replica_queue(replica),
        None => broker.names().inbox_queue(),
    };
    loop {
        let channel = tokio::select! {
            _ = tx.closed() => None,
            channel = broker.channel() => channel,
        };
        let Some((_, channel)) = channel else { return };
        let consumer = async {
            // Gone if the broker restarted or the replica was away too long.
            if let Some(replica) = &replica {
                declare_replica_queue(&channel, broker.names(), replica).await?;
            }
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
                    .insert(env.device_identifier.clone(), Seen::Up);
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
