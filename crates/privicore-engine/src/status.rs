use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandState, Outcome};
use privicore_domain::{CommandId, Error, Reason};
use serde_json::Value;

/// What `/request-status` answers (docs/api/profile-and-keys.md §1.2).
#[derive(Debug, Clone, PartialEq)]
pub enum CommandStatus {
    Started,
    /// The result, present only for the command's own profile (or application).
    Succeeded(Option<Value>),
    Failed(String),
}

impl Engine {
    /// A command's state. Unknown, purged and foreign ids all answer `command.not_found`.
    pub async fn command_status(
        &self,
        id: CommandId,
        caller: Option<&Caller>,
    ) -> Result<CommandStatus, Error> {
        let command = self
            .store
            .command(id)
            .await?
            .ok_or(Reason::CommandNotFound)?;
        if let Some(caller) = caller
            && !caller.may_read_command(command.profile_id, command.application_id)
        {
            return Err(Reason::CommandNotFound.into());
        }
        Ok(match command.state {
            CommandState::Pending => CommandStatus::Started,
            CommandState::Finished {
                outcome: Outcome::Succeeded(result),
                ..
            } => CommandStatus::Succeeded(caller.map(|_| result)),
            CommandState::Finished {
                outcome: Outcome::Failed(key),
                ..
            } => CommandStatus::Failed(key),
        })
    }
}
