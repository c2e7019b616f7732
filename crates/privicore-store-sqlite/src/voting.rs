//! Voting rows (migration 0012): pools, attempts, ballots and held commands; and the
//! effects that write them.

use crate::db::{self, unavailable};
use crate::rows::{self, Col};
use privicore_domain::device::DeviceId;
use privicore_domain::effect::VotingEffect;
use privicore_domain::governance::{
    Attempt, AttemptStatus, Ballot, Channel, Decision, HeldCommand, Pool, Vote, WithdrawReason,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{BallotId, CommandId, PoolId, ProfileId, Reason, Timestamp};
use rusqlite::{Connection, Row, params};

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("unreadable {what}"))
}

fn pool(r: &Row<'_>) -> Result<Pool, StoreError> {
    serde_json::from_str(&r.col::<String>("body")?).map_err(|_| corrupt("pool"))
}

fn attempt(r: &Row<'_>) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        pool_id: PoolId(rows::uuid(&r.col::<String>("pool_id")?)?),
        number: u32::try_from(r.col::<i64>("number")?).map_err(|_| corrupt("attempt"))?,
        status: AttemptStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("attempt status"))?,
        opened_at: Timestamp(r.col("opened_at")?),
        deadline: Timestamp(r.col("deadline")?),
        closed_at: r.col::<Option<i64>>("closed_at")?.map(Timestamp),
    })
}

fn ballot(r: &Row<'_>) -> Result<Ballot, StoreError> {
    let vote = match r.col::<Option<String>>("decision")? {
        None => None,
        Some(d) => Some(Vote {
            decision: Decision::parse(&d).ok_or_else(|| corrupt("decision"))?,
            voted_at: Timestamp(r.col("voted_at")?),
            channel: Channel::parse(&r.col::<String>("channel")?)
                .ok_or_else(|| corrupt("channel"))?,
        }),
    };
    Ok(Ballot {
        id: BallotId(rows::uuid(&r.col::<String>("id")?)?),
        pool_id: PoolId(rows::uuid(&r.col::<String>("pool_id")?)?),
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        attempt: u32::try_from(r.col::<i64>("attempt")?).map_err(|_| corrupt("ballot"))?,
        device_id: DeviceId(rows::uuid(&r.col::<String>("device_id")?)?),
        issued_at: Timestamp(r.col("issued_at")?),
        vote,
        withdrawn: r
            .col::<Option<String>>("withdrawn")?
            .map(|w| WithdrawReason::parse(&w).ok_or_else(|| corrupt("withdrawn")))
            .transpose()?,
    })
}

fn held(r: &Row<'_>) -> Result<HeldCommand, StoreError> {
    let released = match r.col::<Option<i64>>("released_at")? {
        Some(at) => Some((
            Timestamp(at),
            r.col::<Option<String>>("outcome")?.unwrap_or_default(),
        )),
        None => None,
    };
    Ok(HeldCommand {
        command_id: CommandId(rows::uuid(&r.col::<String>("command_id")?)?),
        profile_id: ProfileId(rows::uuid(&r.col::<String>("profile_id")?)?),
        held_at: Timestamp(r.col("held_at")?),
        released,
    })
}

pub fn pool_by_id(conn: &Connection, id: PoolId) -> Result<Option<Pool>, StoreError> {
    db::one(
        conn,
        "SELECT body FROM voting_pools WHERE id = ?",
        [id.to_string()],
        pool,
    )
}

pub fn command_pools(conn: &Connection, command: CommandId) -> Result<Vec<Pool>, StoreError> {
    db::all(
        conn,
        "SELECT body FROM voting_pools WHERE command_id = ? ORDER BY created_at, id",
        [command.to_string()],
        pool,
    )
}

pub fn open_pools(conn: &Connection) -> Result<Vec<Pool>, StoreError> {
    db::all(
        conn,
        "SELECT body FROM voting_pools WHERE status = 'open' ORDER BY created_at, id",
        [],
        pool,
    )
}

pub fn attempts(conn: &Connection, pool_id: PoolId) -> Result<Vec<Attempt>, StoreError> {
    db::all(
        conn,
        "SELECT * FROM voting_attempts WHERE pool_id = ? ORDER BY number",
        [pool_id.to_string()],
        attempt,
    )
}

pub fn ballots(conn: &Connection, pool_id: PoolId) -> Result<Vec<Ballot>, StoreError> {
    db::all(
        conn,
        "SELECT * FROM voting_ballots WHERE pool_id = ? ORDER BY seq",
        [pool_id.to_string()],
        ballot,
    )
}

pub fn ballot_by_id(conn: &Connection, id: BallotId) -> Result<Option<Ballot>, StoreError> {
    db::one(
        conn,
        "SELECT * FROM voting_ballots WHERE id = ?",
        [id.to_string()],
        ballot,
    )
}

pub fn pending_ballots(conn: &Connection, device: DeviceId) -> Result<Vec<Ballot>, StoreError> {
    db::all(
        conn,
        "SELECT b.* FROM voting_ballots b
         JOIN voting_attempts a ON a.pool_id = b.pool_id AND a.number = b.attempt
         WHERE b.device_id = ? AND b.decision IS NULL AND b.withdrawn IS NULL AND a.status = 'open'
         ORDER BY b.seq",
        [device.to_string()],
        ballot,
    )
}

