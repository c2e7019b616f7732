//! Routes profile events to joined WebSocket channels (README §8): every socket joined on a
//! profile receives each of its events; events emitted while nobody is joined wait in a
//! short replay buffer and go to the next socket that joins.

use crate::workers::Worker;
use async_trait::async_trait;
use futures_util::StreamExt;
use privicore_domain::ProfileId;
use privicore_domain::auth::{Caller, TokenOwner};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::ids::ChannelId;
use privicore_domain::ports::{Bus, EventStream};
use privicore_domain::secret::TokenHash;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames queued per socket before it counts as too slow and is disconnected.
pub const SOCKET_QUEUE: usize = 1024;

/// What the hub hands to a socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// The `data` member of an event frame.
    Event(Value),
    /// The token the channel was joined with ended; the channel is gone.
    TokenEnded { channel: ChannelId, code: String },
}

struct Member {
    channel: ChannelId,
    token: TokenHash,
    owner: TokenOwner,
    tx: mpsc::Sender<Outbound>,
}

#[derive(Default)]
struct State {
    members: HashMap<ProfileId, Vec<Member>>,
    channels: HashMap<ChannelId, ProfileId>,
    replay: HashMap<ProfileId, VecDeque<(Instant, ProfileEvent)>>,
}

pub struct EventHub {
    state: Mutex<State>,
    replay_window: Duration,
    replay_capacity: usize,
}

impl EventHub {
    pub fn new(replay_window: Duration, replay_capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            replay_window,
            replay_capacity,
        }
    }

    /// Joins a channel for the caller; buffered events are queued first.
    pub fn join(&self, caller: &Caller, tx: mpsc::Sender<Outbound>) -> ChannelId {
        let channel = ChannelId::new();
        let mut state = self.state.lock().expect("hub lock");
        if let Some(buffer) = state.replay.remove(&caller.profile_id) {
            for (at, event) in buffer {
                if at.elapsed() <= self.replay_window && visible_to(&caller.owner, &event) {
                    let _ = tx.try_send(Outbound::Event(event.data));
                }
            }
        }
        state.channels.insert(channel, caller.profile_id);
        state
            .members
            .entry(caller.profile_id)
            .or_default()
            .push(Member {
                channel,
                token: caller.token_hash,
                owner: caller.owner,
                tx,
            });
        tracing::debug!(%channel, "channel joined");
        channel
    }

    /// Leaves a channel; `false` when it is unknown.
    pub fn leave(&self, channel: ChannelId) -> bool {
        drop_channel(&mut self.state.lock().expect("hub lock"), channel)
    }

    pub fn joined_channels(&self) -> usize {
        self.state.lock().expect("hub lock").channels.len()
    }

    pub fn dispatch(&self, event: BusEvent) {
        let mut state = self.state.lock().expect("hub lock");
        match event {
            BusEvent::Profile(event) => self.deliver(&mut state, event),
            BusEvent::TokenEnded { token, code } => {
                end_channels(&mut state, |m| m.token == token, &code)
            }
            BusEvent::ProfileTokensEnded {
                profile_id,
                keep,
                code,
            } => {
                let profile_channels: Vec<ChannelId> = state
                    .members
                    .get(&profile_id)
                    .map(|ms| ms.iter().map(|m| m.channel).collect())
                    .unwrap_or_default();
                end_channels(
                    &mut state,
                    |m| profile_channels.contains(&m.channel) && Some(m.token) != keep,
                    &code,
                )
            }
        }
    }

    fn deliver(&self, state: &mut State, event: ProfileEvent) {
        let mut slow = Vec::new();
        match state.members.get(&event.profile_id) {
            Some(members) if !members.is_empty() => {
                for member in members.iter().filter(|m| visible_to(&m.owner, &event)) {
                    if member
                        .tx
                        .try_send(Outbound::Event(event.data.clone()))
                        .is_err()
                    {
                        slow.push(member.channel);
                    }
                }
            }
            _ => {
                let buffer = state.replay.entry(event.profile_id).or_default();
                buffer.push_back((Instant::now(), event));
                while buffer.len() > self.replay_capacity {
                    buffer.pop_front();
                }
            }
        }
        for channel in slow {
            tracing::warn!(%channel, "socket too slow; disconnecting it");
            drop_channel(state, channel);
        }
    }

    /// Drops replay entries older than the window.
    pub fn prune(&self) {
        let window = self.replay_window;
        let mut state = self.state.lock().expect("hub lock");
        state.replay.retain(|_, buffer| {
            while buffer.front().is_some_and(|(at, _)| at.elapsed() > window) {
                buffer.pop_front();
            }
            !buffer.is_empty()
        });
    }
}

/// App-token sockets see only their application's events (README §8.5).
fn visible_to(owner: &TokenOwner, event: &ProfileEvent) -> bool {
    match owner {
        TokenOwner::Profile => true,
        TokenOwner::App { application_id } => event.application_id == Some(*application_id),
    }
}

fn end_channels(state: &mut State, matches: impl Fn(&Member) -> bool, code: &str) {
    let ended: Vec<(ChannelId, mpsc::Sender<Outbound>)> = state
        .members
        .values()
        .flatten()
        .filter(|m| matches(m))
        .map(|m| (m.channel, m.tx.clone()))
        .collect();
    for (channel, tx) in ended {
        drop_channel(state, channel);
        let _ = tx.try_send(Outbound::TokenEnded {
            channel,
            code: code.to_owned(),
        });
    }
}

fn drop_channel(state: &mut State, channel: ChannelId) -> bool {
    let Some(profile) = state.channels.remove(&channel) else {
        return false;
    };
    if let Some(members) = state.members.get_mut(&profile) {
        members.retain(|m| m.channel != channel);
        if members.is_empty() {
            state.members.remove(&profile);
        }
    }
    true
}

/// Feeds bus events into the hub; resubscribes after a failure.
pub(crate) struct HubWorker {
    hub: Arc<EventHub>,
    bus: Arc<dyn Bus>,
    events: Option<EventStream>,
}

impl HubWorker {
    pub fn new(hub: Arc<EventHub>, bus: Arc<dyn Bus>, events: EventStream) -> Self {
        Self {
            hub,
            bus,
            events: Some(events),
        }
    }
}

#[async_trait]
impl Worker for HubWorker {
    fn name(&self) -> String {
        "event-hub".into()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        let mut events = match self.events.take() {
            Some(events) => events,
            None => self.bus.subscribe().await.map_err(|e| e.to_string())?,
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = events.next() => match next {
                    Some(event) => self.hub.dispatch(event),
                    None => return Err("bus subscription ended".into()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
