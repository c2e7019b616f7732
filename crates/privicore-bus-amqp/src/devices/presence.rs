//! Device presence as the broker sees it: whether a device's queue has a consumer.

use super::{State, declare_device_queue};
use crate::broker::Broker;
use lapin::Channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PRESENCE_EVERY: Duration = Duration::from_secs(2);
/// Devices without a consumer are checked again only every this many rounds (30 s).
const DOWN_EVERY_ROUNDS: u32 = 15;

/// What the engine knows of a device's consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Asked about, not checked yet.
    Unknown,
    /// Its queue had a consumer, or it just sent a message.
    Up,
    /// Its queue had no consumer: a message of the device brings it back at once, the
    /// check only every 30 s (absent devices cost little).
    Down,
}

/// Refreshes `watched` from the consumer counts of the devices' queues.
pub(super) async fn watch_presence(broker: Arc<Broker>, state: Arc<Mutex<State>>) {
    let shutdown = broker.shutdown_token();
    let mut tick = tokio::time::interval(PRESENCE_EVERY);
    let mut channel: Option<Channel> = None;
    let mut round: u32 = 0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        round = round.wrapping_add(1);
        let all = round.is_multiple_of(DOWN_EVERY_ROUNDS);
        // Only this task holds the last reference besides the bus: stop with the bus.
        if Arc::strong_count(&state) == 1 {
            return;
        }
        let devices: Vec<String> = state
            .lock()
            .expect("state lock")
            .watched
            .iter()
            .filter(|(_, seen)| all || **seen != Seen::Down)
            .map(|(device, _)| device.clone())
            .collect();
        if devices.is_empty() {
            continue;
        }
        if !channel.as_ref().is_some_and(|c| c.status().connected()) {
            channel = tokio::select! {
                _ = shutdown.cancelled() => return,
                opened = broker.channel() => opened.map(|(_, c)| c),
            };
        }
        let Some(open) = channel.as_ref() else { return };
        for device in devices {
            match declare_device_queue(open, broker.names(), &device).await {
                Ok(consumers) => {
                    let mut state = state.lock().expect("state lock");
                    if let Some(seen) = state.watched.get_mut(&device) {
                        *seen = if consumers > 0 { Seen::Up } else { Seen::Down };
                    }
                    state.declared.insert(device);
                }
                Err(error) => {
                    tracing::debug!(%error, "presence check failed; retrying");
                    break;
                }
            }
        }
    }
}
