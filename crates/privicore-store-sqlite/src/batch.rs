//! Group commit: every command insert and effect application goes through one writer task
//! that commits whatever is queued in a single transaction (one WAL fsync for many
//! requests). Each request runs inside its own savepoint, so a conflict in one rolls back
//! only that request.

use crate::{apply, commands, unavailable};
use privicore_domain::command::{CommandRecord, Completion};
use privicore_domain::effect::Effect;
use privicore_domain::ports::StoreError;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 512;

pub enum Job {
    Apply {
        effects: Vec<Effect>,
        completion: Option<Completion>,
        reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
    },
    Insert {
        command: Box<CommandRecord>,
        effects: Vec<Effect>,
        reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
    },
}

impl Job {
    fn reply(self, result: Result<Vec<u64>, StoreError>) {
        let tx = match self {
            Job::Apply { reply, .. } | Job::Insert { reply, .. } => reply,
        };
        let _ = tx.send(result);
    }
}

type Fut<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

// Boxed with explicit lifetimes: the spawned writer must be `Send` for every borrow.
fn raw<'a>(conn: &'a mut SqliteConnection, sql: &'static str) -> Fut<'a, ()> {
    Box::pin(async move {
        sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    })
}

fn run<'a>(conn: &'a mut SqliteConnection, job: &'a Job) -> Fut<'a, Vec<u64>> {
    Box::pin(async move {
        match job {
            Job::Apply {
                effects,
                completion,
                ..
            } => {
                let affected = apply::apply_in(conn, effects).await?;
                if let Some(c) = completion {
                    commands::complete(conn, c).await?;
                }
                Ok(affected)
            }
            Job::Insert {
                command, effects, ..
            } => {
                let affected = apply::apply_in(conn, effects).await?;
                commands::insert(conn, command).await?;
                Ok(affected)
            }
        }
    })
}

fn commit_batch<'a>(
    conn: &'a mut SqliteConnection,
    batch: &'a [Job],
) -> Fut<'a, Vec<Result<Vec<u64>, StoreError>>> {
    Box::pin(async move {
        raw(conn, "BEGIN IMMEDIATE").await?;
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            raw(conn, "SAVEPOINT job").await?;
            let result = run(conn, job).await;
            if result.is_err() {
                raw(conn, "ROLLBACK TO job").await?;
            }
            raw(conn, "RELEASE job").await?;
            results.push(result);
        }
        raw(conn, "COMMIT").await?;
        Ok(results)
    })
}

pub async fn writer(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit_batch(&mut conn, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    job.reply(result);
                }
            }
            Err(error) => {
                let _ = raw(&mut conn, "ROLLBACK").await;
                let detail = error.to_string();
                for job in batch {
                    job.reply(Err(StoreError::Unavailable(detail.clone())));
                }
            }
        }
    }
}
