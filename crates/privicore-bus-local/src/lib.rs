//! In-process bus. Every subscriber has two bounded queues: one for token-ended notices and
//! one for profile events. Nothing is dropped: when a subscriber's queue is full the
//! publisher waits for room (back-pressure). Token-ended notices travel on their own queue
//! and are taken first, so a revocation never waits behind a flood of data events (it may
//! overtake events published just before it).

mod devices;

pub use devices::{Attachment, LocalDeviceBus};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::{PollNext, select_with_strategy};
use privicore_domain::event::BusEvent;
use privicore_domain::ports::{Bus, BusError, EventStream};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Clone)]
struct Subscriber {
    notices: mpsc::Sender<BusEvent>,
    events: mpsc::Sender<BusEvent>,
}

impl Subscriber {
    fn lane(&self, event: &BusEvent) -> &mpsc::Sender<BusEvent> {
        match event {
            BusEvent::Profile(_) => &self.events,
            BusEvent::TokenEnded { .. } | BusEvent::ProfileTokensEnded { .. } => &self.notices,
        }
    }
}

pub struct LocalBus {
    capacity: usize,
    /// Swapped whole on (un)subscribe, so a publish takes one reference count, no copy.
    subscribers: RwLock<Arc<[Subscriber]>>,
}

impl LocalBus {
    /// `capacity` events may wait per subscriber and queue before publishers wait.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            subscribers: RwLock::new(Arc::from(Vec::new())),
        }
    }

    fn current(&self) -> Arc<[Subscriber]> {
        self.subscribers.read().expect("bus lock").clone()
    }

    fn forget_closed(&self) {
        let mut subscribers = self.subscribers.write().expect("bus lock");
        let open: Vec<Subscriber> = subscribers
            .iter()
            .filter(|s| !s.events.is_closed())
            .cloned()
            .collect();
        *subscribers = Arc::from(open);
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(16_384)
    }
}

/// Hands `event` to one queue, waiting for room when it is full; `false` once the
/// subscriber is gone.
async fn offer(lane: &mpsc::Sender<BusEvent>, event: BusEvent) -> bool {
    match lane.try_send(event) {
        Ok(()) => true,
        Err(TrySendError::Full(event)) => {
            tracing::debug!("bus subscriber queue full; publisher waits");
            lane.send(event).await.is_ok()
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, event: BusEvent) -> Result<(), BusError> {
        // No subscriber is not an error: nobody is listening yet.
        let subscribers = self.current();
        let mut gone = false;
        if let Some((last, others)) = subscribers.split_last() {
            for subscriber in others {
                gone |= !offer(subscriber.lane(&event), event.clone()).await;
            }
            gone |= !offer(last.lane(&event), event).await;
        }
        if gone {
            self.forget_closed();
        }
        Ok(())
    }

    async fn subscribe(&self) -> Result<EventStream, BusError> {
        let (notices, notices_rx) = mpsc::channel(self.capacity);
        let (events, events_rx) = mpsc::channel(self.capacity);
        {
            let mut subscribers = self.subscribers.write().expect("bus lock");
            let mut all = subscribers.to_vec();
            all.push(Subscriber { notices, events });
            *subscribers = Arc::from(all);
        }
        let stream = select_with_strategy(
            ReceiverStream::new(notices_rx),
            ReceiverStream::new(events_rx),
            |_: &mut ()| PollNext::Left,
        );
        Ok(stream.boxed())
    }

    /// Ok while some subscriber still reads (the engine's event hub subscribes at start):
    /// without one, published events reach nobody.
    async fn ping(&self) -> Result<(), BusError> {
        if self.current().iter().any(|s| !s.events.is_closed()) {
            Ok(())
        } else {
            Err(BusError::Unavailable("no live subscriber".into()))
        }
    }

    fn queued(&self) -> Option<usize> {
        let queued = |q: &mpsc::Sender<BusEvent>| q.max_capacity() - q.capacity();
        Some(
            self.current()
                .iter()
                .filter(|s| !s.events.is_closed())
                .map(|s| queued(&s.events) + queued(&s.notices))
                .sum(),
        )
    }
}

#[cfg(test)]
mod tests;
