//! Storage devices run as their own `privicore storage-device` processes against an engine.

use super::acked;
use privicore_client::Client;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct External {
    pub id: String,
    pub bundle: std::path::PathBuf,
    pub data_dir: std::path::PathBuf,
}

pub async fn onboard_external(
    me: &Client,
    session: &privicore_client::Session,
    dir: &Path,
    name: &str,
) -> External {
    let requested = me.request_device(name).await.unwrap();
    let device = acked(session, &requested.command_id).await;
    let id = device["deviceIdentifier"].as_str().unwrap().to_owned();
    let approved = me.approve_device(&id).await.unwrap();
    acked(session, &approved.command_id).await;
    let bundle = me.download_device_configuration(&id).await.unwrap();
    assert_eq!(bundle["bus"], "embedded");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, bundle.to_string()).unwrap();
    External {
        id,
        bundle: path,
        data_dir: dir.join(format!("{name}-data")),
    }
}

pub fn device_process(bundle: &Path, data_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_privicore"))
        .args(["storage-device", "--log-format", "json", "--config"])
        .arg(bundle)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until at least `n` storage devices are online.
pub async fn wait_online(api: &Client, n: u64) {
    wait_for_storage(api, "true", n).await;
}

/// Waits until at least `n` storage devices are offline.
pub async fn wait_offline(api: &Client, n: u64) {
    wait_for_storage(api, "false", n).await;
}

async fn wait_for_storage(api: &Client, online: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while api
        .list_storage_devices(&format!("?filters[online]={online}"))
        .await
        .unwrap()["meta"]["total"]
        .as_u64()
        < Some(n)
    {
        assert!(
            Instant::now() < deadline,
            "expected {n} devices with online={online}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
