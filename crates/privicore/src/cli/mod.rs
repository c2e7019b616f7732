//! The user-facing CLI: create a profile, attach storage devices, store and fetch files.
//! Client-side encryption (layer 1) happens here, with a key that never leaves this machine.

pub mod app;
pub mod directory;
pub mod hints;
pub mod layer1;
pub mod listing;
mod local;
pub mod output;
mod progress;
pub mod status;
pub mod transfer;

pub use layer1::{decrypt, encrypt};
pub use local::{LocalProfile, NoProfile, default_path};
pub use transfer::{Source, Target, fetch, store};

use anyhow::Context;
use privicore_client::{Client, KeyPair, RequestStatus, Session};
use rand::RngCore;
use std::path::Path;
use std::time::Duration;

/// Logs in with the saved credentials; a client carrying the token.
pub async fn login(profile: &LocalProfile) -> anyhow::Result<Client> {
    let api = Client::new(&profile.api);
    let auth = api
        .authenticate(&profile.username, &profile.password)
        .await
        .with_context(|| format!("authenticating at {}", profile.api))?;
    Ok(api.with_token(&auth.authorization_token))
}

/// Logs in with the saved credentials and joins the channel.
pub async fn connect(profile: &LocalProfile) -> anyhow::Result<(Client, Session)> {
    let me = login(profile).await?;
    let session = Session::connect(&profile.ws)
        .await
        .with_context(|| format!("connecting the WebSocket at {}", profile.ws))?;
    session
        .join(me.token().context("a token after login")?)
        .await?;
    Ok((me, session))
}

pub async fn create_profile(
    config: &Path,
    api_url: &str,
    ws_url: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<LocalProfile> {
    let api = Client::new(api_url);
    let registered = api.register_profile(username, password).await?;
    match api
        .poll_command(&registered.command_id, Duration::from_secs(60))
        .await?
    {
        RequestStatus::Succeeded(_) => {}
        other => anyhow::bail!("registration failed: {other:?}"),
    }
    let keys = KeyPair::generate();
    let mut data_key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut data_key);
    let profile = LocalProfile {
        api: api_url.to_owned(),
        ws: ws_url.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
        profile_id: registered.command_id.clone(),
        private_key: keys.private_hex(),
        public_key: keys.public().to_hex(),
        data_key: hex::encode(data_key),
    };
    profile.save(config)?;
    let (me, session) = connect(&profile).await?;
    let accepted = me.register_public_key(&profile.public_key).await?;
    session
        .wait_command(&accepted.command_id, Duration::from_secs(60))
        .await?
        .result()?;
    Ok(profile)
}

pub async fn attach_devices(profile: &LocalProfile, count: usize) -> anyhow::Result<Vec<String>> {
    let (me, session) = connect(profile).await?;
    let existing = me.list_storage_devices("?perPage=100").await?["meta"]["total"]
        .as_u64()
        .unwrap_or(0) as usize;
    let mut ids = Vec::new();
    for i in 0..count {
        ids.push(
            me.attach_storage_device(&session, &format!("storage-{}", existing + i + 1))
                .await?,
        );
    }
    Ok(ids)
}

/// Requests and approves a device, gives it the authenticator role, and writes its
/// configuration bundle (a credential: mode 0600) to `bundle`, or to
/// `privicore-authenticator-<deviceIdentifier>.json` in the working directory.
pub async fn attach_authenticator(
    profile: &LocalProfile,
    name: &str,
    bundle: Option<&Path>,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    let (me, session) = connect(profile).await?;
    let requested = me.request_device(name).await?;
    let device = session
        .wait_command(&requested.command_id, Duration::from_secs(60))
        .await?
        .result()?;
    let id = device["deviceIdentifier"]
        .as_str()
        .context("the device request answered no deviceIdentifier")?
        .to_owned();
    let approved = me.approve_device(&id).await?;
    session
        .wait_command(&approved.command_id, Duration::from_secs(60))
        .await?
        .result()?;
    let registered = me.register_authenticator(&id).await?;
    session
        .wait_command(&registered.command_id, Duration::from_secs(60))
        .await?
        .result()?;
    let config = me.download_device_configuration(&id).await?;
    let path = bundle
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from(format!("privicore-authenticator-{id}.json")));
    write_private(&path, serde_json::to_string_pretty(&config)?.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((id, path))
}

/// Writes a credential file readable by its owner only, replacing any earlier one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}
