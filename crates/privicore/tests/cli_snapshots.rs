//! Snapshots of the CLI (insta): the help of every top-level command, and what the listing
//! commands and `status` print against the real server, ids, times, ports and the
//! username redacted. Update with `cargo insta review` (or `INSTA_UPDATE=always`).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const TOP_LEVEL: &[&str] = &[
    "status",
    "completions",
    "tokens",
    "serve",
    "storage-device",
    "authenticator",
    "profile",
    "devices",
    "store",
    "fetch",
    "app",
    "directory",
    "bench",
    "operator",
    "audit",
];

/// The binary with a clean environment (help shows `[env: …]` values), no colour.
fn privicore(args: &[&str], profile: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_privicore"));
    command.env_clear().env("NO_COLOR", "1").args(args);
    if let Some(file) = profile {
        command.env("PRIVICORE_CLI_CONFIG", file);
    }
    command.output().unwrap()
}

fn stdout_of(args: &[&str], profile: Option<&Path>) -> String {
    let out = privicore(args, profile);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

macro_rules! redacted {
    ($($body:tt)*) => {
        insta::with_settings!({filters => vec![
            (r"snap-[0-9a-f]{32}@example\.com", "[username]"),
            (r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "[id]"),
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}", "[time]"),
            (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
            (r"version \d+\.\d+\.\d+", "version [version]"),
            (r#""version": "\d+\.\d+\.\d+""#, r#""version": "[version]""#),
        ]}, { $($body)* });
    };
}

#[test]
fn help_of_every_top_level_command() {
    insta::assert_snapshot!("help", stdout_of(&["--help"], None));
    for command in TOP_LEVEL {
        insta::assert_snapshot!(
            format!("help_{command}"),
            stdout_of(&[command, "--help"], None)
        );
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout_of(&["completions", shell], None);
        assert!(script.contains("privicore"), "{shell}");
        assert!(script.contains("tokens"), "{shell}: subcommands completed");
    }
    let bad = privicore(&["completions", "tcsh"], None);
    assert!(!bad.status.success());
}

#[test]
fn an_unreachable_engine_says_what_to_do() {
    let out = privicore(&["status", "--api", "http://127.0.0.1:9"], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("engine at http://127.0.0.1:9 unreachable"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: is `privicore serve` running"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    let out = privicore(&["tokens", "list"], Some(&missing));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        stderr.contains("hint: not signed in: run `privicore profile create"),
        "{stderr}"
    );
}

#[tokio::test]
async fn listings_and_status_against_the_real_server() {
    let server = TestServer::start().await;
    let (api, ws) = (server.running().api_url(), server.ws_url());
    let dir = server.dir.path().to_path_buf();
    let username = format!("snap-{}@example.com", uuid::Uuid::new_v4().simple());
    tokio::task::spawn_blocking(move || {
        let path = dir.join("cli.json");
        let profile = Some(path.as_path());
        let status = stdout_of(&["status", "--api", &api], None);
        redacted!(insta::assert_snapshot!("status_not_signed_in", status));

        stdout_of(
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
            profile,
        );
        stdout_of(&["devices", "attach", "--count", "2"], profile);
        let file = dir.join("invoice-0042.txt");
        std::fs::write(&file, "an invoice worth keeping private").unwrap();
        let token = stdout_of(
            &[
                "store",
                file.to_str().unwrap(),
                "--context",
                "/finance/2026",
            ],
            profile,
        );
        let other = dir.join("note.md");
        std::fs::write(&other, "a note that is not about money at all").unwrap();
        stdout_of(
            &["store", other.to_str().unwrap(), "--context", "/notes"],
            profile,
        );

        redacted!(insta::assert_snapshot!(
            "tokens_list_finance",
            stdout_of(&["tokens", "list", "--context", "/finance/*"], profile)
        ));
        let listed: Value = serde_json::from_str(&stdout_of(
            &["tokens", "list", "--extension", "MD", "--json"],
            profile,
        ))
        .unwrap();
        assert_eq!(listed["meta"]["total"], 1, "{listed}");
        assert_eq!(listed["items"][0]["context"], "/notes");
        let all: Value = serde_json::from_str(&stdout_of(
            &["tokens", "list", "--per-page", "1", "--json"],
            profile,
        ))
        .unwrap();
        assert_eq!(all["meta"]["total"], 2);
        assert!(
            stdout_of(&["tokens", "list", "--per-page", "1"], profile).contains("1 of 2 shown")
        );

        // Devices made in one second list in id order, which is random: rows sorted.
        let listed = stdout_of(&["devices", "list"], profile);
        let mut rows: Vec<&str> = listed.lines().collect();
        rows[1..].sort_by_key(|row| row.split_whitespace().nth(1).unwrap_or_default().to_owned());
        redacted!(insta::assert_snapshot!("devices_list", rows.join("\n")));
        let devices: Value =
            serde_json::from_str(&stdout_of(&["devices", "list", "--json"], profile)).unwrap();
        assert_eq!(devices["meta"]["total"], 2);

        // Wait for both replicas before the status snapshot, so it is stable.
        let deadline = std::time::Instant::now() + WAIT;
        let token = token.trim().to_owned();
        loop {
            let listed: Value = serde_json::from_str(&stdout_of(
                &["tokens", "list", "--token", &token, "--json"],
                profile,
            ))
            .unwrap();
            if listed["items"][0]["replicas"]["confirmed"] == 2 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{listed}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let status = stdout_of(&["status"], profile);
        redacted!(insta::assert_snapshot!("status", status));
        let report: Value =
            serde_json::from_str(&stdout_of(&["status", "--json"], profile)).unwrap();
        assert_eq!(report["engine"]["status"], "ok");
        assert_eq!(report["storageDevices"].as_array().unwrap().len(), 2);

        // Credentials the engine refuses: the hint says to sign in again.
        let mut saved: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        saved["password"] = "not-the-password".into();
        std::fs::write(&path, saved.to_string()).unwrap();
        let out = privicore(&["tokens", "list"], profile);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success());
        assert!(
            stderr.contains("hint: the engine refused the saved credentials"),
            "{stderr}"
        );
    })
    .await
    .unwrap();
}
