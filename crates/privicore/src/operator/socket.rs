//! The operator socket: one JSON request line in, one JSON reply line out.

use super::{Reply, Request, socket_path};
use anyhow::Context;
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

/// Requests are a passphrase or a few shares at most.
const REQUEST_LIMIT: u64 = 64 * 1024;

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, request: Request) -> Reply;
}

/// Serves the socket of `data_dir` until `stop`; the socket file is removed then.
pub fn listen(
    data_dir: &Path,
    handler: Arc<dyn Handler>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = socket_path(data_dir);
    std::fs::create_dir_all(path.parent().context("socket path has a parent")?)?;
    // A socket left by a crashed engine; a live engine on this data directory would be
    // holding the database and the ports already.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(data_dir)?.uid();
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = stop.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "operator socket accept failed");
                        continue;
                    }
                },
            };
            let allowed = stream
                .peer_cred()
                .is_ok_and(|cred| cred.uid() == owner || cred.uid() == 0);
            let handler = handler.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let reply = if allowed {
                    let mut line = String::new();
                    let read = BufReader::new(read.take(REQUEST_LIMIT))
                        .read_line(&mut line)
                        .await;
                    match read
                        .ok()
                        .and_then(|_| serde_json::from_str::<Request>(&line).ok())
                    {
                        Some(request) => {
                            tracing::info!(?request, "operator request");
                            handler.handle(request).await
                        }
                        None => Reply::error("not an operator request"),
                    }
                } else {
                    Reply::error("only the engine's own user may administer it")
                };
                let mut line = serde_json::to_vec(&reply).unwrap_or_default();
                line.push(b'\n');
                let _ = write.write_all(&line).await;
            });
        }
        let _ = std::fs::remove_file(&path);
    }))
}
