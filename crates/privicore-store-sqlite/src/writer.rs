//! Group commit on a dedicated thread: every write goes through one connection that
//! commits whatever is queued in a single transaction (one WAL fsync for many requests).
//! No request is answered before the commit that holds it. A batch first runs plainly;
//! only if one of its requests fails is it rolled back and run again with each request
//! in its own savepoint, so a failure undoes only that request (savepoints make SQLite copy
//! every page a request touches, which the common, failure-free batch does not pay for).

use crate::db::unavailable;
use privicore_domain::ports::StoreError;
use rusqlite::Connection;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 512;
const QUEUE: usize = 4096;
/// How long a wanted log restart waits for an idle moment of the writer.
const RESTART_WAIT: Duration = Duration::from_millis(250);

trait Job: Send {
    /// Runs the request; true if it succeeded. May run twice (see the module comment).
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// Runs on the writer thread once the request's commit succeeded, before the caller is
/// answered: commits run in order, so whatever it updates sees them in order too.
type OnCommit<T> = Box<dyn FnOnce(&mut T) + Send>;

struct Typed<T, F> {
    work: F,
    result: Option<Result<T, StoreError>>,
    on_commit: Option<OnCommit<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection, isolated: bool) -> bool {
        let result = if isolated {
            in_savepoint(conn, &mut self.work)
        } else {
            (self.work)(conn)
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let this = *self;
        let mut result = committed.and_then(|()| {
            this.result
                .unwrap_or_else(|| Err(StoreError::Unavailable("the write did not run".into())))
        });
        if let (Ok(value), Some(on_commit)) = (&mut result, this.on_commit) {
            on_commit(value);
        }
        let _ = this.reply.send(result);
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    work: &mut impl FnMut(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    run_cached(conn, "SAVEPOINT job")?;
    let result = work(conn);
    if result.is_err() {
        run_cached(conn, "ROLLBACK TO job")?;
    }
    run_cached(conn, "RELEASE job")?;
    result
}

/// Transaction control through the statement cache: `execute_batch` parses every time.
fn run_cached(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(drop)
        .map_err(unavailable)
}

enum Message {
    Job(Box<dyn Job>),
    Close(oneshot::Sender<()>),
}

pub struct Writer {
    queue: mpsc::Sender<Message>,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store writer stopped".into())
}

impl Writer {
    /// `restart`: raised by the checkpointer when the log should start over.
    pub fn start(conn: Connection, restart: Arc<AtomicBool>) -> Self {
        let (queue, inbox) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, inbox, restart))
            .expect("starting the SQLite writer thread");
        Self { queue }
    }

    /// Whether the writer thread still takes requests.
    pub fn alive(&self) -> bool {
        !self.queue.is_closed()
    }

    /// Runs `work` in the next group commit and answers after that commit.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(work, None).await
    }

    /// As `write`, and runs `on_commit` on what `work` returned once it is committed.
    pub async fn write_then<T, F>(
        &self,
        work: F,
        on_commit: impl FnOnce(&mut T) + Send + 'static,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(work, Some(Box::new(on_commit))).await
    }

    async fn send<T, F>(&self, work: F, on_commit: Option<OnCommit<T>>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let started = Instant::now();
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work,
            result: None,
            on_commit,
            reply,
        };
        self.queue
            .send(Message::Job(Box::new(job)))
            .await
            .map_err(|_| stopped())?;
        let answer = answer.await.map_err(|_| stopped())?;
        // Queueing, the group commit and its fsync: what a caller waits for.
        metrics::histogram!("privicore_store_write_seconds").record(started.elapsed());
        answer
    }

    /// Finishes what is queued, then closes the connection.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn run(conn: Connection, mut inbox: mpsc::Receiver<Message>, restart: Arc<AtomicBool>) {
    let mut restart_wanted: Option<Instant> = None;
    while let Some(first) = inbox.blocking_recv() {
        let mut batch = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Job(job) => batch.push(job),
                Message::Close(done) => {
                    close = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = inbox.try_recv().ok();
            }
        }
        metrics::gauge!("privicore_store_write_queue").set(inbox.len() as f64);
        metrics::histogram!("privicore_store_commit_batch_size").record(batch.len() as f64);
        commit(&conn, batch);
        if restart.load(Ordering::Relaxed) {
            // The catch-up stalls commits for a few ms: done in a gap between requests
            // when one comes soon enough, else anyway.
            let since = *restart_wanted.get_or_insert_with(Instant::now);
            if inbox.is_empty() || since.elapsed() >= RESTART_WAIT {
                // Blocked by the checkpointer's own pass, the catch-up copied nothing and
                // is tried again after the next commit: given up, the log would keep
                // growing until the checkpointer asked again.
                let ran = crate::db::try_checkpoint(&conn).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
                    true
                });
                if ran {
                    restart.store(false, Ordering::Relaxed);
                    restart_wanted = None;
                }
            }
        }
        if let Some(done) = close {
            drop(conn);
            let _ = done.send(());
            inbox.close();
            while let Ok(Message::Job(job)) = inbox.try_recv() {
                job.finish(Err(stopped()));
            }
            return;
        }
    }
}

fn commit(conn: &Connection, mut batch: Vec<Box<dyn Job>>) {
    if batch.is_empty() {
        return;
    }
    let begun = run_cached(conn, "BEGIN IMMEDIATE").and_then(|()| {
        let mut all_succeeded = true;
        for job in &mut batch {
            if !job.run(conn, false) {
                all_succeeded = false;
                break;
            }
        }
        if all_succeeded {
            return Ok(());
        }
        run_cached(conn, "ROLLBACK")?;
        run_cached(conn, "BEGIN IMMEDIATE")?;
        for job in &mut batch {
            job.run(conn, true);
        }
        Ok(())
    });
    let committed = begun
        .and_then(|()| run_cached(conn, "COMMIT"))
        .inspect_err(|_| {
            // Leaves no transaction open for the next batch (fails harmlessly if none is).
            let _ = conn.execute_batch("ROLLBACK");
        });
    for job in batch {
        job.finish(committed.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(
        work: impl FnMut(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<(), StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work,
            result: None,
            on_commit: None,
            reply,
        };
        (Box::new(job), answer)
    }

    fn insert(n: i64) -> impl FnMut(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| {
            c.execute("INSERT INTO t (n) VALUES (?)", [n])
                .map(drop)
                .map_err(unavailable)
        }
    }

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
            .unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut statement = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
        statement
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_failing_request_undoes_only_its_own_writes() {
        let conn = table();
        let (first, first_answer) = job(insert(1));
        let (failing, failing_answer) = job({
            let mut write = insert(2);
            move |c| {
                write(c)?;
                Err(StoreError::Unavailable("refused after writing".into()))
            }
        });
        let (last, last_answer) = job(insert(3));
        commit(&conn, vec![first, failing, last]);
        assert_eq!(rows(&conn), vec![1, 3]);
        assert!(first_answer.blocking_recv().unwrap().is_ok());
        assert!(failing_answer.blocking_recv().unwrap().is_err());
        assert!(last_answer.blocking_recv().unwrap().is_ok());
    }

    #[test]
    fn a_batch_without_failures_commits_every_request() {
        let conn = table();
        let (a, a_answer) = job(insert(1));
        let (b, b_answer) = job(insert(2));
        commit(&conn, vec![a, b]);
        assert_eq!(rows(&conn), vec![1, 2]);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
        assert!(b_answer.blocking_recv().unwrap().is_ok());
        // No transaction is left open for the next batch.
        assert!(conn.is_autocommit());
    }
}
