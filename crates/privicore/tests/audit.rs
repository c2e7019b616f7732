//! The audit log as an operator meets it: decisions made through the API on the real
//! binary, `privicore audit verify` and `tail` run beside it and after it stopped, and the
//! database edited behind the engine's back (as someone with write access to the file
//! alone could), which `verify` must name by the first bad seq.

mod common;
mod engine_process;

use common::*;
use engine_process::*;
use privicore_client::{Client, CommandOutcome, KeyPair, Session};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `privicore audit …` on `data_dir` with the given root key (or none): exit code and
/// everything it printed.
fn audit(data_dir: &Path, root_key: Option<&str>, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_privicore"));
    command
        .arg("audit")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PRIVICORE_ROOT_KEY")
        .env_remove("PRIVICORE_ROOT_KEY_FILE")
        .env_remove("PRIVICORE_DATABASE_URL");
    if let Some(key) = root_key {
        command.env("PRIVICORE_ROOT_KEY", key);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn verify(data_dir: &Path) -> (i32, String) {
    audit(data_dir, Some(ROOT_KEY), &["verify"])
}

/// A copy of the stopped engine's data directory, edited with `sql` (the append-only
/// triggers dropped first, as anyone editing the file can).
fn tampered(original: &Path, into: &Path, sql: &str) {
    copy_dir(original, into);
    let db = rusqlite::Connection::open(into.join("privicore.db")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete;",
    )
    .unwrap();
    db.execute_batch(sql).unwrap();
}

fn kinds(tail: &str) -> Vec<String> {
    tail.lines()
        .map(|l| l.split(' ').nth(2).unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn verify_and_tail_show_decisions_and_name_the_first_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start_embedded(&data, Some(ROOT_KEY));

    // Decisions as a client makes them: a public key (1), two devices approved and given
    // the storage role (2..=5), one removed (6).
    let p = provision_at(&engine.api, &engine.ws, "audit").await;
    let devices = p.attach_devices(&["a", "b"]).await;
    let removal = p.api.remove_device(&devices[1], true).await.unwrap();
    p.ok(&removal.command_id).await;

    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log intact: 6 records"), "{out}");

    let (code, tail) = audit(&data, None, &["tail", "-n", "4"]);
    assert_eq!(code, 0, "{tail}");
    assert_eq!(
        kinds(&tail),
        [
            "storage.registered",
            "device.approved",
            "storage.registered",
            "device.removed"
        ],
        "{tail}"
    );
    let last = tail.lines().last().unwrap();
    assert!(last.starts_with("#6 "), "{last}");
    assert!(
        last.contains(&format!("actor=profile:{}", p.profile_id)),
        "{last}"
    );
    assert!(
        last.contains(&format!("subject=device:{}", devices[1])),
        "{last}"
    );
    assert!(last.contains("outcome=removed"), "{last}");
    assert!(last.contains(&removal.command_id), "{last}");
    let (_, all) = audit(&data, None, &["tail", "-n", "100"]);
    assert_eq!(all.lines().count(), 6);
    assert!(
        all.lines()
            .next()
            .unwrap()
            .contains("public_key.registered")
    );

    // --follow prints a decision made while it runs.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_privicore"))
        .args(["audit", "tail", "-n", "1", "--follow", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if line_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The last record printed: the follower has read the log and now waits for more.
    let shown = line_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(shown.starts_with("#6 "), "{shown}");
    let replaced = p
        .api
        .register_public_key(&KeyPair::generate().public().to_hex())
        .await
        .unwrap();
    p.ok(&replaced.command_id).await;
    let line = line_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(line.starts_with("#7 "), "{line}");
    assert!(line.contains("public_key.registered"), "{line}");
    assert!(line.contains("outcome=replaced"), "{line}");

    // Without the root key, or with another one, nothing is claimed either way.
    let (code, out) = audit(&data, None, &["verify"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no root key"), "{out}");
    let (code, out) = audit(&data, Some(OTHER_KEY), &["verify"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("does not open"), "{out}");

    drop(p.session);
    assert!(terminate(engine).success());
    let (code, out) = verify(&data);
    assert_eq!(code, 0, "a stopped engine's log verifies too: {out}");
    assert!(out.contains("7 records"), "{out}");

    // One byte of one record's details.
    let edited = dir.path().join("edited");
    tampered(
        &data,
        &edited,
        "UPDATE audit_log SET details = replace(details, 'register_storage', 'register_storagf') WHERE seq = 3",
    );
    let (code, out) = verify(&edited);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 3"), "{out}");
    assert!(out.contains("altered"), "{out}");
    assert!(out.contains("records 1..=2 verified"), "{out}");

    // The outcome of a decision.
    let reversed = dir.path().join("reversed");
    tampered(
        &data,
        &reversed,
        "UPDATE audit_log SET outcome = 'rejected' WHERE seq = 2",
    );
    let (code, out) = verify(&reversed);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2"), "{out}");

    // A record deleted from the middle.
    let deleted = dir.path().join("deleted");
    tampered(&data, &deleted, "DELETE FROM audit_log WHERE seq = 4");
    let (code, out) = verify(&deleted);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 4"), "{out}");
    assert!(out.contains("missing"), "{out}");

    // Two records trading places (their contents, under the same seqs).
    let swapped = dir.path().join("swapped");
    tampered(
        &data,
        &swapped,
        "UPDATE audit_log SET seq = 100 WHERE seq = 2;
         UPDATE audit_log SET seq = 2 WHERE seq = 5;
         UPDATE audit_log SET seq = 5 WHERE seq = 100;",
    );
    let (code, out) = verify(&swapped);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 2"), "{out}");

    // A record inserted before record 3 (the rest renumbered to make room).
    let inserted = dir.path().join("inserted");
    tampered(
        &data,
        &inserted,
        "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3;
         UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100;
         INSERT INTO audit_log (seq, at, profile_id, kind, actor, subject, outcome, details, prev_hash, hash)
           SELECT 3, at, profile_id, 'device.approved', actor, 'device:forged', 'approved', details, hash, hash
           FROM audit_log WHERE seq = 2;",
    );
    let (code, out) = verify(&inserted);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 3"), "{out}");

    // The last records cut off; the sealed head still names record 7.
    let truncated = dir.path().join("truncated");
    tampered(&data, &truncated, "DELETE FROM audit_log WHERE seq >= 6");
    let (code, out) = verify(&truncated);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 6"), "{out}");
    assert!(out.contains("cut off"), "{out}");

    // ... and the head moved back to match, without the key.
    let rehead = dir.path().join("rehead");
    tampered(
        &data,
        &rehead,
        "DELETE FROM audit_log WHERE seq >= 6;
         UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5);",
    );
    let (code, out) = verify(&rehead);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 5"), "{out}");
    assert!(out.contains("sealed head"), "{out}");

    // The untouched original still verifies.
    assert_eq!(verify(&data).0, 0);
}

/// Authenticator roles, voting rules and every policy change are decisions the log keeps,
/// and the chain over them verifies.
#[tokio::test]
async fn governance_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start_embedded(&data, Some(ROOT_KEY));
    let p = provision_at(&engine.api, &engine.ws, "governed").await;
    let authenticator = p.authenticator("phone").await;
    let quorum = p.api.set_quorum_size(1).await.unwrap();
    p.ok(&quorum.command_id).await;
    let registered = p
        .api
        .register_policy(serde_json::json!({
            "name": "exchange-approval", "policyTemplateId": "1", "applyingEventIds": ["101"],
            "configuration": { "scope": "profile" }
        }))
        .await
        .unwrap();
    let policy = registered.command_id.clone();
    p.ok(&policy).await;
    for change in [
        p.api.activate_policy(&policy).await.unwrap(),
        p.api.deactivate_policy(&policy).await.unwrap(),
        p.api.delete_policy(&policy).await.unwrap(),
    ] {
        p.ok(&change.command_id).await;
    }

    let (code, out) = verify(&data);
    assert_eq!(code, 0, "{out}");
    let (_, tail) = audit(&data, None, &["tail", "-n", "6"]);
    assert_eq!(
        kinds(&tail),
        [
            "authenticator.registered",
            "voting.defaults_changed",
            "policy.registered",
            "policy.activated",
            "policy.deactivated",
            "policy.deleted"
        ],
        "{tail}"
    );
    assert!(
        tail.contains(&format!("subject=device:{authenticator}")),
        "{tail}"
    );
    assert!(tail.contains(&format!("subject=policy:{policy}")), "{tail}");
    drop(p.session);
    terminate(engine);
}

/// An engine whose audit head does not verify carries out no governance decision; the
/// rest of the API keeps working.
#[tokio::test]
async fn an_engine_with_a_forged_audit_head_refuses_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start_embedded(&data, Some(ROOT_KEY));
    let p = provision_at(&engine.api, &engine.ws, "forged").await;
    drop(p.session);
    assert!(terminate(engine).success());

    let db = rusqlite::Connection::open(data.join("privicore.db")).unwrap();
    db.execute("UPDATE audit_head SET mac = zeroblob(32) WHERE id = 1", [])
        .unwrap();
    drop(db);
    let (code, out) = verify(&data);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 1"), "{out}");

    let engine = start_embedded(&data, Some(ROOT_KEY));
    let api = Client::new(&engine.api).with_token(&p.token);
    let session = Session::connect(&engine.ws).await.unwrap();
    session.join(&p.token).await.unwrap();
    let accepted = api
        .register_public_key(&KeyPair::generate().public().to_hex())
        .await
        .unwrap();
    let outcome = session
        .wait_command(&accepted.command_id, WAIT)
        .await
        .unwrap();
    assert_eq!(outcome, CommandOutcome::Failed("audit.unavailable".into()));
    let key = api.retrieve_public_key().await.unwrap();
    assert_eq!(
        key.public_key,
        p.keys.public().to_hex(),
        "the old key stays registered"
    );
    let (_, tail) = audit(&data, None, &["tail"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");
    drop(session);
    terminate(engine);
}

/// A sealed data directory stores no root key: verify takes the shares that unseal it.
#[tokio::test]
async fn a_sealed_data_directory_is_verified_with_its_shares() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out) = operator(&data, &["init", "--shares", "3", "--threshold", "2"], &[]);
    assert!(ok, "{out}");
    let shares: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("share-"))
        .map(|l| l.split_once(": ").unwrap().1.to_owned())
        .collect();
    let child = serve_embedded(&data, None, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (api, ws) = endpoints(&data);
    let engine = Engine { child, api, ws };
    let (ok, out) = operator(
        &data,
        &["unseal", "--share", &shares[0], "--share", &shares[1]],
        &[],
    );
    assert!(ok, "{out}");
    let client = Client::new(&engine.api);
    let deadline = std::time::Instant::now() + WAIT;
    while client.health().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "never unsealed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = provision_at(&engine.api, &engine.ws, "sealed-audit").await;
    p.attach_devices(&["a"]).await;

    let (code, out) = audit(&data, None, &["verify"]);
    assert_eq!(code, 2, "no key is stored to verify with: {out}");
    let (code, out) = audit(&data, None, &["verify", "--share", &shares[2]]);
    assert_eq!(code, 2, "one share is not enough: {out}");
    let (code, out) = audit(
        &data,
        None,
        &["verify", "--share", &shares[1], "--share", &shares[2]],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log intact: 3 records"), "{out}");
    drop(p.session);
    terminate(engine);
}

/// Engines on PostgreSQL keep the chain there: `audit verify --database-url` checks it in
/// one snapshot and names a record edited in the database, `tail` shows it.
#[tokio::test]
async fn verify_and_tail_read_a_postgres_database() {
    use privicore_store_postgres::testing::{TestSchema, test_url};
    use sqlx::Connection;
    let Some(server) = test_url("verify_and_tail_read_a_postgres_database") else {
        return;
    };
    let schema = TestSchema::create(&server).await.unwrap();
    let url = schema.url();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let engine = start_with(&data, Some(ROOT_KEY), &["--database-url", &url]);
    let p = provision_at(&engine.api, &engine.ws, "pg-audit").await;
    drop(p.session);
    assert!(terminate(engine).success());

    let on_postgres = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--database-url".to_owned(), url.clone()])
            .collect()
    };
    let (code, out) = audit(&data, Some(ROOT_KEY), &as_args(&on_postgres(&["verify"])));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("audit log intact: 1 record"), "{out}");
    let (code, tail) = audit(&data, None, &as_args(&on_postgres(&["tail"])));
    assert_eq!(code, 0, "{tail}");
    assert_eq!(tail.lines().count(), 1, "{tail}");
    assert!(tail.contains("public_key.registered"), "{tail}");
    assert!(
        !data.join("privicore.db").exists(),
        "nothing went to the embedded store"
    );

    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "UPDATE audit_log SET outcome = 'forged' WHERE seq = 1",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    let (code, out) = audit(&data, Some(ROOT_KEY), &as_args(&on_postgres(&["verify"])));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at seq 1"), "{out}");
}

fn as_args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}
