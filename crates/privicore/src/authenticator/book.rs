//! What the authenticator knows about its ballots, with no terminal and no socket: open
//! ballots by id, the MAC check, deduplication of ballots re-sent after a welcome, removal
//! on withdrawal, decision or expiry, the selection, and the vote waiting for its result.
//! Every function that needs the time takes it, so the tests run on a fixed clock.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use privicore_wire::bus::ballots::{Issue, Vote, VoteResult, Withdraw};
use std::collections::{HashSet, VecDeque};

/// The one-line notice for a ballot refused because its MAC does not verify.
pub const REFUSED_NOTICE: &str = "refused a ballot whose MAC does not verify";
/// Notices kept for display, newest last.
const NOTICES: usize = 4;
/// Ballot ids remembered as closed, so a late re-send does not bring a prompt back.
const CLOSED_MEMORY: usize = 10_000;

/// Where the bus connection stands, for the header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    /// Connected, hello sent, no welcome yet.
    Handshake,
    /// The engine's welcome proved its key.
    Welcomed,
    /// Lost; the program tries again.
    Lost(String),
    /// The engine refused or revoked the device, or could not prove its key: the program
    /// does not try again.
    Ended(String),
}

/// A ballot on screen.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Waiting for the person's answer.
    Open,
    /// Answered; the vote was sent and its `ballot.vote_result` has not come.
    Sent(Vote),
}

#[derive(Debug, Clone)]
pub struct Ballot {
    pub issue: Issue,
    /// `None` when `expiresAt` does not parse (shown without a countdown).
    pub expires: Option<DateTime<Utc>>,
    pub state: State,
}

/// What became of a `ballot.issue`.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// New: now on screen.
    Added,
    /// Already on screen (a re-send after a welcome): nothing changes.
    Duplicate,
    /// Already answered and still waiting for the result: the vote goes out again, since
    /// the engine re-sends only ballots it has no vote for.
    Resend(Vote),
    /// Answered, withdrawn or expired before: not shown again.
    Closed,
    /// Its MAC does not verify: never shown.
    Refused,
}

pub struct Book {
    channel_key: [u8; 32],
    ballots: Vec<Ballot>,
    closed: HashSet<String>,
    closed_order: VecDeque<String>,
    selected: Option<String>,
    notices: VecDeque<String>,
    /// Server time minus local time, from the last welcome.
    offset: TimeDelta,
    pub connection: Connection,
    /// The roles the engine says this device holds (welcome, `device.roles_changed`).
    pub roles: Vec<String>,
    /// Ballots refused for their MAC since the start.
    pub refused: u64,
}

