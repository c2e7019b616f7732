use crate::api::*;
use crate::error::ClientError;
use bytes::Bytes;
pub use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for one request, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP answer, whatever its status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code of an error envelope.
    pub fn error_code(&self) -> Option<String> {
        self.json()["error"]["code"].as_str().map(str::to_owned)
    }

    pub(crate) fn into_error(self) -> ClientError {
        let body = self.json();
        match body["error"]["code"].as_str() {
            Some(code) => ClientError::Api {
                status: self.status,
                code: code.to_owned(),
                message: body["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                field: body["error"]["field"].as_str().map(str::to_owned),
            },
            None => ClientError::Unexpected {
                status: self.status,
                body: String::from_utf8_lossy(&self.body).into_owned(),
            },
        }
    }

    pub(crate) fn expect<T: DeserializeOwned>(self, status: u16) -> Result<T, ClientError> {
        if self.status != status {
            return Err(self.into_error());
        }
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Unexpected {
            status: self.status,
            body: format!("{e}: {}", String::from_utf8_lossy(&self.body)),
        })
    }

    pub(crate) fn accepted(self) -> Result<Accepted, ClientError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            command_id: String,
        }
        let header_id = self.header("x-dpt-cab-id").map(str::to_owned);
        let replayed = self.header("idempotent-replayed") == Some("true");
        let body: Body = self.expect(202)?;
        Ok(Accepted {
            command_id: body.command_id,
            header_id,
            replayed,
        })
    }
}

pub(crate) fn transport(e: impl std::error::Error) -> ClientError {
    // The source chain says why (refused, reset, TLS); the top level only "client error".
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    ClientError::Transport(message)
}

/// TCP (no delay, connect timeout) with TLS for `https` URLs, HTTP/1.1.
pub(crate) fn connector() -> HttpsConnector<HttpConnector> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp)
}

/// A body to send.
pub enum Body<'a> {
    Empty,
    Form(&'a [(&'a str, &'a str)]),
    Json(Value),
    Raw {
        content_type: &'a str,
        bytes: Vec<u8>,
    },
}

