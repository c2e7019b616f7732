//! Ballots on the device bus (docs/api/voting-and-policy.md §6.2): what the engine puts to
//! an authenticator, its answer, and the MACs under the device channel key `K_dc` that let
//! each side refuse a forged message.

use super::{Hmac, Mac, STANDARD, Sha256};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

pub const ISSUE: &str = "ballot.issue";
pub const WITHDRAW: &str = "ballot.withdraw";
pub const VOTE: &str = "ballot.vote";
pub const VOTE_RESULT: &str = "ballot.vote_result";

/// `ballot.issue` (engine → device), one per ballot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Issue {
    pub ballot_id: String,
    pub pool_id: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// `policy` or `manual`.
    pub origin: String,
    pub title: String,
    pub question: String,
    pub event: Option<Value>,
    pub policy: Option<Value>,
    pub attributes: Value,
    pub requested_by: Value,
    pub strategy: String,
    pub opened_at: String,
    pub expires_at: String,
    pub mac: String,
}

impl Issue {
    /// The MAC this ballot must carry under `channel_key`.
    pub fn expected_mac(&self, channel_key: &[u8; 32]) -> String {
        issue_mac(
            channel_key,
            &self.ballot_id,
            &self.pool_id,
            self.attempt,
            &self.expires_at,
            &self.title,
            &self.question,
        )
    }

    /// Whether the ballot came from the engine that shares `channel_key` (constant time).
    pub fn verifies(&self, channel_key: &[u8; 32]) -> bool {
        verify(channel_key, &issue_input(self), &self.mac)
    }
}

/// `ballot.withdraw` (engine → device).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Withdraw {
    pub ballot_id: String,
    pub pool_id: String,
    pub attempt: u32,
    /// `decided`, `expired`, `cancelled` or `device_removed`.
    pub reason: String,
}

/// `ballot.vote` (device → engine).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub ballot_id: String,
    /// `yes` or `no`.
    pub decision: String,
    pub voted_at: String,
    pub mac: String,
}

impl Vote {
    /// A vote signed under `channel_key`.
    pub fn signed(channel_key: &[u8; 32], ballot_id: &str, decision: &str, voted_at: &str) -> Self {
        Self {
            ballot_id: ballot_id.to_owned(),
            decision: decision.to_owned(),
            voted_at: voted_at.to_owned(),
            mac: vote_mac(channel_key, ballot_id, decision, voted_at),
        }
    }

    /// Whether the vote came from the device that shares `channel_key` (constant time).
    pub fn verifies(&self, channel_key: &[u8; 32]) -> bool {
        let input = vote_input(&self.ballot_id, &self.decision, &self.voted_at);
        verify(channel_key, &input, &self.mac)
    }
}

/// `ballot.vote_result` (engine → device, correlated with the vote's `messageId`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VoteResult {
    pub ballot_id: String,
    pub accepted: bool,
    /// On refusal: `ballot.not_found`, `ballot.closed`, `ballot.already_voted`,
    /// `ballot.invalid_decision` or `ballot.invalid_mac`.
    pub error: Option<String>,
    pub pool_status: Option<String>,
}

/// `HMAC(K_dc, "ballot.issue" \n ballotId \n poolId \n attempt \n expiresAt \n hex(SHA-256(title \n question)))`.
pub fn issue_mac(
    channel_key: &[u8; 32],
    ballot_id: &str,
    pool_id: &str,
    attempt: u32,
    expires_at: &str,
    title: &str,
    question: &str,
) -> String {
    let input = issue_text(ballot_id, pool_id, attempt, expires_at, title, question);
    sign(channel_key, &input)
}

/// `HMAC(K_dc, "ballot.vote" \n ballotId \n decision \n votedAt)`.
pub fn vote_mac(channel_key: &[u8; 32], ballot_id: &str, decision: &str, voted_at: &str) -> String {
    sign(channel_key, &vote_input(ballot_id, decision, voted_at))
}

fn issue_input(issue: &Issue) -> String {
    issue_text(
        &issue.ballot_id,
        &issue.pool_id,
        issue.attempt,
        &issue.expires_at,
        &issue.title,
        &issue.question,
    )
}

fn issue_text(
    ballot_id: &str,
    pool_id: &str,
    attempt: u32,
    expires_at: &str,
    title: &str,
    question: &str,
) -> String {
    let digest = hex::encode(Sha256::digest(format!("{title}\n{question}").as_bytes()));
    format!("{ISSUE}\n{ballot_id}\n{pool_id}\n{attempt}\n{expires_at}\n{digest}")
}

