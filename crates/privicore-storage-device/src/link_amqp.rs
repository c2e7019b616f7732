//! The device end of the AMQP bus (docs/api/devices-and-storage.md §6.2): consume the
//! device's queue with manual acknowledgement and a prefetch of 16, acknowledge once a
//! batch is handled (objects flushed, answers published), and publish to the engine
//! exchange with the device's routing key and broker user. The device declares nothing.
//!
//! An engine of several replicas names the replica that sent a message in its `reply_to`
//! (`reply.<replica>`); the answer (the message whose `correlationId` is that message's
//! id) goes out with routing key `<reply_to>.<device id>`, so it reaches the replica that
//! waits for it. Heartbeats go out as `presence.<device id>`, which every replica hears.
//! Everything else, and answers to messages without `reply_to`, use the bundle's key.

use crate::bundle::Bundle;
use crate::link::{Link, LinkError};
use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use privicore_wire::bus::{Envelope, kind};
use std::collections::{HashMap, VecDeque};

const PREFETCH: u16 = 16;
/// Engine messages whose `reply_to` is remembered until answered (oldest forgotten first).
const REMEMBERED: usize = 4096;

/// `reply_to` of the engine messages received lately, by message id.
#[derive(Default)]
struct Replies {
    by_id: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Replies {
    fn note(&mut self, message_id: &str, reply_to: &str) {
        if self
            .by_id
            .insert(message_id.to_owned(), reply_to.to_owned())
            .is_none()
        {
            self.order.push_back(message_id.to_owned());
        }
        while self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    fn get(&self, message_id: &str) -> Option<&str> {
        self.by_id.get(message_id).map(String::as_str)
    }
}

pub struct AmqpLink {
    connection: Connection,
    channel: Channel,
    consumer: Consumer,
    exchange: String,
    routing_key: String,
    user: String,
    device: String,
    replies: Replies,
    /// The last delivery received and not yet acknowledged.
    unacked: Option<u64>,
}

fn transport(error: lapin::Error) -> LinkError {
    LinkError::Transport(error.to_string())
}

/// Connects with the bundle's broker coordinates and starts consuming its queue.
pub async fn connect_amqp(bundle: &Bundle) -> Result<AmqpLink, LinkError> {
    let uri = AMQPUri {
        scheme: if bundle.rabbit_tls {
            AMQPScheme::AMQPS
        } else {
            AMQPScheme::AMQP
        },
        authority: AMQPAuthority {
            userinfo: AMQPUserInfo {
                username: bundle.rabbit_user.clone(),
                password: bundle.rabbit_pass.clone(),
            },
            host: bundle.rabbit_host.clone(),
            port: bundle.rabbit_port,
        },
        vhost: bundle.rabbit_vhost.clone(),
        query: AMQPQueryString {
            heartbeat: Some(30),
            ..Default::default()
        },
    };
    let props = ConnectionProperties::default()
        .with_connection_name(format!("privicore-device {}", bundle.device_identifier).into())
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio);
    let connection = Connection::connect_uri(uri, props)
        .await
        .map_err(transport)?;
    let channel = connection.create_channel().await.map_err(transport)?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(transport)?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .map_err(transport)?;
    // Consuming before the hello: the engine's answer finds a consumer.
    let consumer = channel
        .basic_consume(
            &bundle.queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(transport)?;
    Ok(AmqpLink {
        connection,
        channel,
        consumer,
        exchange: bundle.exchange.clone(),
        routing_key: bundle.routing_key.clone(),
        user: bundle.rabbit_user.clone(),
        device: bundle.device_identifier.clone(),
        replies: Replies::default(),
        unacked: None,
    })
}

#[async_trait]
impl Link for AmqpLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), LinkError> {
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id(envelope.message_id.as_str().into())
            .with_type(envelope.kind.as_str().into())
            .with_delivery_mode(2)
            .with_user_id(self.user.as_str().into());
        if let Some(correlation) = &envelope.correlation_id {
            props = props.with_correlation_id(correlation.as_str().into());
        }
        let reply_to = envelope
            .correlation_id
            .as_deref()
            .and_then(|id| self.replies.get(id));
        let routing_key = match reply_to {
            Some(reply_to) => format!("{reply_to}.{}", self.device),
            None if envelope.kind == kind::HEARTBEAT => format!("presence.{}", self.device),
            None => self.routing_key.clone(),
        };
        let confirm = self
            .channel
            .basic_publish(
                &self.exchange,
                &routing_key,
                BasicPublishOptions::default(),
                envelope.to_text().as_bytes(),
                props,
            )
            .await
            .map_err(transport)?;
        match confirm.await.map_err(transport)? {
            Confirmation::Nack(_) => {
                Err(LinkError::Transport("the broker refused a message".into()))
            }
            _ => Ok(()),
        }
    }

    async fn recv(&mut self) -> Option<Envelope> {
        loop {
            let delivery = self.consumer.next().await?.ok()?;
            match std::str::from_utf8(&delivery.data)
                .ok()
                .and_then(Envelope::parse)
            {
                Some(env) => {
                    if let Some(reply_to) = delivery.properties.reply_to() {
                        self.replies.note(&env.message_id, reply_to.as_str());
                    }
                    self.unacked = Some(delivery.delivery_tag);
                    return Some(env);
                }
                None => {
                    tracing::warn!("ignoring an unparseable bus message");
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
            }
        }
    }

    async fn handled(&mut self) -> Result<(), LinkError> {
        if let Some(tag) = self.unacked.take() {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(transport)?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        // Unacknowledged messages go back to the queue for the next connection.
        let _ = self.connection.close(200, "device shutting down").await;
    }
}
