//! Errors that say what to do next: the CLI prints the error, then one hint for the
//! causes a user can fix (engine not running, no local profile, credentials refused).

use super::local::NoProfile;
use privicore_client::ClientError;

/// The next step for `error`, when its cause is one a user can act on.
pub fn hint(error: &anyhow::Error) -> Option<String> {
    if let Some(NoProfile(path)) = error.chain().find_map(|e| e.downcast_ref::<NoProfile>()) {
        return Some(format!(
            "not signed in: run `privicore profile create --username <name>` (it writes {}), \
             or point --profile-file / PRIVICORE_CLI_CONFIG at an existing profile file",
            path.display()
        ));
    }
    let client = error
        .chain()
        .find_map(|e| e.downcast_ref::<ClientError>())?;
    Some(match client {
        ClientError::Transport(_) | ClientError::Timeout(_) => {
            "is `privicore serve` running and reachable at that address? Check the URL with \
             `privicore status --api <url>`; a profile's URLs are the --api / --ws given to \
             `privicore profile create`"
                .into()
        }
        ClientError::WebSocket(_) => {
            "the engine's WebSocket listener did not answer: is `privicore serve` running, and \
             is the profile's --ws URL (port 8083 by default) reachable?"
                .into()
        }
        ClientError::Api { status: 401, .. } => {
            "the engine refused the saved credentials: if the password changed or the engine's \
             data was reset, run `privicore profile create` again (or use the right \
             --profile-file)"
                .into()
        }
        ClientError::Api { status: 403, .. } => {
            "this profile may not do that (a device it does not own, or a scope its token \
             lacks)"
                .into()
        }
        ClientError::Api { status: 429, .. } => "rate limited: wait a minute and try again".into(),
        ClientError::Api { status: 503, .. } => {
            "the engine is busy or sealed: try again shortly, or see `privicore operator status` \
             on the engine's machine"
                .into()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn hints_follow_the_cause_through_context() {
        let refused: anyhow::Error = Err::<(), _>(ClientError::Transport("refused".into()))
            .context("authenticating at http://127.0.0.1:1")
            .unwrap_err();
        assert!(hint(&refused).unwrap().contains("privicore serve"));
        let unauthorized = anyhow::Error::new(ClientError::Api {
            status: 401,
            code: "auth.invalid_credentials".into(),
            message: String::new(),
            field: None,
        });
        assert!(hint(&unauthorized).unwrap().contains("profile create"));
        let none = anyhow::Error::new(NoProfile("/x/cli.json".into()));
        assert!(hint(&none).unwrap().contains("/x/cli.json"));
        assert!(hint(&anyhow::anyhow!("something else")).is_none());
    }
}
