use crate::rows::{command_id, profile_id, uuid};
use crate::unavailable;
use privicore_domain::command::{CommandRecord, CommandState, Completion, Outcome};
use privicore_domain::ports::StoreError;
use privicore_domain::{CommandId, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

pub async fn insert(conn: &mut SqliteConnection, c: &CommandRecord) -> Result<(), StoreError> {
    let payload =
        serde_json::to_string(&c.payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO commands (id, profile_id, application_id, kind, payload, status, created_at)
         VALUES (?, ?, ?, ?, ?, 'pending', ?)",
    )
    .bind(c.id.to_string())
    .bind(c.profile_id.to_string())
    .bind(c.application_id.map(|a| a.to_string()))
    .bind(c.payload.kind())
    .bind(payload)
    .bind(c.created_at.unix())
    .execute(conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: CommandId) -> Result<Option<CommandRecord>, StoreError> {
    sqlx::query("SELECT * FROM commands WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?
        .map(|r| record(&r))
        .transpose()
}

pub async fn unfinished(pool: &SqlitePool) -> Result<Vec<CommandRecord>, StoreError> {
    sqlx::query("SELECT * FROM commands WHERE status = 'pending' ORDER BY created_at, id")
        .fetch_all(pool)
        .await
        .map_err(unavailable)?
        .iter()
        .map(record)
        .collect()
}

/// Records the outcome; a command finishes once, so a second completion is refused.
pub async fn complete(conn: &mut SqliteConnection, c: &Completion) -> Result<(), StoreError> {
    let (status, outcome) = match &c.outcome {
        Outcome::Succeeded(result) => ("succeeded", result.to_string()),
        Outcome::Failed(key) => ("failed", key.clone()),
    };
    let done = sqlx::query(
        "UPDATE commands SET status = ?, outcome = ?, finished_at = ? WHERE id = ? AND status = 'pending'",
    )
    .bind(status)
    .bind(outcome)
    .bind(c.finished_at.unix())
    .bind(c.command_id.to_string())
    .execute(conn)
    .await
    .map_err(unavailable)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "command {} is unknown or already finished",
            c.command_id
        )))
    }
}

fn record(r: &SqliteRow) -> Result<CommandRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("unreadable command {what}"));
    let payload =
        serde_json::from_str(&r.get::<String, _>("payload")).map_err(|_| corrupt("payload"))?;
    let state = match r.get::<String, _>("status").as_str() {
        "pending" => CommandState::Pending,
        status => {
            let text: String = r
                .get::<Option<String>, _>("outcome")
                .ok_or_else(|| corrupt("outcome"))?;
            let outcome = if status == "succeeded" {
                Outcome::Succeeded(serde_json::from_str(&text).map_err(|_| corrupt("result"))?)
            } else {
                Outcome::Failed(text)
            };
            CommandState::Finished {
                outcome,
                finished_at: Timestamp(r.get::<Option<i64>, _>("finished_at").unwrap_or_default()),
            }
        }
    };
    Ok(CommandRecord {
        id: command_id(&r.get::<String, _>("id"))?,
        profile_id: profile_id(&r.get::<String, _>("profile_id"))?,
        application_id: r
            .get::<Option<String>, _>("application_id")
            .map(|a| uuid(&a))
            .transpose()?,
        payload,
        state,
        created_at: Timestamp(r.get("created_at")),
    })
}
