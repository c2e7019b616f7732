//! Group commit on a dedicated thread: every write goes through one connection that
//! commits whatever is queued in a single transaction (one WAL fsync for many requests).
//! Each request runs inside its own savepoint, so a failure in one rolls back only that
//! request, and no request is answered before the commit that holds it.

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
    fn run(&mut self, conn: &Connection);
    /// Answers the caller once the batch's commit is known.
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Typed<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Typed<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) {
        let Some(work) = self.work.take() else { return };
        self.result = Some(in_savepoint(conn, work));
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let this = *self;
        let result = committed.and_then(|()| {
            this.result
                .unwrap_or_else(|| Err(StoreError::Unavailable("the write did not run".into())))
        });
        let _ = this.reply.send(result);
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT job").map_err(unavailable)?;
    let result = work(conn);
    if result.is_err() {
        conn.execute_batch("ROLLBACK TO job").map_err(unavailable)?;
    }
    conn.execute_batch("RELEASE job").map_err(unavailable)?;
    result
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

    /// Runs `work` in the next group commit and answers after that commit.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Typed {
            work: Some(work),
            result: None,
            reply,
        };
        self.queue
            .send(Message::Job(Box::new(job)))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
        commit(&conn, batch);
        if restart.load(Ordering::Relaxed) {
            // The catch-up stalls commits for a few ms: done in a gap between requests
            // when one comes soon enough, else anyway.
            let since = *restart_wanted.get_or_insert_with(Instant::now);
            if inbox.is_empty() || since.elapsed() >= RESTART_WAIT {
                restart.store(false, Ordering::Relaxed);
                restart_wanted = None;
                if let Err(e) = crate::db::checkpoint(&conn, "PASSIVE") {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying later");
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
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let detail = e.to_string();
        for job in batch {
            job.finish(Err(StoreError::Unavailable(detail.clone())));
        }
        return;
    }
    for job in &mut batch {
        job.run(conn);
    }
    let committed = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        unavailable(e)
    });
    for job in batch {
        job.finish(committed.clone());
    }
}
