//! Data token commands (docs/api/data-tokens.md §3).

use super::execute::{After, Plan};
use crate::engine::Core;
use crate::replication::{self, Replicated, Sealed};
use crate::tokens::{encode_payload, fresh_salt};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::data_token::*;
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::event::{BusEvent, ProfileEvent};
use privicore_domain::ports::StoreError;
use privicore_domain::{Reason, Timestamp};
use privicore_wire::bus::Versions;
use serde_json::{Value, json};

fn fx(effects: Vec<DataEffect>) -> Vec<Effect> {
    effects.into_iter().map(Effect::from).collect()
}

fn count(
    row: &DataToken,
    kind: &'static str,
    at: Timestamp,
    application_id: Option<uuid::Uuid>,
) -> DataEffect {
    DataEffect::CountEvent {
        profile_id: row.profile_id,
        kind,
        context: row.context.clone(),
        at,
        application_id,
    }
}

/// A reservation reads nothing: its plan is built from the command alone.
pub(crate) fn reservation(command: &CommandRecord, now: Timestamp) -> Option<Plan> {
    let CommandPayload::ReserveTokenSpace {
        token,
        context,
        ttl_minutes,
        meta_data,
    } = &command.payload
    else {
        return None;
    };
    let expires_at = now.plus_seconds(ttl_minutes * 60);
    let row = DataToken {
        token: token.clone(),
        profile_id: command.profile_id,
        application_id: command.application_id,
        reserve_command_id: command.id,
        status: TokenStatus::Reserved,
        context: context.clone(),
        expires_at: Some(expires_at),
        upload_salt: Some(fresh_salt()),
        version: None,
        stored_size: None,
        meta_file: None,
        meta_risk: None,
        meta_data: meta_data.clone(),
        created_at: now,
        updated_at: now,
    };
    Some(Plan::succeed(
        fx(vec![
            DataEffect::CapOutstandingReservations {
                profile_id: command.profile_id,
                limit: OUTSTANDING_LIMIT,
            },
            DataEffect::CreateDataToken(row),
        ]),
        json!({ "tokenSpaceRequestId": command.id.to_string(), "token": token, "context": context, "expiresAt": expires_at.rfc3339() }),
    ))
}

pub(crate) async fn plan(
    core: &Core,
    command: &CommandRecord,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    if let Some(plan) = reservation(command, now) {
        return Ok(plan);
    }
    let token = command.payload.resource().unwrap_or_default();
    let Some(row) = core.store.data_token(&token).await? else {
        return Ok(Plan::fail(Reason::DataTokenNotFound));
    };
    match &command.payload {
        CommandPayload::ExchangeData { version, .. } => {
            exchange(core, command, row, *version, now).await
        }
        CommandPayload::ReplaceData {
            version,
            file,
            risk,
            data,
            ..
        } => replace(core, command, row, *version, [file, risk, data], now).await,
        CommandPayload::RequestData { request_id, .. } => {
            request_data(core, command, row, *request_id, now).await
        }
        CommandPayload::DeleteData { .. } => {
            if !matches!(row.status, TokenStatus::Reserved | TokenStatus::Active) {
                return Ok(Plan::fail(if row.status == TokenStatus::Exchanging {
                    Reason::DataTokenBusy
                } else {
                    Reason::DataTokenNotFound
                }));
            }
            let replicas = core.store.replicas(&row.token, None).await?;
            let mut devices: Vec<_> = replicas.iter().map(|r| r.device_id).collect();
            devices.sort();
            devices.dedup();
            let mut effects = vec![DataEffect::DeleteDataToken {
                token: row.token.clone(),
                at: now,
            }];
            for r in &replicas {
                effects.push(DataEffect::SetReplica(Replica {
                    state: ReplicaState::Deleting,
                    ..r.clone()
                }));
            }
            if let Some(v) = row.version {
                effects.push(DataEffect::DropSpool {
                    token: row.token.clone(),
                    version: v,
                });
            }
            if row.status == TokenStatus::Active {
                effects.push(count(&row, EVENT_DELETED, now, command.application_id));
            }
            let mut plan = Plan::succeed(
                fx(effects),
                json!({ "token": row.token, "deletedAt": now.rfc3339(), "devicesNotified": devices.len() }),
            );
            plan.after.push(After::SendDeletes {
                token: row.token,
                devices,
                versions: Versions::All("all".into()),
            });
            Ok(plan)
        }
        CommandPayload::ConfigureRisk { risk, .. } => {
            if row.status != TokenStatus::Active {
                return Ok(Plan::fail(Reason::DataTokenNotActive));
            }
            Ok(Plan::succeed(
                fx(vec![
                    DataEffect::SetRiskMeta {
                        token: row.token.clone(),
                        risk: Some(risk.clone()),
                        at: now,
                    },
                    count(&row, EVENT_UPDATED, now, command.application_id),
                ]),
                json!({ "token": row.token, "information_security_risk": risk }),
            ))
        }
        CommandPayload::UpdateTokenMeta {
            file,
            risk,
            data,
            context,
            ..
        } => {
            if row.status != TokenStatus::Active {
                return Ok(Plan::fail(Reason::DataTokenNotActive));
            }
            let mut effects = meta_effects(&row.token, [&None, risk, data], now);
            if file.is_some() || context.is_some() {
                let file_after = file.clone().unwrap_or_else(|| row.meta_file.clone());
                effects.push(DataEffect::SetFileMeta {
                    token: row.token.clone(),
                    file: file_after,
                    context: context.clone(),
                    at: now,
                });
            }
            effects.push(count(&row, EVENT_UPDATED, now, command.application_id));
            Ok(Plan::succeed(
                fx(effects),
                json!({ "token": row.token, "version": row.version, "storedSize": row.stored_size }),
            ))
        }
        _ => Err(StoreError::Corrupt("not a token command".into())),
    }
}

