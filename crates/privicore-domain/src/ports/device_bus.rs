use super::BusError;
use async_trait::async_trait;
use futures_util::stream::BoxStream;
use privicore_wire::bus::Envelope;

/// Point-to-point device traffic (docs/api/devices-and-storage.md §6): the engine sends to one
/// device; every device message lands in the engine inbox.
#[async_trait]
pub trait DeviceBus: Send + Sync + 'static {
    /// Queues a message for a device; delivered when it is (or becomes) connected.
    async fn send(&self, device_identifier: &str, envelope: Envelope) -> Result<(), BusError>;
    /// The engine inbox. Taken once, by the engine's inbox worker.
    async fn inbox(&self) -> Result<BoxStream<'static, Envelope>, BusError>;
    /// Whether the device has a live connection right now.
    fn connected(&self, device_identifier: &str) -> bool;
    /// Closes the device's connection and drops what was queued for it.
    async fn disconnect(&self, device_identifier: &str);
}
