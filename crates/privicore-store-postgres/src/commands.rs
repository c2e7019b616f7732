use crate::db;
use crate::rows::{Col, command_id, profile_id, uuid};
use privicore_domain::command::{CommandRecord, CommandState, Completion, Outcome};
use privicore_domain::ports::StoreError;
use privicore_domain::{CommandId, Timestamp};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;

/// Stores the record as given: pending, or already finished when it ran at acceptance.
pub async fn insert(conn: &mut PgConnection, c: &CommandRecord) -> Result<(), StoreError> {
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
        sqlx::query(
            "INSERT INTO commands (id, profile_id, application_id, kind, payload, status, outcome, finished_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.id.to_string())
        .bind(c.profile_id.to_string())
        .bind(c.application_id.map(|a| a.to_string()))
        .bind(c.payload.kind())
        .bind(payload)
        .bind(status)
        .bind(outcome)
        .bind(finished_at)
        .bind(c.created_at.unix()),
    )
    .await?;
    Ok(())
}

/// Deletes the commands that finished before `before`. Ids are UUID v7, so only ids below
/// the first one of that second are read.
pub async fn purge_finished(conn: &mut PgConnection, before: Timestamp) -> Result<u64, StoreError> {
    db::exec(
        conn,
        sqlx::query(
            "DELETE FROM commands WHERE id < $1 AND status <> 'pending' AND finished_at < $2",
        )
        .bind(first_v7_id_at(before))
        .bind(before.unix()),
    )
    .await
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

pub async fn get(
    conn: &mut PgConnection,
    id: CommandId,
) -> Result<Option<CommandRecord>, StoreError> {
    db::one(
        conn,
        sqlx::query("SELECT * FROM commands WHERE id = $1").bind(id.to_string()),
        record,
    )
    .await
}

pub async fn unfinished(conn: &mut PgConnection) -> Result<Vec<CommandRecord>, StoreError> {
    db::all(
        conn,
        sqlx::query("SELECT * FROM commands WHERE status = 'pending' ORDER BY created_at, id"),
        record,
    )
    .await
}

/// Records the outcome; a command finishes once, so a second completion is refused (the
/// condition is checked again on the locked row, so two engines cannot both finish it).
pub async fn complete(conn: &mut PgConnection, c: &Completion) -> Result<(), StoreError> {
    let (status, outcome) = outcome_columns(&c.outcome);
    let done = db::exec(
        conn,
        sqlx::query(
            "UPDATE commands SET status = $1, outcome = $2, finished_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status)
        .bind(outcome)
        .bind(c.finished_at.unix())
        .bind(c.command_id.to_string()),
    )
    .await?;
    if done == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "command {} is unknown or already finished",
            c.command_id
        )))
    }
}

fn record(r: &PgRow) -> Result<CommandRecord, StoreError> {
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
