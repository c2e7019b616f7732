//! Data token endpoints (docs/api/data-tokens.md §3): synchronous checks, sealing at acceptance,
//! listings. Field rules live in `rules`, the report in `statistics`; commands run in
//! `pipeline::tokens`.

use crate::engine::{Core, Engine};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

mod meta;
mod replace;
mod rules;
mod statistics;

pub(crate) use rules::check_context;
pub use rules::{FileMeta, check_meta_object, decode_payload, encode_payload, risk_meta};
pub use statistics::Statistics;

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
/// can be shown again without being stored. The secret comes from the root key, not a KEK,
/// so a KEK rotation does not change the values already shown.
pub(crate) fn upload_value(core: &Core, token: &str, salt: &TokenHash) -> Secret {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(core.secrets.upload()).expect("any key length");
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
        self.streams.note_upload(
            stream.expose(),
            crate::streams::UploadTarget::Exchange {
                token: row.token.clone(),
            },
        );
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
        self.admit_data_write()?;
        let key = normalize_token(token).ok_or(Reason::DataTokenNotFound)?;
        let claim = self.claims.claim(&key);
        // Read under the claim: an exchange that held it before has written its record.
        let row = self.owned_token(token, caller).await?;
        let Some(_claim) = claim else {
            return Err(Reason::DataTokenAlreadyExchanged.into());
        };
        open_reservation(&row, Reason::DataTokenNotFound)?;
        let payload = decode_payload(data)?;
        check_payload_size(&payload)?;
        let version = 1;
        let sealed = self.seal(&row.token, version, &payload);
        let command = self.command_for(
            caller,
            CommandPayload::ExchangeData {
                token: row.token.clone(),
                version,
                streamed: false,
            },
        );
        if let Some(_lane) = self.pipeline.claim_idle_lane(&command)
            && !crate::voting::may_gate(self, &command, &row.context, row.meta_risk.as_ref())
                .await?
            && self.targets_online(row.profile_id).await?
        {
            let id = command.id;
            let (plan, undo) =
                crate::pipeline::exchange_at_acceptance(self, &command, row, sealed).await?;
            self.pipeline
                .record_at_acceptance(command, plan, undo)
                .await?;
            return Ok(id);
        }
        let mut all = vec![Effect::from(DataEffect::BeginExchange {
            token: row.token,
            at: Timestamp::now(),
        })];
        all.extend(sealed_effects(sealed));
        self.accept_with(command, all).await
    }

    fn seal(&self, token: &str, version: u32, payload: &[u8]) -> crate::replication::Sealed {
        let sealed = envelope::seal(
            &self.keyring(),
            token,
            version,
            self.config.storage.chunk_size,
            payload,
        );
        (
            TokenVersion {
                token: token.to_owned(),
                version,
                header: sealed.header.to_bytes(),
                digest: hex::encode(sealed.digest),
                total_size: payload.len() as u64,
                chunk_count: sealed.header.core.chunk_count,
                committed: false,
            },
            sealed.chunks,
        )
    }

    /// Returns the command id and the request id.
    pub async fn request_data(
        &self,
        caller: &Caller,
        token: &str,
    ) -> Result<(CommandId, CommandId), Error> {
        let request_id = CommandId::new();
        let command = self.command_for(
            caller,
            CommandPayload::RequestData {
                token: normalize_token(token).ok_or(Reason::DataTokenNotFound)?,
                request_id,
            },
        );
        // Only reads: it runs at acceptance unless an earlier command on the token is
        // queued (then in the lane, after it). The row is read once the lane is claimed, so
        // it already shows every command accepted before.
        let lane = self.pipeline.claim_idle_lane(&command);
        let row = self.owned_token(token, caller).await?;
        match row.status {
            TokenStatus::Active => {}
            TokenStatus::Reserved | TokenStatus::Exchanging => {
                return Err(Reason::DataTokenNotActive.into());
            }
            _ => return Err(Reason::DataTokenNotFound.into()),
        }
        let lane = match lane {
            Some(lane)
                if !crate::voting::may_gate(
                    self,
                    &command,
                    &row.context,
                    row.meta_risk.as_ref(),
                )
                .await? =>
            {
                Some(lane)
            }
            _ => None,
        };
        if let Some(_lane) = lane {
            let id = command.id;
            let plan =
                crate::pipeline::request_data(self, &command, row, request_id, Timestamp::now())
                    .await?;
            self.pipeline
                .record_at_acceptance(command, plan, Vec::new())
                .await?;
            return Ok((id, request_id));
        }
        Ok((self.accept(command).await?, request_id))
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
}

