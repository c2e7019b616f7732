//! Embedded device bus: a routing table from device identifiers to live connections, and
//! one engine inbox. Connections are in-process channels (hosted devices) or the
//! `/device-bus` WebSocket of the edge. Messages for a device that is not connected wait
//! in a bounded queue and are delivered when it connects. A connected device's queue is
//! bounded too: a sender waits while the device is that far behind. Device messages to the
//! engine are not bounded here: a device answers what the engine sent it, and a full
//! inbox could hold up a device that the engine itself waits on.
//!
//! Store chunks (about 1 MiB each) have a tighter bound of their own, so the fan-out of a
//! large upload waits for a slow device instead of parking the object in its queue.

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use privicore_domain::ports::{BusError, DeviceBus};
use privicore_wire::bus::Envelope;
use privicore_wire::bus::{StoreChunk, kind};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::UnboundedReceiverStream;

/// Messages kept for a disconnected device.
const OFFLINE_QUEUE: usize = 10_000;
/// Messages queued for a connected device before senders wait.
const DEVICE_QUEUE: usize = 256;
/// Store chunks queued for a connected device before senders wait.
const CHUNKS_QUEUED: usize = 4;

/// A queued message, with the chunk budget it holds until the device takes it.
type Queued = (Envelope, Option<OwnedSemaphorePermit>);

struct Route {
    connection: u64,
    tx: mpsc::Sender<Queued>,
    chunks: Arc<Semaphore>,
}

/// A chunk of an object of several chunks: one-chunk objects keep the message bound, so
/// the small stores the device batches are not held up.
fn is_large_chunk(envelope: &Envelope) -> bool {
    envelope.kind == kind::STORE_CHUNK
        && envelope
            .body
            .as_typed::<StoreChunk>()
            .is_some_and(|chunk| chunk.chunk_count > 1)
}

/// What the engine sends one connected device.
pub struct FromEngine(mpsc::Receiver<Queued>);

impl FromEngine {
    /// The next message; taking it frees its place in the chunk budget.
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.0.recv().await.map(|(envelope, _permit)| envelope)
    }
}

#[derive(Default)]
struct Routes {
    live: HashMap<String, Route>,
    waiting: HashMap<String, VecDeque<Envelope>>,
    next_connection: u64,
}

pub struct LocalDeviceBus {
    routes: Mutex<Routes>,
    inbox_tx: mpsc::UnboundedSender<Envelope>,
    inbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Envelope>>>,
}

/// A device's live connection: what the engine sends it, and where its messages go.
pub struct Attachment {
    pub connection: u64,
    pub from_engine: FromEngine,
    pub to_engine: mpsc::UnboundedSender<Envelope>,
}

impl Default for LocalDeviceBus {
    fn default() -> Self {
        let (inbox_tx, inbox_rx) = mpsc::unbounded_channel();
        Self {
            routes: Mutex::new(Routes::default()),
            inbox_tx,
            inbox_rx: Mutex::new(Some(inbox_rx)),
        }
    }
}

impl LocalDeviceBus {
    /// Connects a device; a second connection replaces the first (§6.2).
    pub fn attach(&self, device: &str) -> Attachment {
        let mut routes = self.routes.lock().expect("routes lock");
        routes.next_connection += 1;
        let connection = routes.next_connection;
        let queued = routes.waiting.remove(device).unwrap_or_default();
        // Room for what waited, so it is handed over at once.
        let (tx, from_engine) = mpsc::channel(DEVICE_QUEUE + queued.len());
        for env in queued {
            let _ = tx.try_send((env, None));
        }
        let chunks = Arc::new(Semaphore::new(CHUNKS_QUEUED));
        routes.live.insert(
            device.to_owned(),
            Route {
                connection,
                tx,
                chunks,
            },
        );
        Attachment {
            connection,
            from_engine: FromEngine(from_engine),
            to_engine: self.inbox_tx.clone(),
        }
    }

    /// Ends a connection, unless it was already replaced by a newer one.
    pub fn detach(&self, device: &str, connection: u64) {
        let mut routes = self.routes.lock().expect("routes lock");
        if routes
            .live
            .get(device)
            .is_some_and(|r| r.connection == connection)
        {
            routes.live.remove(device);
        }
    }
}

#[async_trait]
impl DeviceBus for LocalDeviceBus {
    async fn send(&self, device: &str, envelope: Envelope) -> Result<(), BusError> {
        let live = {
            let routes = self.routes.lock().expect("routes lock");
            routes
                .live
                .get(device)
                .map(|r| (r.connection, r.tx.clone(), r.chunks.clone()))
        };
        let envelope = match live {
            Some((connection, tx, chunks)) => {
                let permit = if is_large_chunk(&envelope) {
                    // The semaphore is never closed.
                    chunks.acquire_owned().await.ok()
                } else {
                    None
                };
                match tx.send((envelope, permit)).await {
                    Ok(()) => return Ok(()),
                    Err(mpsc::error::SendError((env, _))) => {
                        self.detach(device, connection);
                        env
                    }
                }
            }
            None => envelope,
        };
        let mut routes = self.routes.lock().expect("routes lock");
        let queue = routes.waiting.entry(device.to_owned()).or_default();
        queue.push_back(envelope);
        while queue.len() > OFFLINE_QUEUE {
            queue.pop_front();
        }
        Ok(())
    }

