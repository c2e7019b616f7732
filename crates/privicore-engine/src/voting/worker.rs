//! The background worker that closes attempts at their deadlines.

use super::*;

/// Closes attempts at their deadlines (engine clock) and hands decided commands back to
/// their lanes.
pub(crate) struct VotingWorker {
    pub core: Arc<Core>,
    pub pipeline: Arc<crate::pipeline::Pipeline>,
}

#[async_trait]
impl Worker for VotingWorker {
    fn name(&self) -> String {
        "voting-deadlines".into()
    }

    async fn run(&mut self, shutdown: CancellationToken) -> Result<(), String> {
        // The queue outlives every run: a run restarted after a panic takes it again (the
        // previous run's guard went with its task).
        let queue = self.core.voting.release_rx.clone();
        let mut releases = queue.lock().await;
        // A release the previous run was handling when it stopped is looked for again: every
        // held command whose pools all decided goes back to its lane (releasing twice is
        // harmless; the lane finds it decided or already finished).
        self.requeue_decided().await;
        self.serve(&mut releases, &shutdown).await
    }
}

impl VotingWorker {
    async fn requeue_decided(&self) {
        let held: Vec<CommandId> = self
            .core
            .voting
            .held
            .lock()
            .expect("held")
            .iter()
            .copied()
            .collect();
        for command in held {
            match self.core.store.command_pools(command).await {
                Ok(pools)
                    if !pools.is_empty() && pools.iter().all(|p| p.status != PoolStatus::Open) =>
                {
                    let _ = self.core.voting.release_tx.send(command);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%command, %error, "could not read a held command's pools")
                }
            }
        }
    }

    async fn serve(
        &self,
        releases: &mut mpsc::UnboundedReceiver<CommandId>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(command) = releases.recv() => {
                    match self.core.store.command(command).await {
                        Ok(Some(record))
                            if matches!(record.state, privicore_domain::command::CommandState::Pending) =>
                        {
                            self.pipeline.resume(record).await
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(%command, %error, "could not read a released command");
                            let _ = self.core.voting.release_tx.send(command);
                        }
                    }
                }
                _ = tick.tick() => {
                    let due = self.core.voting.due(now(&self.core));
                    self.core.voting.prune_locks();
                    for pool in due {
                        let key = match self.core.store.pool(pool).await {
                            Ok(Some(record)) => pool_key(&record),
                            Ok(None) => pool.0,
                            Err(error) => {
                                tracing::warn!(%pool, %error, "could not read a pool; retrying");
                                continue;
                            }
                        };
                        let _guard = self.core.voting.lock(key).await;
                        if let Err(error) = advance(&self.core, pool, None).await {
                            tracing::warn!(%pool, %error, "could not close an attempt; retrying");
                        }
                    }
                }
            }
        }
    }
}
