//! Data token endpoints (data-tokens.md §3): synchronous checks, sealing at acceptance,
//! listings and statistics. Commands run in `pipeline::tokens`.

use crate::engine::{Core, Engine};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, TimeZone, Timelike, Utc};
use hmac::{Hmac, Mac};
use privicore_domain::auth::Caller;
use privicore_domain::command::CommandPayload;
use privicore_domain::data_token::*;
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::envelope;
use privicore_domain::secret::{Secret, TokenHash};
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use serde_json::{Map, Value, json};
use sha2::Sha256;

pub struct TemporaryToken {
    pub token: String,
    pub stream: Secret,
    pub stream_server_id: String,
    pub stream_server_port: u16,
    pub stream_url: String,
    pub context: String,
    pub expires_at: Option<Timestamp>,
}

pub struct TokenListItem(pub Value);
pub struct Statistics(pub Value);

/// The token, if it exists and belongs to the caller.
pub(crate) async fn owned_token(
    core: &Core,
    text: &str,
    caller: &Caller,
) -> Result<DataToken, Error> {
    let token = normalize_token(text).ok_or(Reason::DataTokenNotFound)?;
    let row = core
        .store
        .data_token(&token)
        .await?
        .ok_or(Reason::DataTokenNotFound)?;
    if row.profile_id != caller.profile_id {
        return Err(Reason::DataTokenNotOwner.into());
    }
    Ok(row)
}

/// Reservations past their deadline become `expired` (run by a worker).
pub(crate) async fn expire_reservations(core: &Core) -> Result<(), Error> {
    let now = Timestamp::now();
    let due = core.store.expired_reservations(now, 500).await?;
    if !due.is_empty() {
        let effects = due
            .into_iter()
            .map(|token| DataEffect::ExpireReservation { token, at: now })
            .collect();
        core.apply(effects).await?;
    }
    Ok(())
}

