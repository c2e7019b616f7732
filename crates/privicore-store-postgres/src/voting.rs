//! Voting rows: pools, attempts, ballots and held commands; and the effects that write
//! them.

use crate::db;
use crate::rows::{self, Col, corrupt};
use privicore_domain::device::DeviceId;
use privicore_domain::effect::VotingEffect;
use privicore_domain::governance::{
    Attempt, AttemptStatus, Ballot, Channel, Decision, HeldCommand, Pool, Vote, WithdrawReason,
};
use privicore_domain::ports::StoreError;
use privicore_domain::{BallotId, CommandId, PoolId, ProfileId, Reason, Timestamp};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

fn pool(r: &PgRow) -> Result<Pool, StoreError> {
    serde_json::from_str(&r.col::<String>("body")?).map_err(|_| corrupt("pool"))
}

fn attempt(r: &PgRow) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        pool_id: PoolId(rows::uuid(&r.col::<String>("pool_id")?)?),
        number: u32::try_from(r.col::<i64>("number")?).map_err(|_| corrupt("attempt"))?,
        status: AttemptStatus::parse(&r.col::<String>("status")?)
            .ok_or_else(|| corrupt("attempt status"))?,
        opened_at: Timestamp(r.col("opened_at")?),
        deadline: Timestamp(r.col("deadline")?),
        closed_at: rows::ts(r, "closed_at")?,
    })
}

fn ballot(r: &PgRow) -> Result<Ballot, StoreError> {
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

fn held(r: &PgRow) -> Result<HeldCommand, StoreError> {
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

pub async fn pool_by_id(conn: &mut PgConnection, id: PoolId) -> Result<Option<Pool>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT body FROM voting_pools WHERE id = $1").bind(id.to_string()),
        pool,
    )
    .await
}

pub async fn command_pools(
    conn: &mut PgConnection,
    command: CommandId,
) -> Result<Vec<Pool>, StoreError> {
    db::all(
        conn,
        sqlx::query("SELECT body FROM voting_pools WHERE command_id = $1 ORDER BY created_at, id")
            .bind(command.to_string()),
        pool,
    )
    .await
}

pub async fn open_pools(conn: &mut PgConnection) -> Result<Vec<Pool>, StoreError> {
    db::all(
        conn,
        sqlx::query("SELECT body FROM voting_pools WHERE status = 'open' ORDER BY created_at, id"),
        pool,
    )
    .await
}

pub async fn attempts(
    conn: &mut PgConnection,
    pool_id: PoolId,
) -> Result<Vec<Attempt>, StoreError> {
    db::all(
        conn,
        sqlx::query("SELECT * FROM voting_attempts WHERE pool_id = $1 ORDER BY number")
            .bind(pool_id.to_string()),
        attempt,
    )
    .await
}

pub async fn ballots(conn: &mut PgConnection, pool_id: PoolId) -> Result<Vec<Ballot>, StoreError> {
    db::all(
        conn,
        sqlx::query("SELECT * FROM voting_ballots WHERE pool_id = $1 ORDER BY seq")
            .bind(pool_id.to_string()),
        ballot,
    )
    .await
}

pub async fn ballot_by_id(
    conn: &mut PgConnection,
    id: BallotId,
) -> Result<Option<Ballot>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM voting_ballots WHERE id = $1").bind(id.to_string()),
        ballot,
    )
    .await
}

pub async fn pending_ballots(
    conn: &mut PgConnection,
    device: DeviceId,
) -> Result<Vec<Ballot>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT b.* FROM voting_ballots b
             JOIN voting_attempts a ON a.pool_id = b.pool_id AND a.number = b.attempt
             WHERE b.device_id = $1 AND b.decision IS NULL AND b.withdrawn IS NULL AND a.status = 'open'
             ORDER BY b.seq",
        )
        .bind(device.to_string()),
        ballot,
    )
    .await
}

pub async fn held_commands(conn: &mut PgConnection) -> Result<Vec<HeldCommand>, StoreError> {
    db::all(
        conn,
        sqlx::query(
            "SELECT * FROM held_commands WHERE released_at IS NULL ORDER BY held_at, command_id",
        ),
        held,
    )
    .await
}

pub async fn held_command(
    conn: &mut PgConnection,
    id: CommandId,
) -> Result<Option<HeldCommand>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM held_commands WHERE command_id = $1").bind(id.to_string()),
        held,
    )
    .await
}

