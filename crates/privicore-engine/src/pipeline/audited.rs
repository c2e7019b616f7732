//! Which commands are governance decisions, and the audit record each one leaves. The
//! record is written before the command's effects commit (docs/audit.md).

use privicore_domain::audit::{AuditEntry, AuditKind, actor};
use privicore_domain::command::{CommandPayload, CommandRecord, Outcome};
use serde_json::{Value, json};

/// The record of a command about to take effect; `None` for commands that decide nothing
/// the audit log keeps, and for plans that fail (they change nothing).
pub(crate) fn entry(command: &CommandRecord, outcome: &Outcome) -> Option<AuditEntry> {
    let Outcome::Succeeded(result) = outcome else {
        return None;
    };
    let device = |id: &dyn std::fmt::Display| format!("device:{id}");
    let (kind, subject, decided, extra) = match &command.payload {
        CommandPayload::ApproveDevice { device_id } => (
            AuditKind::DeviceApproved,
            device(device_id),
            "approved",
            Value::Null,
        ),
        CommandPayload::RejectDevice { device_id } => (
            AuditKind::DeviceRejected,
            device(device_id),
            "rejected",
            Value::Null,
        ),
        CommandPayload::RemoveDevice { device_id, force } => (
            AuditKind::DeviceRemoved,
            device(device_id),
            "removed",
            json!({ "force": force }),
        ),
        CommandPayload::RegisterStorage { device_id } => (
            AuditKind::StorageRegistered,
            device(device_id),
            "registered",
            Value::Null,
        ),
        CommandPayload::RemoveStorage { device_id, force } => (
            AuditKind::StorageRemoved,
            device(device_id),
            "removed",
            json!({ "force": force }),
        ),
        CommandPayload::RegisterPublicKey { public_key } => (
            AuditKind::PublicKeyRegistered,
            format!("profile:{}", command.profile_id),
            if result["replaced"] == true {
                "replaced"
            } else {
                "registered"
            },
            json!({ "publicKey": public_key }),
        ),
        CommandPayload::RegisterAuthenticator { device_id } => (
            AuditKind::AuthenticatorRegistered,
            device(device_id),
            "registered",
            Value::Null,
        ),
        CommandPayload::RemoveAuthenticator { device_id, force } => (
            AuditKind::AuthenticatorRemoved,
            device(device_id),
            "removed",
            json!({ "force": force }),
        ),
        CommandPayload::SetVotingDefault { .. } => (
            AuditKind::VotingDefaultsChanged,
            format!("profile:{}", command.profile_id),
            "changed",
            json!({ "change": result }),
        ),
        CommandPayload::RegisterVotingConfiguration { .. } => (
            AuditKind::VotingConfigurationRegistered,
            format!(
                "voting_configuration:{}",
                text(&result["votingConfigurationId"])
            ),
            "registered",
            json!({ "configuration": command.payload }),
        ),
        CommandPayload::UpdateVotingConfiguration {
            configuration_id,
            change,
        } => (
            AuditKind::VotingConfigurationUpdated,
            format!("voting_configuration:{configuration_id}"),
            "updated",
            json!({ "change": change }),
        ),
        CommandPayload::RegisterPolicy { .. } => (
            AuditKind::PolicyRegistered,
            format!("policy:{}", text(&result["policyId"])),
            "registered",
            json!({ "policy": command.payload }),
        ),
        CommandPayload::ActivatePolicy { policy_id } => (
            AuditKind::PolicyActivated,
            format!("policy:{policy_id}"),
            "activated",
            Value::Null,
        ),
        CommandPayload::DeactivatePolicy { policy_id } => (
            AuditKind::PolicyDeactivated,
            format!("policy:{policy_id}"),
            "deactivated",
            Value::Null,
        ),
        CommandPayload::DeletePolicy { policy_id } => (
            AuditKind::PolicyDeleted,
            format!("policy:{policy_id}"),
            "deleted",
            Value::Null,
        ),
        _ => return None,
    };
    let mut details = json!({
        "commandId": command.id.to_string(),
        "command": command.payload.kind(),
    });
    if let (Value::Object(details), Value::Object(extra)) = (&mut details, extra) {
        details.extend(extra);
    }
    Some(
        AuditEntry::new(
            kind,
            actor::caller(command.profile_id, command.application_id),
            subject,
            decided,
        )
        .for_profile(command.profile_id)
        .with_details(details),
    )
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The record that follows when a decision already recorded did not take effect after all
/// (its commit met a conflict): same kind and subject, outcome `not_applied`.
pub(crate) fn not_applied(recorded: &AuditEntry, reason: &str) -> AuditEntry {
    let mut details = recorded.details.clone();
    if let Value::Object(map) = &mut details {
        map.insert("reason".into(), Value::String(reason.to_owned()));
    }
    AuditEntry {
        outcome: "not_applied".into(),
        details,
        ..recorded.clone()
    }
}
