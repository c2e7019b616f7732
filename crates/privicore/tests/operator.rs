//! `privicore operator`: sealed starts unsealed by Shamir shares or a passphrase, KEK
//! rotation while serving, and backup + `serve --restore`, all on the real binary.

mod common;
mod engine_process;

use common::*;
use engine_process::*;
use privicore_client::{Body, Client, Session};
use reqwest::Method;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Starts `serve` on a data directory prepared by `operator init`: sealed.
fn start_sealed(data_dir: &Path) -> Engine {
    let _ = std::fs::remove_file(data_dir.join("run/endpoints.json"));
    let child = serve_embedded(data_dir, None, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (api, ws) = endpoints(data_dir);
    Engine { child, api, ws }
}

async fn wait_healthy(api: &Client) {
    let deadline = Instant::now() + WAIT;
    while api.health().await.is_err() {
        assert!(Instant::now() < deadline, "the engine did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_sealed(api: &Client) {
    let health = api.send(Method::GET, "/health", Body::Empty).await.unwrap();
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["status"], "sealed");
    let register = api
        .send(
            Method::POST,
            "/profile/register-profile",
            Body::Form(&[("username", "sealed-user"), ("password", PASSWORD)]),
        )
        .await
        .unwrap();
    assert_eq!(register.status, 503);
    assert_eq!(
        register.error_code().as_deref(),
        Some("service.unavailable")
    );
    assert!(register.header("retry-after").is_some());
}

#[tokio::test]
async fn a_sealed_engine_serves_once_enough_shares_are_given() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = operator(
        dir.path(),
        &["init", "--shares", "3", "--threshold", "2"],
        &[],
    );
    assert!(ok, "{out}");
    let shares: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("share-"))
        .map(|l| l.split_once(": ").unwrap().1.to_owned())
        .collect();
    assert_eq!(shares.len(), 3);

    let engine = start_sealed(dir.path());
    let api = Client::new(&engine.api);
    assert_sealed(&api).await;
    let (ok, status) = operator(dir.path(), &["status"], &[]);
    assert!(
        ok && status.contains("sealed (0 of 2 shares given)"),
        "{status}"
    );
    let (ok, out) = operator(dir.path(), &["unseal", "--share", &shares[0]], &[]);
    assert!(ok && out.contains("1 of 2"), "{out}");
    assert_sealed(&api).await;
    let (ok, out) = operator(dir.path(), &["unseal", "--share", &shares[2]], &[]);
    assert!(ok && out.contains("unsealed"), "{out}");

    // The same listeners now serve the engine.
    wait_healthy(&api).await;
    let p = provision_at(&engine.api, &engine.ws, "unsealed").await;
    p.attach_devices(&["a"]).await;
    let data = random_payload(2000);
    let token = p.store("/sealed", &data).await;
    drop(p.session);
    terminate(engine);
    assert!(
        !dir.path().join("keys/root.key").exists(),
        "no root key is stored"
    );

    // Restarted, it is sealed again; other shares open it, and the data is there.
    let engine = start_sealed(dir.path());
    let api = Client::new(&engine.api);
    assert_sealed(&api).await;
    let (ok, out) = operator(
        dir.path(),
        &["unseal", "--share", &shares[1], "--share", &shares[2]],
        &[],
    );
    assert!(ok, "{out}");
    wait_healthy(&api).await;
    let me = api.with_token(&p.token);
    let session = Session::connect(&engine.ws).await.unwrap();
    session.join(&p.token).await.unwrap();
    wait_online(&me, 1).await;
    assert_eq!(me.fetch_payload(&session, &token).await.unwrap(), data);
    drop(session);
    terminate(engine);
}

#[tokio::test]
async fn a_passphrase_unseals_and_a_wrong_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let passphrase = [("PRIVICORE_PASSPHRASE", "a long operator passphrase")];
    let (ok, out) = operator(dir.path(), &["init", "--passphrase"], &passphrase);
    assert!(ok, "{out}");
    let engine = start_sealed(dir.path());
    let api = Client::new(&engine.api);
    let (ok, out) = operator(
        dir.path(),
        &["unseal", "--passphrase"],
        &[("PRIVICORE_PASSPHRASE", "not the passphrase at all")],
    );
    assert!(!ok && out.contains("does not open"), "{out}");
    assert_sealed(&api).await;
    let (ok, out) = operator(dir.path(), &["unseal", "--passphrase"], &passphrase);
    assert!(ok, "{out}");
    wait_healthy(&api).await;
    terminate(engine);
}

