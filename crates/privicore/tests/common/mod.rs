//! Shared test harness: the real server on ephemeral loopback ports, and profiles
//! provisioned exactly as docs/api/flows.md §1 describes, through `privicore-client`.
#![allow(dead_code)]

mod bus;
mod directory;
mod external;
mod governance;
mod oauth;

#[allow(unused_imports)]
pub use bus::*;
#[allow(unused_imports)]
pub use directory::*;
#[allow(unused_imports)]
pub use external::*;
#[allow(unused_imports)]
pub use governance::*;
#[allow(unused_imports)]
pub use oauth::*;
use privicore::config::{Listener, RateLimits, Settings};
use privicore::server::Server;
use privicore_client::{Client, KeyPair, RequestStatus, Session};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(20);

/// Runs the real `privicore` binary, which must succeed; its standard output.
pub fn run_privicore(args: &[&str], env: &[(&str, &std::path::Path)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_privicore"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
}

/// The metadata store of engines on `dir`: with `PRIVICORE_TEST_STORE=postgres`, a
/// PostgreSQL schema of their own (the same one for every start on `dir`), else the
/// embedded store in `dir`.
pub fn database_url_for(dir: &std::path::Path) -> Option<String> {
    privicore_store_postgres::testing::harness_url()
        .map(|server| privicore_store_postgres::testing::schema_url_for_dir(&server, dir))
}

/// Whether the harness runs engines on PostgreSQL.
pub fn on_postgres() -> bool {
    privicore_store_postgres::testing::harness_url().is_some()
}

/// The metadata store of a stopped engine on `dir`, opened for a test to look into.
pub async fn open_store(dir: &std::path::Path) -> privicore::store::Store {
    privicore::store::Store::open(&test_settings(dir))
        .await
        .unwrap()
}

/// Runs one SQL statement on the metadata database of the engine on `dir` (whichever
/// store it uses), for tests that damage stored data on purpose.
pub async fn execute_sql(dir: &std::path::Path, sql: &str) {
    match database_url_for(dir) {
        Some(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        None => {
            let db = rusqlite::Connection::open(dir.join("privicore.db")).unwrap();
            db.busy_timeout(Duration::from_secs(5)).unwrap();
            db.execute(sql, []).unwrap();
        }
    }
}

/// Ephemeral ports, a private data directory, rate limits off; the metadata store as
/// `database_url_for` says.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let defaults = Settings::default();
    Settings {
        data_dir: dir.to_path_buf(),
        database_url: database_url_for(dir),
        api: Listener {
            port: 0,
            ..defaults.api
        },
        ws: Listener {
            port: 0,
            ..defaults.ws
        },
        upstream: Listener {
            port: 0,
            ..defaults.upstream
        },
        downstream: Listener {
            port: 0,
            ..defaults.downstream
        },
        rate_limits: RateLimits {
            registrations_per_hour: 0,
            failed_logins_per_15min: 0,
            generate_keys_per_minute: 0,
            requests_per_token_per_minute: 0,
            unauthenticated_per_minute: 0,
        },
        ..Settings::default()
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        adjust(&mut settings);
        let server = Server::start(&settings).await.unwrap();
        Self {
            server: Some(server),
            dir,
        }
    }

    pub fn running(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.running().api_url())
    }

    pub fn ws_url(&self) -> String {
        self.running().ws_url()
    }

    pub fn api_ws_url(&self) -> String {
        format!("ws://{}/ws", self.running().api_addr)
    }

    pub async fn session(&self) -> Session {
        Session::connect(&self.ws_url()).await.unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again on the same data directory (new ephemeral ports).
    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await;
    }

    /// Like `restart`, with settings adjusted as `start_with` does (a clock, limits).
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Settings)) {
        self.stop().await;
        let mut settings = test_settings(self.dir.path());
        adjust(&mut settings);
        self.server = Some(Server::start(&settings).await.unwrap());
    }
}

pub fn unique_username(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}@example.com",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub const PASSWORD: &str = "correct-horse-battery";

/// A profile after flow 1: registered, authenticated, joined, key registered.
pub struct Provisioned {
    pub username: String,
    pub profile_id: String,
    pub token: String,
    pub api: Client,
    pub session: Session,
    pub keys: KeyPair,
}

/// Steps 1–3 of flow 1: register, poll without a token, authenticate.
pub async fn register_and_login(server: &TestServer, username: &str) -> (String, String) {
    login_at(&server.client(), username).await
}

