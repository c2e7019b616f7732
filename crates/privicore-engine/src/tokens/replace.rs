//! Update data token shape B (docs/api/data-tokens.md §3.10): whole metadata groups and/or
//! new data, inline or streamed to the upstream listener, as version n+1.

use super::{
    FileMeta, TemporaryToken, check_meta_object, check_payload_size, decode_payload, risk_meta,
    sealed_effects, upstream_host_port,
};
use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::CommandPayload;
use privicore_domain::data_token::DataToken;
use privicore_domain::{CommandId, Error, Reason};
use serde_json::Value;

impl Engine {
    /// Shape B: replace whole metadata groups and/or the data (inline).
    pub async fn replace_token(
        &self,
        caller: &Caller,
        token: &str,
        data: Option<&str>,
        meta: Option<&Value>,
    ) -> Result<CommandId, Error> {
        if data.is_none() && meta.is_none() {
            return Err(Reason::ValidationNoChanges.into());
        }
        let (file, risk, data_group) = replacement_groups(meta)?;
        let row = self.owned_token(token, caller).await?;
        self.require_active(&row)?;
        let Some(data) = data else {
            let payload = CommandPayload::UpdateTokenMeta {
                token: row.token,
                file,
                risk,
                data: data_group,
                context: None,
            };
            return self.accept(self.command_for(caller, payload)).await;
        };
        self.admit_data_write()?;
        let payload = decode_payload(data)?;
        check_payload_size(&payload)?;
        let version = self.next_version(&row).await?;
        let effects = sealed_effects(self.seal(&row.token, version, &payload));
        let command = self.command_for(
            caller,
            CommandPayload::ReplaceData {
                token: row.token,
                version,
                file,
                risk,
                data: data_group,
                upload_by: None,
            },
        );
        self.accept_with(command, effects).await
    }

    /// The version a replacement of `row` creates; refused while another replacement of
    /// the token is unfinished (a version row beyond the current, or a streamed one waiting
    /// for its upload).
    async fn next_version(&self, row: &DataToken) -> Result<u32, Error> {
        let version = row.version.unwrap_or(0) + 1;
        if self.streams.replacing(&row.token)
            || self
                .store
                .token_version(&row.token, version)
                .await?
                .is_some()
        {
            return Err(Reason::DataTokenUpdateInProgress.into());
        }
        Ok(version)
    }

    /// Shape B with `stream: true` (§3.10): the update command's id and the upload values;
    /// the command runs once the upload to them is complete, as a replacement with version
    /// n+1. Until then, and if the upload fails, version n is served.
    pub async fn replace_token_streamed(
        &self,
        caller: &Caller,
        token: &str,
        meta: Option<&Value>,
    ) -> Result<(CommandId, TemporaryToken), Error> {
        let (file, risk, data) = replacement_groups(meta)?;
        self.admit_data_write()?;
        let row = self.owned_token(token, caller).await?;
        self.require_active(&row)?;
        let version = self.next_version(&row).await?;
        let expires_at = self
            .config
            .clock
            .now()
            .plus_seconds(crate::streams::REPLACEMENT_UPLOAD_SECONDS);
        let command = self.command_for(
            caller,
            CommandPayload::ReplaceData {
                token: row.token.clone(),
                version,
                file,
                risk,
                data,
                upload_by: Some(expires_at),
            },
        );
        let id = command.id;
        let started = std::time::Instant::now();
        if !self.streams.begin_replacement(&row.token) {
            return Err(Reason::DataTokenUpdateInProgress.into());
        }
        // Pending from here, so a restart finds it (and restores it, see
        // `streams::restore_replacements`); the lane takes it once the upload is complete.
        if let Err(error) = self.store.insert_command(&command, &[]).await {
            self.streams.end_replacement(&row.token);
            return Err(error.into());
        }
        let stream = crate::streams::replacement_value(self, id);
        let replacement = std::sync::Arc::new(crate::streams::Replacement::new(
            command, expires_at, started,
        ));
        self.streams.note_upload(
            stream.expose(),
            crate::streams::UploadTarget::Replace(replacement.clone()),
        );
        crate::streams::watch_replacement(self.shared_core(), stream.clone(), replacement);
        let (host, port) = upstream_host_port(&self.config.upstream_public_url);
        let base = self.config.upstream_public_url.trim_end_matches('/');
        Ok((
            id,
            TemporaryToken {
                stream_url: format!("{base}/?auth={}", stream.expose()),
                token: row.token,
                stream,
                stream_server_id: host,
                stream_server_port: port,
                context: row.context,
                expires_at: Some(expires_at),
            },
        ))
    }
}

/// The metadata groups of a shape B update: each `Some` replaces its group (`Some(None)`
/// clears it).
#[allow(clippy::type_complexity)]
fn replacement_groups(
    meta: Option<&Value>,
) -> Result<
    (
        Option<Option<Value>>,
        Option<Option<Value>>,
        Option<Option<Value>>,
    ),
    Error,
> {
    let (mut file, mut risk, mut data_group) = (None, None, None);
    if let Some(meta) = meta {
        for (name, group) in check_meta_object(meta, "meta")? {
            let value = match (&group, name.as_str()) {
                (Value::Null, _) => None,
                (Value::Object(g), "file") => {
                    let get = |k: &str| g.get(k).and_then(Value::as_str).map(str::to_owned);
                    let f = FileMeta {
                        file_name: get("fileName"),
                        extension: get("extension"),
                        path: get("path"),
                        size: g.get("size").and_then(Value::as_i64),
                    };
                    if f.file_name.is_none() {
                        return Err(Error::missing("meta[file][fileName]"));
                    }
                    f.check()?;
                    Some(f.merged(None))
                }
                (Value::Object(g), "information_security_risk") => Some(risk_meta(g)?),
                (Value::Object(_), "data") => Some(group.clone()),
                _ => return Err(Error::new(Reason::DataTokenInvalidMeta).with_field("meta")),
            };
            match name.as_str() {
                "file" => file = Some(value),
                "information_security_risk" => risk = Some(value),
                _ => data_group = Some(value),
            }
        }
    }
    Ok((file, risk, data_group))
}
