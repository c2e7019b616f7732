//! Background work runs as supervised workers: a worker that fails or panics is restarted
//! with exponential back-off; all of them stop when the shutdown token is cancelled.

use async_trait::async_trait;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[async_trait]
pub trait Worker: Send + 'static {
    fn name(&self) -> String;
    /// Runs until `shutdown` is cancelled (then returns `Ok`) or fails.
    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String>;
}

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Owns every background task of the engine.
#[derive(Clone)]
pub struct Supervisor {
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown,
        }
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn spawn(&self, mut worker: impl Worker) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let name = worker.name();
            let mut backoff = BACKOFF_START;
            loop {
                let run = AssertUnwindSafe(worker.run(shutdown.clone())).catch_unwind().await;
                if shutdown.is_cancelled() {
                    break;
                }
                match run {
                    Ok(Ok(())) => break,
                    Ok(Err(error)) => tracing::warn!(worker = %name, %error, ?backoff, "worker failed; restarting"),
                    Err(_) => tracing::error!(worker = %name, ?backoff, "worker panicked; restarting"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            tracing::debug!(worker = %name, "worker stopped");
        });
    }

    /// Cancels every worker and waits for them to finish.
    pub async fn stop(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// A job repeated at a fixed interval.
pub struct Periodic<F> {
    pub name: &'static str,
    pub every: Duration,
    pub job: F,
}

#[async_trait]
impl<F, Fut> Worker for Periodic<F>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    fn name(&self) -> String {
        self.name.to_owned()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticker.tick() => (self.job)().await?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Flaky {
        runs: Arc<AtomicUsize>,
    }

    #[async_trait]
    impl Worker for Flaky {
        fn name(&self) -> String {
            "flaky".into()
        }
        async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
            match self.runs.fetch_add(1, Ordering::SeqCst) {
                0 => Err("first run fails".into()),
                1 => panic!("second run panics"),
                _ => {
                    shutdown.cancelled().await;
                    Ok(())
                }
            }
        }
    }

    #[tokio::test]
    async fn failing_and_panicking_workers_are_restarted_and_stop_cleanly() {
        let runs = Arc::new(AtomicUsize::new(0));
        let sup = Supervisor::new(CancellationToken::new());
        sup.spawn(Flaky { runs: runs.clone() });
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::timeout(Duration::from_secs(5), sup.stop())
            .await
            .unwrap();
    }
}