pub async fn apply(conn: &mut PgConnection, effect: &VotingEffect) -> Result<u64, StoreError> {
    match effect {
        VotingEffect::SavePool(p) => {
            let body = serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO voting_pools (id, profile_id, command_id, status, created_at, body)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
                )
                .bind(p.id.to_string())
                .bind(p.profile_id.to_string())
                .bind(p.command_id.map(|c| c.to_string()))
                .bind(p.status.as_str())
                .bind(p.created_at.unix())
                .bind(body),
            )
            .await
        }
        VotingEffect::SaveAttempt(a) => {
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO voting_attempts (pool_id, number, status, opened_at, deadline, closed_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (pool_id, number) DO UPDATE SET status = excluded.status,
                     closed_at = excluded.closed_at",
                )
                .bind(a.pool_id.to_string())
                .bind(i64::from(a.number))
                .bind(a.status.as_str())
                .bind(a.opened_at.unix())
                .bind(a.deadline.unix())
                .bind(a.closed_at.map(Timestamp::unix)),
            )
            .await
        }
        VotingEffect::IssueBallots(ballots) => {
            let mut n = 0;
            for b in ballots {
                // `seq` comes from the table's identity sequence: issue order across engines.
                n += db::exec(
                    &mut *conn,
                    sqlx::query(
                        "INSERT INTO voting_ballots (id, pool_id, profile_id, attempt, device_id, issued_at,
                         decision, voted_at, channel, withdrawn)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(b.id.to_string())
                    .bind(b.pool_id.to_string())
                    .bind(b.profile_id.to_string())
                    .bind(i64::from(b.attempt))
                    .bind(b.device_id.to_string())
                    .bind(b.issued_at.unix())
                    .bind(b.vote.map(|v| v.decision.as_str()))
                    .bind(b.vote.map(|v| v.voted_at.unix()))
                    .bind(b.vote.map(|v| v.channel.as_str()))
                    .bind(b.withdrawn.map(|w| w.as_str())),
                )
                .await?;
            }
            Ok(n)
        }
        VotingEffect::RecordVote { ballot_id, vote } => {
            let n = db::exec(
                &mut *conn,
                sqlx::query(
                    "UPDATE voting_ballots SET decision = $1, voted_at = $2, channel = $3
                     WHERE id = $4 AND decision IS NULL AND withdrawn IS NULL
                     AND EXISTS (SELECT 1 FROM voting_attempts a WHERE a.pool_id = voting_ballots.pool_id
                                 AND a.number = voting_ballots.attempt AND a.status = 'open')",
                )
                .bind(vote.decision.as_str())
                .bind(vote.voted_at.unix())
                .bind(vote.channel.as_str())
                .bind(ballot_id.to_string()),
            )
            .await?;
            if n == 1 {
                return Ok(1);
            }
            let answered = db::one(
                conn,
                sqlx::query(
                    "SELECT decision IS NOT NULL AS answered FROM voting_ballots WHERE id = $1",
                )
                .bind(ballot_id.to_string()),
                |r| r.col::<bool>("answered"),
            )
            .await?;
            Err(StoreError::Conflict(match answered {
                None => Reason::BallotNotFound,
                Some(true) => Reason::BallotAlreadyVoted,
                Some(false) => Reason::BallotClosed,
            }))
        }
        VotingEffect::WithdrawBallot { ballot_id, reason } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE voting_ballots SET withdrawn = $1 WHERE id = $2 AND decision IS NULL AND withdrawn IS NULL",
                )
                .bind(reason.as_str())
                .bind(ballot_id.to_string()),
            )
            .await
        }
        VotingEffect::WithdrawAttempt {
            pool_id,
            attempt,
            reason,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE voting_ballots SET withdrawn = $1
                     WHERE pool_id = $2 AND attempt = $3 AND decision IS NULL AND withdrawn IS NULL",
                )
                .bind(reason.as_str())
                .bind(pool_id.to_string())
                .bind(i64::from(*attempt)),
            )
            .await
        }
        VotingEffect::HoldCommand {
            command_id,
            profile_id,
            at,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "INSERT INTO held_commands (command_id, profile_id, held_at) VALUES ($1, $2, $3)
                     ON CONFLICT (command_id) DO NOTHING",
                )
                .bind(command_id.to_string())
                .bind(profile_id.to_string())
                .bind(at.unix()),
            )
            .await
        }
        VotingEffect::ReleaseCommand {
            command_id,
            outcome,
            at,
        } => {
            db::exec(
                conn,
                sqlx::query(
                    "UPDATE held_commands SET released_at = $1, outcome = $2
                     WHERE command_id = $3 AND released_at IS NULL",
                )
                .bind(at.unix())
                .bind(outcome)
                .bind(command_id.to_string()),
            )
            .await
        }
    }
}
