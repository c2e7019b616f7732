//! RabbitMQ (AMQP 0-9-1) adapters of the bus ports, for engines that run as several
//! replicas (docs/api/devices-and-storage.md §6.1, §6.2).
//!
//! * [`AmqpBus`]: every event reaches every subscriber of every replica. Profile events and
//!   token-ended notices travel on two fanout exchanges, each subscriber has a queue on
//!   both, and notices are taken first, so a revocation never waits behind a flood.
//! * [`AmqpDeviceBus`]: engine → device through the durable direct exchange
//!   `<prefix>.devices` into `<prefix>.device.<id>` (publisher confirms); device → engine
//!   through the topic exchange `<prefix>.engine` into `<prefix>.engine.inbox`, shared by
//!   the replicas. Answers to a replica's message (`reply_to`) and heartbeats go to each
//!   replica's own queue instead (`reply.<replica>.<id>`, `presence.<id>`).
//!
//! One [`Broker`] holds the connection and opens it again with back-off when it drops;
//! publishers retry over the new connection and consumers resume on it.

mod address;
mod broker;
mod devices;
mod events;
mod props;
mod publisher;

pub use address::BrokerAddress;
pub use broker::{Broker, remove_topology};
pub use devices::{AmqpDeviceBus, DeviceUsers};
pub use events::AmqpBus;

/// Exchange and queue names under one prefix (`privicore` in production; tests use a
/// unique prefix each, so they run side by side on one broker).
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Default for Names {
    fn default() -> Self {
        Self::new("privicore")
    }
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Direct exchange of engine → device messages (routing key: the device identifier).
    pub fn devices_exchange(&self) -> String {
        format!("{}.devices", self.prefix)
    }

    /// Topic exchange devices publish to (routing key `device.<id>`).
    pub fn engine_exchange(&self) -> String {
        format!("{}.engine", self.prefix)
    }

    pub fn inbox_queue(&self) -> String {
        format!("{}.engine.inbox", self.prefix)
    }

    pub fn device_queue(&self, device: &str) -> String {
        format!("{}.device.{device}", self.prefix)
    }

    pub fn device_routing_key(device: &str) -> String {
        format!("device.{device}")
    }

    /// The `reply_to` of an engine replica's messages: a device answering one publishes
    /// with routing key `<reply_to>.<device id>`, so the answer reaches the replica that
    /// waits for it.
    pub fn reply_to(replica: &str) -> String {
        format!("reply.{replica}")
    }

    /// Routing key of heartbeats: every replica's reply queue is bound to it, so each
    /// replica sees every device alive.
    pub fn presence_routing_key(device: &str) -> String {
        format!("presence.{device}")
    }

    /// One engine replica's queue of answers and heartbeats.
    pub fn replica_queue(&self, replica: &str) -> String {
        format!("{}.engine.replica.{replica}", self.prefix)
    }

    /// Fanout exchange of profile events.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Fanout exchange of token-ended notices.
    pub fn notices_exchange(&self) -> String {
        format!("{}.notices", self.prefix)
    }
}
