//! The engine on RabbitMQ (`bus_url`) with a storage device as its own process on an AMQP
//! bundle: stores and fetches through the broker, and nothing acknowledged is lost when
//! the broker connections of the engine and the device drop mid-load; an authenticator on an
//! AMQP bundle votes. Skipped, and said so, without PRIVICORE_TEST_AMQP_URL.

mod common;

use common::*;
use privicore::authenticator::book::{Book, Connection};
use privicore::authenticator::{BallotClient, BallotHandler};
use privicore::bus::BusUrl;
use privicore_bus_amqp::{BrokerAddress, Names, remove_topology};
use privicore_client::KeyPair;
use privicore_storage_device::Bundle;
use privicore_wire::bus::ballots::Vote;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

fn broker_url(test: &str) -> Option<String> {
    match std::env::var("PRIVICORE_TEST_AMQP_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("{test}: skipped, PRIVICORE_TEST_AMQP_URL is not set");
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("privicore-test-{}", uuid::Uuid::new_v4().simple())
}

/// An engine on the broker; devices get `device_url` in their bundles.
async fn engine_on(url: &str, device_url: &str, prefix: &str) -> TestServer {
    let (url, device_url, prefix) = (url.to_owned(), device_url.to_owned(), prefix.to_owned());
    TestServer::start_with(move |s| {
        s.bus_url = Some(BusUrl(url));
        s.bus_device_url = Some(BusUrl(device_url));
        s.bus_prefix = prefix;
        s.storage.host_devices = false;
    })
    .await
}

/// Request, approve and register a storage device; its AMQP bundle is written to a file.
async fn amqp_device(alice: &Provisioned, dir: &std::path::Path, prefix: &str) -> External {
    let requested = alice.api.request_device("nas-amqp").await.unwrap();
    let device = acked(&alice.session, &requested.command_id).await;
    let id = device["deviceIdentifier"].as_str().unwrap().to_owned();
    let approved = alice.api.approve_device(&id).await.unwrap();
    acked(&alice.session, &approved.command_id).await;
    let bundle = alice.api.download_device_configuration(&id).await.unwrap();
    assert_eq!(bundle["bus"], "amqp");
    assert_eq!(bundle["queue"], format!("{prefix}.device.{id}"));
    assert_eq!(bundle["exchange"], format!("{prefix}.engine"));
    assert_eq!(bundle["routing-key"], format!("device.{id}"));
    assert_eq!(bundle["rabbit-host"], "127.0.0.1");
    let registered = alice.api.register_storage(&id).await.unwrap();
    alice.ok(&registered.command_id).await;
    let path = dir.join("nas-amqp.json");
    std::fs::write(&path, bundle.to_string()).unwrap();
    External {
        id,
        bundle: path,
        data_dir: dir.join("nas-amqp-data"),
    }
}

#[tokio::test]
async fn a_device_process_on_an_amqp_bundle_stores_and_returns_objects() {
    let Some(url) = broker_url("a_device_process_on_an_amqp_bundle") else {
        return;
    };
    let prefix = unique_prefix();
    let server = engine_on(&url, &url, &prefix).await;
    let alice = provision(&server, "amqp").await;
    let device = amqp_device(&alice, server.dir.path(), &prefix).await;
    let mut process = device_process(&device.bundle, &device.data_dir);
    wait_online(&alice.api, 1).await;

    for size in [100, 64 * 1024] {
        let data = random_payload(size);
        let token = alice.store(&format!("/amqp/{size}"), &data).await;
        alice.wait_confirmed(&token, 1).await;
        assert_eq!(alice.fetch(&token).await, data, "{size} bytes");
    }
    // Several chunks, uploaded and downloaded as streams.
    let data = random_payload(3 * 1024 * 1024 + 17);
    let token = upload(&alice, &data).await;
    alice.wait_confirmed(&token, 1).await;
    assert_eq!(alice.fetch(&token).await, data, "a streamed object");

    process.kill().unwrap();
    process.wait().unwrap();
    wait_offline(&alice.api, 1).await;
    remove_topology(&url, &Names::new(&prefix), &[&device.id])
        .await
        .unwrap();
}

/// Reserves, uploads `data` through the upstream listener and waits for the exchange.
async fn upload(p: &Provisioned, data: &[u8]) -> String {
    let reserved = p
        .api
        .reserve_token_space("/amqp/stream", None)
        .await
        .unwrap();
    let token = p.ok(&reserved.command_id).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let temporary = p
        .api
        .temporary_data_token(&reserved.command_id)
        .await
        .unwrap();
    let accepted = p
        .api
        .upload_stream(
            temporary["streamUrl"].as_str().unwrap(),
            std::io::Cursor::new(data.to_vec()),
            Some(data.len() as u64),
        )
        .await
        .unwrap();
    assert_eq!(accepted.token, token);
    p.ok(&accepted.command_id).await;
    token
}

/// A TCP relay to the broker whose connections the test can cut while it keeps
/// accepting new ones.
struct Relay {
    port: u16,
    open: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn to(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tasks = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap().push(relay);
            }
        });
        Self { port, open, accept }
    }

    /// Drops every relayed connection at once, as a broker restart or a network cut would.
    fn cut(&self) -> usize {
        let open: Vec<_> = self.open.lock().unwrap().drain(..).collect();
        let n = open.iter().filter(|t| !t.is_finished()).count();
        for task in open {
            task.abort();
        }
        n
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_when_the_broker_connections_drop_mid_load() {
    let Some(url) = broker_url("nothing_acknowledged_is_lost") else {
        return;
    };
    let broker = BrokerAddress::parse(&url).unwrap();
    let relay = Relay::to(format!("{}:{}", broker.host, broker.port)).await;
    // The engine and the device both reach the broker through the relay.
    let engine_url = url.replacen(
        &format!("@{}:{}", broker.host, broker.port),
        &format!("@127.0.0.1:{}", relay.port),
        1,
    );
    assert_ne!(engine_url, url, "the URL names host and port");
    let prefix = unique_prefix();
    let server = engine_on(&engine_url, &engine_url, &prefix).await;
    let alice = provision(&server, "amqp-cut").await;
    let device = amqp_device(&alice, server.dir.path(), &prefix).await;
    let mut process = device_process(&device.bundle, &device.data_dir);
    wait_online(&alice.api, 1).await;

    const STORES: usize = 40;
    let done = AtomicUsize::new(0);
    let mut stored = Vec::new();
    let load = async {
        for i in 0..STORES {
            let data = random_payload(1000 + i * 97);
            let result = alice
                .api
                .store_payload(&alice.session, &format!("/cut/{i}"), &data)
                .await;
            done.fetch_add(1, Ordering::SeqCst);
            stored.push((result, data));
        }
    };
    let cut = async {
        while done.load(Ordering::SeqCst) < STORES / 4 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        relay.cut()
    };
    let ((), cut_connections) = tokio::join!(load, cut);
    assert!(
        cut_connections >= 1,
        "the engine's connection went through the relay"
    );

    let mut acknowledged = 0;
    for (result, data) in &stored {
        // A store the engine acknowledged (its command succeeded) must come back whole.
        if let Ok((token, _)) = result {
            acknowledged += 1;
            alice.wait_confirmed(token, 1).await;
            assert_eq!(&alice.fetch(token).await, data);
        }
    }
    assert_eq!(
        acknowledged,
        STORES,
        "every store succeeds across the reconnect: {:?}",
        stored
            .iter()
            .filter_map(|(r, _)| r.as_ref().err().map(|e| e.to_string()))
            .collect::<Vec<_>>()
    );

    process.kill().unwrap();
    process.wait().unwrap();
    remove_topology(&url, &Names::new(&prefix), &[&device.id])
        .await
        .unwrap();
}

/// Answers every ballot "yes" at once, as a person pressing the key would.
struct SaysYes(Book);

impl BallotHandler for SaysYes {
    fn connection(&mut self, connection: Connection) {
        self.0.connection = connection;
    }
    fn welcomed(&mut self, roles: Vec<String>, server_time: &str) {
        self.0.welcomed(roles, server_time, chrono::Utc::now());
    }
    fn roles(&mut self, roles: Vec<String>) {
        self.0.set_roles(roles);
    }
    fn issue(&mut self, issue: privicore_wire::bus::ballots::Issue) -> Option<Vote> {
        let ballot = issue.ballot_id.clone();
        self.0.issue(issue, chrono::Utc::now());
        while self.0.selected().map(|b| b.issue.ballot_id.as_str()) != Some(ballot.as_str()) {
            self.0.select(1);
        }
        self.0.vote(true, chrono::Utc::now())
    }
    fn withdraw(&mut self, withdraw: &privicore_wire::bus::ballots::Withdraw) {
        self.0.withdraw(withdraw);
    }
    fn vote_result(&mut self, result: &privicore_wire::bus::ballots::VoteResult) {
        self.0.vote_result(result);
    }
    fn notice(&mut self, _: &str) {}
}

#[tokio::test]
async fn an_authenticator_on_an_amqp_bundle_gets_its_ballot_and_its_vote_decides() {
    let Some(url) = broker_url("an_authenticator_on_an_amqp_bundle") else {
        return;
    };
    let prefix = unique_prefix();
    let server = engine_on(&url, &url, &prefix).await;
    let p = provision(&server, "amqp-vote").await;
    let phone = p.authenticator("phone").await;
    let bundle = p.api.download_device_configuration(&phone).await.unwrap();
    assert_eq!(bundle["bus"], "amqp");
    let bundle = Bundle::from_json(&bundle.to_string()).unwrap();
    let client = BallotClient::new(bundle, KeyPair::generate()).unwrap();
    let handler = SaysYes(Book::new(client.channel_key()));
    let (_votes, no_votes) = tokio::sync::mpsc::unbounded_channel();
    let quit = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(client.run(handler, no_votes, quit.clone()));

    let configured = p
        .api
        .register_voting_configuration(serde_json::json!({
            "name": "approvers", "strategy": "unanimous", "timeLimit": 300,
        }))
        .await
        .unwrap();
    p.ok(&configured.command_id).await;
    let (command, pool) = p
        .api
        .create_voting(serde_json::json!({
            "votingConfigurationId": "approvers",
            "title": "Ship?",
            "question": "Ship the release?",
        }))
        .await
        .unwrap();
    // The ballot goes out when the authenticator is welcomed, whichever comes first.
    let result = p.ok(&command).await;
    assert_eq!(result["status"], "approved");
    let status = p.api.check_pool_status(&pool).await.unwrap();
    assert_eq!(
        status["attempts"][0]["votes"][0]["deviceIdentifier"],
        phone.as_str()
    );

    quit.cancel();
    running.await.unwrap();
    remove_topology(&url, &Names::new(&prefix), &[&phone])
        .await
        .unwrap();
}