/// `seconds` as `m:ss`, or `h:mm:ss` from an hour.
pub fn countdown(seconds: i64) -> String {
    let s = seconds.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Book {
    pub fn new(channel_key: [u8; 32]) -> Self {
        Self {
            channel_key,
            ballots: Vec::new(),
            closed: HashSet::new(),
            closed_order: VecDeque::new(),
            selected: None,
            notices: VecDeque::new(),
            offset: TimeDelta::zero(),
            connection: Connection::Connecting,
            roles: Vec::new(),
            refused: 0,
        }
    }

    /// Open ballots, oldest first.
    pub fn ballots(&self) -> &[Ballot] {
        &self.ballots
    }

    pub fn notices(&self) -> impl Iterator<Item = &str> {
        self.notices.iter().map(String::as_str)
    }

    pub fn notice(&mut self, text: impl Into<String>) {
        if self.notices.len() == NOTICES {
            self.notices.pop_front();
        }
        self.notices.push_back(text.into());
    }

    pub fn is_authenticator(&self) -> bool {
        self.roles.iter().any(|r| r == "authenticator")
    }

    /// A proven welcome: the roles it carries and the engine's clock.
    pub fn welcomed(&mut self, roles: Vec<String>, server_time: &str, now: DateTime<Utc>) {
        self.connection = Connection::Welcomed;
        self.set_roles(roles);
        if let Ok(server) = DateTime::parse_from_rfc3339(server_time) {
            self.offset = server.with_timezone(&Utc) - now;
        }
    }

    pub fn set_roles(&mut self, roles: Vec<String>) {
        let was = self.is_authenticator();
        self.roles = roles;
        if was && !self.is_authenticator() {
            self.notice("this device no longer holds the authenticator role");
        } else if !self.is_authenticator() {
            self.notice("this device does not hold the authenticator role yet: no ballots");
        }
    }

    /// The engine's clock now, as far as the last welcome tells.
    pub fn server_now(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.offset
    }

    /// Whole seconds left on `ballot`, `None` without a readable deadline.
    pub fn remaining(&self, ballot: &Ballot, now: DateTime<Utc>) -> Option<i64> {
        ballot
            .expires
            .map(|at| (at - self.server_now(now)).num_seconds().max(0))
    }

    fn position(&self, ballot_id: &str) -> Option<usize> {
        self.ballots
            .iter()
            .position(|b| b.issue.ballot_id == ballot_id)
    }

    fn close(&mut self, ballot_id: &str) -> Option<Ballot> {
        let index = self.position(ballot_id)?;
        let ballot = self.ballots.remove(index);
        if self.closed.insert(ballot_id.to_owned()) {
            self.closed_order.push_back(ballot_id.to_owned());
            if self.closed_order.len() > CLOSED_MEMORY
                && let Some(old) = self.closed_order.pop_front()
            {
                self.closed.remove(&old);
            }
        }
        if self.selected.as_deref() == Some(ballot_id) {
            // The next ballot down, else the one above.
            self.selected = self
                .ballots
                .get(index)
                .or_else(|| index.checked_sub(1).and_then(|i| self.ballots.get(i)))
                .map(|b| b.issue.ballot_id.clone());
        }
        Some(ballot)
    }

    /// A `ballot.issue` from the engine.
    pub fn issue(&mut self, issue: Issue, now: DateTime<Utc>) -> Received {
        if !issue.verifies(&self.channel_key) {
            self.refused += 1;
            self.notice(REFUSED_NOTICE);
            return Received::Refused;
        }
        if self.closed.contains(&issue.ballot_id) {
            return Received::Closed;
        }
        if let Some(existing) = self
            .ballots
            .iter()
            .find(|b| b.issue.ballot_id == issue.ballot_id)
        {
            return match &existing.state {
                State::Open => Received::Duplicate,
                State::Sent(vote) => Received::Resend(vote.clone()),
            };
        }
        let expires = DateTime::parse_from_rfc3339(&issue.expires_at)
            .ok()
            .map(|at| at.with_timezone(&Utc));
        if expires.is_some_and(|at| at <= self.server_now(now)) {
            return Received::Closed;
        }
        if self.selected.is_none() {
            self.selected = Some(issue.ballot_id.clone());
        }
        self.ballots.push(Ballot {
            issue,
            expires,
            state: State::Open,
        });
        Received::Added
    }

    /// A `ballot.withdraw`: the prompt goes. True when it was on screen.
    pub fn withdraw(&mut self, withdraw: &Withdraw) -> bool {
        let matches = self.ballots.iter().any(|b| {
            b.issue.ballot_id == withdraw.ballot_id && b.issue.attempt == withdraw.attempt
        });
        if !matches {
            return false;
        }
        if let Some(ballot) = self.close(&withdraw.ballot_id) {
            self.notice(format!(
                "withdrawn ({}): {}",
                withdraw.reason, ballot.issue.title
            ));
        }
        true
    }

    /// A `ballot.vote_result`. An accepted vote, or one refused because the ballot is no
    /// longer open, removes the ballot; a vote refused for its content leaves it open to
    /// answer again. True when it concerned a ballot on screen.
    pub fn vote_result(&mut self, result: &VoteResult) -> bool {
        let Some(index) = self.position(&result.ballot_id) else {
            return false;
        };
        let State::Sent(vote) = &self.ballots[index].state else {
            return false;
        };
        let decision = vote.decision.clone();
        let title = self.ballots[index].issue.title.clone();
        if result.accepted {
            self.close(&result.ballot_id);
            let pool = result
                .pool_status
                .as_deref()
                .map(|s| format!(" (pool {s})"))
                .unwrap_or_default();
            self.notice(format!("voted {decision}, accepted{pool}: {title}"));
            return true;
        }
        let error = result.error.clone().unwrap_or_else(|| "refused".into());
        match error.as_str() {
            "ballot.invalid_decision" | "ballot.invalid_mac" => {
                self.ballots[index].state = State::Open;
                self.notice(format!("the engine refused the vote ({error}): {title}"));
            }
            "ballot.already_voted" => {
                // An earlier copy of this vote (sent again after a reconnect) counted.
                self.close(&result.ballot_id);
                self.notice(format!(
                    "the engine already has this device's vote: {title}"
                ));
            }
            _ => {
                self.close(&result.ballot_id);
                self.notice(format!("the engine refused the vote ({error}): {title}"));
            }
        }
        true
    }

    /// Drops ballots whose deadline passed (the engine withdraws them too).
    pub fn expire(&mut self, now: DateTime<Utc>) {
        let server_now = self.server_now(now);
        let gone: Vec<String> = self
            .ballots
            .iter()
            .filter(|b| {
                matches!(b.state, State::Open) && b.expires.is_some_and(|at| at <= server_now)
            })
            .map(|b| b.issue.ballot_id.clone())
            .collect();
        for id in gone {
            if let Some(ballot) = self.close(&id) {
                self.notice(format!("expired: {}", ballot.issue.title));
            }
        }
    }

    pub fn selected(&self) -> Option<&Ballot> {
        let id = self.selected.as_deref()?;
        self.ballots.iter().find(|b| b.issue.ballot_id == id)
    }

    pub fn selected_index(&self) -> Option<usize> {
        self.position(self.selected.as_deref()?)
    }

    /// Moves the selection by `step` ballots, stopping at either end.
    pub fn select(&mut self, step: isize) {
        if self.ballots.is_empty() {
            self.selected = None;
            return;
        }
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + step).clamp(0, self.ballots.len() as isize - 1) as usize;
        self.selected = Some(self.ballots[to].issue.ballot_id.clone());
    }

    /// The person's answer on the selected ballot: the signed vote to send, or `None`
    /// when nothing is selected, it was answered already, or its time is up.
    pub fn vote(&mut self, yes: bool, now: DateTime<Utc>) -> Option<Vote> {
        let server_now = self.server_now(now);
        let index = self.selected_index()?;
        let ballot = &mut self.ballots[index];
        if ballot.state != State::Open || ballot.expires.is_some_and(|at| at <= server_now) {
            return None;
        }
        let voted_at = server_now.to_rfc3339_opts(SecondsFormat::Secs, false);
        let decision = if yes { "yes" } else { "no" };
        let vote = Vote::signed(
            &self.channel_key,
            &ballot.issue.ballot_id,
            decision,
            &voted_at,
        );
        ballot.state = State::Sent(vote.clone());
        Some(vote)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: [u8; 32] = [5; 32];

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-02-21T16:07:00+00:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn issue(id: &str, title: &str, expires_in: i64) -> Issue {
        let mut issue = Issue {
            ballot_id: id.into(),
            pool_id: format!("pool-{id}"),
            attempt: 1,
            max_attempts: 1,
            origin: "manual".into(),
            title: title.into(),
            question: format!("{title}?"),
            event: None,
            policy: None,
            attributes: json!({ "size": 54 }),
            requested_by: json!({ "username": "alice" }),
            strategy: "unanimous".into(),
            opened_at: now().to_rfc3339_opts(SecondsFormat::Secs, false),
            expires_at: (now() + TimeDelta::seconds(expires_in))
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            mac: String::new(),
        };
        issue.mac = issue.expected_mac(&KEY);
        issue
    }

    fn titles(book: &Book) -> Vec<&str> {
        book.ballots()
            .iter()
            .map(|b| b.issue.title.as_str())
            .collect()
    }

    #[test]
    fn a_ballot_whose_mac_fails_is_never_shown() {
        let mut book = Book::new(KEY);
        let mut forged = issue("b1", "Forged", 300);
        forged.title = "Changed after signing".into();
        assert_eq!(book.issue(forged, now()), Received::Refused);
        let other_key = {
            let mut i = issue("b2", "Other key", 300);
            i.mac = i.expected_mac(&[6; 32]);
            i
        };
        assert_eq!(book.issue(other_key, now()), Received::Refused);
        let mut garbage = issue("b3", "Garbage", 300);
        garbage.mac = "not base64".into();
        assert_eq!(book.issue(garbage, now()), Received::Refused);
        assert!(book.ballots().is_empty());
        assert!(book.selected().is_none());
        assert_eq!(book.refused, 3);
        assert_eq!(book.notices().last(), Some(REFUSED_NOTICE));
    }

    #[test]
    fn a_resent_ballot_is_not_duplicated_and_a_pending_vote_goes_again() {
        let mut book = Book::new(KEY);
        assert_eq!(book.issue(issue("b1", "One", 300), now()), Received::Added);
        assert_eq!(
            book.issue(issue("b1", "One", 300), now()),
            Received::Duplicate
        );
        assert_eq!(titles(&book), ["One"]);
        let vote = book.vote(true, now()).unwrap();
        assert_eq!(
            book.issue(issue("b1", "One", 300), now()),
            Received::Resend(vote.clone())
        );
        assert!(vote.verifies(&KEY));
        assert_eq!(titles(&book), ["One"]);
        // Decided: a late re-send does not bring it back.
        assert!(book.vote_result(&VoteResult {
            ballot_id: "b1".into(),
            accepted: true,
            error: None,
            pool_status: Some("approved".into()),
        }));
        assert!(book.ballots().is_empty());
        assert_eq!(book.issue(issue("b1", "One", 300), now()), Received::Closed);
        assert!(book.ballots().is_empty());
        assert_eq!(
            book.notices().last(),
            Some("voted yes, accepted (pool approved): One")
        );
    }

    #[test]
    fn votes_are_signed_once_on_the_selected_open_ballot() {
        let mut book = Book::new(KEY);
        assert!(book.vote(true, now()).is_none(), "nothing selected");
        book.issue(issue("b1", "One", 300), now());
        book.issue(issue("b2", "Two", 300), now());
        assert_eq!(book.selected().unwrap().issue.title, "One");
        book.select(1);
        assert_eq!(book.selected().unwrap().issue.title, "Two");
        book.select(5);
        assert_eq!(book.selected().unwrap().issue.title, "Two");
        let vote = book.vote(false, now()).unwrap();
        assert_eq!(
            (vote.ballot_id.as_str(), vote.decision.as_str()),
            ("b2", "no")
        );
        assert_eq!(vote.voted_at, "2026-02-21T16:07:00+00:00");
        assert!(vote.verifies(&KEY));
        assert!(book.vote(true, now()).is_none(), "votes are final");
        assert_eq!(book.selected().unwrap().state, State::Sent(vote));
        book.select(-3);
        assert_eq!(book.selected().unwrap().issue.title, "One");
        // Time is up: no vote.
        assert!(book.vote(true, now() + TimeDelta::seconds(301)).is_none());
    }

    #[test]
    fn withdrawn_and_decided_ballots_disappear_and_the_selection_moves_on() {
        let mut book = Book::new(KEY);
        for (id, title) in [("b1", "One"), ("b2", "Two"), ("b3", "Three")] {
            book.issue(issue(id, title, 300), now());
        }
        book.select(1);
        let withdraw = |id: &str, attempt| Withdraw {
            ballot_id: id.into(),
            pool_id: format!("pool-{id}"),
            attempt,
            reason: "decided".into(),
        };
        assert!(!book.withdraw(&withdraw("b2", 2)), "another attempt");
        assert!(book.withdraw(&withdraw("b2", 1)));
        assert_eq!(titles(&book), ["One", "Three"]);
        assert_eq!(book.selected().unwrap().issue.title, "Three");
        assert_eq!(book.notices().last(), Some("withdrawn (decided): Two"));
        assert!(book.withdraw(&withdraw("b3", 1)));
        assert_eq!(book.selected().unwrap().issue.title, "One");
        assert!(!book.withdraw(&withdraw("b3", 1)), "twice");
        // Refused for being closed: gone; refused for its content: open again.
        book.issue(issue("b4", "Four", 300), now());
        book.vote(true, now()).unwrap();
        book.select(1);
        book.vote(true, now()).unwrap();
        let refusal = |id: &str, error: &str| VoteResult {
            ballot_id: id.into(),
            accepted: false,
            error: Some(error.into()),
            pool_status: None,
        };
        assert!(book.vote_result(&refusal("b4", "ballot.invalid_mac")));
        assert_eq!(book.ballots()[1].state, State::Open);
        assert!(book.vote_result(&refusal("b1", "ballot.closed")));
        assert_eq!(titles(&book), ["Four"]);
        assert!(!book.vote_result(&refusal("b1", "ballot.closed")), "gone");
        book.vote(true, now()).unwrap();
        assert!(book.vote_result(&refusal("b4", "ballot.already_voted")));
        assert!(book.ballots().is_empty());
        assert_eq!(
            book.notices().last(),
            Some("the engine already has this device's vote: Four")
        );
        book.issue(issue("b4", "Four", 300), now());
        assert!(book.ballots().is_empty(), "answered: not shown again");
        assert!(!book.withdraw(&withdraw("b4", 1)));
        assert!(book.selected().is_none());
        book.select(1);
        assert!(book.selected().is_none());
    }

    #[test]
    fn the_countdown_follows_the_engine_clock_and_expired_ballots_go() {
        let mut book = Book::new(KEY);
        // The engine's clock is 10 s ahead of ours.
        book.welcomed(
            vec!["authenticator".into()],
            "2026-02-21T16:07:10+00:00",
            now(),
        );
        assert!(book.is_authenticator());
        book.issue(issue("b1", "One", 300), now());
        book.issue(issue("b2", "Two", 70), now());
        let left: Vec<_> = book
            .ballots()
            .iter()
            .map(|b| book.remaining(b, now()))
            .collect();
        assert_eq!(left, [Some(290), Some(60)]);
        assert_eq!(countdown(290), "4:50");
        assert_eq!(countdown(3725), "1:02:05");
        assert_eq!(countdown(-4), "0:00");
        book.expire(now() + TimeDelta::seconds(59));
        assert_eq!(titles(&book), ["One", "Two"]);
        book.expire(now() + TimeDelta::seconds(60));
        assert_eq!(titles(&book), ["One"]);
        assert_eq!(book.notices().last(), Some("expired: Two"));
        // A ballot already past its deadline is not shown.
        assert_eq!(book.issue(issue("b3", "Late", 5), now()), Received::Closed);
        // Without a readable deadline it stays, with no countdown.
        let mut odd = issue("b4", "Odd", 0);
        odd.expires_at = "soon".into();
        odd.mac = odd.expected_mac(&KEY);
        assert_eq!(book.issue(odd, now()), Received::Added);
        assert_eq!(book.remaining(&book.ballots()[1], now()), None);
    }

    #[test]
    fn losing_the_role_is_noticed() {
        let mut book = Book::new(KEY);
        book.welcomed(vec!["storage".into()], "garbage", now());
        assert!(!book.is_authenticator());
        assert!(book.notices().last().unwrap().contains("does not hold"));
        book.set_roles(vec!["authenticator".into()]);
        assert!(book.is_authenticator());
        book.set_roles(vec![]);
        assert_eq!(
            book.notices().last(),
            Some("this device no longer holds the authenticator role")
        );
    }
}
