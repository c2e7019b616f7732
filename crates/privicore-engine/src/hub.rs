//! Routes profile events to joined WebSocket channels (docs/api/README.md §8): every socket joined on a
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
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Events queued per socket (beyond its replay) before it counts as lagging.
pub const SOCKET_QUEUE: usize = 1024;

/// Why the hub ended a channel. Every ended channel is told exactly one of these, on a
/// path of its own, so the notice never waits behind queued events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The token the channel was joined with expired or was revoked (docs/api/README.md §8.7).
    Token { code: String },
    /// The socket let its queue fill up: the events that did not fit wait in the replay
    /// buffer, and the socket must be told and closed so that its client joins again.
    Lagged,
}

/// A joined channel as the socket sees it.
pub struct Subscription {
    pub channel: ChannelId,
    pub profile: ProfileId,
    /// The profile's events, oldest first; replayed ones come before live ones.
    pub events: mpsc::Receiver<ProfileEvent>,
    /// Fires once if the hub ends the channel; a channel the socket leaves never fires.
    pub ended: oneshot::Receiver<Ended>,
}

struct Member {
    channel: ChannelId,
    token: TokenHash,
    owner: TokenOwner,
    /// The scopes of an app token's grant (empty for profile tokens).
    scopes: Vec<String>,
    tx: mpsc::Sender<ProfileEvent>,
    ended: oneshot::Sender<Ended>,
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
    socket_queue: usize,
}

impl EventHub {
    pub fn new(replay_window: Duration, replay_capacity: usize, socket_queue: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            replay_window,
            replay_capacity,
            socket_queue: socket_queue.max(1),
        }
    }

    /// Joins a channel for the caller; buffered events are queued first (the queue has
    /// room for all of them on top of its usual size).
    pub fn join(&self, caller: &Caller) -> Subscription {
        self.join_with_scopes(caller, Vec::new())
    }

    /// [`EventHub::join`] for a token whose grant holds `scopes` (app tokens).
    pub fn join_with_scopes(&self, caller: &Caller, scopes: Vec<String>) -> Subscription {
        let channel = ChannelId::new();
        let mut state = self.state.lock().expect("hub lock");
        let replayed: Vec<ProfileEvent> = state
            .replay
            .remove(&caller.profile_id)
            .into_iter()
            .flatten()
            .filter(|(at, event)| {
                at.elapsed() <= self.replay_window && visible_to(&caller.owner, &scopes, event)
            })
            .map(|(_, event)| event)
            .collect();
        let (tx, events) = mpsc::channel(self.socket_queue + replayed.len());
        for event in replayed {
            tx.try_send(event)
                .expect("the queue has room for the replay");
        }
        let (ended_tx, ended) = oneshot::channel();
        state.channels.insert(channel, caller.profile_id);
        state
            .members
            .entry(caller.profile_id)
            .or_default()
            .push(Member {
                channel,
                token: caller.token_hash,
                owner: caller.owner,
                scopes,
                tx,
                ended: ended_tx,
            });
        tracing::debug!(%channel, "channel joined");
        Subscription {
            channel,
            profile: caller.profile_id,
            events,
            ended,
        }
    }

    /// Leaves a channel; `false` when it is unknown.
    pub fn leave(&self, channel: ChannelId) -> bool {
        drop_channel(&mut self.state.lock().expect("hub lock"), channel).is_some()
    }

    /// Events a socket took off the hub but could not write (it lagged, or its token
    /// ended first) go back to the front of the replay buffer, when nobody else is joined
    /// on the profile to have received them.
    pub fn requeue(&self, profile: ProfileId, events: Vec<ProfileEvent>) {
        if events.is_empty() {
            return;
        }
        let mut state = self.state.lock().expect("hub lock");
        if state.members.contains_key(&profile) {
            return;
        }
        tracing::debug!(
            count = events.len(),
            "undelivered events back in the replay buffer"
        );
        let now = Instant::now();
        let buffer = state.replay.entry(profile).or_default();
        for event in events.into_iter().rev() {
            buffer.push_front((now, event));
        }
        while buffer.len() > self.replay_capacity {
            buffer.pop_front();
        }
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
        let mut lagged = Vec::new();
        let mut gone = Vec::new();
        if let Some(members) = state.members.get(&event.profile_id) {
            for member in members
                .iter()
                .filter(|m| visible_to(&m.owner, &m.scopes, &event))
            {
                match member.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => lagged.push(member.channel),
                    Err(TrySendError::Closed(_)) => gone.push(member.channel),
                }
            }
        }
        for channel in lagged {
            tracing::info!(%channel, "socket lagging; told to join again");
            if let Some(member) = drop_channel(state, channel) {
                let _ = member.ended.send(Ended::Lagged);
            }
        }
        for channel in gone {
            drop_channel(state, channel);
        }
        if !state.members.contains_key(&event.profile_id) {
            let buffer = state.replay.entry(event.profile_id).or_default();
            buffer.push_back((Instant::now(), event));
            while buffer.len() > self.replay_capacity {
                buffer.pop_front();
            }
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

/// App-token sockets see only their application's events (docs/api/README.md §8.5), and
/// events meant for a scope their grant holds.
fn visible_to(owner: &TokenOwner, scopes: &[String], event: &ProfileEvent) -> bool {
    match owner {
        TokenOwner::Profile => true,
        TokenOwner::App { application_id } => {
            event.application_id == Some(*application_id)
                || event
                    .app_scope
                    .as_deref()
                    .is_some_and(|scope| privicore_domain::oauth::holds(scopes, scope))
        }
    }
}

fn end_channels(state: &mut State, matches: impl Fn(&Member) -> bool, code: &str) {
    let ended: Vec<ChannelId> = state
        .members
        .values()
        .flatten()
        .filter(|m| matches(m))
        .map(|m| m.channel)
        .collect();
    for channel in ended {
        if let Some(member) = drop_channel(state, channel) {
            let _ = member.ended.send(Ended::Token {
                code: code.to_owned(),
            });
        }
    }
}

fn drop_channel(state: &mut State, channel: ChannelId) -> Option<Member> {
    let profile = state.channels.remove(&channel)?;
    let members = state.members.get_mut(&profile)?;
    let at = members.iter().position(|m| m.channel == channel)?;
    let member = members.swap_remove(at);
    if members.is_empty() {
        state.members.remove(&profile);
    }
    Some(member)
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