/// Reads the current version back and delivers it (inline path, §3.5).
pub(crate) async fn request_data(
    core: &Core,
    command: &CommandRecord,
    row: DataToken,
    request_id: privicore_domain::CommandId,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let (Some(version), TokenStatus::Active) = (row.version, row.status) else {
        return Ok(Plan::fail(if row.status == TokenStatus::Deleted {
            Reason::DataTokenNotFound
        } else {
            Reason::DataTokenNotActive
        }));
    };
    if row
        .stored_size
        .is_some_and(|size| size > core.config.storage.inline_delivery_max)
    {
        return stream_data(core, command, row, version, request_id, now).await;
    }
    let Some(payload) = replication::retrieve(core, row.profile_id, &row.token, version).await?
    else {
        return Ok(Plan::fail(Reason::StorageDataUnavailable));
    };
    let size = payload.len();
    let mut plan = Plan::succeed(
        fx(vec![count(
            &row,
            EVENT_REQUESTED,
            now,
            command.application_id,
        )]),
        json!({ "requestId": request_id.to_string(), "token": row.token, "version": version, "outputType": 0,
                "storedSize": size, "expiresAt": null }),
    );
    plan.before.push(BusEvent::Profile(ProfileEvent {
        profile_id: row.profile_id,
        application_id: command.application_id,
        command_id: Some(command.id),
        app_scope: None,
        data: json!({ "type": "X-DPT-CAB-REQUEST-ID", "id": request_id.to_string(), "output_type": 0,
                      "data_context": row.context, "body": encode_payload(&payload),
                      "commandId": command.id.to_string(), "token": row.token, "size": size }),
    }));
    Ok(plan)
}

/// Delivery through the downstream listener (§3.5 stream branch): the download URL goes out
/// at once, STREAM-READY once the first chunk came from a device and authenticated.
async fn stream_data(
    core: &Core,
    command: &CommandRecord,
    row: DataToken,
    version: u32,
    request_id: privicore_domain::CommandId,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let size = row.stored_size.unwrap_or_default();
    let (value, grant) =
        crate::streams::issue_download(core, &row.token, version, row.profile_id, size);
    let base = core
        .config
        .streams
        .downstream_public_url
        .trim_end_matches('/');
    let url = format!("{base}/?auth={}", value.expose());
    let event = |data: Value| {
        BusEvent::Profile(ProfileEvent {
            profile_id: row.profile_id,
            application_id: command.application_id,
            command_id: Some(command.id),
            app_scope: None,
            data,
        })
    };
    core.publish(event(json!({ "type": "X-DPT-CAB-REQUEST-ID", "id": request_id.to_string(), "output_type": 1,
                                "data_context": row.context, "body": url, "commandId": command.id.to_string(),
                                "token": row.token, "size": size })))
        .await;
    let ready =
        replication::stream_chunks(core, row.profile_id, &row.token, version, Some(1), None)
            .await?;
    crate::streams::settle_readiness(core, &value, &grant, ready);
    if !ready {
        return Ok(Plan::fail(Reason::StorageDataUnavailable));
    }
    let expires_at = grant.expires_at().rfc3339();
    let mut plan = Plan::succeed(
        fx(vec![count(
            &row,
            EVENT_REQUESTED,
            now,
            command.application_id,
        )]),
        json!({ "requestId": request_id.to_string(), "token": row.token, "version": version, "outputType": 1,
                "storedSize": size, "expiresAt": expires_at }),
    );
    plan.before.push(event(
        json!({ "type": "STREAM-READY", "id": request_id.to_string(),
                                   "requestId": request_id.to_string(), "streamUrl": url,
                                   "expiresAt": expires_at }),
    ));
    Ok(plan)
}