/// Whose KEK wraps each stored header (the id sits in the key block, §4.3).
fn header_keks(data_dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(data_dir.join("privicore.db")).unwrap();
    let mut statement = db.prepare("SELECT header FROM token_versions").unwrap();
    statement
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|h| {
            let h = h.unwrap();
            let kek = &h[h.len() - 60 - 5..h.len() - 60];
            String::from_utf8_lossy(kek).into_owned()
        })
        .collect()
}

#[tokio::test]
async fn rotate_kek_rewraps_while_serving_and_retires_the_old_kek() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_embedded(dir.path(), Some(ROOT_KEY));
    let p = provision_at(&engine.api, &engine.ws, "rotate").await;
    p.attach_devices(&["a"]).await;
    let mut stored = Vec::new();
    for i in 0..40 {
        let data = random_payload(500 + i);
        stored.push((p.store("/before", &data).await, data));
    }
    assert!(header_keks(dir.path()).iter().all(|k| k == "kek-1"));

    // Stores keep going while the rotation runs.
    let rotation = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || operator(&dir, &["rotate-kek", "--wait"], &[])
    });
    for i in 0..20 {
        let data = random_payload(700 + i);
        stored.push((p.store("/during", &data).await, data));
    }
    let (ok, out) = rotation.await.unwrap();
    assert!(ok && out.contains("done"), "{out}");
    let (_, status) = operator(dir.path(), &["status"], &[]);
    assert!(
        status.contains("active KEK kek-2; KEKs kek-2\n"),
        "{status}"
    );
    assert!(header_keks(dir.path()).iter().all(|k| k == "kek-2"));
    let keystore = std::fs::read_to_string(dir.path().join("keys/keystore.json")).unwrap();
    assert!(!keystore.contains("kek-1"), "the old KEK is removed");
    for (token, data) in &stored {
        assert_eq!(&p.fetch(token).await, data, "{token}");
    }
    drop(p.session);
    terminate(engine);

    // Nothing needs the old KEK after a restart either.
    let engine = start_embedded(dir.path(), Some(ROOT_KEY));
    let me = Client::new(&engine.api).with_token(&p.token);
    let session = Session::connect(&engine.ws).await.unwrap();
    session.join(&p.token).await.unwrap();
    wait_online(&me, 1).await;
    for (token, data) in stored.iter().step_by(7) {
        assert_eq!(&me.fetch_payload(&session, token).await.unwrap(), data);
    }
    drop(session);
    terminate(engine);
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_embedded(dir.path(), Some(ROOT_KEY));
    let p = provision_at(&engine.api, &engine.ws, "backup").await;
    p.attach_devices(&["a"]).await;
    let data = random_payload(4000);
    let token = p.store("/backup", &data).await;
    let file = dir.path().join("privicore.backup");
    let (ok, out) = operator(dir.path(), &["backup", file.to_str().unwrap()], &[]);
    assert!(ok && out.contains("backup written"), "{out}");
    drop(p.session);
    terminate(engine);

    let restored = tempfile::tempdir().unwrap();
    let target = restored.path().join("data");
    let restore = ["--restore", file.to_str().unwrap()];
    let engine = start_with_embedded(&target, Some(ROOT_KEY), &restore);
    let me = Client::new(&engine.api).with_token(&p.token);
    let session = Session::connect(&engine.ws).await.unwrap();
    session.join(&p.token).await.unwrap();
    wait_online(&me, 1).await;
    assert_eq!(me.fetch_payload(&session, &token).await.unwrap(), data);
    drop(session);
    terminate(engine);

    // The backup holds no root key: restored without it, nothing opens.
    let elsewhere = restored.path().join("elsewhere");
    let mut refused = serve_embedded(&elsewhere, None, &restore)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8(std::mem::take(&mut refused.stderr)).unwrap();
    assert!(message.contains("root key"), "{message}");
}
