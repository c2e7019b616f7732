//! Streaming transfers: uploads to the upstream listener and downloads from the downstream
//! listener (docs/api/data-tokens.md §3.4, §3.6, §4).
//!
//! Both listeners authenticate with the single-use `auth` value carried in the URL only; the
//! client's `X-DPT-AUTHORIZATION` token is never sent to them. A stream URL names its own
//! scheme, host and port, which need not be the API's.

use crate::error::ClientError;
use crate::http::{Client, RawResponse, connector, transport};
use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Size of the reads from an upload source (and so of the body frames sent).
const UPLOAD_READ: usize = 256 * 1024;
/// Longest silence tolerated while waiting for an answer or for the next bytes of a download.
/// The engine switches devices after 30 s without a chunk (devices-and-storage.md §5.3), so a
/// healthy download never stays silent this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest error body read from a listener (error envelopes are small).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// How long an upload waits for `100 Continue` before it sends its body anyway: a server or
/// proxy that ignores `Expect` never sends one (RFC 9110 §10.1.1).
const CONTINUE_WAIT: Duration = Duration::from_secs(1);

/// Whether an upload's body may go: the engine checks the value, the declared length and
/// its spool room before it reads a byte, so a refusal arrives instead of `100 Continue`
/// and the body is never sent (a body written into a refusal ends in a broken pipe that
/// hides the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Wait,
    Go,
    /// The final answer came: whatever is left of the body is not sent.
    Stop,
}

/// `body`, held until the gate opens (or [`CONTINUE_WAIT`] passed) and cut off once it
/// is stopped.
fn gated(body: StreamBodyBox, gate: watch::Receiver<Gate>) -> StreamBodyBox {
    let frames = futures_util::stream::unfold(Some((body, gate, false)), |state| async move {
        let (mut body, mut gate, open) = state?;
        if !open {
            let _ = tokio::time::timeout(CONTINUE_WAIT, gate.wait_for(|g| *g != Gate::Wait)).await;
        }
        if *gate.borrow() == Gate::Stop {
            let stopped = std::io::Error::other("the upload was answered before its end");
            return Some((Err(stopped), None));
        }
        match body.frame().await? {
            Ok(frame) => Some((Ok(frame), Some((body, gate, true)))),
            Err(e) => Some((Err(e), None)),
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// The upstream listener's 202: the exchange (or update) command now runs like an inline one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadAccepted {
    pub command_id: String,
    pub token: String,
    pub stored_size: u64,
}

type StreamBodyBox = UnsyncBoxBody<Bytes, std::io::Error>;

fn parse_url(url: &str) -> Result<http::Uri, ClientError> {
    url.parse::<http::Uri>()
        .ok()
        .filter(|uri| uri.scheme().is_some() && uri.host().is_some())
        .ok_or_else(|| ClientError::Transport("not a stream URL".to_owned()))
}

/// A body that reads `reader` in frames of at most [`UPLOAD_READ`] bytes.
fn reader_body(reader: impl AsyncRead + Send + Unpin + 'static) -> StreamBodyBox {
    let frames = futures_util::stream::unfold(Some(reader), |state| async move {
        let mut reader = state?;
        let mut buf = BytesMut::zeroed(UPLOAD_READ);
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(buf.freeze())), Some(reader)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(frames))
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of an answer that is not the expected success.
async fn error_answer(res: http::Response<Incoming>) -> ClientError {
    let (parts, mut body) = res.into_parts();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    bytes.extend_from_slice(data);
                }
            }
            Ok(Some(Err(e))) => return transport(e),
            Ok(None) => break,
            Err(_) => return ClientError::Timeout("an error answer from a stream listener".into()),
        }
    }
    bytes.truncate(MAX_ERROR_BODY);
    RawResponse {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: bytes,
    }
    .into_error()
}

impl Client {
    fn stream_request(
        &self,
        method: http::Method,
        url: &str,
    ) -> Result<http::request::Builder, ClientError> {
        let mut req = http::Request::builder().method(method).uri(parse_url(url)?);
        for (name, value) in self.extra_headers() {
            req = req.header(name, value);
        }
        Ok(req)
    }

    async fn stream_send(
        &self,
        req: http::Request<StreamBodyBox>,
    ) -> Result<http::Response<Incoming>, ClientError> {
        // One connection per transfer: a large transfer gains nothing from the pool, and the
        // listeners are not the API's host.
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build::<_, StreamBodyBox>(connector());
        http.request(req).await.map_err(transport)
    }