/// Upload values are derived from a stored salt with an engine secret, so the same value
/// can be shown again without being stored.
pub(crate) fn upload_value(core: &Core, token: &str, salt: &TokenHash) -> Secret {
    let hk = hkdf::Hkdf::<Sha256>::new(
        Some(b"privicore/upload-values/v1"),
        core.keyring.active().key_bytes(),
    );
    let mut key = [0u8; 32];
    hk.expand(b"upload", &mut key)
        .expect("32 bytes is a valid HKDF length");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(token.as_bytes());
    mac.update(&[0]);
    mac.update(&salt.0);
    Secret::new(format!(
        "U-{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    ))
}

pub(crate) fn fresh_salt() -> TokenHash {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    TokenHash(raw)
}

/// Standard or URL-safe alphabet, padded or not (data-tokens.md §1.4).
pub fn decode_payload(text: &str) -> Result<Vec<u8>, Error> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engine = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    let normalized: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    engine
        .decode(normalized.trim())
        .map_err(|_| Error::new(Reason::DataTokenInvalidDataEncoding).with_field("data"))
}

pub fn encode_payload(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn check_context(context: &str) -> Result<(), Error> {
    if valid_context(context) {
        Ok(())
    } else {
        Err(Error::new(Reason::DataTokenInvalidContext).with_field("context"))
    }
}

/// A metadata object: a JSON object of at most 16 KiB.
pub fn check_meta_object(value: &Value, field: &str) -> Result<Map<String, Value>, Error> {
    let invalid = || Error::new(Reason::DataTokenInvalidMeta).with_field(field);
    let (object, size) = match value {
        Value::Object(m) => (m.clone(), value.to_string().len()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => (m, s.len()),
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if size > META_MAX_BYTES {
        return Err(invalid());
    }
    Ok(object)
}

/// The fields of `meta.file` (§3.8).
#[derive(Debug, Default, Clone)]
pub struct FileMeta {
    pub file_name: Option<String>,
    pub extension: Option<String>,
    pub path: Option<String>,
    pub size: Option<i64>,
}

impl FileMeta {
    fn check(&self) -> Result<(), Error> {
        let invalid = |f: &str| Error::new(Reason::DataTokenInvalidMeta).with_field(f);
        if let Some(n) = &self.file_name
            && (!(1..=255).contains(&n.chars().count()) || n.contains('/') || n.contains('\0'))
        {
            return Err(invalid("fileName"));
        }
        if let Some(e) = &self.extension
            && e.trim_start_matches('.').chars().count() > 32
        {
            return Err(invalid("extension"));
        }
        if let Some(p) = &self.path
            && (!p.starts_with('/') || p.chars().count() > 1024)
        {
            return Err(invalid("path"));
        }
        if self.size.is_some_and(|s| s < 0) {
            return Err(invalid("size"));
        }
        Ok(())
    }

    /// Merges into an existing group (shape A) or builds a whole one.
    fn merged(&self, base: Option<&Value>) -> Value {
        let mut obj = match base {
            Some(Value::Object(m)) => m.clone(),
            _ => {
                let mut m = Map::new();
                m.insert("fileName".into(), Value::Null);
                m.insert("extension".into(), Value::Null);
                m.insert("path".into(), json!("/"));
                m.insert("size".into(), Value::Null);
                m
            }
        };
        if let Some(n) = &self.file_name {
            obj.insert("fileName".into(), json!(n));
        }
        if let Some(e) = &self.extension {
            obj.insert("extension".into(), json!(e.trim_start_matches('.')));
        }
        if let Some(p) = &self.path {
            obj.insert("path".into(), json!(p));
        }
        if let Some(s) = self.size {
            obj.insert("size".into(), json!(s));
        }
        Value::Object(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.file_name.is_none()
            && self.extension.is_none()
            && self.path.is_none()
            && self.size.is_none()
    }
}

/// `meta.information_security_risk` (§3.7): known fields plus up to 32 extras kept verbatim.
pub fn risk_meta(fields: &Map<String, Value>) -> Result<Value, Error> {
    let invalid = |f: &str| Error::new(Reason::DataTokenInvalidMeta).with_field(f);
    let text = |k: &str| -> Result<Option<String>, Error> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(invalid(k)),
        }
    };
    let classification = text("classification")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::missing("classification"))?;
    if classification.chars().count() > 64 {
        return Err(invalid("classification"));
    }
    let label = text("label")?;
    if label.as_ref().is_some_and(|l| l.chars().count() > 128) {
        return Err(invalid("label"));
    }
    let handling = text("handling")?;
    if handling.as_ref().is_some_and(|h| h.chars().count() > 1024) {
        return Err(invalid("handling"));
    }
    let mut out = Map::new();
    out.insert("classification".into(), json!(classification));
    out.insert("label".into(), json!(label));
    out.insert("handling".into(), json!(handling));
    let extras: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "classification" | "label" | "handling" | "token"
            )
        })
        .collect();
    if extras.len() > 32 {
        return Err(invalid("meta"));
    }
    for (k, v) in extras {
        let ok_name = (1..=64).contains(&k.chars().count())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(invalid(k)),
        };
        if !ok_name || value.chars().count() > 1024 {
            return Err(invalid(k));
        }
        out.insert(k.clone(), json!(value));
    }
    Ok(Value::Object(out))
}

/// `(host, port)` of the upstream public URL.
fn upstream_host_port(url: &str) -> (String, u16) {
    let rest = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(8010)),
        None => (
            rest.to_owned(),
            if url.starts_with("https") { 443 } else { 80 },
        ),
    }
}

