//! Governance for the bench: authenticators, policies, and (for `bench vote`) authenticators
//! that run inside the bench as bus clients and vote `yes` on every ballot whose MAC
//! verifies, noting when each vote left.
//!
//! `bench vote` gates every exchange with one active policy on event `101` (Exchange data
//! for token) whose voting configuration is `unanimous` with a quorum of every
//! authenticator: a held exchange is released by the last of the yes votes, the deciding
//! one. `bench store --policies N` registers N active policies on the same event that never
//! match the bench's tokens (their `context` is another one), to measure what evaluating
//! them costs an ungated store.

use super::Bencher;
use crate::authenticator::book::Connection;
use crate::authenticator::{BallotClient, BallotHandler};
use privicore_client::KeyPair;
use privicore_storage_device::Bundle;
use privicore_wire::bus::ballots::{Issue, Vote, VoteResult, Withdraw};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
/// The voting configuration of `bench vote`'s policy.
const CONFIGURATION: &str = "bench-approvers";
const POLICY: &str = "bench-exchange-approval";
/// The context of the policies that must not match (the bench stores under `/bench`).
const UNMATCHED_CONTEXT: &str = "/not-the-bench/*";

/// The instant of the deciding vote: the `needed`-th vote sent (in sending order),
/// `None` while fewer were sent.
pub(super) fn deciding_vote<T: Ord + Copy>(sent: &[T], needed: usize) -> Option<T> {
    if needed == 0 || sent.len() < needed {
        return None;
    }
    let mut sorted = sent.to_vec();
    sorted.sort_unstable();
    Some(sorted[needed - 1])
}

/// The pool that holds a command, from its `command_status: 1` events.
pub(super) fn held_pool(events: &[Value]) -> Option<String> {
    events
        .iter()
        .filter(|e| e["type"] == "X-DPT-CAB-ID" && e["command_status"] == 1)
        .find_map(|e| e["body"]["pools"][0]["poolId"].as_str().map(str::to_owned))
}

/// What the bench's authenticators did, shared by all of them.
#[derive(Default)]
pub(super) struct VoteLog {
    /// When each vote was handed to the bus, by pool.
    sent: Mutex<HashMap<String, Vec<Instant>>>,
    welcomed: AtomicUsize,
    welcome: Notify,
    /// Ballots refused for their MAC, and votes the engine refused.
    refused_ballots: AtomicU64,
    refused_votes: AtomicU64,
    /// Authenticators whose session ended for good (refused, revoked, key not proved).
    ended: Mutex<Vec<String>>,
}

impl VoteLog {
    /// Takes the votes sent on `pool` (the pool is decided: none follow).
    pub(super) fn take(&self, pool: &str) -> Vec<Instant> {
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(pool)
            .unwrap_or_default()
    }

    pub(super) fn refusals(&self) -> (u64, u64) {
        (
            self.refused_ballots.load(Ordering::Relaxed),
            self.refused_votes.load(Ordering::Relaxed),
        )
    }

    /// Waits until `count` authenticators are welcomed.
    async fn welcomed(&self, count: usize) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.welcome.notified();
            if self.welcomed.load(Ordering::SeqCst) >= count {
                return Ok(());
            }
            if let Some(why) = self.ended.lock().unwrap_or_else(|p| p.into_inner()).first() {
                anyhow::bail!("an authenticator's session ended: {why}");
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .map_err(|_| anyhow::anyhow!("the bench's authenticators were not welcomed"))?;
        }
    }
}

/// One of the bench's authenticators: votes `yes` on every verified ballot, at once.
struct AutoVoter {
    channel_key: [u8; 32],
    log: Arc<VoteLog>,
}

impl BallotHandler for AutoVoter {
    fn connection(&mut self, connection: Connection) {
        if let Connection::Ended(why) = connection {
            self.log
                .ended
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(why);
            self.log.welcome.notify_waiters();
        }
    }

    fn welcomed(&mut self, _roles: Vec<String>, _server_time: &str) {
        self.log.welcomed.fetch_add(1, Ordering::SeqCst);
        self.log.welcome.notify_waiters();
    }

