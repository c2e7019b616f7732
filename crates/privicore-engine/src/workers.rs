//! Background work runs as supervised workers: a worker that fails or panics is restarted
//! with exponential back-off; all of them stop when the shutdown token is cancelled.

use async_trait::async_trait;
use futures_util::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
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
    troubled: Arc<Mutex<BTreeMap<String, WorkerTrouble>>>,
}

/// Why a worker is not running as it should (for `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerTrouble {
    /// Failed or panicked this many times in a row; waiting to be restarted.
    BackingOff(u32),
    /// Returned before shutdown: its work is no longer done.
    Ended,
}

/// A worker's name without its index (`command-lane-7` → `command-lane`), for metric
/// labels that must not grow with the number of lanes.
fn family(name: &str) -> &str {
    name.trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches('-')
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            tracker: TaskTracker::new(),
            shutdown,
            troubled: Arc::default(),
        }
    }

    /// Workers that are backing off or ended early, by name.
    pub fn troubled(&self) -> BTreeMap<String, WorkerTrouble> {
        self.troubled.lock().expect("worker states lock").clone()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn spawn(&self, mut worker: impl Worker) {
        let shutdown = self.shutdown.clone();
        let troubled = self.troubled.clone();
        self.tracker.spawn(async move {
            let name = worker.name();
            let mut backoff = BACKOFF_START;
            let mut failures = 0;
            let mark = |trouble: Option<WorkerTrouble>| {
                let mut troubled = troubled.lock().expect("worker states lock");
                match trouble {
                    Some(t) => troubled.insert(name.clone(), t),
                    None => troubled.remove(&name),
                };
            };
            loop {
                let run = AssertUnwindSafe(worker.run(shutdown.clone())).catch_unwind().await;
                if shutdown.is_cancelled() {
                    break;
                }
                match run {
                    Ok(Ok(())) => {
                        tracing::warn!(worker = %name, "worker ended before shutdown");
                        mark(Some(WorkerTrouble::Ended));
                        break;
                    }
                    Ok(Err(error)) => tracing::warn!(worker = %name, %error, ?backoff, "worker failed; restarting"),
                    Err(_) => tracing::error!(worker = %name, ?backoff, "worker panicked; restarting"),
                }
                failures += 1;
                metrics::counter!("privicore_worker_restarts_total", "worker" => family(&name).to_owned())
                    .increment(1);
                mark(Some(WorkerTrouble::BackingOff(failures)));
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                // Running again; a worker that keeps failing spends most of its time above.
                mark(None);
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

    struct Failing;

    #[async_trait]
    impl Worker for Failing {
        fn name(&self) -> String {
            "failing-3".into()
        }
        async fn run(&mut self, _: CancellationToken) -> Result<(), String> {
            Err("always".into())
        }
    }

    struct Quitter;

    #[async_trait]
    impl Worker for Quitter {
        fn name(&self) -> String {
            "quitter".into()
        }
        async fn run(&mut self, _: CancellationToken) -> Result<(), String> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn troubled_workers_are_named_while_backing_off_or_after_ending_early() {
        let sup = Supervisor::new(CancellationToken::new());
        sup.spawn(Failing);
        sup.spawn(Quitter);
        // Both are marked as soon as their first run returns (one snapshot is checked:
        // the failing one is unmarked for an instant at each restart).
        let mut troubled = sup.troubled();
        for _ in 0..250 {
            if troubled.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            troubled = sup.troubled();
        }
        assert!(
            matches!(
                troubled.get("failing-3"),
                Some(WorkerTrouble::BackingOff(_))
            ),
            "{troubled:?}"
        );
        assert_eq!(troubled.get("quitter"), Some(&WorkerTrouble::Ended));
        sup.stop().await;
        assert_eq!(family("command-lane-12"), "command-lane");
        assert_eq!(family("hub"), "hub");
    }
}