impl Engine {
    pub async fn reserve_token_space(
        &self,
        caller: &Caller,
        context: &str,
        ttl: Option<i64>,
        meta: Option<&Value>,
    ) -> Result<CommandId, Error> {
        check_context(context)?;
        let ttl = ttl.unwrap_or(TTL_DEFAULT_MINUTES);
        if !(1..=TTL_MAX_MINUTES).contains(&ttl) {
            return Err(Error::out_of_range("ttl", format!("1..{TTL_MAX_MINUTES}")));
        }
        let meta_data = meta
            .map(|m| check_meta_object(m, "meta").map(Value::Object))
            .transpose()?;
        if self
            .store
            .count_outstanding_reservations(caller.profile_id)
            .await?
            >= OUTSTANDING_LIMIT
        {
            return Err(Reason::DataTokenTooManyReservations.into());
        }
        let payload = CommandPayload::ReserveTokenSpace {
            token: new_token(),
            context: context.to_owned(),
            ttl_minutes: ttl,
            meta_data,
        };
        self.accept(self.command_for(caller, payload)).await
    }

    /// Lookup by reserve command id; other profiles' ids are not found (§3.2).
    pub async fn temporary_token(
        &self,
        caller: &Caller,
        reservation: &str,
    ) -> Result<TemporaryToken, Error> {
        let id: CommandId = reservation
            .parse()
            .map_err(|_| Reason::DataTokenReservationNotFound)?;
        let row = self
            .store
            .data_token_by_reservation(id)
            .await?
            .filter(|t| t.profile_id == caller.profile_id)
            .ok_or(Reason::DataTokenReservationNotFound)?;
        open_reservation(&row, Reason::DataTokenReservationNotFound)?;
        let salt = row
            .upload_salt
            .ok_or_else(|| Error::internal("reservation without upload salt"))?;
        let stream = upload_value(self, &row.token, &salt);
        let (host, port) = upstream_host_port(&self.config.upstream_public_url);
        let base = self.config.upstream_public_url.trim_end_matches('/');
        Ok(TemporaryToken {
            stream_url: format!("{base}/?auth={}", stream.expose()),
            token: row.token,
            stream,
            stream_server_id: host,
            stream_server_port: port,
            context: row.context,
            expires_at: row.expires_at,
        })
    }

    /// Seals the payload at once (the client ciphertext never reaches disk), persists the
    /// sealed object with the command, and lets the command replicate it.
    pub async fn exchange(
        &self,
        caller: &Caller,
        token: &str,
        data: &str,
    ) -> Result<CommandId, Error> {
        let row = self.owned_token(token, caller).await?;
        open_reservation(&row, Reason::DataTokenNotFound)?;
        let payload = decode_payload(data)?;
        check_payload_size(&payload)?;
        let version = 1;
        let effects = self.seal_effects(&row.token, version, &payload);
        let mut all = vec![Effect::from(DataEffect::BeginExchange {
            token: row.token.clone(),
            at: Timestamp::now(),
        })];
        all.extend(effects);
        let command = self.command_for(
            caller,
            CommandPayload::ExchangeData {
                token: row.token,
                version,
            },
        );
        self.accept_with(command, all).await
    }

    fn seal_effects(&self, token: &str, version: u32, payload: &[u8]) -> Vec<Effect> {
        let sealed = envelope::seal(
            &self.keyring,
            token,
            version,
            self.config.storage.chunk_size,
            payload,
        );
        vec![
            DataEffect::PutTokenVersion(TokenVersion {
                token: token.to_owned(),
                version,
                header: sealed.header.to_bytes(),
                digest: hex::encode(sealed.digest),
                total_size: payload.len() as u64,
                chunk_count: sealed.header.core.chunk_count,
                committed: false,
            })
            .into(),
            DataEffect::PutSpool {
                token: token.to_owned(),
                version,
                chunks: sealed.chunks,
            }
            .into(),
        ]
    }

    /// Synchronous (§3.8): replaces `meta.file`, optionally the context.
    pub async fn configure_file_meta(
        &self,
        caller: &Caller,
        token: &str,
        meta: FileMeta,
        context: Option<&str>,
    ) -> Result<String, Error> {
        if meta.file_name.is_none() {
            return Err(Error::missing("fileName"));
        }
        meta.check()?;
        if let Some(c) = context {
            check_context(c)?;
        }
        let row = self.owned_token(token, caller).await?;
        if !matches!(
            row.status,
            TokenStatus::Reserved | TokenStatus::Exchanging | TokenStatus::Active
        ) {
            return Err(Reason::DataTokenNotFound.into());
        }
        let now = Timestamp::now();
        let mut effects = vec![DataEffect::SetFileMeta {
            token: row.token.clone(),
            file: Some(meta.merged(None)),
            context: context.map(str::to_owned),
            at: now,
        }];
        if row.status == TokenStatus::Active {
            effects.push(DataEffect::CountEvent {
                profile_id: row.profile_id,
                kind: EVENT_UPDATED,
                context: row.context.clone(),
                at: now,
            });
        }
        self.apply(effects).await?;
        Ok(row.token)
    }