fn vote_input(ballot_id: &str, decision: &str, voted_at: &str) -> String {
    format!("{VOTE}\n{ballot_id}\n{decision}\n{voted_at}")
}

fn sign(channel_key: &[u8; 32], input: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(channel_key).expect("any key length");
    mac.update(input.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn verify(channel_key: &[u8; 32], input: &str, received: &str) -> bool {
    let Ok(tag) = STANDARD.decode(received) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(channel_key).expect("any key length");
    mac.update(input.as_bytes());
    mac.verify_slice(&tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const KEY: [u8; 32] = [7; 32];

    fn issue() -> Issue {
        let mut issue = Issue {
            ballot_id: "bf669ea1-d56d-4a54-9ca5-3ae6af2b4b4c".into(),
            pool_id: "019c80d6-4837-7314-b415-77c9562d8ed0".into(),
            attempt: 1,
            max_attempts: 2,
            origin: "policy".into(),
            title: "Approve: Exchange data for token".into(),
            question: "alice wants to store 54 bytes.".into(),
            event: Some(json!({ "eventId": "101" })),
            policy: None,
            attributes: json!({ "size": 54 }),
            requested_by: json!({ "username": "alice" }),
            strategy: "unanimous".into(),
            opened_at: "2026-02-21T16:07:00+00:00".into(),
            expires_at: "2026-02-21T16:12:00+00:00".into(),
            mac: String::new(),
        };
        issue.mac = issue.expected_mac(&KEY);
        issue
    }

    #[test]
    fn the_issue_mac_follows_the_documented_input() {
        let issue = issue();
        let digest = hex::encode(Sha256::digest(
            b"Approve: Exchange data for token\nalice wants to store 54 bytes.",
        ));
        let text = format!(
            "ballot.issue\nbf669ea1-d56d-4a54-9ca5-3ae6af2b4b4c\n019c80d6-4837-7314-b415-77c9562d8ed0\n1\n2026-02-21T16:12:00+00:00\n{digest}"
        );
        assert_eq!(issue.mac, sign(&KEY, &text));
        assert!(issue.verifies(&KEY));
        assert!(!issue.verifies(&[8; 32]));
    }

    #[test]
    fn field_names_are_those_of_the_contract() {
        let value = serde_json::to_value(issue()).unwrap();
        for field in [
            "ballotId",
            "poolId",
            "maxAttempts",
            "requestedBy",
            "openedAt",
            "expiresAt",
        ] {
            assert!(value.get(field).is_some(), "{field}");
        }
        let vote = Vote::signed(&KEY, "b", "yes", "2026-02-21T16:08:12+00:00");
        let value = serde_json::to_value(&vote).unwrap();
        assert_eq!(value["votedAt"], "2026-02-21T16:08:12+00:00");
        let result = VoteResult {
            ballot_id: "b".into(),
            accepted: false,
            error: Some("ballot.closed".into()),
            pool_status: None,
        };
        assert_eq!(
            serde_json::to_value(result).unwrap()["poolStatus"],
            Value::Null
        );
    }

    #[test]
    fn a_vote_verifies_only_as_signed() {
        let vote = Vote::signed(&KEY, "b", "yes", "2026-02-21T16:08:12+00:00");
        assert!(vote.verifies(&KEY));
        let flipped = Vote {
            decision: "no".into(),
            ..vote.clone()
        };
        assert!(!flipped.verifies(&KEY));
        let garbage = Vote {
            mac: "not base64!".into(),
            ..vote
        };
        assert!(!garbage.verifies(&KEY));
    }

    proptest! {
        #[test]
        fn any_change_to_a_signed_field_breaks_the_issue_mac(
            field in 0usize..6,
            extra in "[a-z0-9]{1,8}",
        ) {
            let mut forged = issue();
            match field {
                0 => forged.ballot_id.push_str(&extra),
                1 => forged.pool_id.push_str(&extra),
                2 => forged.attempt += 1,
                3 => forged.expires_at.push_str(&extra),
                4 => forged.title.push_str(&extra),
                _ => forged.question.push_str(&extra),
            }
            prop_assert!(!forged.verifies(&KEY));
        }

        #[test]
        fn votes_round_trip_and_verify(
            ballot in "[a-f0-9-]{1,36}",
            yes in any::<bool>(),
            at in "[0-9T:+-]{1,25}",
        ) {
            let decision = if yes { "yes" } else { "no" };
            let vote = Vote::signed(&KEY, &ballot, decision, &at);
            let text = serde_json::to_string(&vote).unwrap();
            let back: Vote = serde_json::from_str(&text).unwrap();
            prop_assert!(back.verifies(&KEY));
            prop_assert_eq!(back, vote);
        }
    }
}
