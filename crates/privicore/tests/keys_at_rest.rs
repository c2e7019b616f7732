//! Keys sealed at rest, through the real binary: nothing in the data directory opens
//! without the root key, and missing or foreign key material stops the start with a clear
//! message instead of being replaced.

mod common;
mod engine_process;

use common::*;
use engine_process::*;
use std::path::Path;

fn stored_engine_private_key(data_dir: &Path) -> String {
    let db = rusqlite::Connection::open(data_dir.join("privicore.db")).unwrap();
    db.query_row("SELECT private_hex FROM engine_keys", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_data_directory_copied_without_the_root_key_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_embedded(dir.path(), Some(ROOT_KEY));
    let p = provision_at(&engine.api, &engine.ws, "sealed").await;
    p.attach_devices(&["a"]).await;
    let data = random_payload(3000);
    let token = p.store("/sealed", &data).await;
    drop(p.session);
    terminate(engine);

    // No key in the clear: no root key file, no plain KEK file, the engine key and every
    // hosted device key sealed.
    let files = files_under(dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for plain in ["root.key", "kek.json", "dmk.key", "device-key.hex"] {
        assert!(!names.iter().any(|n| n == plain), "{plain} in {names:?}");
    }
    assert!(names.iter().any(|n| n == "dmk.sealed"), "{names:?}");
    assert!(stored_engine_private_key(dir.path()).starts_with("sealed:"));

    // A copy without the root key refuses, and so does one with another root key.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), copy.path());
    let missing = refused_embedded(copy.path(), None);
    assert!(missing.contains("root key"), "{missing}");
    let other = refused_embedded(copy.path(), Some(OTHER_KEY));
    assert!(other.contains("does not open"), "{other}");

    // With its root key the data directory serves the data again.
    let engine = start_embedded(dir.path(), Some(ROOT_KEY));
    let api = privicore_client::Client::new(&engine.api).with_token(&p.token);
    let session = privicore_client::Session::connect(&engine.ws)
        .await
        .unwrap();
    session.join(&p.token).await.unwrap();
    wait_online(&api, 1).await;
    assert_eq!(api.fetch_payload(&session, &token).await.unwrap(), data);
    drop(session);
    terminate(engine);
}

#[tokio::test]
async fn a_missing_key_store_or_root_key_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_embedded(dir.path(), None);
    terminate(engine);
    let keys = dir.path().join("keys");
    assert!(keys.join("root.key").exists(), "the embedded default");

    let root = std::fs::read(keys.join("root.key")).unwrap();
    std::fs::remove_file(keys.join("root.key")).unwrap();
    let message = refused_embedded(dir.path(), None);
    assert!(
        message.contains("root key") && message.contains("missing"),
        "{message}"
    );
    assert!(!keys.join("root.key").exists(), "no new root key was made");
    std::fs::write(keys.join("root.key"), root).unwrap();

    std::fs::remove_file(keys.join("keystore.json")).unwrap();
    let message = refused_embedded(dir.path(), None);
    assert!(message.contains("keystore.json is missing"), "{message}");
    assert!(!keys.join("keystore.json").exists(), "no new KEK was made");
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).to_vec()
}

fn stored_body_hashes(data_dir: &Path, path: &str) -> Vec<Vec<u8>> {
    let db = rusqlite::Connection::open(data_dir.join("privicore.db")).unwrap();
    let mut statement = db
        .prepare("SELECT body_hash FROM idempotency_slots WHERE path = ?")
        .unwrap();
    statement
        .query_map([path], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn the_idempotency_table_holds_no_plain_hash_of_a_password_body() {
    let server = TestServer::start_with(|s| s.database_url = None).await;
    let api = server.client();
    let username = unique_username("idem-secret");
    let retrying = api.with_idempotency_key("register-1");
    let first = retrying
        .register_profile(&username, PASSWORD)
        .await
        .unwrap();
    api.poll_command(&first.command_id, WAIT).await.unwrap();
    let again = retrying
        .register_profile(&username, PASSWORD)
        .await
        .unwrap();
    assert!(
        again.replayed,
        "the keyed fingerprint still recognises a repeat"
    );

    let p = provision(&server, "idem-change").await;
    let changed = p
        .api
        .with_idempotency_key("change-1")
        .change_password(PASSWORD, "another-horse-battery", false)
        .await
        .unwrap();
    p.ok(&changed.command_id).await;

    let dir = server.dir.path();
    let registered = stored_body_hashes(dir, "/profile/register-profile");
    let canonical = format!(r#"{{"password":"{PASSWORD}","username":"{username}"}}"#);
    let without = format!(r#"{{"username":"{username}"}}"#);
    assert_eq!(registered.len(), 1);
    assert_ne!(registered[0], sha256(canonical.as_bytes()));
    assert_ne!(registered[0], sha256(without.as_bytes()));
    let change = stored_body_hashes(dir, "/profile/change-password");
    let canonical = format!(
        r#"{{"currentPassword":"{PASSWORD}","newPassword":"another-horse-battery","revokeTokens":false}}"#
    );
    assert_eq!(change.len(), 1);
    assert_ne!(change[0], sha256(canonical.as_bytes()));
    assert_ne!(change[0], sha256(br#"{"revokeTokens":false}"#));
}