    /// Returns the command id and the request id.
    pub async fn request_data(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<(CommandId, CommandId), Error> {
        let row = self.owned_token(token, caller).await?;
        match row.status {
            TokenStatus::Active => {}
            TokenStatus::Reserved | TokenStatus::Exchanging => {
                return Err(Reason::DataTokenNotActive.into());
            }
            _ => return Err(Reason::DataTokenNotFound.into()),
        }
        let request_id = CommandId::new();
        let command = self.command_for(
            caller,
            CommandPayload::RequestData {
                token: row.token,
                request_id,
            },
        );
        Ok((self.accept(command).await?, request_id))
    }

    pub async fn list_tokens(
        &self,
        caller: &Caller,
        filter: TokenFilter,
        page: Page,
    ) -> Result<(Vec<TokenListItem>, u64), Error> {
        let (rows, total) = self
            .store
            .list_data_tokens(caller.profile_id, &filter, page)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        for t in rows {
            let counts = match t.version {
                Some(v) => self.store.replica_counts(&t.token, v).await?,
                None => ReplicaCounts::default(),
            };
            items.push(TokenListItem(json!({
                "token": t.token,
                "status": t.status.as_str(),
                "context": t.context,
                "version": t.version,
                "storedSize": t.stored_size,
                "expiresAt": if t.status == TokenStatus::Reserved { t.expires_at.map(Timestamp::rfc3339) } else { None },
                "createdAt": t.created_at.rfc3339(),
                "updatedAt": t.updated_at.rfc3339(),
                "meta": { "file": t.meta_file, "information_security_risk": t.meta_risk, "data": t.meta_data },
                "replicas": { "confirmed": counts.confirmed, "pending": counts.pending },
            })));
        }
        Ok((items, total))
    }

    pub async fn configure_risk(
        &self,
        caller: &Caller,
        token: &str,
        fields: &Map<String, Value>,
    ) -> Result<CommandId, Error> {
        let risk = risk_meta(fields)?;
        let row = self.owned_token(token, caller).await?;
        self.require_active(&row)?;
        self.accept(self.command_for(
            caller,
            CommandPayload::ConfigureRisk {
                token: row.token,
                risk,
            },
        ))
        .await
    }

    fn require_active(&self, row: &DataToken) -> Result<(), Error> {
        match row.status {
            TokenStatus::Active => Ok(()),
            TokenStatus::Reserved | TokenStatus::Exchanging => {
                Err(Reason::DataTokenNotActive.into())
            }
            _ => Err(Reason::DataTokenNotFound.into()),
        }
    }

    /// Shape A: merge file metadata and/or change the context.
    pub async fn update_token_meta(
        &self,
        caller: &Caller,
        token: &str,
        file: FileMeta,
        context: Option<&str>,
    ) -> Result<CommandId, Error> {
        if file.is_empty() && context.is_none() {
            return Err(Reason::ValidationNoChanges.into());
        }
        file.check()?;
        if let Some(c) = context {
            check_context(c)?;
        }
        let row = self.owned_token(token, caller).await?;
        self.require_active(&row)?;
        let merged = (!file.is_empty()).then(|| Some(file.merged(row.meta_file.as_ref())));
        let payload = CommandPayload::UpdateTokenMeta {
            token: row.token,
            file: merged,
            risk: None,
            data: None,
            context: context.map(str::to_owned),
        };
        self.accept(self.command_for(caller, payload)).await
    }

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
        let payload = decode_payload(data)?;
        check_payload_size(&payload)?;
        let version = row.version.unwrap_or(0) + 1;
        if self
            .store
            .token_version(&row.token, version)
            .await?
            .is_some()
        {
            return Err(Reason::DataTokenUpdateInProgress.into());
        }
        let effects = self.seal_effects(&row.token, version, &payload);
        let command = self.command_for(
            caller,
            CommandPayload::ReplaceData {
                token: row.token,
                version,
                file,
                risk,
                data: data_group,
            },
        );
        self.accept_with(command, effects).await
    }

