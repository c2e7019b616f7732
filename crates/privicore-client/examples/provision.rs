//! Provisions a profile exactly as docs/api/flows.md §1 describes and prints each step.
//!
//! cargo run -p privicore-client --example provision -- --username alice@example.com

use clap::Parser;
use privicore_client::{Client, KeyPair, RequestStatus, Session};
use std::time::Duration;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8009")]
    api: String,
    #[arg(long, default_value = "ws://127.0.0.1:8083")]
    ws: String,
    #[arg(long)]
    username: String,
    #[arg(
        long,
        env = "PRIVICORE_PASSWORD",
        default_value = "correct-horse-battery"
    )]
    password: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let api = Client::new(&args.api);

    let registered = api.register_profile(&args.username, &args.password).await?;
    println!(
        "1. register-profile → 202 commandId {}",
        registered.command_id
    );
    match api
        .poll_command(&registered.command_id, Duration::from_secs(30))
        .await?
    {
        RequestStatus::Succeeded(_) => println!("2. request-status → succeeded"),
        other => anyhow::bail!("registration did not succeed: {other:?}"),
    }

    let auth = api.authenticate(&args.username, &args.password).await?;
    println!(
        "3. authenticate → profile {} (token expires {})",
        auth.profile_id, auth.expires_at
    );
    let me = api.with_token(&auth.authorization_token);

    let session = Session::connect(&args.ws).await?;
    let channel = session.join(&auth.authorization_token).await?;
    println!("4. joinChannel → channel {channel}");

    let keys = KeyPair::generate();
    println!("5. generated an X25519 key pair locally (keep the private key safe)");
    let accepted = me.register_public_key(&keys.public().to_hex()).await?;
    let ack = session
        .wait_command(&accepted.command_id, Duration::from_secs(30))
        .await?
        .result()?;
    println!("6. register-public-key → ack command_status 2: {ack}");

    let profile = me.retrieve_profile_id().await?;
    println!(
        "7. retrieve-profile-id → publicKeyRegistered = {}",
        profile.public_key_registered
    );
    Ok(())
}