pub fn held_commands(conn: &Connection) -> Result<Vec<HeldCommand>, StoreError> {
    db::all(
        conn,
        "SELECT * FROM held_commands WHERE released_at IS NULL ORDER BY held_at, command_id",
        [],
        held,
    )
}

pub fn held_command(conn: &Connection, id: CommandId) -> Result<Option<HeldCommand>, StoreError> {
    db::one(
        conn,
        "SELECT * FROM held_commands WHERE command_id = ?",
        [id.to_string()],
        held,
    )
}

pub fn apply(conn: &Connection, effect: &VotingEffect) -> Result<u64, StoreError> {
    match effect {
        VotingEffect::SavePool(p) => {
            let body = serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            db::exec(
                conn,
                "INSERT INTO voting_pools (id, profile_id, command_id, status, created_at, body)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
                params![
                    p.id.to_string(),
                    p.profile_id.to_string(),
                    p.command_id.map(|c| c.to_string()),
                    p.status.as_str(),
                    p.created_at.unix(),
                    body,
                ],
            )
        }
        VotingEffect::SaveAttempt(a) => db::exec(
            conn,
            "INSERT INTO voting_attempts (pool_id, number, status, opened_at, deadline, closed_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (pool_id, number) DO UPDATE SET status = excluded.status,
             closed_at = excluded.closed_at",
            params![
                a.pool_id.to_string(),
                i64::from(a.number),
                a.status.as_str(),
                a.opened_at.unix(),
                a.deadline.unix(),
                a.closed_at.map(Timestamp::unix),
            ],
        ),
        VotingEffect::IssueBallots(ballots) => {
            let mut n = 0;
            for b in ballots {
                n += db::exec(
                    conn,
                    "INSERT INTO voting_ballots (id, pool_id, profile_id, attempt, device_id, issued_at, seq,
                     decision, voted_at, channel, withdrawn)
                     VALUES (?, ?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM voting_ballots),
                     ?, ?, ?, ?)",
                    params![
                        b.id.to_string(),
                        b.pool_id.to_string(),
                        b.profile_id.to_string(),
                        i64::from(b.attempt),
                        b.device_id.to_string(),
                        b.issued_at.unix(),
                        b.vote.map(|v| v.decision.as_str()),
                        b.vote.map(|v| v.voted_at.unix()),
                        b.vote.map(|v| v.channel.as_str()),
                        b.withdrawn.map(|w| w.as_str()),
                    ],
                )?;
            }
            Ok(n)
        }
        VotingEffect::RecordVote { ballot_id, vote } => {
            let n = db::exec(
                conn,
                "UPDATE voting_ballots SET decision = ?, voted_at = ?, channel = ?
                 WHERE id = ? AND decision IS NULL AND withdrawn IS NULL
                 AND EXISTS (SELECT 1 FROM voting_attempts a WHERE a.pool_id = voting_ballots.pool_id
                             AND a.number = voting_ballots.attempt AND a.status = 'open')",
                params![
                    vote.decision.as_str(),
                    vote.voted_at.unix(),
                    vote.channel.as_str(),
                    ballot_id.to_string(),
                ],
            )?;
            if n == 1 {
                return Ok(1);
            }
            let answered = db::one(
                conn,
                "SELECT decision IS NOT NULL AS answered FROM voting_ballots WHERE id = ?",
                [ballot_id.to_string()],
                |r| r.col::<bool>("answered"),
            )?;
            Err(StoreError::Conflict(match answered {
                None => Reason::BallotNotFound,
                Some(true) => Reason::BallotAlreadyVoted,
                Some(false) => Reason::BallotClosed,
            }))
        }
        VotingEffect::WithdrawBallot { ballot_id, reason } => db::exec(
            conn,
            "UPDATE voting_ballots SET withdrawn = ? WHERE id = ? AND decision IS NULL AND withdrawn IS NULL",
            params![reason.as_str(), ballot_id.to_string()],
        ),
        VotingEffect::WithdrawAttempt {
            pool_id,
            attempt,
            reason,
        } => db::exec(
            conn,
            "UPDATE voting_ballots SET withdrawn = ?
             WHERE pool_id = ? AND attempt = ? AND decision IS NULL AND withdrawn IS NULL",
            params![reason.as_str(), pool_id.to_string(), i64::from(*attempt)],
        ),
        VotingEffect::HoldCommand {
            command_id,
            profile_id,
            at,
        } => db::exec(
            conn,
            "INSERT INTO held_commands (command_id, profile_id, held_at) VALUES (?, ?, ?)
             ON CONFLICT (command_id) DO NOTHING",
            params![command_id.to_string(), profile_id.to_string(), at.unix()],
        ),
        VotingEffect::ReleaseCommand {
            command_id,
            outcome,
            at,
        } => conn
            .prepare_cached(
                "UPDATE held_commands SET released_at = ?, outcome = ?
                 WHERE command_id = ? AND released_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![at.unix(), outcome, command_id.to_string()]))
            .map(|n| n as u64)
            .map_err(unavailable),
    }
}