    async fn inbox(&self) -> Result<BoxStream<'static, Envelope>, BusError> {
        let rx = self
            .inbox_rx
            .lock()
            .expect("inbox lock")
            .take()
            .ok_or_else(|| BusError::Unavailable("the engine inbox is already taken".into()))?;
        Ok(UnboundedReceiverStream::new(rx).boxed())
    }

    fn connected(&self, device: &str) -> bool {
        self.routes
            .lock()
            .expect("routes lock")
            .live
            .get(device)
            .is_some_and(|r| !r.tx.is_closed())
    }

    async fn disconnect(&self, device: &str) {
        let mut routes = self.routes.lock().expect("routes lock");
        routes.live.remove(device);
        routes.waiting.remove(device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(n: u64) -> Envelope {
        Envelope::new("storage.fetch", "dev-1", None, json!({ "n": n }))
    }

    /// The `n` of a message built by `env`.
    fn n(received: Option<Envelope>) -> u64 {
        received.unwrap().body::<serde_json::Value>().unwrap()["n"]
            .as_u64()
            .unwrap()
    }

    #[tokio::test]
    async fn queued_messages_reach_a_device_when_it_connects() {
        let bus = LocalDeviceBus::default();
        bus.send("dev-1", env(1)).await.unwrap();
        assert!(!bus.connected("dev-1"));
        let mut a = bus.attach("dev-1");
        assert!(bus.connected("dev-1"));
        assert_eq!(n(a.from_engine.recv().await), 1);
        bus.send("dev-1", env(2)).await.unwrap();
        assert_eq!(n(a.from_engine.recv().await), 2);

        let mut inbox = bus.inbox().await.unwrap();
        a.to_engine.send(env(3)).unwrap();
        assert_eq!(n(inbox.next().await), 3);
        assert!(bus.inbox().await.is_err(), "one consumer");
    }

    #[tokio::test]
    async fn a_sender_waits_while_a_connected_device_is_a_full_queue_behind() {
        let bus = LocalDeviceBus::default();
        let mut a = bus.attach("dev-1");
        for i in 0..DEVICE_QUEUE as u64 {
            bus.send("dev-1", env(i)).await.unwrap();
        }
        let mut blocked = std::pin::pin!(bus.send("dev-1", env(9_999)));
        assert!(
            futures_util::FutureExt::now_or_never(blocked.as_mut()).is_none(),
            "the queue is full"
        );
        assert_eq!(n(a.from_engine.recv().await), 0);
        assert!(blocked.await.is_ok(), "room again after one was taken");
        for i in 1..DEVICE_QUEUE as u64 {
            assert_eq!(n(a.from_engine.recv().await), i);
        }
        assert_eq!(n(a.from_engine.recv().await), 9_999);
    }

    fn chunk(index: u32, count: u32) -> Envelope {
        let body = StoreChunk {
            transfer_id: "t".into(),
            token: "dtk-1".into(),
            version: 1,
            chunk_index: index,
            chunk_count: count,
            total_size: u64::from(count) * 1024,
            sha256: String::new(),
            header: Vec::new(),
            data: vec![0; 1024].into(),
        };
        Envelope::new(kind::STORE_CHUNK, "dev-1", None, body)
    }

    #[tokio::test]
    async fn chunks_of_a_large_object_wait_after_a_few_while_small_objects_do_not() {
        let bus = LocalDeviceBus::default();
        let mut a = bus.attach("dev-1");
        for i in 0..CHUNKS_QUEUED as u32 {
            bus.send("dev-1", chunk(i, 100)).await.unwrap();
        }
        let mut blocked = std::pin::pin!(bus.send("dev-1", chunk(99, 100)));
        assert!(
            futures_util::FutureExt::now_or_never(blocked.as_mut()).is_none(),
            "the chunk bound is reached"
        );
        // One-chunk objects and other messages still pass.
        for _ in 0..8 {
            bus.send("dev-1", chunk(0, 1)).await.unwrap();
        }
        bus.send("dev-1", env(1)).await.unwrap();
        assert_eq!(a.from_engine.recv().await.unwrap().kind, kind::STORE_CHUNK);
        assert!(blocked.await.is_ok(), "room again once the device took one");
    }

    #[tokio::test]
    async fn a_new_connection_replaces_the_old_one() {
        let bus = LocalDeviceBus::default();
        let old = bus.attach("dev-1");
        let mut new = bus.attach("dev-1");
        bus.detach("dev-1", old.connection);
        assert!(bus.connected("dev-1"));
        bus.send("dev-1", env(1)).await.unwrap();
        assert_eq!(n(new.from_engine.recv().await), 1);
        bus.detach("dev-1", new.connection);
        assert!(!bus.connected("dev-1"));
    }
}
