//! `privicore app`: OAuth applications from the command line (docs/api/oauth.md): a
//! developer registers one and lists them; a profile authorizes one; the application's
//! server turns the authorization into tokens.

use super::{LocalProfile, connect};
use anyhow::Context;
use privicore_client::Client;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

#[derive(clap::Subcommand)]
pub enum AppAction {
    /// Register an application and read its configuration: the client secret is shown
    /// this once.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long)]
        redirect_uri: String,
        /// Comma-separated scope names (docs/api/oauth.md §1.1), e.g. `data-token:read`.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// List the applications this profile registered.
    List,
    /// As the consenting profile, request an authorization code for an application.
    Authorize {
        #[arg(long)]
        client_id: String,
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Default: a random one.
        #[arg(long)]
        nonce: Option<String>,
    },
    /// As the application's server: retrieve the code of an authorization request and
    /// exchange it for an access and a refresh token.
    Token {
        #[arg(long)]
        client_id: String,
        #[arg(long, env = "PRIVICORE_CLIENT_SECRET", hide_env_values = true)]
        client_secret: String,
        /// The `requestId` that `app authorize` printed.
        #[arg(long)]
        request_id: String,
        #[arg(long)]
        nonce: String,
        /// The engine's API (no profile is needed for this step).
        #[arg(long, default_value = "http://127.0.0.1:8009")]
        api: String,
    },
}

/// How `app list` prints without `--json`.
pub const COLUMNS: &[super::output::Column] = &[
    super::output::col("CLIENT ID", "/clientId"),
    super::output::col("NAME", "/name"),
    super::output::col("SCOPES", "/scopes"),
    super::output::col("GRANTS", "/activeGrants"),
    super::output::col("REDIRECT URI", "/redirectUri"),
];

/// Runs the action; what it prints, as JSON.
pub async fn run(
    action: AppAction,
    profile: impl FnOnce() -> anyhow::Result<LocalProfile>,
) -> anyhow::Result<Value> {
    match action {
        AppAction::Register {
            name,
            redirect_uri,
            scopes,
        } => {
            let (me, session) = connect(&profile()?).await?;
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let accepted = me
                .register_oauth_application(&name, &redirect_uri, &scopes)
                .await?;
            session
                .wait_command(&accepted.command_id, WAIT)
                .await?
                .result()
                .context("registering the application")?;
            Ok(me
                .retrieve_oauth_configuration(&accepted.command_id)
                .await?)
        }
        AppAction::List => {
            let (me, _session) = connect(&profile()?).await?;
            Ok(me.oauth_applications("?perPage=100").await?)
        }
        AppAction::Authorize {
            client_id,
            scopes,
            nonce,
        } => {
            let (me, session) = connect(&profile()?).await?;
            let nonce = nonce.unwrap_or_else(|| format!("n-{}", uuid::Uuid::new_v4().simple()));
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let accepted = me.request_oauth_code(&client_id, &nonce, &scopes).await?;
            let mut result = session
                .wait_command(&accepted.command_id, WAIT)
                .await?
                .result()
                .context("requesting the authorization code")?;
            result["nonce"] = json!(nonce);
            Ok(result)
        }
        AppAction::Token {
            client_id,
            client_secret,
            request_id,
            nonce,
            api,
        } => {
            let server = Client::new(&api).with_client_credentials(&client_id, &client_secret)?;
            let code = server
                .retrieve_authorization_code(&request_id, &nonce)
                .await?;
            let code = code["authorizationCode"]
                .as_str()
                .context("no authorizationCode in the answer")?;
            Ok(server.obtain_access_token(code).await?)
        }
    }
}
