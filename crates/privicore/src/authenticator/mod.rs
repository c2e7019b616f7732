//! `privicore authenticator --config <bundle.json>`: the reference authenticator. It connects
//! to the engine's embedded bus as its device (hello, welcome with the engine's key
//! confirmation, `K_dc`), lists the open ballots put to it, and sends the person's yes or no
//! as a `ballot.vote` signed under `K_dc` (docs/api/voting-and-policy.md §6.2). It holds the
//! authenticator role only: storage requests are refused, never served.
//!
//! The bookkeeping is in `book` (pure, unit-tested), the terminal in `ui`, the bus session
//! here: [`BallotClient`] keeps a device connected and hands each verified-welcome session's
//! ballot messages to a [`BallotHandler`] (the terminal's book, or the bench's automatic
//! voter).

pub mod book;
mod ui;

use anyhow::Context;
use book::{Book, Connection, Received};
use chrono::Utc;
use privicore_storage_device::{Bundle, Link, LinkError, connect_amqp, connect_websocket};
use privicore_wire::bus::ballots::{self, Vote, VoteResult, Withdraw};
use privicore_wire::bus::{self, Envelope, kind};
use privicore_wire::{KeyPair, SignedPublicKey};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The device key pair's file next to the bundle unless told otherwise.
pub fn default_key_file(config: &Path) -> PathBuf {
    let mut name = config.file_name().unwrap_or_default().to_os_string();
    name.push(".key");
    config.with_file_name(name)
}

/// The device key pair: the engine pins the public half at the first hello, so it is kept
/// (mode 0600) and reused; a new bundle unpins it.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<KeyPair> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return KeyPair::from_private_hex(text.trim())
            .with_context(|| format!("{} does not hold a device key", path.display()));
    }
    let keys = KeyPair::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, keys.private_hex().as_bytes())?;
    file.sync_all()?;
    Ok(keys)
}