type Transport = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// HTTP client for the API listener. Cheap to clone.
///
/// Built on hyper's pooled client: the API is plain HTTP/1.1 request and answer, and a
/// fuller client's layers (redirects, retries, URL re-parsing) cost more per request than
/// the request itself in the benchmark. Redirects are answered, never followed (the
/// authorization header is a custom one, which would travel wherever a redirect points).
#[derive(Clone)]
pub struct Client {
    http: Transport,
    base: String,
    token: Option<String>,
    idempotency_key: Option<String>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        let http =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector());
        Self {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            token: None,
            idempotency_key: None,
            headers: Vec::new(),
        }
    }

    /// The same client, authenticated with `token` (`X-DPT-AUTHORIZATION`).
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// The same client, sending `Idempotency-Key: key` with every POST: a repeated request
    /// gets the original reply instead of running again (docs/api/README.md §4.7).
    pub fn with_idempotency_key(&self, key: &str) -> Self {
        Self {
            idempotency_key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// The same client, sending `name: value` with every request (an `Origin`, or the
    /// `X-Forwarded-For` a proxy in front of the engine would add).
    pub fn with_header(&self, name: &str, value: &str) -> Result<Self, ClientError> {
        let bad = |e: &dyn std::fmt::Display| ClientError::Transport(format!("header {name}: {e}"));
        let name = http::HeaderName::try_from(name).map_err(|e| bad(&e))?;
        let value = http::HeaderValue::try_from(value).map_err(|e| bad(&e))?;
        let mut client = self.clone();
        client.headers.push((name, value));
        Ok(client)
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The headers added with [`Client::with_header`].
    pub(crate) fn extra_headers(&self) -> &[(http::HeaderName, http::HeaderValue)] {
        &self.headers
    }

    /// The base joined with `path` (which may carry a query).
    fn uri(&self, path: &str) -> Result<http::Uri, ClientError> {
        let path = path.strip_suffix('?').unwrap_or(path);
        format!("{}{}", self.base, path)
            .parse::<http::Uri>()
            .ok()
            .filter(|uri| uri.scheme().is_some() && uri.host().is_some())
            .ok_or_else(|| ClientError::Transport(format!("not a URL: {}{path}", self.base)))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<http::Request<Full<Bytes>>, ClientError> {
        let is_post = method == Method::POST;
        let mut req = http::Request::builder().method(method).uri(self.uri(path)?);
        if let Some(token) = &self.token {
            req = req.header("X-DPT-AUTHORIZATION", token);
        }
        if let Some(key) = self.idempotency_key.as_ref().filter(|_| is_post) {
            req = req.header("Idempotency-Key", key);
        }
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let (content_type, bytes) = match body {
            Body::Empty => (None, Vec::new()),
            Body::Form(pairs) => {
                let encoded = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish();
                (
                    Some("application/x-www-form-urlencoded"),
                    encoded.into_bytes(),
                )
            }
            Body::Json(value) => (
                Some("application/json"),
                serde_json::to_vec(&value).expect("a JSON value serializes"),
            ),
            Body::Raw {
                content_type,
                bytes,
            } => (Some(content_type), bytes),
        };
        if let Some(content_type) = content_type {
            req = req.header(http::header::CONTENT_TYPE, content_type);
        }
        req.body(Full::new(Bytes::from(bytes)))
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// Any request, answered whatever the status (for tests and tools).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<RawResponse, ClientError> {
        let req = self.request(method, path, body)?;
        let exchange = async {
            let res = self.http.request(req).await.map_err(transport)?;
            let (parts, body) = res.into_parts();
            let body = body.collect().await.map_err(transport)?.to_bytes();
            Ok(RawResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.to_vec(),
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout(format!("the answer to {path}")))?
    }

    pub async fn get(&self, path: &str) -> Result<RawResponse, ClientError> {
        self.send(Method::GET, path, Body::Empty).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        self.send(Method::POST, path, Body::Form(pairs)).await
    }

    pub async fn post_json(&self, path: &str, value: Value) -> Result<RawResponse, ClientError> {
        self.send(Method::POST, path, Body::Json(value)).await
    }

    pub async fn health(&self) -> Result<Value, ClientError> {
        self.get("/health").await?.expect(200)
    }

    pub async fn request_status(&self, command_id: &str) -> Result<RequestStatus, ClientError> {
        let res = self
            .post_json(&format!("/request-status/{command_id}"), json!({}))
            .await?;
        let status = res.status;
        if status != 200 && status != 202 {
            return Err(res.into_error());
        }
        let body: Vec<Value> = res.expect(status)?;
        Ok(match body.first().and_then(Value::as_str) {
            Some("started") => RequestStatus::Started,
            Some("succeeded") => RequestStatus::Succeeded(body.get(1).cloned()),
            Some("failed") => RequestStatus::Failed(
                body.get(1)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            _ => {
                return Err(ClientError::Unexpected {
                    status,
                    body: Value::Array(body).to_string(),
                });
            }
        })
    }

    /// Polls `/request-status` every 100 ms until the command ends (for callers without a
    /// WebSocket, such as a profile that is still being registered).
    pub async fn poll_command(
        &self,
        command_id: &str,
        timeout: Duration,
    ) -> Result<RequestStatus, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.request_status(command_id).await? {
                RequestStatus::Started if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                RequestStatus::Started => return Err(ClientError::Timeout(command_id.to_owned())),
                done => return Ok(done),
            }
        }
    }

    pub async fn register_profile(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Accepted, ClientError> {
        self.post_form(
            "/profile/register-profile",
            &[("username", username), ("password", password)],
        )
        .await?
        .accepted()
    }

    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Authenticated, ClientError> {
        self.post_form(
            "/profile/authenticate",
            &[("username", username), ("password", password)],
        )
        .await?
        .expect(200)
    }

    pub async fn authenticate_qr(&self, qr_token: &str) -> Result<Authenticated, ClientError> {
        self.post_form("/profile/authenticate", &[("qrToken", qr_token)])
            .await?
            .expect(200)
    }

    pub async fn retrieve_profile_id(&self) -> Result<ProfileInfo, ClientError> {
        self.get("/profile/retrieve-profile-id").await?.expect(200)
    }

    pub async fn change_password(
        &self,
        current: &str,
        new: &str,
        revoke_tokens: bool,
    ) -> Result<Accepted, ClientError> {
        self.post_json(
            "/profile/change-password",
            json!({ "currentPassword": current, "newPassword": new, "revokeTokens": revoke_tokens }),
        )
        .await?
        .accepted()
    }

    pub async fn generate_qr_token(&self, ttl: Option<i64>) -> Result<QrToken, ClientError> {
        let body = ttl.map_or_else(|| json!({}), |ttl| json!({ "ttl": ttl }));
        self.post_json("/profile/generate-token-qr", body)
            .await?
            .expect(200)
    }

    pub async fn reauthorize(&self, ttl: Option<i64>) -> Result<TokenGrant, ClientError> {
        let body = ttl.map_or_else(|| json!({}), |ttl| json!({ "ttl": ttl }));
        self.post_json("/profile/reauthorize-authorization-token", body)
            .await?
            .expect(200)
    }

    pub async fn revoke(&self) -> Result<Value, ClientError> {
        self.send(
            Method::POST,
            "/profile/revoke-authorization-token",
            Body::Empty,
        )
        .await?
        .expect(200)
    }

    pub async fn token_expiry(&self) -> Result<TokenExpiry, ClientError> {
        self.send(
            Method::POST,
            "/profile/authorization-token/expiry",
            Body::Empty,
        )
        .await?
        .expect(200)
    }

    pub async fn generate_keys(&self) -> Result<GeneratedKeys, ClientError> {
        self.get("/generate-keys").await?.expect(200)
    }

    pub async fn register_public_key(&self, signed_key: &str) -> Result<Accepted, ClientError> {
        self.post_form(
            "/public-key/register-public-key",
            &[("publicKey", signed_key)],
        )
        .await?
        .accepted()
    }

    pub async fn retrieve_public_key(&self) -> Result<PublicKeyInfo, ClientError> {
        self.get("/public-key/retrieve-public-key")
            .await?
            .expect(200)
    }

    pub async fn cab_public_key(&self) -> Result<CabKey, ClientError> {
        self.get("/dptcab/public-key").await?.expect(200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, path: &str) -> String {
        Client::new(base)
            .uri(path)
            .map(|uri| uri.to_string())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn request_urls_join_the_base_and_the_path() {
        let base = "http://127.0.0.1:8009/";
        assert_eq!(url(base, "/health"), "http://127.0.0.1:8009/health");
        assert_eq!(
            url(base, "/data-token/list?page=2&filters[status]=all"),
            "http://127.0.0.1:8009/data-token/list?page=2&filters[status]=all"
        );
        assert_eq!(url(base, "/health?"), "http://127.0.0.1:8009/health");
        // A base with a path prefix keeps it.
        assert_eq!(
            url("https://vault.example.com/privicore", "/health"),
            "https://vault.example.com/privicore/health"
        );
        assert!(url("not a url", "/health").starts_with("error"));
    }

    #[tokio::test]
    async fn an_https_base_speaks_tls_and_reports_a_failed_handshake() {
        use tokio::io::AsyncReadExt;
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 5];
            socket.read_exact(&mut hello).await.unwrap();
            hello
        });
        let err = Client::new(&base).get("/health").await.unwrap_err();
        assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
        // A TLS handshake record (type 22) arrived, not a plain HTTP request.
        assert_eq!(server.await.unwrap()[0], 22);
    }

    #[tokio::test]
    async fn a_redirect_is_answered_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::TcpListener;
        let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = elsewhere.local_addr().unwrap();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", api.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = api.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target}/steal\r\nContent-Length: 0\r\n\r\n"
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
        });
        let res = Client::new(&base)
            .with_token("secret-token")
            .get("/health")
            .await
            .unwrap();
        assert_eq!(res.status, 307);
        let contacted = tokio::time::timeout(Duration::from_millis(200), elsewhere.accept()).await;
        assert!(contacted.is_err(), "the redirect target was contacted");
    }
}
