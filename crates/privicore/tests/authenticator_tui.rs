//! The reference authenticator in a real terminal: the `privicore authenticator` binary runs
//! inside tmux, driven by `send-keys` and read with `capture-pane`, against a fake engine
//! device bus (hello/welcome with a genuine key confirmation, then ballots) and against the
//! real engine after `devices attach --authenticator`. Skipped, saying so, without tmux.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use privicore_wire::bus::ballots::{self, Issue, Vote, VoteResult, Withdraw};
use privicore_wire::bus::{self, Envelope, kind};
use privicore_wire::{KeyPair, SignedPublicKey};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Generous: the machine may be loaded (two cores shared with builds).
const SCREEN_WAIT: Duration = Duration::from_secs(60);
const BUS_WAIT: Duration = Duration::from_secs(60);

fn tmux_available() -> bool {
    Command::new("which")
        .arg("tmux")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A tmux server of our own (its own socket), one 120×40 session running a command.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux runs")
    }

    /// Runs `program args…` in the pane; when it exits the pane says `EXITED <code>` and stays.
    fn start(name: &str, program: &Path, args: &[&str]) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let tmux = Self {
            socket: format!(
                "privicore-{name}-{}-{}",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            ),
        };
        let quoted: Vec<String> = std::iter::once(program.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let command = format!("{}; echo EXITED $?; sleep 600", quoted.join(" "));
        let out = tmux.tmux(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            &command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tmux
    }

    fn capture(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "main"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        let out = self.tmux(&["send-keys", "-t", "main", keys]);
        assert!(out.status.success(), "send-keys {keys}");
    }

    /// Polls the pane until `ok` holds (bounded); the screen it held then.
    async fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen:\n{screen}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn skip_without_tmux(test: &str) -> bool {
    if tmux_available() {
        return false;
    }
    println!("skipped {test}: tmux is not installed");
    true
}

fn bundle(device: &str, port: u16, engine: &KeyPair, pass: &str) -> serde_json::Value {
    json!({
        "bundle-version": 1,
        "device-identifier": device,
        "device-name": "phone-1",
        "profile-id": "019c80d5-d7c0-76bb-95c4-43d783e8efcb",
        "roles": ["authenticator"],
        "client-id": "device-ace993f89a397323407338e125d1776c",
        "client-secret": "Ug8tM2v0yQJ7k9XbP4sZr1LcW6nE3fHa5dGiK8oTqVw",
        "bus": "embedded",
        "rabbit-host": "127.0.0.1",
        "rabbit-port": port,
        "rabbit-tls": false,
        "rabbit-vhost": "/",
        "rabbit-user": format!("device-{device}"),
        "rabbit-pass": pass,
        "queue": format!("privicore.device.{device}"),
        "exchange": "privicore.engine",
        "routing-key": format!("device.{device}"),
        "engine-public-key": engine.public().to_hex(),
        "engine-key-id": "cab-test",
        "api-url": format!("http://127.0.0.1:{port}"),
        "chunk-size": 1048576,
        "issued-at": "2026-02-21T15:51:00+00:00",
    })
}

fn in_seconds(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::TimeDelta::seconds(seconds))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn ballot(k_dc: &[u8; 32], id: &str, title: &str, question: &str, seconds: i64) -> Issue {
    let mut issue = Issue {
        ballot_id: id.into(),
        pool_id: uuid::Uuid::now_v7().to_string(),
        attempt: 1,
        max_attempts: 2,
        origin: "policy".into(),
        title: title.into(),
        question: question.into(),
        event: Some(json!({ "eventId": "101", "eventName": "data_token.data_exchanged" })),
        policy: Some(json!({ "name": "exchange-approval" })),
        attributes: json!({ "context": "/finance/2026", "size": 54, "classification": null }),
        requested_by: json!({ "username": "alice@example.com" }),
        strategy: "unanimous".into(),
        opened_at: in_seconds(0),
        expires_at: in_seconds(seconds),
        mac: String::new(),
    };
    issue.mac = issue.expected_mac(k_dc);
    issue
}

/// The seconds of the countdown on the line holding `title`.
fn countdown_of(screen: &str, title: &str) -> Option<i64> {
    let line = screen.lines().find(|l| l.contains(title))?;
    let text = line
        .split("expires in ")
        .nth(1)?
        .split_whitespace()
        .next()?;
    text.split(':')
        .try_fold(0i64, |acc, part| Some(acc * 60 + part.parse::<i64>().ok()?))
}

/// What the device sent, read in order; acknowledgements are collected on the way.
struct FromDevice {
    inbox: mpsc::UnboundedReceiver<Envelope>,
    acked: Vec<String>,
}

impl FromDevice {
    async fn next_of(&mut self, kind: &str) -> Envelope {
        let deadline = tokio::time::Instant::now() + BUS_WAIT;
        loop {
            let env = tokio::time::timeout_at(deadline, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} from the device"))
                .expect("the device stays connected");
            if env.kind == kind::ACK {
                self.acked
                    .extend(env.body::<bus::Ack>().unwrap().message_ids.clone());
            }
            if env.kind == kind {
                return env;
            }
        }
    }
}

const TITLE_A: &str = "Approve: Exchange data for token";
const QUESTION_A: &str = "alice@example.com wants to store 54 bytes in context /finance/2026.";
const TITLE_B: &str = "Approve: Delete data token";
const QUESTION_B: &str = "alice@example.com wants to delete dtk-a52e7045.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The handshake callback's signature (an HTTP response as its error) is tungstenite's.
#[allow(clippy::result_large_err)]
async fn the_authenticator_lists_refuses_forgeries_votes_and_drops_closed_ballots() {
    if skip_without_tmux("the_authenticator_lists_refuses_forgeries_votes_and_drops_closed_ballots")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let engine = KeyPair::generate();
    let device = uuid::Uuid::new_v4().to_string();
    let pass = "q3VnX0bK7pL2sD9fG4hJ6kM1nB8vC5xZ0aQwErTyUiO";
    let config = dir.path().join("bundle.json");
    std::fs::write(&config, bundle(&device, port, &engine, pass).to_string()).unwrap();

    let tmux = Tmux::start(
        "ballots",
        Path::new(env!("CARGO_BIN_EXE_privicore")),
        &["authenticator", "--config", config.to_str().unwrap()],
    );

    // The device connects with the bundle's bus credentials.
    let (stream, _) = tokio::time::timeout(BUS_WAIT, listener.accept())
        .await
        .expect("the authenticator connects")
        .unwrap();
    let authorization = Arc::new(Mutex::new(None::<String>));
    let seen = authorization.clone();
    let ws = tokio_tungstenite::accept_hdr_async(
        stream,
        move |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
            assert_eq!(request.uri().path(), "/device-bus");
            *seen.lock().unwrap() = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(response)
        },
    )
    .await
    .unwrap();
    use base64::Engine as _;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(format!("device-{device}:{pass}"));
    assert_eq!(
        authorization.lock().unwrap().as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
    let (mut to_device, mut from_device) = ws.split();
    let (inbox_tx, inbox) = mpsc::unbounded_channel::<Envelope>();
    tokio::spawn(async move {
        while let Some(Ok(message)) = from_device.next().await {
            if let Message::Text(text) = message {
                let env = Envelope::parse(text.as_str()).expect("the device sends envelopes");
                let _ = inbox_tx.send(env);
            }
        }
    });
    let mut from = FromDevice {
        inbox,
        acked: Vec::new(),
    };

    // Hello: the authenticator role only, and a key to derive K_dc from.
    let hello_env = from.next_of(kind::HELLO).await;
    assert_eq!(hello_env.device_identifier, device);
    let hello: bus::Hello = hello_env.body().unwrap();
    assert_eq!(hello.roles, ["authenticator"]);
    assert_eq!(hello.object_count, 0);
    let device_key = SignedPublicKey::parse(&hello.public_key).unwrap();
    let k_dc = bus::channel_key(&engine.diffie_hellman(&device_key), &device);
    let send = async |to_device: &mut futures_util::stream::SplitSink<_, Message>,
                      env: Envelope| {
        to_device
            .send(Message::Text(env.to_text().into()))
            .await
            .unwrap();
    };
    let welcome = bus::Welcome {
        device_identifier: device.clone(),
        profile_id: "019c80d5-d7c0-76bb-95c4-43d783e8efcb".into(),
        roles: vec!["authenticator".into()],
        chunk_size: 1048576,
        heartbeat_interval: 30,
        server_time: in_seconds(0),
        engine_key_id: "cab-test".into(),
        key_confirmation: bus::key_confirmation(&k_dc, &device, &hello_env.message_id),
    };
    send(
        &mut to_device,
        Envelope::new(kind::WELCOME, &device, Some(&hello_env.message_id), welcome),
    )
    .await;
    tmux.wait_for("the welcome", |s| {
        s.contains("connected · roles: authenticator")
    })
    .await;

    // A valid ballot, a forged one, the valid one again (re-sent), a second valid one.
    let id_a = uuid::Uuid::new_v4().to_string();
    let id_b = uuid::Uuid::new_v4().to_string();
    let a = ballot(&k_dc, &id_a, TITLE_A, QUESTION_A, 600);
    // Signed under another key: the MAC does not verify under K_dc.
    let forged = ballot(
        &[9; 32],
        &uuid::Uuid::new_v4().to_string(),
        "Forged ballot",
        "Let mallory in?",
        600,
    );
    let b = ballot(&k_dc, &id_b, TITLE_B, QUESTION_B, 900);
    for issue in [a.clone(), forged, a.clone(), b] {
        send(
            &mut to_device,
            Envelope::new(ballots::ISSUE, &device, None, issue),
        )
        .await;
    }
    let first = tmux
        .wait_for("both ballots and the refusal", |s| {
            s.contains(TITLE_B) && s.contains("refused a ballot whose MAC does not verify")
        })
        .await;
    assert_eq!(
        first.matches(TITLE_A).count(),
        1,
        "re-sent, not duplicated:\n{first}"
    );
    assert_eq!(first.matches(QUESTION_A).count(), 1, "{first}");
    assert!(first.contains(QUESTION_B), "{first}");
    assert!(
        first.contains(
            "attempt 1 of 2 · policy exchange-approval · requested by alice@example.com · open"
        ),
        "{first}"
    );
    assert!(first.contains("Open ballots (2)"), "{first}");
    assert!(
        first.contains("context: /finance/2026  size: 54"),
        "attributes:\n{first}"
    );
    assert!(
        !first.contains("Forged") && !first.contains("mallory"),
        "{first}"
    );
    // The countdown runs.
    let before = countdown_of(&first, TITLE_A).expect("a countdown on ballot A");
    assert!((1..=600).contains(&before), "{before}");
    tmux.wait_for("the countdown to move", |s| {
        countdown_of(s, TITLE_A).is_some_and(|now| now < before)
    })
    .await;

    // One key answers the selected (first) ballot: a vote that verifies under K_dc.
    tmux.keys("y");
    let vote_env = from.next_of(ballots::VOTE).await;
    let vote: Vote = vote_env.body().unwrap();
    assert_eq!(
        (vote.ballot_id.as_str(), vote.decision.as_str()),
        (id_a.as_str(), "yes")
    );
    assert!(vote.verifies(&k_dc), "the vote's MAC verifies under K_dc");
    tmux.wait_for("the pending vote", |s| {
        s.contains("voted yes, waiting for the engine")
    })
    .await;
    let result = Envelope::new(
        ballots::VOTE_RESULT,
        &device,
        Some(&vote_env.message_id),
        VoteResult {
            ballot_id: id_a.clone(),
            accepted: true,
            error: None,
            pool_status: Some("approved".into()),
        },
    );
    let vote_result_id = result.message_id.clone();
    send(&mut to_device, result).await;

    // Not a storage device: a fetch is refused, not served.
    let fetch = Envelope::new(
        kind::FETCH,
        &device,
        None,
        bus::Fetch {
            fetch_id: "f-1".into(),
            token: "dtk-a52e7045-d446-404b-8dd7-428059729290".into(),
            version: 1,
            from_chunk: 0,
            count: 8,
        },
    );
    let fetch_id = fetch.message_id.clone();
    send(&mut to_device, fetch).await;
    let failed = from.next_of(kind::FETCH_FAILED).await;
    assert_eq!(failed.correlation_id.as_deref(), Some(fetch_id.as_str()));
    assert_eq!(
        failed.body::<bus::FetchFailed>().unwrap().reason,
        "not_found"
    );

    // The second ballot is withdrawn: both are gone from the screen.
    send(
        &mut to_device,
        Envelope::new(
            ballots::WITHDRAW,
            &device,
            None,
            Withdraw {
                ballot_id: id_b.clone(),
                pool_id: "p".into(),
                attempt: 1,
                reason: "decided".into(),
            },
        ),
    )
    .await;
    let last = tmux
        .wait_for("both ballots to disappear", |s| {
            s.contains("No open ballots.") && !s.contains(QUESTION_A) && !s.contains(QUESTION_B)
        })
        .await;
    assert!(last.contains("Open ballots (0)"), "{last}");
    assert!(
        last.contains(&format!("voted yes, accepted (pool approved): {TITLE_A}")),
        "{last}"
    );
    assert!(
        last.contains(&format!("withdrawn (decided): {TITLE_B}")),
        "{last}"
    );
    // The device acknowledged what it handled (embedded bus).
    let acked = from.next_of(kind::ACK).await.body::<bus::Ack>().unwrap();
    assert!(!acked.message_ids.is_empty() || !from.acked.is_empty());
    assert!(
        from.acked.contains(&vote_result_id),
        "the vote result was acknowledged"
    );

    tmux.keys("q");
    tmux.wait_for("the program to quit", |s| s.contains("EXITED 0"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_attach_authenticator_writes_a_bundle_the_program_connects_with() {
    if skip_without_tmux("devices_attach_authenticator_writes_a_bundle_the_program_connects_with") {
        return;
    }
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    let bundle_path = dir.path().join("phone.json");
    let (api, ws) = (server.running().api_url(), server.ws_url());
    let username = unique_username("tui");
    let (p, b) = (profile.clone(), bundle_path.clone());
    let out = tokio::task::spawn_blocking(move || {
        let env = [("PRIVICORE_CLI_CONFIG", p.as_path())];
        run_privicore(
            &[
                "profile",
                "create",
                "--username",
                &username,
                "--password",
                PASSWORD,
                "--api",
                &api,
                "--ws",
                &ws,
            ],
            &env,
        );
        run_privicore(
            &[
                "devices",
                "attach",
                "--authenticator",
                "--name",
                "phone",
                "--bundle",
                b.to_str().unwrap(),
            ],
            &env,
        )
    })
    .await
    .unwrap();
    assert!(
        out.contains("authenticator ") && out.contains("attached"),
        "{out}"
    );
    assert!(out.contains("privicore authenticator --config"), "{out}");
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bundle_path).unwrap()).unwrap();
    assert_eq!(bundle["roles"], json!(["authenticator"]));
    assert_eq!(bundle["device-name"], "phone");
    assert_eq!(bundle["bus"], "embedded");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The program proves the real engine's key and hears its roles.
    let tmux = Tmux::start(
        "attached",
        Path::new(env!("CARGO_BIN_EXE_privicore")),
        &["authenticator", "--config", bundle_path.to_str().unwrap()],
    );
    tmux.wait_for("the engine's welcome", |s| {
        s.contains("connected · roles: authenticator") && s.contains("No open ballots.")
    })
    .await;
    let key_file = dir.path().join("phone.json.key");
    assert!(
        key_file.exists(),
        "the device key is kept next to the bundle"
    );
    tmux.keys("q");
    tmux.wait_for("the program to quit", |s| s.contains("EXITED 0"))
        .await;

    // Started again with the same key, the engine still welcomes it (the key is pinned).
    let again = Tmux::start(
        "again",
        Path::new(env!("CARGO_BIN_EXE_privicore")),
        &["authenticator", "--config", bundle_path.to_str().unwrap()],
    );
    again
        .wait_for("the welcome of a restarted authenticator", |s| {
            s.contains("connected · roles: authenticator")
        })
        .await;
    again.keys("q");
    again
        .wait_for("the program to quit", |s| s.contains("EXITED 0"))
        .await;
}

/// A unanimous voting configuration of `devices`, quorum 1, with a deadline far away.
async fn voters(p: &Provisioned, name: &str, devices: &[&str]) {
    let registered = p
        .api
        .register_voting_configuration(json!({
            "name": name, "strategy": "unanimous", "timeLimit": 3600, "deviceIdentifiers": devices,
        }))
        .await
        .unwrap();
    p.ok(&registered.command_id).await;
}

/// The pool's status as Check pool status answers it, once it is no longer `open`
/// (bounded polling).
async fn settled_pool(p: &Provisioned, pool: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + BUS_WAIT;
    loop {
        let status = p.api.check_pool_status(pool).await.unwrap();
        if status["status"] != "open" {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pool {pool} stayed open: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const HIRE_TITLE: &str = "Hire Bob?";
const HIRE_QUESTION: &str = "Hire Bob as accountant from March?";
const PRINTER_TITLE: &str = "Buy a printer?";
const PRINTER_QUESTION: &str = "Buy a colour printer for the office?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_real_engine_a_manual_ballot_is_answered_and_a_decided_one_disappears() {
    if skip_without_tmux(
        "against_the_real_engine_a_manual_ballot_is_answered_and_a_decided_one_disappears",
    ) {
        return;
    }
    let server = TestServer::start().await;
    let p = provision(&server, "tui-vote").await;
    let phone = p.authenticator("phone").await;
    let laptop = p.authenticator("laptop").await;
    voters(&p, "phone-alone", &[&phone]).await;
    voters(&p, "phone-and-laptop", &[&phone, &laptop]).await;
    let dir = tempfile::tempdir().unwrap();
    let bundle_path = dir.path().join("phone.json");
    let bundle = p.api.download_device_configuration(&phone).await.unwrap();
    std::fs::write(&bundle_path, bundle.to_string()).unwrap();

    let tmux = Tmux::start(
        "real-vote",
        Path::new(env!("CARGO_BIN_EXE_privicore")),
        &["authenticator", "--config", bundle_path.to_str().unwrap()],
    );
    tmux.wait_for("the engine's welcome", |s| {
        s.contains("connected · roles: authenticator") && s.contains("No open ballots.")
    })
    .await;

    // A manual vote put to the phone alone: the engine's ballot is on screen.
    let (command, pool) = p
        .api
        .create_voting(json!({
            "votingConfigurationId": "phone-alone",
            "title": HIRE_TITLE,
            "question": HIRE_QUESTION,
        }))
        .await
        .unwrap();
    let shown = tmux
        .wait_for("the engine's ballot", |s| {
            s.contains(HIRE_TITLE) && s.contains(HIRE_QUESTION)
        })
        .await;
    assert!(shown.contains("Open ballots (1)"), "{shown}");
    assert!(shown.contains("attempt 1 of 1 · manual"), "{shown}");
    assert_eq!(
        p.api.check_pool_status(&pool).await.unwrap()["status"],
        "open"
    );

    // The person says yes: the engine records the vote and approves the pool.
    tmux.keys("y");
    let answered = tmux
        .wait_for("the accepted vote", |s| {
            s.contains(&format!(
                "voted yes, accepted (pool approved): {HIRE_TITLE}"
            )) && s.contains("No open ballots.")
        })
        .await;
    assert!(!answered.contains(HIRE_QUESTION), "{answered}");
    let status = settled_pool(&p, &pool).await;
    assert_eq!(status["status"], "approved", "{status}");
    let vote = &status["attempts"][0]["votes"][0];
    assert_eq!(vote["decision"], "yes", "{status}");
    assert_eq!(vote["deviceIdentifier"], phone.as_str(), "{status}");
    assert_eq!(p.ok(&command).await["status"], "approved");

    // A second vote, put to both devices, is decided by the laptop's no over HTTP: the
    // engine withdraws the phone's ballot and it leaves the screen unanswered.
    let (_, printer_pool) = p
        .api
        .create_voting(json!({
            "votingConfigurationId": "phone-and-laptop",
            "title": PRINTER_TITLE,
            "question": PRINTER_QUESTION,
        }))
        .await
        .unwrap();
    tmux.wait_for("the second ballot", |s| {
        s.contains(PRINTER_TITLE) && s.contains(PRINTER_QUESTION)
    })
    .await;
    let laptop_bundle = p.api.download_device_configuration(&laptop).await.unwrap();
    let laptop_client = server
        .client()
        .with_device_credentials(
            laptop_bundle["client-id"].as_str().unwrap(),
            laptop_bundle["client-secret"].as_str().unwrap(),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + BUS_WAIT;
    let ballot = loop {
        let pending = laptop_client.pending_ballots().await.unwrap();
        if let Some(b) = pending["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["poolId"] == printer_pool.as_str())
        {
            break b["ballotId"].as_str().unwrap().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ballot for the laptop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let voted = laptop_client
        .cast_vote(json!({ "ballotId": ballot, "decision": "no" }))
        .await
        .unwrap();
    assert_eq!(voted["poolStatus"], "rejected", "{voted}");
    let last = tmux
        .wait_for("the decided ballot to disappear", |s| {
            s.contains(&format!("withdrawn (decided): {PRINTER_TITLE}"))
                && !s.contains(PRINTER_QUESTION)
        })
        .await;
    assert!(last.contains("Open ballots (0)"), "{last}");
    let status = settled_pool(&p, &printer_pool).await;
    assert_eq!(status["status"], "rejected", "{status}");
    let votes = status["attempts"][0]["votes"].as_array().unwrap();
    assert_eq!(votes.len(), 1, "only the laptop voted: {status}");

    tmux.keys("q");
    tmux.wait_for("the program to quit", |s| s.contains("EXITED 0"))
        .await;
}