async fn login_at(api: &Client, username: &str) -> (String, String) {
    let accepted = api.register_profile(username, PASSWORD).await.unwrap();
    assert_eq!(
        accepted.header_id.as_deref(),
        Some(accepted.command_id.as_str())
    );
    let status = api.poll_command(&accepted.command_id, WAIT).await.unwrap();
    assert_eq!(
        status,
        RequestStatus::Succeeded(None),
        "no result without a token"
    );
    let auth = api.authenticate(username, PASSWORD).await.unwrap();
    assert_eq!(
        auth.profile_id, accepted.command_id,
        "profileId equals the register command id"
    );
    assert!(!auth.public_key_registered);
    (auth.profile_id, auth.authorization_token)
}

/// The whole of flow 1, with a WebSocket joined before the key command.
pub async fn provision(server: &TestServer, prefix: &str) -> Provisioned {
    provision_at(&server.running().api_url(), &server.ws_url(), prefix).await
}

/// Flow 1 against any engine (in-process or the real binary).
pub async fn provision_at(api_url: &str, ws_url: &str, prefix: &str) -> Provisioned {
    let username = unique_username(prefix);
    let (profile_id, token) = login_at(&Client::new(api_url), &username).await;
    let session = Session::connect(ws_url).await.unwrap();
    session.join(&token).await.unwrap();
    let api = Client::new(api_url).with_token(&token);
    let keys = KeyPair::generate();
    let accepted = api
        .register_public_key(&keys.public().to_hex())
        .await
        .unwrap();
    let result = acked(&session, &accepted.command_id).await;
    assert_eq!(result["publicKey"], keys.public().to_hex());
    assert_eq!(result["replaced"], false);
    Provisioned {
        username,
        profile_id,
        token,
        api,
        session,
        keys,
    }
}

impl Provisioned {
    /// Flow 5 for each name: request, approve, register as storage (hosted by the engine).
    pub async fn attach_devices(&self, names: &[&str]) -> Vec<String> {
        let mut ids = Vec::new();
        for name in names {
            ids.push(
                self.api
                    .attach_storage_device(&self.session, name)
                    .await
                    .unwrap(),
            );
        }
        ids
    }

    /// Waits until `n` replicas of the token's current version are confirmed.
    pub async fn wait_confirmed(&self, token: &str, n: u64) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let list = self
                .api
                .list_data_tokens(&format!("?filters[token]={token}&filters[status]=all"))
                .await
                .unwrap();
            if list["items"][0]["replicas"]["confirmed"].as_u64() == Some(n) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "replicas never confirmed: {list}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a command's final outcome on the socket.
    pub async fn outcome(&self, command_id: &str) -> privicore_client::CommandOutcome {
        self.session.wait_command(command_id, WAIT).await.unwrap()
    }

    /// Flow 3: stores `data` under `context`, which must succeed; the new token.
    pub async fn store(&self, context: &str, data: &[u8]) -> String {
        let (token, _) = self
            .api
            .store_payload(&self.session, context, data)
            .await
            .unwrap();
        token
    }

    /// Flow 4a: the payload of a token, which must be retrievable.
    pub async fn fetch(&self, token: &str) -> Vec<u8> {
        self.api.fetch_payload(&self.session, token).await.unwrap()
    }

    /// The command's result, which must be a success.
    pub async fn ok(&self, command_id: &str) -> serde_json::Value {
        acked(&self.session, command_id).await
    }
}

impl TestServer {
    pub fn device_dir(&self, device: &str) -> std::path::PathBuf {
        self.dir.path().join("devices").join(device)
    }
}

/// The result of a command that must succeed, from the socket.
pub async fn acked(session: &Session, command_id: &str) -> serde_json::Value {
    session
        .wait_command(command_id, WAIT)
        .await
        .unwrap()
        .result()
        .unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn random_payload(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

/// Whether a device data directory holds a live copy of `token` version 1.
pub fn held_on_device(device_dir: &std::path::Path, token: &str) -> bool {
    privicore_storage_device::ObjectStore::locate(device_dir, token, 1)
        .unwrap()
        .is_some()
}

/// Flips a byte inside the stored copy of `token` version 1 on a device.
pub fn damage_on_device(device_dir: &std::path::Path, token: &str) {
    let at = privicore_storage_device::ObjectStore::locate(device_dir, token, 1)
        .unwrap()
        .expect("the device holds the object");
    let mut bytes = std::fs::read(&at.segment).unwrap();
    bytes[(at.offset + at.len - 5) as usize] ^= 0x55;
    std::fs::write(&at.segment, bytes).unwrap();
}