/// Devices that stored part or all of a version that failed are told to drop it.
fn undo_partial_writes(
    mut plan: Plan,
    token: &str,
    version: u32,
    targets: Vec<privicore_domain::device::DeviceId>,
) -> Plan {
    plan.after.push(After::SendDeletes {
        token: token.to_owned(),
        devices: targets,
        versions: Versions::List(vec![version]),
    });
    plan
}

/// A replicated version: the replica rows its commit writes and the counts the result
/// reports.
struct Committed {
    replicas: Vec<DataEffect>,
    devices: Vec<privicore_domain::device::DeviceId>,
    confirmed: usize,
    pending: u64,
    stored_size: u64,
}

impl Committed {
    /// What committing a spooled version writes: its replica rows, the version made
    /// current, and the spool dropped when no target still waits for it.
    fn spooled_commit(&mut self, token: &str, version: u32, now: Timestamp) -> Vec<DataEffect> {
        let mut effects = std::mem::take(&mut self.replicas);
        effects.push(DataEffect::CommitVersion {
            token: token.to_owned(),
            version,
            stored_size: self.stored_size,
            at: now,
        });
        if self.pending == 0 {
            effects.push(DataEffect::DropSpool {
                token: token.to_owned(),
                version,
            });
        }
        effects
    }
}

/// Replicates `version` to the profile's storage devices. A failure comes back as the
/// plan `failed` builds for its reason (with deletions for any partial writes).
async fn replicate_version(
    core: &Core,
    profile: privicore_domain::ProfileId,
    token: &str,
    version: u32,
    failed: impl Fn(Reason) -> Plan,
    in_hand: Option<&Sealed>,
) -> Result<Result<Committed, Plan>, StoreError> {
    Ok(
        match replication::replicate(core, profile, token, version, in_hand).await? {
            Replicated::NoDevices => Err(failed(Reason::StorageNoStorageDevices)),
            Replicated::WriteFailed { targets } => Err(undo_partial_writes(
                failed(Reason::StorageWriteFailed),
                token,
                version,
                targets,
            )),
            Replicated::Committed {
                devices,
                fresh,
                pending,
                stored_size,
            } => Ok(Committed {
                replicas: confirmations(token, version, &fresh, &devices),
                confirmed: devices.len(),
                devices,
                pending,
                stored_size,
            }),
        },
    )
}

/// The replicas confirmed in memory become durable with the commit itself, so a fetch
/// right after the ack always finds them. A new target that already confirmed is written
/// `confirmed` at once: creating it `pending` first would end in the same row, one
/// statement later.
fn confirmations(
    token: &str,
    version: u32,
    fresh: &[privicore_domain::device::DeviceId],
    devices: &[privicore_domain::device::DeviceId],
) -> Vec<DataEffect> {
    let created = fresh.iter().filter(|d| !devices.contains(d)).map(|d| {
        DataEffect::AddReplica(Replica {
            token: token.to_owned(),
            version,
            device_id: *d,
            state: ReplicaState::Pending,
        })
    });
    let confirmed = devices.iter().map(|d| DataEffect::ConfirmReplica {
        token: token.to_owned(),
        version,
        device_id: *d,
    });
    created.chain(confirmed).collect()
}

fn meta_effects(
    token: &str,
    [file, risk, data]: [&Option<Option<Value>>; 3],
    now: Timestamp,
) -> Vec<DataEffect> {
    let mut effects = Vec::new();
    if let Some(file) = file {
        effects.push(DataEffect::SetFileMeta {
            token: token.to_owned(),
            file: file.clone(),
            context: None,
            at: now,
        });
    }
    if let Some(risk) = risk {
        effects.push(DataEffect::SetRiskMeta {
            token: token.to_owned(),
            risk: risk.clone(),
            at: now,
        });
    }
    if let Some(data) = data {
        effects.push(DataEffect::SetDataMeta {
            token: token.to_owned(),
            data: data.clone(),
            at: now,
        });
    }
    effects
}

