use crate::db::{count, exec, unavailable};
use privicore_domain::Reason;
use privicore_domain::data_token::DataToken;
use privicore_domain::effect::DataEffect;
use privicore_domain::ports::StoreError;
use rusqlite::{Connection, params, params_from_iter};

fn json(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// The token whose row `effect` writes, if any: the row cache forgets it before the
/// commit and takes the row as written after it.
pub fn token_row_written(effect: &DataEffect) -> Option<&str> {
    match effect {
        DataEffect::CreateDataToken(t) => Some(&t.token),
        DataEffect::BeginExchange { token, .. }
        | DataEffect::AbortExchange { token, .. }
        | DataEffect::CommitVersion { token, .. }
        | DataEffect::ActivateReservation { token, .. }
        | DataEffect::ExpireReservation { token, .. }
        | DataEffect::SetFileMeta { token, .. }
        | DataEffect::SetRiskMeta { token, .. }
        | DataEffect::SetDataMeta { token, .. }
        | DataEffect::DeleteDataToken { token, .. } => Some(token),
        _ => None,
    }
}

/// A statement on one token row ending in `RETURNING` its columns: the rows it wrote go
/// to `written`; returns how many.
fn exec_row(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    written: &mut Vec<DataToken>,
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(unavailable)?;
    let mut rows = statement.query(params).map_err(unavailable)?;
    let mut n = 0;
    while let Some(row) = rows.next().map_err(unavailable)? {
        written.push(crate::rows::data_token(row)?);
        n += 1;
    }
    Ok(n)
}

pub fn apply(
    conn: &Connection,
    effect: &DataEffect,
    written: &mut Vec<DataToken>,
) -> Result<u64, StoreError> {
    match effect {
        DataEffect::SaveDevice(d) => {
            // Credentials and the pinned key have their own effects: a command's row update
            // must never bring back rotated secrets.
            let creds = d.credentials.as_ref();
            exec(
                conn,
                "INSERT INTO devices (id, profile_id, request_command_id, name, description, status, roles, public_key, meta,
                 client_id, client_secret_hash, bus_password_hash, created_at, approved_at, removed_at, configuration_issued_at, storage_registered_at,
                 authenticator_registered_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, status = excluded.status,
                 roles = excluded.roles, meta = excluded.meta, approved_at = excluded.approved_at, removed_at = excluded.removed_at,
                 storage_registered_at = excluded.storage_registered_at,
                 authenticator_registered_at = excluded.authenticator_registered_at",
                params![
                    d.id.to_string(),
                    d.profile_id.to_string(),
                    d.request_command_id.to_string(),
                    d.name,
                    d.description,
                    d.status.as_str(),
                    d.roles.join(","),
                    d.public_key,
                    serde_json::Value::Object(d.meta.clone()).to_string(),
                    creds.map(|c| c.client_id.clone()),
                    creds.map(|c| c.client_secret.to_hex()),
                    creds.map(|c| c.bus_password.to_hex()),
                    d.created_at.unix(),
                    d.approved_at.map(|t| t.unix()),
                    d.removed_at.map(|t| t.unix()),
                    d.configuration_issued_at.map(|t| t.unix()),
                    d.storage_registered_at.map(|t| t.unix()),
                    d.authenticator_registered_at.map(|t| t.unix()),
                ],
            )
        }
        DataEffect::SetDeviceSync { device_id, record } => exec(
            conn,
            "UPDATE devices SET last_sync_id = ?, last_sync_status = ?, last_sync_started_at = ?, last_sync_finished_at = ?
             WHERE id = ?",
            params![
                record.sync_id.to_string(),
                record.status,
                record.started_at.unix(),
                record.finished_at.map(|t| t.unix()),
                device_id.to_string(),
            ],
        ),
        DataEffect::ClearDeviceCredentials { device_id } => exec(
            conn,
            "UPDATE devices SET client_id = NULL, client_secret_hash = NULL, bus_password_hash = NULL WHERE id = ?",
            [device_id.to_string()],
        ),
        DataEffect::PinDeviceKey {
            device_id,
            public_key,
        } => exec(
            conn,
            "UPDATE devices SET public_key = ? WHERE id = ? AND public_key IS NULL",
            params![public_key, device_id.to_string()],
        ),
        DataEffect::RotateDeviceCredentials {
            device_id,
            credentials,
            at,
        } => exec(
            conn,
            "UPDATE devices SET client_id = ?, client_secret_hash = ?, bus_password_hash = ?, public_key = NULL,
             configuration_issued_at = ? WHERE id = ?",
            params![
                credentials.client_id,
                credentials.client_secret.to_hex(),
                credentials.bus_password.to_hex(),
                at.unix(),
                device_id.to_string(),
            ],
        ),
        DataEffect::CapOutstandingReservations { profile_id, limit } => {
            let outstanding = count(
                conn,
                "SELECT COUNT(*) FROM data_tokens WHERE profile_id = ? AND status IN ('reserved', 'exchanging')",
                [profile_id.to_string()],
            )?;
            if outstanding >= *limit {
                return Err(StoreError::Conflict(Reason::DataTokenTooManyReservations));
            }
            Ok(0)
        }
        DataEffect::CreateDataToken(t) => exec_row(
            conn,
            returning_token_row!("INSERT INTO data_tokens (token, profile_id, application_id, reserve_command_id, status, context, expires_at, upload_salt,
                 version, stored_size, meta_file, meta_risk, meta_data, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            params![
                t.token,
                t.profile_id.to_string(),
                t.application_id.map(|a| a.to_string()),
                t.reserve_command_id.to_string(),
                t.status.as_str(),
                t.context,
                t.expires_at.map(|e| e.unix()),
                t.upload_salt.map(|h| h.to_hex()),
                t.version.map(i64::from),
                t.stored_size.map(|s| s as i64),
                json(&t.meta_file),
                json(&t.meta_risk),
                json(&t.meta_data),
                t.created_at.unix(),
                t.updated_at.unix(),
            ],
            written,
        ),
        DataEffect::BeginExchange { token, at } => {
            let changed = exec_row(
                conn,
                returning_token_row!("UPDATE data_tokens SET status = 'exchanging', upload_salt = NULL, updated_at = ? WHERE token = ? AND status = 'reserved'"),
                params![at.unix(), token],
                written,
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict(Reason::DataTokenAlreadyExchanged));
            }
            Ok(1)
        }
        DataEffect::AbortExchange {
            token,
            status,
            upload_salt,
            at,
        } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET status = ?, upload_salt = ?, updated_at = ? WHERE token = ? AND status = 'exchanging'"),
            params![
                status.as_str(),
                upload_salt.map(|h| h.to_hex()),
                at.unix(),
                token
            ],
            written,
        ),
        DataEffect::CommitVersion {
            token,
            version,
            stored_size,
            at,
        } => {
            exec(
                conn,
                concat!("UPDATE token_versions SET committed = 1 WHERE token_seq = ", token_seq!(), " AND version = ?"),
                params![token, i64::from(*version)],
            )?;
            exec_row(
                conn,
                returning_token_row!("UPDATE data_tokens SET status = 'active', version = ?, stored_size = ?, expires_at = NULL, upload_salt = NULL, updated_at = ?
                     WHERE token = ? AND status IN ('exchanging', 'active')"),
                params![i64::from(*version), *stored_size as i64, at.unix(), token],
                written,
            )
        }
        DataEffect::ActivateReservation {
            token,
            version,
            stored_size,
            at,
        } => {
            let changed = exec_row(
                conn,
                returning_token_row!("UPDATE data_tokens SET status = 'active', version = ?, stored_size = ?, expires_at = NULL, upload_salt = NULL, updated_at = ?
                     WHERE token = ? AND status = 'reserved'"),
                params![i64::from(*version), *stored_size as i64, at.unix(), token],
                written,
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict(Reason::DataTokenAlreadyExchanged));
            }
            Ok(1)
        }
        DataEffect::ExpireReservation { token, at } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET status = 'expired', upload_salt = NULL, updated_at = ? WHERE token = ? AND status = 'reserved'"),
            params![at.unix(), token],
            written,
        ),
        DataEffect::SetFileMeta {
            token,
            file,
            context,
            at,
        } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET meta_file = ?, context = COALESCE(?, context), updated_at = ? WHERE token = ?"),
            params![json(file), context, at.unix(), token],
            written,
        ),
        DataEffect::SetRiskMeta { token, risk, at } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET meta_risk = ?, updated_at = ? WHERE token = ?"),
            params![json(risk), at.unix(), token],
            written,
        ),
        DataEffect::SetDataMeta { token, data, at } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET meta_data = ?, updated_at = ? WHERE token = ?"),
            params![json(data), at.unix(), token],
            written,
        ),
        DataEffect::DeleteDataToken { token, at } => exec_row(
            conn,
            returning_token_row!("UPDATE data_tokens SET status = 'deleted', meta_file = NULL, meta_risk = NULL, meta_data = NULL, upload_salt = NULL,
                 expires_at = NULL, updated_at = ? WHERE token = ?"),
            params![at.unix(), token],
            written,
        ),
        DataEffect::PutTokenVersion(v) => exec(
            conn,
            concat!("INSERT OR REPLACE INTO token_versions (token_seq, version, header, digest, total_size, chunk_count, committed)
             VALUES (", token_seq!(), ", ?, ?, ?, ?, ?, ?)"),
            params![
                v.token,
                i64::from(v.version),
                v.header,
                v.digest,
                v.total_size as i64,
                i64::from(v.chunk_count),
                v.committed,
            ],
        ),
        DataEffect::SetReplica(r) => exec(
            conn,
            concat!("INSERT OR REPLACE INTO replicas (token_seq, version, device_id, state) VALUES (", token_seq!(), ", ?, ?, ?)"),
            params![
                r.token,
                i64::from(r.version),
                r.device_id.to_string(),
                r.state.as_str()
            ],
        ),
        DataEffect::AddReplica(r) => exec(
            conn,
            concat!("INSERT OR IGNORE INTO replicas (token_seq, version, device_id, state) VALUES (", token_seq!(), ", ?, ?, ?)"),
            params![
                r.token,
                i64::from(r.version),
                r.device_id.to_string(),
                r.state.as_str()
            ],
        ),
        DataEffect::ConfirmReplica {
            token,
            version,
            device_id,
        } => exec(
            conn,
            concat!("INSERT INTO replicas (token_seq, version, device_id, state) VALUES (", token_seq!(), ", ?, ?, 'confirmed')
             ON CONFLICT (token_seq, version, device_id) DO UPDATE SET state = 'confirmed'
             WHERE replicas.state IN ('pending', 'missing')"),
            params![token, i64::from(*version), device_id.to_string()],
        ),
        DataEffect::TransitionReplica {
            token,
            version,
            device_id,
            from,
            to,
        } => {
            let placeholders = vec!["?"; from.len()].join(", ");
            let sql = format!(
                "UPDATE replicas SET state = ? WHERE token_seq = {seq} AND version = ? AND device_id = ? AND state IN ({placeholders})",
                seq = token_seq!()
            );
            let mut values: Vec<rusqlite::types::Value> = vec![
                to.as_str().to_owned().into(),
                token.clone().into(),
                i64::from(*version).into(),
                device_id.to_string().into(),
            ];
            values.extend(from.iter().map(|s| s.as_str().to_owned().into()));
            exec(conn, &sql, params_from_iter(values))
        }
        DataEffect::DropReplicas { token, device_id } => exec(
            conn,
            concat!("DELETE FROM replicas WHERE token_seq = ", token_seq!(), " AND device_id = ? AND state = 'deleting'"),
            params![token, device_id.to_string()],
        ),
        DataEffect::DetachReplicas { device_id } => exec(
            conn,
            "UPDATE replicas SET state = 'detached' WHERE device_id = ? AND state <> 'deleting'",
            [device_id.to_string()],
        ),
        DataEffect::PutSpool {
            token,
            version,
            chunks,
        } => {
            let mut total = 0;
            for (i, chunk) in chunks.iter().enumerate() {
                total += exec(
                    conn,
                    concat!("INSERT OR REPLACE INTO spool (token_seq, version, chunk_index, sealed, spooled_at) VALUES (", token_seq!(), ", ?, ?, ?, unixepoch())"),
                    params![token, i64::from(*version), i as i64, chunk],
                )?;
            }
            Ok(total)
        }
        DataEffect::PutSpoolChunk {
            token,
            version,
            index,
            sealed,
        } => exec(
            conn,
            concat!("INSERT OR REPLACE INTO spool (token_seq, version, chunk_index, sealed, spooled_at) VALUES (", token_seq!(), ", ?, ?, ?, unixepoch())"),
            params![token, i64::from(*version), i64::from(*index), sealed],
        ),
        DataEffect::DropSpool { token, version } => exec(
            conn,
            concat!("DELETE FROM spool WHERE token_seq = ", token_seq!(), " AND version = ?"),
            params![token, i64::from(*version)],
        ),
        DataEffect::DropSettledSpool { token, version } => exec(
            conn,
            concat!(
                "DELETE FROM spool WHERE token_seq = ", token_seq!("?1"), " AND version = ?2
                 AND NOT EXISTS (SELECT 1 FROM replicas WHERE token_seq = ", token_seq!("?1"),
                " AND version = ?2 AND state = 'pending')"
            ),
            params![token, i64::from(*version)],
        ),
        DataEffect::CountEvent {
            profile_id,
            kind,
            context,
            at,
            application_id,
        } => exec(
            conn,
            "INSERT INTO token_events (profile_id, kind, context, at, application_id)
             VALUES (?, ?, ?, ?, ?)",
            params![
                profile_id.to_string(),
                *kind,
                context,
                at.unix(),
                application_id.map(|a| a.to_string())
            ],
        ),
    }
}
