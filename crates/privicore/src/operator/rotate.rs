//! `privicore operator rotate-kek`: a new KEK becomes active at once (new data keys are
//! wrapped by it), a background task rewraps every stored data key (§4.3: only the key
//! block of a header changes), and the old KEKs are removed from the key store when no
//! header refers to them any more. The engine serves throughout. A rotation cut short by
//! a stop leaves the old KEKs in the key store; the next `rotate-kek` finishes it instead
//! of adding another KEK.

use super::running::Context;
use privicore_domain::envelope::{Header, Kek, rewrap};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Headers read per step.
const PAGE: usize = 256;
/// A data key sealed under the old KEK just before the switch may reach the store a
/// moment later: a clean pass is repeated after this long before the old KEK goes.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub state: State,
    pub to: String,
    pub retiring: Vec<String>,
    /// Headers read, over all passes.
    pub scanned: u64,
    pub rewrapped: u64,
    pub passes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
        };
        write!(
            f,
            "{state}: {} data keys rewrapped, {} headers read in {} passes; retiring {}",
            self.rewrapped,
            self.scanned,
            self.passes,
            self.retiring.join(", ")
        )?;
        if let Some(error) = &self.error {
            write!(f, " ({error})")?;
        }
        Ok(())
    }
}

/// `kek-N` with the next N.
fn next_id<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let last = ids
        .filter_map(|id| id.strip_prefix("kek-")?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    format!("kek-{}", last + 1)
}

/// Puts a new KEK in force and starts the rewrap.
pub async fn start(ctx: &Arc<Context>) -> anyhow::Result<Progress> {
    let progress = {
        let mut current = ctx.rotation.lock().expect("rotation lock");
        if current.as_ref().is_some_and(|p| p.state == State::Running) {
            anyhow::bail!("a KEK rotation is already running");
        }
        let mut keystore = ctx.keystore()?;
        let id = if keystore.kek_ids().count() > 1 {
            // A rotation the engine stopped before it finished: finish it first.
            let id = keystore.active().to_owned();
            tracing::info!(kek = %id, "resuming an unfinished KEK rotation");
            id
        } else {
            let id = next_id(keystore.kek_ids());
            let kek = Kek::generate(&id).expect("a valid id");
            keystore.put(&ctx.vault, &kek);
            keystore.set_active(&id);
            keystore.save()?;
            ctx.engine.install_keyring(keystore.ring(&ctx.vault)?);
            tracing::info!(kek = %id, "new KEK active; rewrapping data keys");
            id
        };
        let retiring: Vec<String> = keystore
            .kek_ids()
            .filter(|k| *k != id)
            .map(str::to_owned)
            .collect();
        let progress = Progress {
            state: State::Running,
            to: id,
            retiring,
            scanned: 0,
            rewrapped: 0,
            passes: 0,
            error: None,
        };
        *current = Some(progress.clone());
        progress
    };
    let worker = ctx.clone();
    tokio::spawn(async move {
        let outcome = rewrap_all(&worker).await;
        let mut current = worker.rotation.lock().expect("rotation lock");
        if let Some(p) = current.as_mut() {
            match outcome {
                Ok(()) => p.state = State::Done,
                Err(error) => {
                    tracing::error!(%error, "KEK rotation failed; run it again");
                    p.state = State::Failed;
                    p.error = Some(error.to_string());
                }
            }
        }
    });
    Ok(progress)
}

fn update(ctx: &Context, change: impl FnOnce(&mut Progress)) {
    if let Some(p) = ctx.rotation.lock().expect("rotation lock").as_mut() {
        change(p);
    }
}

/// Passes over every header until one finds none under an old KEK, then retires them.
async fn rewrap_all(ctx: &Context) -> anyhow::Result<()> {
    let mut clean_passes = 0;
    while clean_passes < 2 {
        let ring = ctx.engine.keyring_now();
        let active = ring.active().id().to_owned();
        let mut old = 0u64;
        let mut after = None;
        loop {
            if ctx.stop.is_cancelled() {
                anyhow::bail!("stopped before it finished");
            }
            let page = ctx.store.version_headers(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.cursor);
            let scanned = page.len() as u64;
            let mut replacements = Vec::new();
            for stored in &page {
                let header = Header::parse(&stored.header)?;
                if header.kek_id != active {
                    replacements.push((stored, rewrap(&ring, &header)?.to_bytes()));
                }
            }
            old += replacements.len() as u64;
            // Sent together, so the store's group commit writes a page in one transaction.
            // Each is written only if unchanged meanwhile; otherwise the next pass sees it.
            let written =
                futures_util::future::join_all(replacements.iter().map(|(stored, new)| {
                    ctx.store.replace_version_header(
                        &stored.token,
                        stored.version,
                        &stored.header,
                        new,
                    )
                }))
                .await;
            let mut rewrapped = 0;
            for result in written {
                rewrapped += u64::from(result?);
            }
            update(ctx, |p| {
                p.scanned += scanned;
                p.rewrapped += rewrapped;
            });
            tokio::task::yield_now().await;
        }
        update(ctx, |p| p.passes += 1);
        if old == 0 {
            clean_passes += 1;
            if clean_passes == 1 {
                tokio::time::sleep(SETTLE).await;
            }
        } else {
            clean_passes = 0;
        }
    }
    let _guard = ctx.keystore_lock.lock().await;
    let mut keystore = ctx.keystore()?;
    let active = keystore.active().to_owned();
    let retired: Vec<String> = keystore
        .kek_ids()
        .filter(|id| *id != active)
        .map(str::to_owned)
        .collect();
    for id in &retired {
        keystore.remove(id);
    }
    keystore.save()?;
    ctx.engine.install_keyring(keystore.ring(&ctx.vault)?);
    tracing::info!(retired = ?retired, "KEK rotation finished; old KEKs removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_count_up() {
        assert_eq!(super::next_id(["kek-1"].into_iter()), "kek-2");
        assert_eq!(
            super::next_id(["kek-9", "kek-10", "other"].into_iter()),
            "kek-11"
        );
        assert_eq!(super::next_id(std::iter::empty()), "kek-1");
    }
}