    pub async fn delete_data(&self, caller: &Caller, token: &str) -> Result<CommandId, Error> {
        let row = self.owned_token(token, caller).await?;
        match row.status {
            TokenStatus::Reserved | TokenStatus::Active => {}
            TokenStatus::Exchanging => return Err(Reason::DataTokenBusy.into()),
            _ => return Err(Reason::DataTokenNotFound.into()),
        }
        if let Some(v) = row.version
            && self.store.token_version(&row.token, v + 1).await?.is_some()
        {
            return Err(Reason::DataTokenBusy.into());
        }
        self.accept(self.command_for(caller, CommandPayload::DeleteData { token: row.token }))
            .await
    }

    /// Transaction counts per bucket (§3.12).
    pub async fn statistics(
        &self,
        caller: &Caller,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        interval: &str,
        context: Option<Match>,
    ) -> Result<Statistics, Error> {
        let to = to.unwrap_or_else(Timestamp::now);
        let from = from.unwrap_or_else(|| to.plus_seconds(-30 * 86400));
        if to <= from {
            return Err(Reason::StatisticsInvalidRange.into());
        }
        let start = floor(from, interval);
        let mut buckets = vec![start];
        while *buckets.last().expect("one bucket") < to {
            if buckets.len() > 1000 {
                return Err(Reason::StatisticsRangeTooLarge.into());
            }
            let next = advance(*buckets.last().expect("one bucket"), interval);
            buckets.push(next);
        }
        let end = *buckets.last().expect("one bucket");
        buckets.pop();
        if buckets.len() > 1000 {
            return Err(Reason::StatisticsRangeTooLarge.into());
        }
        let events = self
            .store
            .event_counts(caller.profile_id, start, end, context.as_ref())
            .await?;
        const KINDS: [&str; 4] = [
            EVENT_EXCHANGED,
            EVENT_REQUESTED,
            EVENT_UPDATED,
            EVENT_DELETED,
        ];
        let mut counts = vec![[0u64; 4]; buckets.len()];
        let mut totals = [0u64; 4];
        for (kind, at) in events {
            let Some(k) = KINDS.iter().position(|x| *x == kind) else {
                continue;
            };
            let i = buckets.partition_point(|b| *b <= at).saturating_sub(1);
            counts[i][k] += 1;
            totals[k] += 1;
        }
        let items: Vec<Value> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let end = buckets.get(i + 1).copied().unwrap_or(end);
                json!({ "periodStart": b.rfc3339(), "periodEnd": end.rfc3339(),
                        "exchanged": counts[i][0], "requested": counts[i][1], "updated": counts[i][2], "deleted": counts[i][3] })
            })
            .collect();
        Ok(Statistics(json!({
            "profileId": caller.profile_id.to_string(),
            "from": start.rfc3339(),
            "to": end.rfc3339(),
            "interval": interval,
            "totals": { "exchanged": totals[0], "requested": totals[1], "updated": totals[2], "deleted": totals[3] },
            "items": items,
        })))
    }
}

/// A reservation that can still receive data; `deleted` is the key for a deleted token.
fn open_reservation(row: &DataToken, deleted: Reason) -> Result<(), Error> {
    match row.status {
        TokenStatus::Reserved if row.expires_at.is_some_and(|e| e <= Timestamp::now()) => {
            Err(Reason::DataTokenReservationExpired.into())
        }
        TokenStatus::Reserved => Ok(()),
        TokenStatus::Expired => Err(Reason::DataTokenReservationExpired.into()),
        TokenStatus::Exchanging | TokenStatus::Active => {
            Err(Reason::DataTokenAlreadyExchanged.into())
        }
        TokenStatus::Deleted => Err(deleted.into()),
    }
}