    /// POST the raw body to a `streamUrl` (upstream listener). `len` = Some → Content-Length,
    /// None → chunked.
    ///
    /// The request asks `Expect: 100-continue` and sends the body only once the engine
    /// agreed, so a refusal before the body (`stream.invalid_auth`, `stream.too_large`,
    /// `stream.spool_full`, …) comes back as [`ClientError::Api`] with its code; so does a
    /// refusal while the source is slow to give bytes.
    pub async fn upload_stream(
        &self,
        stream_url: &str,
        body: impl AsyncRead + Send + Unpin + 'static,
        len: Option<u64>,
    ) -> Result<UploadAccepted, ClientError> {
        let mut req = self
            .stream_request(http::Method::POST, stream_url)?
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::EXPECT, "100-continue");
        let body = match len {
            Some(len) => {
                req = req.header(http::header::CONTENT_LENGTH, len);
                // Never more than announced: a longer source would break the framing.
                reader_body(body.take(len))
            }
            None => reader_body(body),
        };
        let gate = Arc::new(watch::Sender::new(Gate::Wait));
        let mut req = req
            .body(gated(body, gate.subscribe()))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let on_continue = gate.clone();
        hyper::ext::on_informational(&mut req, move |res| {
            if res.status() == http::StatusCode::CONTINUE {
                on_continue.send_if_modified(|g| {
                    let waiting = *g == Gate::Wait;
                    if waiting {
                        *g = Gate::Go;
                    }
                    waiting
                });
            }
        });
        let res = self.stream_send(req).await?;
        if res.status() != http::StatusCode::ACCEPTED {
            gate.send_replace(Gate::Stop);
            return Err(error_answer(res).await);
        }
        let (parts, body) = res.into_parts();
        let bytes = tokio::time::timeout(IDLE_TIMEOUT, body.collect())
            .await
            .map_err(|_| ClientError::Timeout("the upload answer".into()))?
            .map_err(transport)?
            .to_bytes();
        RawResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes.to_vec(),
        }
        .expect(202)
    }

    /// GET a download URL (downstream listener) and copy the body into `out` as it arrives;
    /// returns the bytes written.
    ///
    /// Errors: the engine's error envelope as [`ClientError::Api`]; a body shorter than
    /// `Content-Length` (the engine aborts the connection when no device can deliver a chunk)
    /// as [`ClientError::Transport`].
    pub async fn download_stream<W: AsyncWrite + Unpin + Send>(
        &self,
        url: &str,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let req = self
            .stream_request(http::Method::GET, url)?
            .body(BodyExt::boxed_unsync(
                Empty::<Bytes>::new().map_err(|never| match never {}),
            ))
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let res = tokio::time::timeout(IDLE_TIMEOUT, self.stream_send(req))
            .await
            .map_err(|_| ClientError::Timeout("the download answer".into()))??;
        if res.status() != http::StatusCode::OK {
            return Err(error_answer(res).await);
        }
        let expected = res
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut body = res.into_body();
        let mut written = 0u64;
        loop {
            let frame = match tokio::time::timeout(IDLE_TIMEOUT, body.frame()).await {
                Err(_) => return Err(ClientError::Timeout("the next download bytes".into())),
                Ok(None) => break,
                Ok(Some(frame)) => frame.map_err(transport)?,
            };
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .await
                    .map_err(|e| ClientError::Transport(format!("writing the download: {e}")))?;
                written += data.len() as u64;
            }
        }
        out.flush()
            .await
            .map_err(|e| ClientError::Transport(format!("writing the download: {e}")))?;
        match expected {
            Some(expected) if expected != written => Err(ClientError::Transport(format!(
                "download ended after {written} of {expected} bytes"
            ))),
            _ => Ok(written),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::convert::Infallible;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// Serves one connection: answers every request with what `answer` makes of the method,
    /// headers and the whole body.
    async fn serve_once(
        answer: impl Fn(&http::request::Parts, Bytes) -> http::Response<Full<Bytes>>
        + Send
        + Sync
        + 'static,
    ) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let service = service_fn(move |req: http::Request<Incoming>| {
                let answer = answer.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body.collect().await.unwrap().to_bytes();
                    Ok::<_, Infallible>(answer(&parts, body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
        format!("http://{addr}")
    }

    fn json_answer(status: u16, body: serde_json::Value) -> http::Response<Full<Bytes>> {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn an_upload_with_a_length_sends_the_raw_bytes_and_reads_the_answer() {
        let sent = payload(700_000);
        let expected = sent.clone();
        let base = serve_once(move |parts, body| {
            assert_eq!(parts.method, http::Method::POST);
            assert_eq!(parts.uri.query(), Some("auth=U-abc"));
            assert_eq!(parts.headers["content-length"], "700000");
            assert_eq!(parts.headers["content-type"], "application/octet-stream");
            assert!(parts.headers.get("x-dpt-authorization").is_none());
            assert_eq!(body.as_ref(), expected.as_slice());
            json_answer(
                202,
                serde_json::json!({"commandId": "c-1", "token": "dtk-1", "storedSize": body.len()}),
            )
        })
        .await;
        let client = Client::new("http://127.0.0.1:1").with_token("api-token");
        let accepted = client
            .upload_stream(
                &format!("{base}/?auth=U-abc"),
                std::io::Cursor::new(sent),
                Some(700_000),
            )
            .await
            .unwrap();
        assert_eq!(
            accepted,
            UploadAccepted {
                command_id: "c-1".into(),
                token: "dtk-1".into(),
                stored_size: 700_000
            }
        );
    }

    #[tokio::test]
    async fn an_upload_without_a_length_is_chunked() {
        let sent = payload(300_001);
        let expected = sent.clone();
        let base = serve_once(move |parts, body| {
            assert!(parts.headers.get("content-length").is_none());
            assert_eq!(parts.headers["transfer-encoding"], "chunked");
            assert_eq!(body.as_ref(), expected.as_slice());
            json_answer(
                202,
                serde_json::json!({"commandId": "c-2", "token": "dtk-2", "storedSize": body.len()}),
            )
        })
        .await;
        let accepted = Client::new(&base)
            .upload_stream(
                &format!("{base}/?auth=U-x"),
                std::io::Cursor::new(sent),
                None,
            )
            .await
            .unwrap();
        assert_eq!(accepted.stored_size, 300_001);
    }

    #[tokio::test]
    async fn an_error_envelope_becomes_an_api_error() {
        let base = serve_once(|_, _| {
            json_answer(
                401,
                serde_json::json!({"error": {"code": "stream.invalid_auth", "message": "no"}}),
            )
        })
        .await;
        let err = Client::new(&base)
            .upload_stream(
                &format!("{base}/?auth=U-x"),
                std::io::Cursor::new(vec![1u8; 40]),
                Some(40),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("stream.invalid_auth"));
        assert_eq!(err.status(), Some(401));

        let base = serve_once(|_, _| {
            json_answer(
                503,
                serde_json::json!({"error": {"code": "stream.not_ready", "message": "later"}}),
            )
        })
        .await;
        let mut out = Vec::new();
        let err = Client::new(&base)
            .download_stream(&format!("{base}/?auth=D-x"), &mut out)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("stream.not_ready"));
        assert!(out.is_empty());
    }

    /// A source that notes whether anything was read from it.
    struct Watched(std::sync::Arc<std::sync::atomic::AtomicBool>);

    impl AsyncRead for Watched {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            buf.put_slice(&[0; 1024]);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn an_upload_refused_before_100_continue_never_reads_its_source() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let service = service_fn(|req: http::Request<Incoming>| async move {
                assert_eq!(req.headers()["expect"], "100-continue");
                // Answered without touching the body: no `100 Continue` goes out.
                Ok::<_, Infallible>(json_answer(
                    503,
                    serde_json::json!({"error": {"code": "stream.spool_full", "message": "full"}}),
                ))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
        let read = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let err = Client::new(&base)
            .upload_stream(
                &format!("{base}/?auth=U-x"),
                Watched(read.clone()),
                Some(1 << 30),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("stream.spool_full"));
        let _ = server.await;
        assert!(
            !read.load(std::sync::atomic::Ordering::SeqCst),
            "the body was read"
        );
    }

    #[tokio::test]
    async fn a_download_is_copied_as_it_arrives() {
        let served = payload(1_500_000);
        let body = served.clone();
        let base = serve_once(move |parts, _| {
            assert_eq!(parts.method, http::Method::GET);
            http::Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap()
        })
        .await;
        let mut out = Vec::new();
        let written = Client::new(&base)
            .download_stream(&format!("{base}/?auth=D-x"), &mut out)
            .await
            .unwrap();
        assert_eq!(written, 1_500_000);
        assert_eq!(out, served);
    }

    #[tokio::test]
    async fn a_download_shorter_than_its_length_is_a_transport_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
                .await
                .unwrap();
            // Dropping the socket aborts the body after 10 of 100 bytes.
        });
        let mut out = Vec::new();
        let err = Client::new(&base)
            .download_stream(&format!("{base}/?auth=D-x"), &mut out)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
        assert_eq!(out, b"0123456789");
    }

    #[tokio::test]
    async fn a_url_without_a_host_is_refused() {
        let mut out = Vec::new();
        let err = Client::new("http://127.0.0.1:1")
            .download_stream("/?auth=D-x", &mut out)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    }
}
