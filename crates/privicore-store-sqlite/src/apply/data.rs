use crate::unavailable;
use privicore_domain::Reason;
use privicore_domain::effect::DataEffect;
use privicore_domain::ports::StoreError;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteQueryResult;

fn json(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Replaces one metadata group (the statement names the column).
async fn set_meta(
    conn: &mut SqliteConnection,
    statement: &'static str,
    token: &str,
    value: &Option<serde_json::Value>,
    at: privicore_domain::Timestamp,
) -> Result<SqliteQueryResult, sqlx::Error> {
    sqlx::query(statement)
        .bind(json(value))
        .bind(at.unix())
        .bind(token)
        .execute(conn)
        .await
}

pub async fn apply(conn: &mut SqliteConnection, effect: &DataEffect) -> Result<u64, StoreError> {
    let done: SqliteQueryResult = match effect {
        DataEffect::SaveDevice(d) => {
            // Credentials and the pinned key have their own effects: a command's row update
            // must never bring back rotated secrets.
            let creds = d.credentials.as_ref();
            sqlx::query(
                "INSERT INTO devices (id, profile_id, request_command_id, name, description, status, roles, public_key, meta,
                 client_id, client_secret_hash, bus_password_hash, created_at, approved_at, removed_at, configuration_issued_at, storage_registered_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, status = excluded.status,
                 roles = excluded.roles, meta = excluded.meta, approved_at = excluded.approved_at, removed_at = excluded.removed_at,
                 storage_registered_at = excluded.storage_registered_at",
            )
            .bind(d.id.to_string())
            .bind(d.profile_id.to_string())
            .bind(d.request_command_id.to_string())
            .bind(&d.name)
            .bind(&d.description)
            .bind(d.status.as_str())
            .bind(d.roles.join(","))
            .bind(&d.public_key)
            .bind(serde_json::Value::Object(d.meta.clone()).to_string())
            .bind(creds.map(|c| c.client_id.clone()))
            .bind(creds.map(|c| c.client_secret.to_hex()))
            .bind(creds.map(|c| c.bus_password.to_hex()))
            .bind(d.created_at.unix())
            .bind(d.approved_at.map(|t| t.unix()))
            .bind(d.removed_at.map(|t| t.unix()))
            .bind(d.configuration_issued_at.map(|t| t.unix()))
            .bind(d.storage_registered_at.map(|t| t.unix()))
            .execute(conn)
            .await
        }
        DataEffect::SetDeviceSync { device_id, record } => {
            sqlx::query(
                "UPDATE devices SET last_sync_id = ?, last_sync_status = ?, last_sync_started_at = ?, last_sync_finished_at = ?
                 WHERE id = ?",
            )
            .bind(record.sync_id.to_string())
            .bind(&record.status)
            .bind(record.started_at.unix())
            .bind(record.finished_at.map(|t| t.unix()))
            .bind(device_id.to_string())
            .execute(conn)
            .await
        }
        DataEffect::ClearDeviceCredentials { device_id } => {
            sqlx::query(
                "UPDATE devices SET client_id = NULL, client_secret_hash = NULL, bus_password_hash = NULL WHERE id = ?",
            )
            .bind(device_id.to_string())
            .execute(conn)
            .await
        }
        DataEffect::PinDeviceKey { device_id, public_key } => {
            sqlx::query("UPDATE devices SET public_key = ? WHERE id = ? AND public_key IS NULL")
                .bind(public_key)
                .bind(device_id.to_string())
                .execute(conn)
                .await
        }
        DataEffect::RotateDeviceCredentials { device_id, credentials, at } => {
            sqlx::query(
                "UPDATE devices SET client_id = ?, client_secret_hash = ?, bus_password_hash = ?, public_key = NULL,
                 configuration_issued_at = ? WHERE id = ?",
            )
            .bind(&credentials.client_id)
            .bind(credentials.client_secret.to_hex())
            .bind(credentials.bus_password.to_hex())
            .bind(at.unix())
            .bind(device_id.to_string())
            .execute(conn)
            .await
        }
        DataEffect::CreateDataToken(t) => {
            sqlx::query(
                "INSERT INTO data_tokens (token, profile_id, application_id, reserve_command_id, status, context, expires_at, upload_salt,
                 version, stored_size, meta_file, meta_risk, meta_data, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.token)
            .bind(t.profile_id.to_string())
            .bind(t.application_id.map(|a| a.to_string()))
            .bind(t.reserve_command_id.to_string())
            .bind(t.status.as_str())
            .bind(&t.context)
            .bind(t.expires_at.map(|e| e.unix()))
            .bind(t.upload_salt.map(|h| h.to_hex()))
            .bind(t.version.map(i64::from))
            .bind(t.stored_size.map(|s| s as i64))
            .bind(json(&t.meta_file))
            .bind(json(&t.meta_risk))
            .bind(json(&t.meta_data))
            .bind(t.created_at.unix())
            .bind(t.updated_at.unix())
            .execute(conn)
            .await
        }
        DataEffect::BeginExchange { token, at } => {
            let r = sqlx::query(
                "UPDATE data_tokens SET status = 'exchanging', upload_salt = NULL, updated_at = ? WHERE token = ? AND status = 'reserved'",
            )
            .bind(at.unix())
            .bind(token)
            .execute(conn)
            .await
            .map_err(unavailable)?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Conflict(Reason::DataTokenAlreadyExchanged));
            }
            return Ok(1);
        }
        DataEffect::AbortExchange { token, status, upload_salt, at } => {
            sqlx::query("UPDATE data_tokens SET status = ?, upload_salt = ?, updated_at = ? WHERE token = ? AND status = 'exchanging'")
                .bind(status.as_str())
                .bind(upload_salt.map(|h| h.to_hex()))
                .bind(at.unix())
                .bind(token)
                .execute(conn)
                .await
        }
        DataEffect::CommitVersion { token, version, stored_size, at } => {
            sqlx::query("UPDATE token_versions SET committed = 1 WHERE token = ? AND version = ?")
                .bind(token)
                .bind(i64::from(*version))
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
            sqlx::query(
                "UPDATE data_tokens SET status = 'active', version = ?, stored_size = ?, expires_at = NULL, upload_salt = NULL, updated_at = ?
                 WHERE token = ? AND status IN ('exchanging', 'active')",
            )
            .bind(i64::from(*version))
            .bind(*stored_size as i64)
            .bind(at.unix())
            .bind(token)
            .execute(conn)
            .await
        }
        DataEffect::ExpireReservation { token, at } => {
            sqlx::query("UPDATE data_tokens SET status = 'expired', upload_salt = NULL, updated_at = ? WHERE token = ? AND status = 'reserved'")
                .bind(at.unix())
                .bind(token)
                .execute(conn)
                .await
        }
        DataEffect::SetFileMeta { token, file, context, at } => {
            sqlx::query("UPDATE data_tokens SET meta_file = ?, context = COALESCE(?, context), updated_at = ? WHERE token = ?")
                .bind(json(file))
                .bind(context)
                .bind(at.unix())
                .bind(token)
                .execute(conn)
                .await
        }
        DataEffect::SetRiskMeta { token, risk, at } => {
            set_meta(conn, "UPDATE data_tokens SET meta_risk = ?, updated_at = ? WHERE token = ?", token, risk, *at).await
        }
        DataEffect::SetDataMeta { token, data, at } => {
            set_meta(conn, "UPDATE data_tokens SET meta_data = ?, updated_at = ? WHERE token = ?", token, data, *at).await
        }
        DataEffect::DeleteDataToken { token, at } => {
            sqlx::query(
                "UPDATE data_tokens SET status = 'deleted', meta_file = NULL, meta_risk = NULL, meta_data = NULL, upload_salt = NULL,
                 expires_at = NULL, updated_at = ? WHERE token = ?",
            )
            .bind(at.unix())
            .bind(token)
            .execute(conn)
            .await
        }
        DataEffect::PutTokenVersion(v) => {
            sqlx::query(
                "INSERT OR REPLACE INTO token_versions (token, version, header, digest, total_size, chunk_count, committed)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&v.token)
            .bind(i64::from(v.version))
            .bind(&v.header)
            .bind(&v.digest)
            .bind(v.total_size as i64)
            .bind(i64::from(v.chunk_count))
            .bind(v.committed)
            .execute(conn)
            .await
        }
        DataEffect::SetReplica(r) => {
            sqlx::query("INSERT OR REPLACE INTO replicas (token, version, device_id, state) VALUES (?, ?, ?, ?)")
                .bind(&r.token)
                .bind(i64::from(r.version))
                .bind(r.device_id.to_string())
                .bind(r.state.as_str())
                .execute(conn)
                .await
        }
        DataEffect::AddReplica(r) => {
            sqlx::query("INSERT OR IGNORE INTO replicas (token, version, device_id, state) VALUES (?, ?, ?, ?)")
                .bind(&r.token)
                .bind(i64::from(r.version))
                .bind(r.device_id.to_string())
                .bind(r.state.as_str())
                .execute(conn)
                .await
        }
        DataEffect::ConfirmReplica { token, version, device_id } => {
            sqlx::query(
                "INSERT INTO replicas (token, version, device_id, state) VALUES (?, ?, ?, 'confirmed')
                 ON CONFLICT (token, version, device_id) DO UPDATE SET state = 'confirmed'
                 WHERE replicas.state IN ('pending', 'missing')",
            )
            .bind(token)
            .bind(i64::from(*version))
            .bind(device_id.to_string())
            .execute(conn)
            .await
        }
        DataEffect::TransitionReplica { token, version, device_id, from, to } => {
            let mut q = sqlx::QueryBuilder::new("UPDATE replicas SET state = ");
            q.push_bind(to.as_str());
            q.push(" WHERE token = ").push_bind(token);
            q.push(" AND version = ").push_bind(i64::from(*version));
            q.push(" AND device_id = ").push_bind(device_id.to_string());
            q.push(" AND state IN (");
            let mut sep = q.separated(", ");
            for s in from {
                sep.push_bind(s.as_str());
            }
            q.push(")");
            q.build().execute(conn).await
        }
        DataEffect::DropReplicas { token, device_id } => {
            sqlx::query("DELETE FROM replicas WHERE token = ? AND device_id = ? AND state = 'deleting'")
                .bind(token)
                .bind(device_id.to_string())
                .execute(conn)
                .await
        }
        DataEffect::DetachReplicas { device_id } => {
            sqlx::query("UPDATE replicas SET state = 'detached' WHERE device_id = ? AND state <> 'deleting'")
                .bind(device_id.to_string())
                .execute(conn)
                .await
        }
        DataEffect::PutSpool { token, version, chunks } => {
            let mut total = 0;
            for (i, chunk) in chunks.iter().enumerate() {
                total += sqlx::query("INSERT OR REPLACE INTO spool (token, version, chunk_index, sealed) VALUES (?, ?, ?, ?)")
                    .bind(token)
                    .bind(i64::from(*version))
                    .bind(i as i64)
                    .bind(chunk)
                    .execute(&mut *conn)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            }
            return Ok(total);
        }
        DataEffect::DropSpool { token, version } => {
            sqlx::query("DELETE FROM spool WHERE token = ? AND version = ?")
                .bind(token)
                .bind(i64::from(*version))
                .execute(conn)
                .await
        }
        DataEffect::CountEvent { profile_id, kind, context, at } => {
            sqlx::query("INSERT INTO token_events (profile_id, kind, context, at) VALUES (?, ?, ?, ?)")
                .bind(profile_id.to_string())
                .bind(*kind)
                .bind(context)
                .bind(at.unix())
                .execute(conn)
                .await
        }
    }
    .map_err(unavailable)?;
    Ok(done.rows_affected())
}
