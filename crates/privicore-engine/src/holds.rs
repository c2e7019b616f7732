//! Holds a command's events until its 202 has been written to the client's connection.
//!
//! Clients written the usual way read the 202 (and its command id) before they listen for
//! that id on the WebSocket, dropping frames nobody waits for; an event that overtakes its
//! 202 would be lost to them. So the edge runs each request in a [`scope`]; every command
//! accepted inside it is *held*: its events are parked until the edge drops the
//! [`Release`] it collected, once the answer has been flushed to the connection.
//! Commands accepted outside a scope (resumed commands, tests) are not held.

use crate::engine::Core;
use privicore_domain::CommandId;
use privicore_domain::event::BusEvent;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

tokio::task_local! {
    static SCOPE: Arc<Mutex<Vec<Release>>>;
}

/// Runs `request` in a hold scope; returns its output and the releases of every command
/// it accepted.
pub async fn scope<F: std::future::Future>(request: F) -> (F::Output, Vec<Release>) {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let output = SCOPE.scope(collected.clone(), request).await;
    let releases = std::mem::take(&mut *collected.lock().expect("hold scope lock"));
    (output, releases)
}

enum Slot {
    /// Events wait for the release.
    Held(Vec<BusEvent>),
    /// Released; a task is publishing what was parked, later events queue behind it.
    Draining(Vec<BusEvent>),
}

/// The commands whose events are held, and what they parked.
#[derive(Default)]
pub(crate) struct Holds {
    slots: Mutex<HashMap<CommandId, Slot>>,
}

/// Dropping it publishes the command's parked events, in order.
pub struct Release {
    command: CommandId,
    core: Weak<Core>,
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("command", &self.command)
            .finish()
    }
}

impl Holds {
    /// Holds `command`'s events if the caller runs inside a [`scope`].
    pub(crate) fn hold_if_scoped(&self, core: &Arc<Core>, command: CommandId) {
        let _ = SCOPE.try_with(|collected| {
            self.slots
                .lock()
                .expect("holds lock")
                .insert(command, Slot::Held(Vec::new()));
            collected.lock().expect("hold scope lock").push(Release {
                command,
                core: Arc::downgrade(core),
            });
        });
    }

    /// `Some(event)` when it may be published now; `None` when it was parked.
    pub(crate) fn intercept(&self, event: BusEvent) -> Option<BusEvent> {
        let Some(command) = command_of(&event) else {
            return Some(event);
        };
        let mut slots = self.slots.lock().expect("holds lock");
        match slots.get_mut(&command) {
            None => Some(event),
            Some(Slot::Held(parked) | Slot::Draining(parked)) => {
                parked.push(event);
                None
            }
        }
    }

    /// The parked events to publish now, switching the slot to draining; empty once done
    /// (the slot is then gone).
    fn next_batch(&self, command: CommandId) -> Vec<BusEvent> {
        let mut slots = self.slots.lock().expect("holds lock");
        match slots.get_mut(&command) {
            Some(Slot::Held(parked) | Slot::Draining(parked)) if !parked.is_empty() => {
                let batch = std::mem::take(parked);
                slots.insert(command, Slot::Draining(Vec::new()));
                batch
            }
            _ => {
                slots.remove(&command);
                Vec::new()
            }
        }
    }

    pub(crate) fn held(&self) -> usize {
        self.slots.lock().expect("holds lock").len()
    }
}

fn command_of(event: &BusEvent) -> Option<CommandId> {
    match event {
        BusEvent::Profile(event) => event.command_id,
        _ => None,
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let command = self.command;
        let first = core.holds.next_batch(command);
        if first.is_empty() {
            return;
        }
        let publish = async move {
            let mut batch = first;
            while !batch.is_empty() {
                for event in batch {
                    core.publish_now(event).await;
                }
                batch = core.holds.next_batch(command);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(publish);
            }
            // Dropped outside the runtime (shutdown): nobody is left to read the events.
            Err(_) => tracing::debug!(%command, "held events dropped at shutdown"),
        }
    }
}
