//! The web console at `/console`, driven in headless Chromium through chromedriver: sign
//! in, upload a file encrypted in the browser, see its token, download it back byte for
//! byte, synchronize a device, and look at votes and live events. Screenshots go to
//! `<target>/console-screenshots`. Without Chromium and chromedriver the browser test says
//! it was skipped.

mod common;

use common::*;
use fantoccini::{Client as Browser, ClientBuilder, Locator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the page gets for each step it shows (real time: the page's own work).
const UI_WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    let base = server.running().api_url();
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let res = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(!csp.contains("https:"), "nothing from the internet: {csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let page = http
        .get(format!("{base}/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let missing = http
        .get(format!("{base}/console/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request.unknown_route");
    let posted = http.post(format!("{base}/console")).send().await.unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["allow"], "GET,HEAD");
    let body: Value = posted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request.method_not_allowed");
}

/// `(chromium, chromedriver)` when both are installed.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.is_file())
    };
    Some((
        find(&["chromium", "chromium-browser", "google-chrome"])?,
        find(&["chromedriver"])?,
    ))
}

/// `<target>/console-screenshots`, beside the test binary's `<target>/debug/deps`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_browser(
    chromium: &Path,
    chromedriver: &Path,
    downloads: &Path,
    profile: &Path,
) -> (Driver, Browser) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        }),
    );
    // chromedriver takes a moment to listen after it starts.
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let connected =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
        match connected {
            Ok(browser) => return (driver, browser),
            Err(e) if Instant::now() > deadline => panic!("chromedriver never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until `script` (a function body) returns something other than null or false.
async fn until(browser: &Browser, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + UI_WAIT;
    loop {
        let value = browser.execute(script, vec![]).await.unwrap();
        if !value.is_null() && value != Value::Bool(false) {
            return value;
        }
        if Instant::now() > deadline {
            let status: Value = browser
                .execute(
                    "return [...document.querySelectorAll('.status')].map(s => s.id + ': ' + s.textContent)",
                    vec![],
                )
                .await
                .unwrap_or_default();
            if let Ok(png) = browser.screenshot().await {
                let _ = std::fs::write(screenshot_dir().join("failed.png"), png);
            }
            panic!("the page never showed {what}; status lines: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(browser: &Browser, dir: &Path, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(name), png).unwrap();
}

async fn click(browser: &Browser, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(browser: &Browser, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// The server on ephemeral ports, with the console's own origin allowed to read from the
/// download listener (payloads above the inline delivery limit come from there).
async fn server_with_console_cors() -> TestServer {
    let bind = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        listener
    };
    let (api, ws) = (bind(), bind());
    let origin = format!("http://{}", api.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.api.cors_origins = vec![origin];
    let startup = privicore::server::Startup {
        root: None,
        listeners: Some((api, ws)),
    };
    let server = privicore::server::Server::start_with(&settings, startup)
        .await
        .unwrap();
    TestServer {
        server: Some(server),
        dir,
    }
}

/// Uploads `name` through the page and returns its token.
async fn upload(browser: &Browser, file: &Path) -> String {
    browser
        .find(Locator::Css("#upload-file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    click(browser, "#upload-submit").await;
    let stored = until(
        browser,
        "the stored token",
        "const s = document.getElementById('upload-status'); \
         return s.classList.contains('ok') && s.textContent.startsWith('Stored') ? s.textContent \
           : (s.classList.contains('error') ? 'ERROR ' + s.textContent : null)",
    )
    .await;
    let stored = stored.as_str().unwrap();
    assert!(stored.starts_with("Stored "), "{stored}");
    let token = stored.rsplit(' ').next().unwrap().to_owned();
    assert!(token.starts_with("dtk-"), "{token}");
    // The next upload waits for its own status line.
    browser
        .execute(
            "document.getElementById('upload-status').className = 'status'",
            vec![],
        )
        .await
        .unwrap();
    token
}

/// Downloads `token` through the page; the SHA-256 the page computed and the saved file.
async fn download(
    browser: &Browser,
    token: &str,
    downloads: &Path,
    name: &str,
) -> (String, Vec<u8>) {
    browser
        .execute(
            "delete document.getElementById('download-status').dataset.sha256",
            vec![],
        )
        .await
        .unwrap();
    click(browser, &format!("button.download[data-token=\"{token}\"]")).await;
    let digest = until(
        browser,
        "the decrypted download",
        "const s = document.getElementById('download-status'); return s.dataset.sha256 || (s.classList.contains('error') ? 'ERROR ' + s.textContent : null)",
    )
    .await;
    let saved = downloads.join(name);
    let deadline = Instant::now() + UI_WAIT;
    while !saved.is_file() {
        assert!(
            Instant::now() < deadline,
            "no {name} in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (
        digest.as_str().unwrap().to_owned(),
        std::fs::read(&saved).unwrap(),
    )
}

#[tokio::test]
async fn a_file_goes_through_the_console_encrypted_and_comes_back_exact() {
    let Some((chromium, chromedriver)) = browser_binaries() else {
        println!(
            "console browser test skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let server = server_with_console_cors().await;
    let alice = provision(&server, "console").await;
    let devices = alice.attach_devices(&["nas-1"]).await;
    let shots = screenshot_dir();
    let scratch = tempfile::tempdir().unwrap();
    let downloads = scratch.path().join("downloads");
    let chrome_profile = scratch.path().join("chrome");
    std::fs::create_dir_all(&downloads).unwrap();
    let (_driver, browser) =
        start_browser(&chromium, &chromedriver, &downloads, &chrome_profile).await;

    // Sign in.
    browser
        .goto(&format!("{}/console", server.running().api_url()))
        .await
        .unwrap();
    until(&browser, "the sign-in form", "return document.getElementById('login-form') !== null && !document.getElementById('login').hidden").await;
    screenshot(&browser, &shots, "01-sign-in.png").await;
    type_into(&browser, "#username", &alice.username).await;
    type_into(&browser, "#password", PASSWORD).await;
    click(&browser, "#login-submit").await;
    let who = until(
        &browser,
        "the signed-in profile",
        "const t = document.getElementById('signed-in').textContent; return t || null",
    )
    .await;
    assert!(
        who.as_str().unwrap().contains(&alice.profile_id),
        "{who} names the profile"
    );
    until(
        &browser,
        "the joined event channel",
        "return document.getElementById('ws-state').textContent === 'events: joined'",
    )
    .await;

    // Upload: 40,000 bytes, so the delivery comes back inline (≤ 64 KiB).
    let plaintext = random_payload(40_000);
    let file = scratch.path().join("quarterly-report.bin");
    std::fs::write(&file, &plaintext).unwrap();
    type_into(&browser, "#upload-context", "/console/test").await;
    let token = upload(&browser, &file).await;

    // Listed on the page and by the API, with its name, context and size.
    until(
        &browser,
        "the token in the list",
        &format!(
            "return document.querySelector('#tokens-table tr[data-token=\"{token}\"]') !== null"
        ),
    )
    .await;
    let listed = alice
        .api
        .list_data_tokens(&format!("?filters[token]={token}"))
        .await
        .unwrap();
    let item = &listed["items"][0];
    assert_eq!(item["context"], "/console/test");
    assert_eq!(item["meta"]["file"]["fileName"], "quarterly-report.bin");
    assert_eq!(item["meta"]["file"]["size"], 40_000);
    assert_eq!(
        item["storedSize"],
        40_000 + 28,
        "IV and tag around the file"
    );
    screenshot(&browser, &shots, "02-uploaded.png").await;

    // What the engine holds is the CLI's layer-1 payload under the browser's key.
    let key_hex = browser
        .execute(
            &format!(
                "return localStorage.getItem('privicore.console.key.{}')",
                alice.profile_id
            ),
            vec![],
        )
        .await
        .unwrap();
    let mut key = [0u8; 32];
    hex::decode_to_slice(key_hex.as_str().unwrap(), &mut key).unwrap();
    // The key file the page exports carries the same key, as the CLI writes it (hex).
    click(&browser, "#key-export").await;
    let key_file = downloads.join(format!("privicore-key-{}.json", alice.profile_id));
    let deadline = Instant::now() + UI_WAIT;
    while !key_file.is_file() {
        assert!(
            Instant::now() < deadline,
            "no key file in {}",
            downloads.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exported: Value = serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    assert_eq!(exported["kind"], "privicore-data-key");
    assert_eq!(exported["dataKey"], key_hex);
    let payload = alice.fetch(&token).await;
    assert_ne!(
        &payload[12..payload.len() - 16],
        &plaintext[..],
        "sent encrypted"
    );
    assert_eq!(privicore::cli::decrypt(&key, &payload).unwrap(), plaintext);

    // Size filters run in the page: a minimum above the file hides it.
    type_into(&browser, "#filter-min-size", "40001").await;
    click(&browser, "#filter-apply").await;
    until(
        &browser,
        "the size filter",
        &format!(
            "return document.querySelector('#tokens-table tr[data-token=\"{token}\"]') === null"
        ),
    )
    .await;
    type_into(&browser, "#filter-min-size", "40000").await;
    click(&browser, "#filter-apply").await;
    until(
        &browser,
        "the token again",
        &format!(
            "return document.querySelector('#tokens-table tr[data-token=\"{token}\"]') !== null"
        ),
    )
    .await;

    // Download: decrypted in the page, saved to the download folder.
    let (digest, saved) = download(&browser, &token, &downloads, "quarterly-report.bin").await;
    assert_eq!(digest, hex::encode(Sha256::digest(&plaintext)));
    assert_eq!(saved, plaintext, "the exact bytes");
    screenshot(&browser, &shots, "03-downloaded.png").await;

    // Above the inline delivery limit (64 KiB) the payload comes from the download
    // listener once it is ready.
    let large = random_payload(300_000);
    let large_file = scratch.path().join("scan.pdf");
    std::fs::write(&large_file, &large).unwrap();
    let large_token = upload(&browser, &large_file).await;
    until(
        &browser,
        "the second token",
        &format!("return document.querySelector('#tokens-table tr[data-token=\"{large_token}\"]') !== null"),
    )
    .await;
    let (digest, saved) = download(&browser, &large_token, &downloads, "scan.pdf").await;
    assert_eq!(digest, hex::encode(Sha256::digest(&large)));
    assert_eq!(saved, large, "the exact bytes, streamed");

    // Over the inline exchange limit the page refuses before sending anything.
    let huge_file = scratch.path().join("huge.bin");
    std::fs::write(&huge_file, vec![7u8; 1024 * 1024]).unwrap();
    browser
        .find(Locator::Css("#upload-file"))
        .await
        .unwrap()
        .send_keys(huge_file.to_str().unwrap())
        .await
        .unwrap();
    click(&browser, "#upload-submit").await;
    let refused = until(
        &browser,
        "the size refusal",
        "const s = document.getElementById('upload-status'); return s.classList.contains('error') ? s.textContent : null",
    )
    .await;
    assert!(
        refused.as_str().unwrap().contains("privicore store"),
        "{refused}"
    );
    let all = alice
        .api
        .list_data_tokens("?filters[status]=all")
        .await
        .unwrap();
    assert_eq!(
        all["meta"]["total"], 2,
        "nothing reserved for the refused file"
    );

    // Storage devices: listed with their state; a sync runs to its result.
    click(&browser, "#tabs button[data-tab=devices]").await;
    let device = &devices[0];
    until(
        &browser,
        "the storage device",
        &format!(
            "return document.querySelector('#devices-table tr[data-device=\"{device}\"]') !== null"
        ),
    )
    .await;
    click(
        &browser,
        &format!("tr[data-device=\"{device}\"] button.sync"),
    )
    .await;
    let synced = until(
        &browser,
        "the sync result",
        "const s = document.getElementById('devices-status'); return s.classList.contains('ok') ? s.textContent : (s.classList.contains('error') ? 'ERROR ' + s.textContent : null)",
    )
    .await;
    assert!(
        synced.as_str().unwrap().contains("synchronized"),
        "{synced}"
    );
    screenshot(&browser, &shots, "04-devices.png").await;

    // Votes and policies: an authenticator, a policy, and a vote held open for it.
    alice.authenticator("alice-phone").await;
    let configured = alice
        .api
        .register_voting_configuration(
            json!({ "name": "approvers", "strategy": "unanimous", "timeLimit": 300 }),
        )
        .await
        .unwrap();
    alice.ok(&configured.command_id).await;
    let policy = alice
        .api
        .register_policy(json!({
            "name": "finance-retrieval", "policyTemplateId": 2, "applyingEventIds": "201",
            "configuration": { "context": "/finance/*" }, "votingConfigurationId": "approvers"
        }))
        .await
        .unwrap();
    alice.ok(&policy.command_id).await;
    alice
        .api
        .create_voting(json!({
            "votingConfigurationId": "approvers", "title": "Open the console to the team?",
            "question": "Should the team use the web console?"
        }))
        .await
        .unwrap();
    click(&browser, "#tabs button[data-tab=governance]").await;
    until(
        &browser,
        "the vote, the policy and the authenticator",
        "const t = id => document.getElementById(id).textContent; \
         return t('pools-list').includes('Open the console to the team?') \
           && t('policies-table').includes('finance-retrieval') \
           && t('authenticators-table').includes('alice-phone')",
    )
    .await;
    screenshot(&browser, &shots, "05-votes-and-policies.png").await;

    click(&browser, "#tabs button[data-tab=events]").await;
    let events = until(
        &browser,
        "the live events",
        "const n = document.querySelectorAll('#events-log li').length; return n > 0 ? n : null",
    )
    .await;
    assert!(events.as_u64().unwrap() >= 5, "{events} events");
    let log: Value = browser
        .execute(
            "return document.getElementById('events-log').textContent",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        log.as_str().unwrap().contains("X-DPT-CAB-REQUEST-ID"),
        "the delivery is in the log"
    );
    screenshot(&browser, &shots, "06-live-events.png").await;

    // Signing out revokes the page's token and shows the form again.
    let page_token = browser
        .execute(
            "return JSON.parse(sessionStorage.getItem('privicore.console.session')).token",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#signout").await;
    until(
        &browser,
        "the sign-in form again",
        "return !document.getElementById('login').hidden && sessionStorage.getItem('privicore.console.session') === null",
    )
    .await;
    let revoked = server
        .client()
        .with_token(page_token.as_str().unwrap())
        .list_data_tokens("")
        .await;
    assert!(revoked.is_err(), "the page's token is revoked: {revoked:?}");

    browser.close().await.unwrap();
    println!("console screenshots: {}", shots.display());
}
