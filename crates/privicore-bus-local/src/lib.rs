//! In-process bus: a broadcast channel. Events are cloned to every subscriber of this
//! process; a subscriber that falls too far behind loses the oldest events and says so
//! in the log (the command log and `/request-status` stay authoritative).

mod devices;

pub use devices::{Attachment, LocalDeviceBus};

use async_trait::async_trait;
use futures_util::StreamExt;
use privicore_domain::event::BusEvent;
use privicore_domain::ports::{Bus, BusError, EventStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

pub struct LocalBus {
    events: broadcast::Sender<BusEvent>,
}

impl LocalBus {
    pub fn new(capacity: usize) -> Self {
        let (events, _) = broadcast::channel(capacity);
        Self { events }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16_384)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, event: BusEvent) -> Result<(), BusError> {
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.events.send(event);
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream, BusError> {
        let stream = BroadcastStream::new(self.events.subscribe()).filter_map(|item| async move {
            match item {
                Ok(event) => Some(event),
                Err(BroadcastStreamRecvError::Lagged(n)) => {
                    tracing::warn!(dropped = n, "bus subscriber lagged; events dropped");
                    None
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_domain::event::ProfileEvent;
    use privicore_domain::{CommandId, ProfileId};

    fn event(n: u8) -> BusEvent {
        let id = CommandId::new();
        BusEvent::Profile(ProfileEvent::command_status(
            ProfileId(id.0),
            None,
            id,
            2,
            serde_json::json!({ "n": n }),
        ))
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = LocalBus::new(16);
        let mut a = bus.subscribe().await.unwrap();
        let mut b = bus.subscribe().await.unwrap();
        for n in 0..3 {
            bus.publish(event(n)).await.unwrap();
        }
        for stream in [&mut a, &mut b] {
            for n in 0..3 {
                let BusEvent::Profile(e) = stream.next().await.unwrap() else {
                    panic!("profile event expected")
                };
                assert_eq!(e.data["body"]["n"], n);
            }
        }
    }

    #[tokio::test]
    async fn publishing_without_subscribers_succeeds() {
        LocalBus::new(4).publish(event(1)).await.unwrap();
    }
}