    fn roles(&mut self, _roles: Vec<String>) {}

    fn issue(&mut self, issue: Issue) -> Option<Vote> {
        if !issue.verifies(&self.channel_key) {
            self.log.refused_ballots.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let voted_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
        let vote = Vote::signed(&self.channel_key, &issue.ballot_id, "yes", &voted_at);
        // Noted before the send, so that the result can never be seen before its vote.
        self.log
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(issue.pool_id)
            .or_default()
            .push(Instant::now());
        Some(vote)
    }

    fn withdraw(&mut self, _withdraw: &Withdraw) {}

    fn vote_result(&mut self, result: &VoteResult) {
        // `already_voted`: a copy sent again after a reconnect counted already.
        if !result.accepted && result.error.as_deref() != Some("ballot.already_voted") {
            self.log.refused_votes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn notice(&mut self, _text: &str) {}
}

async fn ok(b: &Bencher, command: &str) -> anyhow::Result<Value> {
    Ok(b.session.wait_command(command, WAIT).await?.result()?)
}

/// Requests, approves and registers `count` authenticators; their bundles.
async fn authenticators(b: &Bencher, count: usize) -> anyhow::Result<Vec<Bundle>> {
    let mut bundles = Vec::new();
    for i in 0..count {
        let requested = b
            .api
            .request_device(&format!("bench-authenticator-{i}"))
            .await?;
        let device = ok(b, &requested.command_id).await?["deviceIdentifier"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the device request answered no deviceIdentifier"))?
            .to_owned();
        let approved = b.api.approve_device(&device).await?;
        ok(b, &approved.command_id).await?;
        let registered = b.api.register_authenticator(&device).await?;
        ok(b, &registered.command_id).await?;
        let config = b.api.download_device_configuration(&device).await?;
        bundles.push(serde_json::from_value(config)?);
    }
    Ok(bundles)
}

async fn active_policy(b: &Bencher, body: Value) -> anyhow::Result<()> {
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    let registered = b.api.register_policy(body).await?;
    ok(b, &registered.command_id).await?;
    let activated = b.api.activate_policy(&name).await?;
    ok(b, &activated.command_id).await?;
    Ok(())
}

/// `bench store --policies N`: `authenticators` registered authenticators (none connected:
/// no ballot is ever issued) and N active policies on the exchange event that do not match.
pub(super) async fn unmatched_policies(
    b: &Bencher,
    authenticator_count: usize,
    policies: usize,
) -> anyhow::Result<()> {
    authenticators(b, authenticator_count.max(1)).await?;
    for i in 0..policies {
        active_policy(
            b,
            json!({
                "name": format!("bench-unmatched-{i}"),
                "policyTemplateId": "1",
                "applyingEventIds": ["101"],
                "configuration": { "context": UNMATCHED_CONTEXT },
            }),
        )
        .await?;
    }
    Ok(())
}

/// A profile's gate for `bench vote`: its authenticators run until `quit`.
pub(super) struct Gate {
    pub log: Arc<VoteLog>,
    /// Votes that decide a pool: every authenticator's.
    pub needed: usize,
    _senders: Vec<mpsc::UnboundedSender<Vote>>,
}

/// `bench vote`: `count` authenticators connected from this process, a `unanimous`
/// configuration with a quorum of all of them, and an active policy on event `101` with it.
pub(super) async fn gate(
    b: &Bencher,
    count: usize,
    quit: &CancellationToken,
) -> anyhow::Result<Gate> {
    anyhow::ensure!(
        count > 0,
        "--authenticators must be at least 1 for bench vote"
    );
    let bundles = authenticators(b, count).await?;
    let log = Arc::new(VoteLog::default());
    let mut senders = Vec::new();
    for bundle in bundles {
        let client = BallotClient::new(bundle, KeyPair::generate())?;
        let voter = AutoVoter {
            channel_key: client.channel_key(),
            log: log.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        tokio::spawn(client.run(voter, rx, quit.clone()));
    }
    log.welcomed(count).await?;
    let configured = b
        .api
        .register_voting_configuration(json!({
            "name": CONFIGURATION,
            "strategy": "unanimous",
            "timeLimit": 300,
            "quorumSize": count,
            "numberOfAttempts": 1,
        }))
        .await?;
    ok(b, &configured.command_id).await?;
    active_policy(
        b,
        json!({
            "name": POLICY,
            "policyTemplateId": "1",
            "applyingEventIds": ["101"],
            "configuration": { "scope": "profile" },
            "votingConfigurationId": CONFIGURATION,
        }),
    )
    .await?;
    Ok(Gate {
        log,
        needed: count,
        _senders: senders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deciding_vote_is_the_last_one_the_strategy_needs_in_sending_order() {
        let ms = Duration::from_millis;
        let sent = [ms(30), ms(10), ms(20)];
        assert_eq!(deciding_vote(&sent, 3), Some(ms(30)));
        assert_eq!(deciding_vote(&sent, 2), Some(ms(20)));
        assert_eq!(deciding_vote(&sent, 1), Some(ms(10)));
        assert_eq!(deciding_vote(&sent, 4), None);
        assert_eq!(deciding_vote(&sent, 0), None);
        assert_eq!(deciding_vote::<Duration>(&[], 1), None);
    }

    #[test]
    fn the_holding_pool_comes_from_the_first_status_1_event() {
        let events = [
            json!({ "type": "X-DPT-CAB-ID", "command_status": 1, "body": { "state": "awaiting_vote", "pools": [{ "poolId": "p-1", "yes": 0 }] } }),
            json!({ "type": "X-DPT-CAB-ID", "command_status": 1, "body": { "state": "awaiting_vote", "pools": [{ "poolId": "p-1", "yes": 1 }] } }),
            json!({ "type": "X-DPT-CAB-ID", "command_status": 2, "body": { "token": "t" } }),
        ];
        assert_eq!(held_pool(&events).as_deref(), Some("p-1"));
        assert_eq!(held_pool(&events[2..]), None);
        assert_eq!(held_pool(&[]), None);
    }

    #[test]
    fn the_automatic_voter_signs_yes_on_verified_ballots_and_refuses_forged_ones() {
        let key = [7; 32];
        let log = Arc::new(VoteLog::default());
        let mut voter = AutoVoter {
            channel_key: key,
            log: log.clone(),
        };
        let mut issue = Issue {
            ballot_id: "b-1".into(),
            pool_id: "p-1".into(),
            attempt: 1,
            max_attempts: 1,
            origin: "policy".into(),
            title: "Approve: Exchange data for token".into(),
            question: "bench wants to store 1024 bytes in context /bench.".into(),
            event: None,
            policy: None,
            attributes: json!({}),
            requested_by: json!({}),
            strategy: "unanimous".into(),
            opened_at: "2026-02-21T16:07:00+00:00".into(),
            expires_at: "2026-02-21T16:12:00+00:00".into(),
            mac: String::new(),
        };
        let mut forged = issue.clone();
        forged.mac = forged.expected_mac(&[8; 32]);
        assert_eq!(voter.issue(forged), None);
        assert_eq!(log.refusals(), (1, 0));
        issue.mac = issue.expected_mac(&key);
        let vote = voter.issue(issue).expect("a vote");
        assert_eq!(
            (vote.ballot_id.as_str(), vote.decision.as_str()),
            ("b-1", "yes")
        );
        assert!(vote.verifies(&key));
        assert_eq!(log.take("p-1").len(), 1);
        assert!(log.take("p-1").is_empty(), "taken once");
        voter.vote_result(&VoteResult {
            ballot_id: "b-1".into(),
            accepted: false,
            error: Some("ballot.already_voted".into()),
            pool_status: None,
        });
        voter.vote_result(&VoteResult {
            ballot_id: "b-1".into(),
            accepted: false,
            error: Some("ballot.closed".into()),
            pool_status: None,
        });
        assert_eq!(log.refusals(), (1, 1));
    }
}