async fn exchange(
    core: &Core,
    command: &CommandRecord,
    row: DataToken,
    version: u32,
    now: Timestamp,
) -> Result<Plan, StoreError> {
    if row.status != TokenStatus::Exchanging {
        return Ok(Plan::fail(Reason::DataTokenAlreadyExchanged));
    }
    let spool = DataEffect::DropSpool {
        token: row.token.clone(),
        version,
    };
    let give_back = |reason: Reason| hand_back(&row, reason, spool.clone(), now);
    match replicate_version(
        core,
        command.profile_id,
        &row.token,
        version,
        give_back,
        None,
    )
    .await?
    {
        Ok(mut committed) => {
            let effects = committed.spooled_commit(&row.token, version, now);
            Ok(exchanged(command, &row, version, committed, effects, now))
        }
        Err(failed) => Ok(failed),
    }
}

/// What a command its vote refused gives back (docs/api/voting-and-policy.md §2.4): an
/// exchange hands its reservation back like any failed exchange (reserved with a fresh
/// upload value while its time is left, else expired) and drops its spooled version; a
/// replacement drops its spooled version. Other commands took nothing at acceptance.
pub(crate) async fn refused(
    core: &Core,
    command: &CommandRecord,
    now: Timestamp,
) -> Result<Vec<Effect>, StoreError> {
    match &command.payload {
        CommandPayload::ExchangeData { token, version, .. } => {
            let Some(row) = core.store.data_token(token).await? else {
                return Ok(Vec::new());
            };
            if row.status != TokenStatus::Exchanging {
                return Ok(Vec::new());
            }
            let spool = DataEffect::DropSpool {
                token: row.token.clone(),
                version: *version,
            };
            Ok(hand_back(&row, Reason::VotingRejected, spool, now).effects)
        }
        CommandPayload::ReplaceData { token, version, .. } => Ok(fx(vec![DataEffect::DropSpool {
            token: token.clone(),
            version: *version,
        }])),
        _ => Ok(Vec::new()),
    }
}

/// On failure the reservation is handed back, with a fresh upload value, if time is left.
fn hand_back(row: &DataToken, reason: Reason, with: DataEffect, now: Timestamp) -> Plan {
    let expired = row.expires_at.is_some_and(|e| e <= now);
    let (status, salt) = if expired {
        (TokenStatus::Expired, None)
    } else {
        (TokenStatus::Reserved, Some(fresh_salt()))
    };
    let abort = DataEffect::AbortExchange {
        token: row.token.clone(),
        status,
        upload_salt: salt,
        at: now,
    };
    // A begin must come before the abort; a spool drop may come after it.
    let effects = match with {
        DataEffect::BeginExchange { .. } => vec![with, abort],
        _ => vec![abort, with],
    };
    Plan::fail_with(reason, fx(effects))
}

fn exchanged(
    command: &CommandRecord,
    row: &DataToken,
    version: u32,
    committed: Committed,
    mut effects: Vec<DataEffect>,
    now: Timestamp,
) -> Plan {
    effects.push(count(row, EVENT_EXCHANGED, now, command.application_id));
    Plan::succeed(
        fx(effects),
        json!({ "token": row.token, "version": version, "storedSize": committed.stored_size,
                "replicas": { "confirmed": committed.confirmed, "pending": committed.pending } }),
    )
}

