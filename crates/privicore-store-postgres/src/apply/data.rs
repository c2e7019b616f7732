use crate::data::token_seq;
use crate::db::{count, exec};
use privicore_domain::Reason;
use privicore_domain::effect::DataEffect;
use privicore_domain::ports::StoreError;
use sqlx::PgConnection;

fn json(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

/// Unix seconds at the start of the transaction.
const NOW: &str = "extract(epoch from now())::bigint";

/// Fails with `reason` when a conditional update found no row in the expected state.
fn changed_or(n: u64, reason: Reason) -> Result<u64, StoreError> {
    if n == 0 {
        Err(StoreError::Conflict(reason))
    } else {
        Ok(n)
    }
}

pub async fn apply(conn: &mut PgConnection, effect: &DataEffect) -> Result<u64, StoreError> {
    match effect {
        DataEffect::SaveDevice(d) => {
            // Credentials and the pinned key have their own effects: a command's row update
            // must never bring back rotated secrets.
            let creds = d.credentials.as_ref();
            exec(
                conn,
                sqlx::query(
                    "INSERT INTO devices (id, profile_id, request_command_id, name, description, status, roles, public_key, meta,
                     client_id, client_secret_hash, bus_password_hash, created_at, approved_at, removed_at, configuration_issued_at, storage_registered_at,
                     authenticator_registered_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, status = excluded.status,
                     roles = excluded.roles, meta = excluded.meta, approved_at = excluded.approved_at, removed_at = excluded.removed_at,
                     storage_registered_at = excluded.storage_registered_at,
                     authenticator_registered_at = excluded.authenticator_registered_at",
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
                .bind(d.authenticator_registered_at.map(|t| t.unix())),
            )
            .await
        }
        DataEffect::SetDeviceSync { device_id, record } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE devices SET last_sync_id = $1, last_sync_status = $2, last_sync_started_at = $3, last_sync_finished_at = $4
                     WHERE id = $5",
                )
                .bind(record.sync_id.to_string())
                .bind(&record.status)
                .bind(record.started_at.unix())
                .bind(record.finished_at.map(|t| t.unix()))
                .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::ClearDeviceCredentials { device_id } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE devices SET client_id = NULL, client_secret_hash = NULL, bus_password_hash = NULL WHERE id = $1",
                )
                .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::PinDeviceKey {
            device_id,
            public_key,
        } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE devices SET public_key = $1 WHERE id = $2 AND public_key IS NULL",
                )
                .bind(public_key)
                .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::RotateDeviceCredentials {
            device_id,
            credentials,
            at,
        } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE devices SET client_id = $1, client_secret_hash = $2, bus_password_hash = $3, public_key = NULL,
                     configuration_issued_at = $4 WHERE id = $5",
                )
                .bind(&credentials.client_id)
                .bind(credentials.client_secret.to_hex())
                .bind(credentials.bus_password.to_hex())
                .bind(at.unix())
                .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::CapOutstandingReservations { profile_id, limit } => {
            // The SQLite adapter counts on its single writer. Here two engines could both
            // count below the cap and both reserve: the profile's row lock makes the
            // second wait for the first's commit, and its count then includes that token.
            exec(
                &mut *conn,
                sqlx::query("SELECT 1 FROM profiles WHERE id = $1 FOR UPDATE")
                    .bind(profile_id.to_string()),
            )
            .await?;
            let outstanding = count(
                conn,
                sqlx::query(
                    "SELECT COUNT(*) FROM data_tokens WHERE profile_id = $1 AND status IN ('reserved', 'exchanging')",
                )
                .bind(profile_id.to_string()),
            )
            .await?;
            if outstanding >= *limit {
                return Err(StoreError::Conflict(Reason::DataTokenTooManyReservations));
            }
            Ok(0)
        }
        DataEffect::CreateDataToken(t) => {
            exec(
                conn,
                sqlx::query(
                    "INSERT INTO data_tokens (token, profile_id, application_id, reserve_command_id, status, context, expires_at, upload_salt,
                     version, stored_size, meta_file, meta_risk, meta_data, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
                .bind(t.updated_at.unix()),
            )
            .await
        }
        // Conditional updates: PostgreSQL re-checks the condition on the row it locked, so
        // of two engines moving one token, the second finds it moved on.
        DataEffect::BeginExchange { token, at } => {
            let n = exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = 'exchanging', upload_salt = NULL, updated_at = $1 WHERE token = $2 AND status = 'reserved'",
                )
                .bind(at.unix())
                .bind(token),
            )
            .await?;
            changed_or(n, Reason::DataTokenAlreadyExchanged).map(|_| 1)
        }
        DataEffect::AbortExchange {
            token,
            status,
            upload_salt,
            at,
        } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = $1, upload_salt = $2, updated_at = $3 WHERE token = $4 AND status = 'exchanging'",
                )
                .bind(status.as_str())
                .bind(upload_salt.map(|h| h.to_hex()))
                .bind(at.unix())
                .bind(token),
            )
            .await
        }
        DataEffect::CommitVersion {
            token,
            version,
            stored_size,
            at,
        } => {
            let sql = format!(
                "UPDATE token_versions SET committed = TRUE WHERE token_seq = {} AND version = $2",
                token_seq(1)
            );
            exec(
                &mut *conn,
                sqlx::query(&sql).bind(token).bind(i64::from(*version)),
            )
            .await?;
            exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = 'active', version = $1, stored_size = $2, expires_at = NULL, upload_salt = NULL, updated_at = $3
                     WHERE token = $4 AND status IN ('exchanging', 'active')",
                )
                .bind(i64::from(*version))
                .bind(*stored_size as i64)
                .bind(at.unix())
                .bind(token),
            )
            .await
        }
        DataEffect::ActivateReservation {
            token,
            version,
            stored_size,
            at,
        } => {
            let n = exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = 'active', version = $1, stored_size = $2, expires_at = NULL, upload_salt = NULL, updated_at = $3
                     WHERE token = $4 AND status = 'reserved'",
                )
                .bind(i64::from(*version))
                .bind(*stored_size as i64)
                .bind(at.unix())
                .bind(token),
            )
            .await?;
            changed_or(n, Reason::DataTokenAlreadyExchanged).map(|_| 1)
        }
        DataEffect::ExpireReservation { token, at } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = 'expired', upload_salt = NULL, updated_at = $1 WHERE token = $2 AND status = 'reserved'",
                )
                .bind(at.unix())
                .bind(token),
            )
            .await
        }
        DataEffect::SetFileMeta {
            token,
            file,
            context,
            at,
        } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET meta_file = $1, context = COALESCE($2, context), updated_at = $3 WHERE token = $4",
                )
                .bind(json(file))
                .bind(context)
                .bind(at.unix())
                .bind(token),
            )
            .await
        }
        DataEffect::SetRiskMeta { token, risk, at } => {
            exec(
                conn,
                sqlx::query("UPDATE data_tokens SET meta_risk = $1, updated_at = $2 WHERE token = $3")
                    .bind(json(risk))
                    .bind(at.unix())
                    .bind(token),
            )
            .await
        }
        DataEffect::SetDataMeta { token, data, at } => {
            exec(
                conn,
                sqlx::query("UPDATE data_tokens SET meta_data = $1, updated_at = $2 WHERE token = $3")
                    .bind(json(data))
                    .bind(at.unix())
                    .bind(token),
            )
            .await
        }
        DataEffect::DeleteDataToken { token, at } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE data_tokens SET status = 'deleted', meta_file = NULL, meta_risk = NULL, meta_data = NULL, upload_salt = NULL,
                     expires_at = NULL, updated_at = $1 WHERE token = $2",
                )
                .bind(at.unix())
                .bind(token),
            )
            .await
        }
        DataEffect::PutTokenVersion(v) => {
            let sql = format!(
                "INSERT INTO token_versions (token_seq, version, header, digest, total_size, chunk_count, committed)
                 VALUES ({}, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (token_seq, version) DO UPDATE SET header = excluded.header, digest = excluded.digest,
                 total_size = excluded.total_size, chunk_count = excluded.chunk_count, committed = excluded.committed",
                token_seq(1)
            );
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(&v.token)
                    .bind(i64::from(v.version))
                    .bind(&v.header)
                    .bind(&v.digest)
                    .bind(v.total_size as i64)
                    .bind(i64::from(v.chunk_count))
                    .bind(v.committed),
            )
            .await
        }
        DataEffect::SetReplica(r) => {
            let sql = format!(
                "INSERT INTO replicas (token_seq, version, device_id, state) VALUES ({}, $2, $3, $4)
                 ON CONFLICT (token_seq, version, device_id) DO UPDATE SET state = excluded.state",
                token_seq(1)
            );
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(&r.token)
                    .bind(i64::from(r.version))
                    .bind(r.device_id.to_string())
                    .bind(r.state.as_str()),
            )
            .await
        }
        DataEffect::AddReplica(r) => {
            let sql = format!(
                "INSERT INTO replicas (token_seq, version, device_id, state) VALUES ({}, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
                token_seq(1)
            );
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(&r.token)
                    .bind(i64::from(r.version))
                    .bind(r.device_id.to_string())
                    .bind(r.state.as_str()),
            )
            .await
        }
        DataEffect::ConfirmReplica {
            token,
            version,
            device_id,
        } => {
            let sql = format!(
                "INSERT INTO replicas (token_seq, version, device_id, state) VALUES ({}, $2, $3, 'confirmed')
                 ON CONFLICT (token_seq, version, device_id) DO UPDATE SET state = 'confirmed'
                 WHERE replicas.state IN ('pending', 'missing')",
                token_seq(1)
            );
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(token)
                    .bind(i64::from(*version))
                    .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::TransitionReplica {
            token,
            version,
            device_id,
            from,
            to,
        } => {
            let sql = format!(
                "UPDATE replicas SET state = $2 WHERE token_seq = {} AND version = $3 AND device_id = $4 AND state = ANY($5)",
                token_seq(1)
            );
            let from: Vec<String> = from.iter().map(|s| s.as_str().to_owned()).collect();
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(token)
                    .bind(to.as_str())
                    .bind(i64::from(*version))
                    .bind(device_id.to_string())
                    .bind(from),
            )
            .await
        }
        DataEffect::DropReplicas { token, device_id } => {
            let sql = format!(
                "DELETE FROM replicas WHERE token_seq = {} AND device_id = $2 AND state = 'deleting'",
                token_seq(1)
            );
            exec(
                conn,
                sqlx::query(&sql).bind(token).bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::DetachReplicas { device_id } => {
            exec(
                conn,
                sqlx::query(
                    "UPDATE replicas SET state = 'detached' WHERE device_id = $1 AND state <> 'deleting'",
                )
                .bind(device_id.to_string()),
            )
            .await
        }
        DataEffect::PutSpool {
            token,
            version,
            chunks,
        } => {
            let sql = put_spool_sql();
            let mut total = 0;
            for (i, chunk) in chunks.iter().enumerate() {
                total += exec(
                    &mut *conn,
                    sqlx::query(&sql)
                        .bind(token)
                        .bind(i64::from(*version))
                        .bind(i as i64)
                        .bind(chunk),
                )
                .await?;
            }
            Ok(total)
        }
        DataEffect::PutSpoolChunk {
            token,
            version,
            index,
            sealed,
        } => {
            let sql = put_spool_sql();
            exec(
                conn,
                sqlx::query(&sql)
                    .bind(token)
                    .bind(i64::from(*version))
                    .bind(i64::from(*index))
                    .bind(sealed),
            )
            .await
        }
        DataEffect::DropSpool { token, version } => {
            let sql = format!(
                "DELETE FROM spool WHERE token_seq = {} AND version = $2",
                token_seq(1)
            );
            exec(conn, sqlx::query(&sql).bind(token).bind(i64::from(*version))).await
        }
        DataEffect::DropSettledSpool { token, version } => {
            let sql = format!(
                "DELETE FROM spool WHERE token_seq = {seq} AND version = $2
                 AND NOT EXISTS (SELECT 1 FROM replicas WHERE token_seq = {seq}
                 AND version = $2 AND state = 'pending')",
                seq = token_seq(1)
            );
            exec(conn, sqlx::query(&sql).bind(token).bind(i64::from(*version))).await
        }
        DataEffect::CountEvent {
            profile_id,
            kind,
            context,
            at,
            application_id,
        } => {
            exec(
                conn,
                sqlx::query(
                    "INSERT INTO token_events (profile_id, kind, context, at, application_id)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(profile_id.to_string())
                .bind(*kind)
                .bind(context)
                .bind(at.unix())
                .bind(application_id.map(|a| a.to_string())),
            )
            .await
        }
    }
}

fn put_spool_sql() -> String {
    format!(
        "INSERT INTO spool (token_seq, version, chunk_index, sealed, spooled_at) VALUES ({}, $2, $3, $4, {NOW})
         ON CONFLICT (token_seq, version, chunk_index) DO UPDATE SET sealed = excluded.sealed,
         spooled_at = excluded.spooled_at",
        token_seq(1)
    )
}
