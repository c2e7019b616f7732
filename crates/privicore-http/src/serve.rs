//! The accept loop of both listeners: connection limits (in total and per client address),
//! a deadline for request headers and bodies, flush notification for held events, and a
//! graceful stop.

use crate::flush::{FlushHooks, NotifyOnFlush};
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// What one listener lets its clients hold.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open connections in total (WebSockets included); more are closed on accept.
    pub max_connections: usize,
    /// Open connections per client address, so one client cannot take them all.
    pub max_per_address: usize,
    /// Time a client has to send a request's headers (also between requests on a kept-alive
    /// connection).
    pub header_read_timeout: Duration,
    /// Time a client has to send a request's body.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_address: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// How long a stop waits for open requests before it lets go of their connections.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause after an accept error such as running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Open connections per client address.
#[derive(Clone, Default)]
struct PerAddress(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection counted for its address, until dropped.
struct AddressSlot {
    counts: PerAddress,
    ip: IpAddr,
}

impl PerAddress {
    fn take(&self, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut counts = self.0.lock().expect("per-address lock");
        let count = counts.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("per-address lock");
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled, then lets open requests finish
/// (WebSocket sessions close themselves on engine shutdown).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    let total = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = PerAddress::default();
    let connections = TaskTracker::new();
    loop {
        let (tcp, addr) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::debug!(%addr, "connection limit reached; closing the new connection");
            continue;
        };
        let Some(slot) = per_address.take(addr.ip(), limits.max_per_address) else {
            tracing::debug!(%addr, "per-address connection limit reached; closing");
            continue;
        };
        connections.spawn(serve_connection(
            tcp,
            addr,
            router.clone(),
            limits.header_read_timeout,
            Box::new((permit, slot)),
            stop.clone(),
        ));
    }
    connections.close();
    if tokio::time::timeout(STOP_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::info!("requests still open at stop; closing their connections");
    }
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    addr: SocketAddr,
    router: Router,
    header_read_timeout: Duration,
    held: Box<(OwnedSemaphorePermit, AddressSlot)>,
    stop: CancellationToken,
) {
    // Without TCP_NODELAY, back-to-back WebSocket frames on one connection wait for the
    // peer's delayed ACK (~40 ms).
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let hooks = FlushHooks::default();
    let io = TokioIo::new(NotifyOnFlush::new(tcp, hooks.clone(), held));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(addr));
        req.extensions_mut().insert(hooks.clone());
        router.clone().oneshot(req.map(axum::body::Body::new))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%addr, %error, "connection ended with an error");
            }
            return;
        }
        _ = stop.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    if let Err(error) = connection.await {
        tracing::debug!(%addr, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn started(limits: ConnectionLimits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let router = Router::new().route("/health", get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits, stop.clone()));
        (addr, stop)
    }

    /// Reads until the server closes; `true` if it did (rather than answering).
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(stream.read(&mut buf).await, Ok(0) | Err(_))
    }

    #[tokio::test(start_paused = true)]
    async fn headers_that_never_finish_lose_the_connection() {
        let (addr, _stop) = started(ConnectionLimits {
            header_read_timeout: Duration::from_secs(5),
            ..ConnectionLimits::default()
        })
        .await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Paused time advances to the deadline once everything waits.
        assert!(closed_by_server(&mut slow).await);
    }

    #[tokio::test]
    async fn a_client_over_its_share_is_closed_while_others_are_served() {
        let (addr, _stop) = started(ConnectionLimits {
            max_per_address: 4,
            ..ConnectionLimits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
            held.push(tcp);
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_server(&mut extra).await);

        // Another address (loopback answers on all of 127/8) is served meanwhile.
        let other = tokio::net::TcpSocket::new_v4().unwrap();
        other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut other = other.connect(addr).await.unwrap();
        other
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        other.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer[..], b"HTTP/1.1 200");
    }
}