/// An exchange run at acceptance (its lane idle, every device online): the version goes to
/// the devices before anything is written, then one write takes the reservation, records
/// the version, its replicas and the outcome; the spool is not written (see
/// `replication::settle`). Returns the plan and what to undo should that write find the
/// reservation gone (expired meanwhile): the copies already on the devices are deleted.
pub(crate) async fn exchange_at_acceptance(
    core: &Core,
    command: &CommandRecord,
    row: DataToken,
    sealed: Sealed,
) -> Result<(Plan, Vec<After>), StoreError> {
    let now = Timestamp::now();
    let version = sealed.0.version;
    let begin = DataEffect::BeginExchange {
        token: row.token.clone(),
        at: now,
    };
    let give_back = |reason: Reason| hand_back(&row, reason, begin.clone(), now);
    let replicated = replicate_version(
        core,
        command.profile_id,
        &row.token,
        version,
        give_back,
        Some(&sealed),
    )
    .await?;
    let mut committed = match replicated {
        Ok(committed) => committed,
        Err(failed) => return Ok((failed, Vec::new())),
    };
    let kept = TokenVersion {
        committed: true,
        ..sealed.0.clone()
    };
    // One statement takes the reservation straight to `active` and the version is written
    // committed: nothing of this write is visible before all of it is, so the
    // `exchanging` step and the version's later commit flag would be two writes for
    // nothing. Nothing was spooled (so there is none to drop): the object stays in memory
    // for targets that owe their copy.
    let mut effects = vec![
        DataEffect::ActivateReservation {
            token: row.token.clone(),
            version,
            stored_size: committed.stored_size,
            at: now,
        },
        DataEffect::PutTokenVersion(kept.clone()),
    ];
    effects.append(&mut committed.replicas);
    let object = (committed.pending > 0).then_some(sealed);
    let late = |recorded, object| After::RecordLate {
        token: row.token.clone(),
        version,
        recorded,
        object,
    };
    let undo = vec![
        late(None, None),
        After::SendDeletes {
            token: row.token.clone(),
            devices: core.storage_targets(command.profile_id).await?,
            versions: Versions::List(vec![version]),
        },
    ];
    let after = late(Some(committed.devices.clone()), object);
    let noted = After::NoteCommitted(kept, committed.devices.clone());
    let mut plan = exchanged(command, &row, version, committed, effects, now);
    plan.after.extend([after, noted]);
    Ok((plan, undo))
}

/// Shape B with data: version n+1 replicates like an exchange; n is dropped after commit.
async fn replace(
    core: &Core,
    command: &CommandRecord,
    row: DataToken,
    version: u32,
    groups: [&Option<Option<Value>>; 3],
    now: Timestamp,
) -> Result<Plan, StoreError> {
    let drop_new = |reason: Reason| {
        Plan::fail_with(
            reason,
            fx(vec![DataEffect::DropSpool {
                token: row.token.clone(),
                version,
            }]),
        )
    };
    if row.status != TokenStatus::Active {
        return Ok(drop_new(Reason::DataTokenNotActive));
    }
    let mut committed =
        match replicate_version(core, row.profile_id, &row.token, version, drop_new, None).await? {
            Ok(committed) => committed,
            Err(failed) => return Ok(failed),
        };
    let mut effects = committed.spooled_commit(&row.token, version, now);
    effects.extend(meta_effects(&row.token, groups, now));
    effects.push(count(&row, EVENT_UPDATED, now, command.application_id));
    let mut after = Vec::new();
    if let Some(old) = row.version {
        let replicas = core.store.replicas(&row.token, Some(old)).await?;
        for r in &replicas {
            effects.push(DataEffect::SetReplica(Replica {
                state: ReplicaState::Deleting,
                ..r.clone()
            }));
        }
        let devices = replicas.into_iter().map(|r| r.device_id).collect();
        after.push(After::SendDeletes {
            token: row.token.clone(),
            devices,
            versions: Versions::List(vec![old]),
        });
    }
    let mut plan = Plan::succeed(
        fx(effects),
        json!({ "token": row.token, "version": version, "storedSize": committed.stored_size }),
    );
    plan.after = after;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_domain::device::DeviceId;

    #[test]
    fn a_target_that_confirmed_is_written_once_confirmed_and_the_others_pending() {
        let [a, b, c] = [DeviceId::new(), DeviceId::new(), DeviceId::new()];
        let effects = confirmations("dtk-x", 2, &[a, b, c], &[a, b]);
        let pending: Vec<DeviceId> = effects
            .iter()
            .filter_map(|e| match e {
                DataEffect::AddReplica(r) if r.state == ReplicaState::Pending => Some(r.device_id),
                _ => None,
            })
            .collect();
        let confirmed: Vec<DeviceId> = effects
            .iter()
            .filter_map(|e| match e {
                DataEffect::ConfirmReplica {
                    device_id, version, ..
                } if *version == 2 => Some(*device_id),
                _ => None,
            })
            .collect();
        assert_eq!(pending, vec![c]);
        assert_eq!(confirmed, vec![a, b]);
        assert_eq!(effects.len(), 3);
    }
}