/// Message ids seen lately (delivery is at least once).
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    const REMEMBERED: usize = 10_000;

    fn first_time(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > Self::REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

/// How one session ended.
enum End {
    Quit,
    /// Refused, revoked, or the welcome did not prove the engine key: no retry.
    Final(String),
    Lost(String),
}

struct Device {
    id: String,
    keys: KeyPair,
    channel_key: [u8; 32],
}

/// What a session does with what the engine sends an authenticator. Called only for
/// messages of a session whose welcome proved the engine's key (except the connection
/// state), and at most once per message id.
pub trait BallotHandler: Send {
    /// The connection's state changed.
    fn connection(&mut self, connection: Connection);
    /// The engine's welcome proved its key.
    fn welcomed(&mut self, roles: Vec<String>, server_time: &str);
    /// `device.roles_changed`.
    fn roles(&mut self, roles: Vec<String>);
    /// A `ballot.issue`: the vote to send at once, if any. The handler checks its MAC.
    fn issue(&mut self, issue: ballots::Issue) -> Option<Vote>;
    fn withdraw(&mut self, withdraw: &Withdraw);
    fn vote_result(&mut self, result: &VoteResult);
    /// A one-line notice (a refused storage request).
    fn notice(&mut self, text: &str);
}

/// The terminal's handler: the book it draws.
struct Shared(Arc<Mutex<Book>>);

impl BallotHandler for Shared {
    fn connection(&mut self, connection: Connection) {
        lock(&self.0).connection = connection;
    }
    fn welcomed(&mut self, roles: Vec<String>, server_time: &str) {
        lock(&self.0).welcomed(roles, server_time, Utc::now());
    }
    fn roles(&mut self, roles: Vec<String>) {
        lock(&self.0).set_roles(roles);
    }
    fn issue(&mut self, issue: ballots::Issue) -> Option<Vote> {
        match lock(&self.0).issue(issue, Utc::now()) {
            Received::Resend(vote) => Some(vote),
            _ => None,
        }
    }
    fn withdraw(&mut self, withdraw: &Withdraw) {
        lock(&self.0).withdraw(withdraw);
    }
    fn vote_result(&mut self, result: &VoteResult) {
        lock(&self.0).vote_result(result);
    }
    fn notice(&mut self, text: &str) {
        lock(&self.0).notice(text);
    }
}

/// An authenticator device's bus client: its bundle, its key pair and the channel key
/// `K_dc` they give with the engine's key.
pub struct BallotClient {
    device: Device,
    bundle: Bundle,
}

impl BallotClient {
    /// A client for `bundle` (embedded bus or AMQP) with the device key pair `keys`.
    pub fn new(bundle: Bundle, keys: KeyPair) -> anyhow::Result<Self> {
        if bundle.bus != "embedded" && bundle.bus != "amqp" {
            anyhow::bail!(
                "unknown bus {:?} in the bundle (embedded or amqp)",
                bundle.bus
            );
        }
        let engine_key = SignedPublicKey::parse(&bundle.engine_public_key)
            .map_err(|e| anyhow::anyhow!("engine-public-key: {e}"))?;
        let channel_key =
            bus::channel_key(&keys.diffie_hellman(&engine_key), &bundle.device_identifier);
        let device = Device {
            id: bundle.device_identifier.clone(),
            keys,
            channel_key,
        };
        Ok(Self { device, bundle })
    }

    /// `K_dc`: ballots must verify under it, votes are signed with it.
    pub fn channel_key(&self) -> [u8; 32] {
        self.device.channel_key
    }

    pub fn device_identifier(&self) -> &str {
        &self.device.id
    }

    /// Keeps the device connected (reconnecting with a backoff) until `quit` or a final
    /// end (refused, revoked, or a welcome that does not prove the engine's key); `votes`
    /// are sent as they come, on a welcomed session.
    pub async fn run(
        self,
        mut handler: impl BallotHandler,
        votes: mpsc::UnboundedReceiver<Vote>,
        quit: CancellationToken,
    ) {
        stay_connected(self.device, self.bundle, &mut handler, votes, quit).await;
    }
}

impl Device {
    fn envelope(
        &self,
        kind: &str,
        correlation: Option<&str>,
        body: impl serde::Serialize + Send + Sync + 'static,
    ) -> Envelope {
        Envelope::new(kind, &self.id, correlation, body)
    }

    fn hello(&self) -> Envelope {
        self.envelope(
            kind::HELLO,
            None,
            bus::Hello {
                public_key: self.keys.public().to_hex(),
                software: bus::Software {
                    name: "privicore-authenticator".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
                roles: vec!["authenticator".into()],
                capacity: no_capacity(),
                object_count: 0,
            },
        )
    }

    /// The answer to a storage request: this program keeps no objects.
    fn refuse_storage(&self, env: &Envelope) -> Option<Envelope> {
        let cid = Some(env.message_id.as_str());
        Some(match env.kind.as_str() {
            kind::STORE_CHUNK => {
                let c = env.body::<serde_json::Value>()?;
                self.envelope(
                    kind::STORE_FAILED,
                    cid,
                    bus::StoreFailed {
                        transfer_id: c["transferId"].as_str()?.to_owned(),
                        token: c["token"].as_str()?.to_owned(),
                        version: c["version"].as_u64()? as u32,
                        reason: "io_error".into(),
                    },
                )
            }
            kind::FETCH => {
                let f = env.body::<bus::Fetch>()?;
                self.envelope(
                    kind::FETCH_FAILED,
                    cid,
                    bus::FetchFailed {
                        fetch_id: f.fetch_id,
                        token: f.token,
                        version: f.version,
                        chunk_index: None,
                        reason: "not_found".into(),
                    },
                )
            }
            kind::DELETE => {
                let d = env.body::<bus::Delete>()?;
                self.envelope(
                    kind::DELETED,
                    cid,
                    bus::Deleted {
                        delete_id: d.delete_id,
                        token: d.token,
                        versions_removed: Vec::new(),
                    },
                )
            }
            kind::INVENTORY_REQUEST => {
                let r = env.body::<bus::InventoryRequest>()?;
                self.envelope(
                    kind::INVENTORY,
                    cid,
                    bus::Inventory {
                        sync_id: r.sync_id,
                        items: Vec::new(),
                        cursor: None,
                        capacity: no_capacity(),
                    },
                )
            }
            _ => return None,
        })
    }
}

fn no_capacity() -> bus::Capacity {
    bus::Capacity {
        bytes_used: 0,
        bytes_free: 0,
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One session on `link`: hello, the welcome check, then ballots until the link ends.
async fn session(
    device: &Device,
    mut link: impl Link,
    handler: &mut impl BallotHandler,
    votes: &mut mpsc::UnboundedReceiver<Vote>,
    seen: &mut Seen,
    quit: &CancellationToken,
) -> End {
    let hello = device.hello();
    let hello_id = hello.message_id.clone();
    if let Err(error) = link.send(hello).await {
        return End::Lost(error.to_string());
    }
    handler.connection(Connection::Handshake);
    let mut welcomed = false;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
    heartbeat.reset();
    let result: Result<End, LinkError> = async {
        loop {
            tokio::select! {
                _ = quit.cancelled() => {
                    link.close().await;
                    return Ok(End::Quit);
                }
                _ = heartbeat.tick(), if welcomed => {
                    let beat = bus::Heartbeat { capacity: no_capacity(), object_count: 0 };
                    link.send(device.envelope(kind::HEARTBEAT, None, beat)).await?;
                }
                Some(vote) = votes.recv(), if welcomed => {
                    link.send(device.envelope(ballots::VOTE, None, vote)).await?;
                }
                next = link.recv() => {
                    let Some(env) = next else { return Err(LinkError::Closed) };
                    let id = env.message_id.clone();
                    if env.v == bus::PROTOCOL_VERSION && seen.first_time(&id) {
                        match env.kind.as_str() {
                            kind::WELCOME => {
                                let genuine = env.body::<bus::Welcome>().filter(|w| {
                                    bus::verify_key_confirmation(
                                        &device.channel_key,
                                        &device.id,
                                        &hello_id,
                                        &w.key_confirmation,
                                    )
                                });
                                let Some(welcome) = genuine else {
                                    link.close().await;
                                    return Ok(End::Final(
                                        "the engine's welcome does not prove its key; disconnected (check engine-public-key in the bundle)".into(),
                                    ));
                                };
                                welcomed = true;
                                let every = Duration::from_secs(welcome.heartbeat_interval.clamp(5, 300));
                                heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                                handler.welcomed(welcome.roles, &welcome.server_time);
                            }
                            kind::REJECTED | kind::REVOKED => {
                                let reason = env.body::<bus::Reason>().map(|r| r.reason).unwrap_or_default();
                                let what = if env.kind == kind::REJECTED { "refused" } else { "revoked" };
                                return Ok(End::Final(format!("the engine {what} this device: {reason}")));
                            }
                            kind::ROLES_CHANGED => {
                                if let Some(roles) = env.body::<bus::Roles>() {
                                    handler.roles(roles.roles);
                                }
                            }
                            // Ballots count only on a session whose welcome proved the key.
                            ballots::ISSUE if welcomed => {
                                if let Some(issue) = env.body::<ballots::Issue>()
                                    && let Some(vote) = handler.issue(issue)
                                {
                                    link.send(device.envelope(ballots::VOTE, None, vote)).await?;
                                }
                            }
                            ballots::WITHDRAW if welcomed => {
                                if let Some(withdraw) = env.body::<Withdraw>() {
                                    handler.withdraw(&withdraw);
                                }
                            }
                            ballots::VOTE_RESULT if welcomed => {
                                if let Some(result) = env.body::<VoteResult>() {
                                    handler.vote_result(&result);
                                }
                            }
                            _ => {
                                if let Some(refusal) = device.refuse_storage(&env) {
                                    handler.notice("refused a storage request: this program stores nothing");
                                    link.send(refusal).await?;
                                }
                            }
                        }
                    }
                    link.handled().await?;
                    if link.wants_acks() {
                        let ack = bus::Ack { message_ids: vec![id] };
                        link.send(device.envelope(kind::ACK, None, ack)).await?;
                    }
                }
            }
        }
    }
    .await;
    result.unwrap_or_else(|error| End::Lost(error.to_string()))
}

/// Keeps the device connected, reconnecting with a backoff, until `quit` or a final end.
async fn stay_connected(
    device: Device,
    bundle: Bundle,
    handler: &mut impl BallotHandler,
    mut votes: mpsc::UnboundedReceiver<Vote>,
    quit: CancellationToken,
) {
    let url = bundle.embedded_bus_url();
    let mut seen = Seen {
        ids: HashSet::new(),
        order: VecDeque::new(),
    };
    let mut backoff = Duration::from_millis(200);
    while !quit.is_cancelled() {
        handler.connection(Connection::Connecting);
        let ended = match bundle.bus.as_str() {
            "amqp" => match connect_amqp(&bundle).await {
                Ok(link) => Ok(session(&device, link, handler, &mut votes, &mut seen, &quit).await),
                Err(error) => Err(error),
            },
            _ => match connect_websocket(&url, &bundle.rabbit_user, &bundle.rabbit_pass).await {
                Ok(link) => Ok(session(&device, link, handler, &mut votes, &mut seen, &quit).await),
                Err(error) => Err(error),
            },
        };
        let why = match ended {
            Ok(End::Quit) => return,
            Ok(End::Final(reason)) => {
                handler.connection(Connection::Ended(reason));
                return;
            }
            Ok(End::Lost(reason)) => {
                backoff = Duration::from_millis(200);
                reason
            }
            Err(error) => error.to_string(),
        };
        handler.connection(Connection::Lost(why));
        tokio::select! {
            _ = quit.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Runs the authenticator in this terminal until the person quits.
pub async fn run(config: &Path, key_file: Option<&Path>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let bundle = Bundle::from_json(&text).context("parsing the device bundle")?;
    let key_file = key_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_key_file(config));
    let title = format!("{} ({})", bundle.device_name, bundle.device_identifier);
    // The bundle is checked before the key file is created.
    if bundle.bus != "embedded" && bundle.bus != "amqp" {
        anyhow::bail!(
            "unknown bus {:?} in the bundle (embedded or amqp)",
            bundle.bus
        );
    }
    SignedPublicKey::parse(&bundle.engine_public_key)
        .map_err(|e| anyhow::anyhow!("engine-public-key: {e}"))?;
    let keys = load_or_create_key(&key_file)?;
    let client = BallotClient::new(bundle, keys)?;
    let book = Arc::new(Mutex::new(Book::new(client.channel_key())));
    let (vote_tx, vote_rx) = mpsc::unbounded_channel();
    let quit = CancellationToken::new();
    let network = tokio::spawn(client.run(Shared(book.clone()), vote_rx, quit.clone()));
    let ui_book = book.clone();
    let drawn = tokio::task::spawn_blocking(move || ui::run(&ui_book, &vote_tx, &title)).await;
    quit.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), network).await;
    drawn.context("the terminal task failed")??;
    Ok(())
}
