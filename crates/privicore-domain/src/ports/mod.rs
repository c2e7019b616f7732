//! What the engine needs from the outside world. Each port has an embedded adapter
//! (SQLite, in-process bus) and a distributed one (PostgreSQL, RabbitMQ).

mod audit;
mod bus;
mod device_bus;
mod store;

pub use audit::AuditLog;
pub use bus::{Bus, BusError, EventStream};
pub use device_bus::DeviceBus;
pub use store::{MetadataStore, OperationalCounts, StoreError};

#[cfg(feature = "testkit")]
pub mod conformance;