fn check_payload_size(payload: &[u8]) -> Result<(), Error> {
    if payload.len() < MIN_PAYLOAD {
        return Err(Error::new(Reason::DataTokenDataTooShort).with_field("data"));
    }
    if payload.len() > INLINE_EXCHANGE_MAX {
        return Err(Error::new(Reason::DataTokenPayloadTooLarge).with_field("data"));
    }
    Ok(())
}

fn utc(t: Timestamp) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(t.unix(), 0).unwrap_or_default()
}

fn floor(t: Timestamp, interval: &str) -> Timestamp {
    let d = utc(t);
    let floored = match interval {
        "hour" => d.date_naive().and_hms_opt(d.hour(), 0, 0),
        "month" => d
            .date_naive()
            .with_day(1)
            .and_then(|x| x.and_hms_opt(0, 0, 0)),
        _ => d.date_naive().and_hms_opt(0, 0, 0),
    };
    Timestamp(
        floored
            .map(|n| Utc.from_utc_datetime(&n).timestamp())
            .unwrap_or(t.unix()),
    )
}

fn advance(t: Timestamp, interval: &str) -> Timestamp {
    let d = utc(t);
    let next = match interval {
        "hour" => d + ChronoDuration::hours(1),
        "month" => {
            let (y, m) = if d.month() == 12 {
                (d.year() + 1, 1)
            } else {
                (d.year(), d.month() + 1)
            };
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .unwrap_or(d + ChronoDuration::days(31))
        }
        _ => d + ChronoDuration::days(1),
    };
    Timestamp(next.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient_on_input() {
        let bytes: Vec<u8> = (0..=255).collect();
        let std = STANDARD.encode(&bytes);
        assert_eq!(decode_payload(&std).unwrap(), bytes);
        assert_eq!(decode_payload(std.trim_end_matches('=')).unwrap(), bytes);
        assert_eq!(
            decode_payload(&URL_SAFE_NO_PAD.encode(&bytes)).unwrap(),
            bytes
        );
        assert_eq!(
            decode_payload("not base64!").unwrap_err().reason,
            Reason::DataTokenInvalidDataEncoding
        );
    }

    #[test]
    fn buckets_align_to_utc_boundaries() {
        let t = Timestamp::parse_rfc3339("2026-02-21T15:33:44Z").unwrap();
        assert_eq!(floor(t, "hour").rfc3339(), "2026-02-21T15:00:00+00:00");
        assert_eq!(floor(t, "day").rfc3339(), "2026-02-21T00:00:00+00:00");
        assert_eq!(floor(t, "month").rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(
            advance(floor(t, "month"), "month").rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
        let dec = Timestamp::parse_rfc3339("2026-12-05T00:00:00Z").unwrap();
        assert_eq!(
            advance(floor(dec, "month"), "month").rfc3339(),
            "2027-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn risk_meta_rules() {
        let ok: Map<String, Value> = serde_json::from_value(
            json!({"classification": "confidential", "retentionDays": "365", "token": "x"}),
        )
        .unwrap();
        let v = risk_meta(&ok).unwrap();
        assert_eq!(
            v,
            json!({"classification": "confidential", "label": null, "handling": null, "retentionDays": "365"})
        );
        let missing: Map<String, Value> = serde_json::from_value(json!({"label": "x"})).unwrap();
        assert_eq!(
            risk_meta(&missing).unwrap_err().reason,
            Reason::ValidationMissingField
        );
        let bad_name: Map<String, Value> =
            serde_json::from_value(json!({"classification": "c", "bad name": "x"})).unwrap();
        assert_eq!(
            risk_meta(&bad_name).unwrap_err().reason,
            Reason::DataTokenInvalidMeta
        );
    }
}