/// A version sealed at acceptance, persisted with its command: header row and spool.
fn sealed_effects((version, chunks): crate::replication::Sealed) -> Vec<Effect> {
    let (token, number) = (version.token.clone(), version.version);
    vec![
        DataEffect::PutTokenVersion(version).into(),
        DataEffect::PutSpool {
            token,
            version: number,
            chunks,
        }
        .into(),
    ]
}

/// A reservation that can still receive data; `deleted` is the key for a deleted token.
fn open_reservation(row: &DataToken, deleted: Reason) -> Result<(), Error> {
    match row.status {
        TokenStatus::Reserved if row.expires_at.is_some_and(|e| e <= Timestamp::now()) => {
            Err(Reason::DataTokenReservationExpired.into())
        }
        TokenStatus::Reserved => Ok(()),
        // Expired reservations say so for a day, then are simply unknown (§1.1).
        TokenStatus::Expired
            if row.updated_at.plus_seconds(EXPIRED_VISIBLE_SECONDS) < Timestamp::now() =>
        {
            Err(deleted.into())
        }
        TokenStatus::Expired => Err(Reason::DataTokenReservationExpired.into()),
        TokenStatus::Exchanging | TokenStatus::Active => {
            Err(Reason::DataTokenAlreadyExchanged.into())
        }
        TokenStatus::Deleted => Err(deleted.into()),
    }
}

const EXPIRED_VISIBLE_SECONDS: i64 = 24 * 3600;

fn check_payload_size(payload: &[u8]) -> Result<(), Error> {
    if payload.len() < MIN_PAYLOAD {
        return Err(Error::new(Reason::DataTokenDataTooShort).with_field("data"));
    }
    if payload.len() > INLINE_EXCHANGE_MAX {
        return Err(Error::new(Reason::DataTokenPayloadTooLarge).with_field("data"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use privicore_domain::{CommandId, ProfileId};

    fn row(status: TokenStatus, updated_ago: i64, expires_in: i64) -> DataToken {
        let now = Timestamp::now();
        DataToken {
            token: new_token(),
            profile_id: ProfileId(CommandId::new().0),
            application_id: None,
            reserve_command_id: CommandId::new(),
            status,
            context: "/c".into(),
            expires_at: Some(now.plus_seconds(expires_in)),
            upload_salt: None,
            version: None,
            stored_size: None,
            meta_file: None,
            meta_risk: None,
            meta_data: None,
            created_at: now,
            updated_at: now.plus_seconds(-updated_ago),
        }
    }

    #[test]
    fn reservation_states_map_to_their_keys() {
        let code =
            |r: DataToken| open_reservation(&r, Reason::DataTokenNotFound).map_err(|e| e.reason);
        assert_eq!(code(row(TokenStatus::Reserved, 0, 60)), Ok(()));
        assert_eq!(
            code(row(TokenStatus::Reserved, 0, -1)),
            Err(Reason::DataTokenReservationExpired)
        );
        assert_eq!(
            code(row(TokenStatus::Expired, 3600, -1)),
            Err(Reason::DataTokenReservationExpired)
        );
        assert_eq!(
            code(row(TokenStatus::Expired, 86_401, -1)),
            Err(Reason::DataTokenNotFound)
        );
        assert_eq!(
            code(row(TokenStatus::Active, 0, 0)),
            Err(Reason::DataTokenAlreadyExchanged)
        );
        assert_eq!(
            code(row(TokenStatus::Deleted, 0, 0)),
            Err(Reason::DataTokenNotFound)
        );
    }
}
