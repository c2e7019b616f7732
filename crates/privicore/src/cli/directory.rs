//! `privicore directory`: directories from the command line (docs/api/directory.md): create
//! one, invite a profile, list its users and its managed users' devices.

use super::output::{Column, col};
use super::{LocalProfile, connect};
use anyhow::Context;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[derive(clap::Subcommand)]
pub enum DirectoryAction {
    /// Register a directory owned by this profile; prints its id and name.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Invite an existing profile (by username) into a directory.
    Invite {
        #[arg(long)]
        directory: String,
        #[arg(long)]
        username: String,
        /// `member` or `admin` (admin: the owner only).
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        message: Option<String>,
    },
    /// List a directory's users (active ones; `--status all` for every status).
    Users {
        #[arg(long)]
        directory: String,
        #[arg(long)]
        status: Option<String>,
    },
    /// List the devices of a directory's managed users.
    Devices {
        #[arg(long)]
        directory: String,
    },
}

/// The columns of the listings (`users`, `devices`) without `--json`; `None` for the
/// actions that print one JSON result.
pub fn columns(action: &DirectoryAction) -> Option<&'static [Column]> {
    const USERS: &[Column] = &[
        col("PROFILE", "/profileId"),
        col("USERNAME", "/username"),
        col("ROLE", "/role"),
        col("KIND", "/kind"),
        col("STORAGE", "/storageDevices"),
        col("AUTHENTICATORS", "/authenticators"),
        col("ONLINE", "/onlineDevices"),
    ];
    const DEVICES: &[Column] = &[
        col("DEVICE", "/deviceIdentifier"),
        col("USERNAME", "/username"),
        col("NAME", "/name"),
        col("STATUS", "/status"),
        col("ROLES", "/roles"),
        col("ONLINE", "/online"),
    ];
    match action {
        DirectoryAction::Users { .. } => Some(USERS),
        DirectoryAction::Devices { .. } => Some(DEVICES),
        DirectoryAction::Create { .. } | DirectoryAction::Invite { .. } => None,
    }
}

/// Runs the action; what it prints, as JSON.
pub async fn run(
    action: DirectoryAction,
    profile: impl FnOnce() -> anyhow::Result<LocalProfile>,
) -> anyhow::Result<Value> {
    let (me, session) = connect(&profile()?).await?;
    match action {
        DirectoryAction::Create { name, description } => {
            let accepted = me
                .register_directory(json!({ "name": name, "description": description }))
                .await?;
            Ok(session
                .wait_command(&accepted.command_id, WAIT)
                .await?
                .result()
                .context("registering the directory")?)
        }
        DirectoryAction::Invite {
            directory,
            username,
            role,
            message,
        } => {
            let accepted = me
                .invite_to_directory(json!({
                    "directoryId": directory, "username": username, "role": role, "message": message,
                }))
                .await?;
            Ok(session
                .wait_command(&accepted.command_id, WAIT)
                .await?
                .result()
                .context("inviting the profile")?)
        }
        DirectoryAction::Users { directory, status } => {
            let query = match status {
                Some(s) => format!("?perPage=100&filters[status]={s}"),
                None => "?perPage=100".to_owned(),
            };
            Ok(me.directory_users(&directory, &query).await?)
        }
        DirectoryAction::Devices { directory } => {
            Ok(me.directory_devices(&directory, "?perPage=100").await?)
        }
    }
}
