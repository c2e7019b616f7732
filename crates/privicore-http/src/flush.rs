//! Events of a command follow its 202 on the wire.
//!
//! [`hold_events`] runs each request in the engine's hold scope and moves the releases of
//! the commands it accepted into the response body. When hyper is done with the body, the
//! releases go to the connection's [`FlushHooks`]; the connection's I/O ([`NotifyOnFlush`])
//! drops them at its next flush, which hyper makes only after every buffered byte of the
//! answer has been written to the socket. Only then do the commands' events go out.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use privicore_engine::holds::{self, Release};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Releases waiting for the connection's next completed flush.
#[derive(Clone, Default)]
pub struct FlushHooks(Arc<Mutex<Vec<Vec<Release>>>>);

impl FlushHooks {
    fn push(&self, releases: Vec<Release>) {
        self.0.lock().expect("flush hooks lock").push(releases);
    }

    /// Drops (and so fires) every waiting release.
    fn fire(&self) {
        let ready = std::mem::take(&mut *self.0.lock().expect("flush hooks lock"));
        drop(ready);
    }

    fn is_empty(&self) -> bool {
        self.0.lock().expect("flush hooks lock").is_empty()
    }
}

/// Runs `handler` in a hold scope: the events of commands it accepts wait until its answer
/// is on the wire of the connection `hooks` belong to.
pub async fn hold_events(
    hooks: Option<FlushHooks>,
    handler: impl Future<Output = Response>,
) -> Response {
    let (response, releases) = holds::scope(handler).await;
    if releases.is_empty() {
        return response;
    }
    response.map(|body| {
        Body::new(ReleasingBody {
            inner: body,
            releases: Some(releases),
            hooks,
        })
    })
}

/// Hands its releases to the connection as soon as hyper has taken its last frame (hyper
/// writes that frame and flushes before the connection's next completed flush), or when it
/// is dropped unread (an empty body, a connection gone).
struct ReleasingBody {
    inner: Body,
    releases: Option<Vec<Release>>,
    hooks: Option<FlushHooks>,
}

impl ReleasingBody {
    fn hand_over(&mut self) {
        if let (Some(releases), Some(hooks)) = (self.releases.take(), &self.hooks) {
            hooks.push(releases);
        }
    }
}

impl Drop for ReleasingBody {
    fn drop(&mut self) {
        self.hand_over();
    }
}

impl http_body::Body for ReleasingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.hand_over();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's I/O that fires its [`FlushHooks`] after each completed flush. Whatever it
/// owns (connection-limit permits) lives as long as the connection, upgrades included.
pub struct NotifyOnFlush<IO> {
    io: IO,
    hooks: FlushHooks,
    _held: Box<dyn Send + Sync>,
}

impl<IO> NotifyOnFlush<IO> {
    pub fn new(io: IO, hooks: FlushHooks, held: Box<dyn Send + Sync>) -> Self {
        Self {
            io,
            hooks,
            _held: held,
        }
    }
}

impl<IO> Drop for NotifyOnFlush<IO> {
    fn drop(&mut self) {
        // The connection is gone: nothing more will be written, so nothing is left to wait for.
        if !self.hooks.is_empty() {
            self.hooks.fire();
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for NotifyOnFlush<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for NotifyOnFlush<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) && !this.hooks.is_empty() {
            this.hooks.fire();
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Collects a body for tests of the middleware.
#[cfg(test)]
async fn collect(body: Body) -> Bytes {
    http_body_util::BodyExt::collect(body)
        .await
        .expect("body")
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn hooks_fire_only_on_a_completed_flush() {
        let hooks = FlushHooks::default();
        hooks.push(Vec::new());
        let (client, _server) = tokio::io::duplex(64);
        let mut io = NotifyOnFlush::new(client, hooks.clone(), Box::new(()));
        io.write_all(b"HTTP/1.1 202 Accepted\r\n").await.unwrap();
        assert!(!hooks.is_empty(), "a write alone does not release");
        io.flush().await.unwrap();
        assert!(hooks.is_empty(), "the flush after the write releases");
    }

    #[tokio::test]
    async fn a_dropped_body_hands_its_releases_to_the_connection() {
        let hooks = FlushHooks::default();
        let body = Body::new(ReleasingBody {
            inner: Body::from("{}"),
            releases: Some(Vec::new()),
            hooks: Some(hooks.clone()),
        });
        assert_eq!(collect(body).await, Bytes::from_static(b"{}"));
        assert!(!hooks.is_empty(), "waits for the connection's flush");
    }
}
