//! RabbitMQ (AMQP 0-9-1) adapters of the bus ports, for engines that run as several
//! replicas (docs/api/devices-and-storage.md §6.1, §6.2).
//!
//! * [`AmqpBus`]: every event reaches every subscriber of every replica. Profile events and
//!   token-ended notices travel on two fanout exchanges, each subscriber has a queue on
//!   both, and notices are taken first, so a revocation never waits behind a flood.
//! * [`AmqpDeviceBus`]: engine → device through the durable direct exchange
//!   `<prefix>.devices` into `<prefix>.device.<id>` (publisher confirms); device → engine
//!   through the topic exchange `<prefix>.engine` into `<prefix>.engine.inbox`.
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

    /// Fanout exchange of profile events.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    /// Fanout exchange of token-ended notices.
    pub fn notices_exchange(&self) -> String {
        format!("{}.notices", self.prefix)
    }
}
