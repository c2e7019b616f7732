use crate::db::{self, unavailable};
use crate::rows::{Col, command_id, profile_id, uuid};
use privicore_domain::command::{CommandRecord, CommandState, Completion, Outcome};
use privicore_domain::ports::StoreError;
use privicore_domain::{CommandId, Timestamp};
use rusqlite::{Connection, Row, params};

/// Stores the record as given: pending, or already finished when it ran at acceptance.
pub fn insert(conn: &Connection, c: &CommandRecord) -> Result<(), StoreError> {
    let payload =
        serde_json::to_string(&c.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let (status, outcome, finished_at) = match &c.state {
        CommandState::Pending => ("pending", None, None),
        CommandState::Finished {
            outcome,
            finished_at,
        } => {
            let (status, text) = outcome_columns(outcome);
            (status, Some(text), Some(finished_at.unix()))
        }
    };
    db::exec(
        conn,
        "INSERT INTO commands (id, profile_id, application_id, kind, payload, status, outcome, finished_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            c.id.to_string(),
            c.profile_id.to_string(),
            c.application_id.map(|a| a.to_string()),
            c.payload.kind(),
            payload,
            status,
            outcome,
            finished_at,
            c.created_at.unix(),
        ],
    )?;
    Ok(())
}

/// Deletes the commands that finished before `before`. A command finishes after it was
/// created and its id (UUID v7) starts with its creation time, so only ids below the first
/// one of that second are read.
pub fn purge_finished(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        conn,
        "DELETE FROM commands WHERE id < ? AND status <> 'pending' AND finished_at < ?",
        params![first_v7_id_at(before), before.unix()],
    )
}

/// The smallest UUID v7 of the given second, as text (which sorts like the time).
fn first_v7_id_at(at: Timestamp) -> String {
    let ms = (at.unix().max(0) as u64).saturating_mul(1000) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-7000-8000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

fn outcome_columns(outcome: &Outcome) -> (&'static str, String) {
    match outcome {
        Outcome::Succeeded(result) => ("succeeded", result.to_string()),
        Outcome::Failed(key) => ("failed", key.clone()),
    }
}

pub fn get(conn: &Connection, id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
    db::one(
        conn,
        "SELECT * FROM commands WHERE id = ?",
        [id.to_string()],
        record,
    )
}

pub fn unfinished(conn: &Connection) -> Result<Vec<CommandRecord>, StoreError> {
    db::all(
        conn,
        "SELECT * FROM commands WHERE status = 'pending' ORDER BY created_at, id",
        [],
        record,
    )
}

/// Records the outcome; a command finishes once, so a second completion is refused.
pub fn complete(conn: &Connection, c: &Completion) -> Result<(), StoreError> {
    let (status, outcome) = outcome_columns(&c.outcome);
    let done = conn
        .prepare_cached(
            "UPDATE commands SET status = ?, outcome = ?, finished_at = ? WHERE id = ? AND status = 'pending'",
        )
        .and_then(|mut s| {
            s.execute(params![
                status,
                outcome,
                c.finished_at.unix(),
                c.command_id.to_string()
            ])
        })
        .map_err(unavailable)?;
    if done == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "command {} is unknown or already finished",
            c.command_id
        )))
    }
}

fn record(r: &Row<'_>) -> Result<CommandRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("unreadable command {what}"));
    let payload =
        serde_json::from_str(&r.col::<String>("payload")?).map_err(|_| corrupt("payload"))?;
    let state = match r.col::<String>("status")?.as_str() {
        "pending" => CommandState::Pending,
        status => {
            let text: String = r
                .col::<Option<String>>("outcome")?
                .ok_or_else(|| corrupt("outcome"))?;
            let outcome = if status == "succeeded" {
                Outcome::Succeeded(serde_json::from_str(&text).map_err(|_| corrupt("result"))?)
            } else {
                Outcome::Failed(text)
            };
            CommandState::Finished {
                outcome,
                finished_at: Timestamp(r.col::<Option<i64>>("finished_at")?.unwrap_or_default()),
            }
        }
    };
    Ok(CommandRecord {
        id: command_id(&r.col::<String>("id")?)?,
        profile_id: profile_id(&r.col::<String>("profile_id")?)?,
        application_id: r
            .col::<Option<String>>("application_id")?
            .map(|a| uuid(&a))
            .transpose()?,
        payload,
        state,
        created_at: Timestamp(r.col("created_at")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::{NoContext, Timestamp as UuidTime, Uuid};

    fn v7_at(seconds: u64, nanos: u32) -> String {
        Uuid::new_v7(UuidTime::from_unix(NoContext, seconds, nanos)).to_string()
    }

    #[test]
    fn the_purge_bound_separates_ids_by_their_second() {
        let second = 1_780_000_000;
        let bound = first_v7_id_at(Timestamp::from_unix(second as i64));
        for _ in 0..100 {
            assert!(v7_at(second - 1, 999_999_999) < bound);
            assert!(v7_at(second, 0) >= bound);
            assert!(CommandId::new().to_string() >= bound);
        }
    }
}
