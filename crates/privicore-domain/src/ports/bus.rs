use crate::event::BusEvent;
use async_trait::async_trait;
use futures_util::stream::BoxStream;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Every event published on the bus, as seen by one subscriber.
pub type EventStream = BoxStream<'static, BusEvent>;

/// Fan-out of events to every engine node (and, later, device traffic).
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    async fn publish(&self, event: BusEvent) -> Result<(), BusError>;
    /// A new subscription that receives every event published after this call.
    async fn subscribe(&self) -> Result<EventStream, BusError>;
    /// Whether events published now reach a live subscriber.
    async fn ping(&self) -> Result<(), BusError>;
    /// Events waiting in the bus's own queues, where an adapter can read it cheaply
    /// (`None`: not known here, e.g. a broker that holds them).
    fn queued(&self) -> Option<usize> {
        None
    }
}
