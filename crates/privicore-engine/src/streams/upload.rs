//! Uploads to the upstream listener (docs/api/data-tokens.md §3.4): the value and the
//! declared length are checked before the body is read, the value is consumed when reading
//! starts, and the bytes are sealed into layer-2 chunks and spooled as they arrive. Once the
//! body is complete the exchange is accepted like an inline one and fans the version out
//! from the spool. A failed upload hands the reservation back (§1.1) and leaves nothing.

use super::{Replacement, UploadTarget};
use crate::engine::{Core, Engine};
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::data_token::{DataToken, MIN_PAYLOAD, TokenStatus, TokenVersion};
use privicore_domain::effect::{DataEffect, Effect};
use privicore_domain::envelope::{Sealer, StagingKey};
use privicore_domain::secret::TokenHash;
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use privicore_wire::{TokenKind, is_well_formed_token};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The upstream listener's 202 (§3.4).
#[derive(Debug, Clone)]
pub struct UploadReceipt {
    pub command_id: CommandId,
    pub token: String,
    pub stored_size: u64,
}

/// How arriving bytes are sealed: for good when the size was declared, else staged under a
/// one-time key until the last byte fixes the size (which every chunk's AAD includes).
enum Sealing {
    Final(Box<Sealer>),
    Staged { key: Box<StagingKey>, chunks: u32 },
}

/// One upload, from its checks to its acceptance. Dropping it unfinished after
/// [`Upload::begin`] hands the reservation back.
pub struct Upload {
    engine: Arc<Engine>,
    row: DataToken,
    /// Set for a streamed replacement (§3.10); an exchange otherwise.
    replacement: Option<Arc<Replacement>>,
    value: String,
    version: u32,
    declared: Option<u64>,
    received: u64,
    buffer: Vec<u8>,
    sealing: Sealing,
    begun: bool,
    settled: bool,
}

fn invalid_auth() -> Error {
    Error::new(Reason::StreamInvalidAuth)
}

impl Engine {
    /// Checks an upload value and the declared length, before any byte of the body is
    /// read (so `Expect: 100-continue` gets its answer early). Nothing is consumed yet.
    pub async fn open_upload(
        self: &Arc<Self>,
        value: &str,
        declared: Option<u64>,
    ) -> Result<Upload, Error> {
        if !is_well_formed_token(TokenKind::Upload, value) {
            return Err(invalid_auth());
        }
        let target = self.streams.upload_target(value).ok_or_else(invalid_auth)?;
        let (row, replacement, version) = match target {
            UploadTarget::Exchange { token } => {
                let row = self
                    .store
                    .data_token(&token)
                    .await?
                    .ok_or_else(invalid_auth)?;
                self.check_upload_value(&row, value)?;
                (row, None, 1)
            }
            UploadTarget::Replace(replacement) => {
                let (token, version) = replacement.target();
                let row = self
                    .store
                    .data_token(token)
                    .await?
                    .ok_or_else(invalid_auth)?;
                let open = !replacement.taken.load(Ordering::SeqCst)
                    && replacement.expires_at > self.config.clock.now()
                    && row.status == TokenStatus::Active
                    && row.version.map(|v| v + 1) == Some(version);
                if !open {
                    return Err(invalid_auth());
                }
                (row, Some(replacement), version)
            }
        };
        let max = self.config.streams.upload_max_bytes;
        match declared {
            Some(n) if n > max => return Err(Reason::StreamTooLarge.into()),
            Some(n) if n < MIN_PAYLOAD as u64 => return Err(Reason::DataTokenDataTooShort.into()),
            _ => {}
        }
        let chunk_size = self.config.storage.chunk_size;
        let sealing = match declared {
            Some(n) => Sealing::Final(Box::new(Sealer::new(
                &self.keyring(),
                &row.token,
                version,
                chunk_size,
                n,
            ))),
            None => Sealing::Staged {
                key: Box::new(StagingKey::generate()),
                chunks: 0,
            },
        };
        Ok(Upload {
            engine: self.clone(),
            row,
            replacement,
            value: value.to_owned(),
            version,
            declared,
            received: 0,
            buffer: Vec::with_capacity(chunk_size as usize),
            sealing,
            begun: false,
            settled: false,
        })
    }

    /// The reservation is open (by the engine clock) and `value` is its current value.
    fn check_upload_value(&self, row: &DataToken, value: &str) -> Result<(), Error> {
        let open = row.status == TokenStatus::Reserved
            && row
                .expires_at
                .is_none_or(|deadline| deadline > self.config.clock.now());
        let current = row
            .upload_salt
            .map(|salt| crate::tokens::upload_value(self, &row.token, &salt).hash());
        // Compared as digests, in constant time.
        if !open || current != Some(TokenHash::of(value)) {
            return Err(invalid_auth());
        }
        Ok(())
    }
}

impl Upload {
    pub fn token(&self) -> &str {
        &self.row.token
    }

    /// Consumes the value: the reservation becomes `exchanging` (§3.4: when the engine
    /// starts reading the body). Refused like an unusable value if it changed meanwhile.
    pub async fn begin(&mut self) -> Result<(), Error> {
        self.engine.admit_data_write()?;
        if let Some(replacement) = &self.replacement {
            if replacement.taken.swap(true, Ordering::SeqCst) {
                return Err(invalid_auth());
            }
            self.engine.streams.forget_upload(&self.value);
            self.begun = true;
            return Ok(());
        }
        let engine = self.engine.clone();
        let Some(_claim) = engine.claims.claim(&self.row.token) else {
            return Err(invalid_auth());
        };
        let row = engine
            .store
            .data_token(&self.row.token)
            .await?
            .ok_or_else(invalid_auth)?;
        engine.check_upload_value(&row, &self.value)?;
        let begin = DataEffect::BeginExchange {
            token: row.token.clone(),
            at: Timestamp::now(),
        };
        engine.apply(vec![begin]).await.map_err(|e| {
            if e.reason == Reason::DataTokenAlreadyExchanged {
                invalid_auth()
            } else {
                e
            }
        })?;
        engine.streams.forget_upload(&self.value);
        self.row = row;
        self.begun = true;
        tracing::info!(token = %self.row.token, value = %privicore_domain::secret::redact(&self.value), "upload started");
        Ok(())
    }

    /// Takes the next bytes of the body.
    pub async fn push(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        let total = self.received + bytes.len() as u64;
        if total > self.engine.config.streams.upload_max_bytes
            || self.declared.is_some_and(|n| total > n)
        {
            return Err(Reason::StreamTooLarge.into());
        }
        let chunk_size = self.engine.config.storage.chunk_size as usize;
        while !bytes.is_empty() {
            let take = (chunk_size - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            self.received += take as u64;
            bytes = &bytes[take..];
            if self.buffer.len() == chunk_size && !self.is_last_chunk() {
                self.seal_buffer().await?;
            }
        }
        Ok(())
    }

    /// The buffered chunk is the payload's last (its nonce carries the last flag, so it is
    /// sealed by `finish`).
    fn is_last_chunk(&self) -> bool {
        self.declared.is_some_and(|n| self.received == n)
    }

    async fn seal_buffer(&mut self) -> Result<(), Error> {
        let (index, sealed) = match &mut self.sealing {
            Sealing::Final(sealer) => {
                let index = sealer.next_index();
                let sealed = sealer
                    .seal_next(&self.buffer)
                    .map_err(|e| Error::internal(format!("sealing an upload chunk: {e}")))?;
                (index, sealed)
            }
            Sealing::Staged { key, chunks } => {
                let index = *chunks;
                *chunks += 1;
                (index, key.seal(index, &self.buffer))
            }
        };
        self.buffer.clear();
        self.spool(index, sealed).await
    }

    async fn spool(&self, index: u32, sealed: Vec<u8>) -> Result<(), Error> {
        self.engine
            .apply(vec![DataEffect::PutSpoolChunk {
                token: self.row.token.clone(),
                version: self.version,
                index,
                sealed,
            }])
            .await
            .map(drop)
    }

    /// The body is complete: seals what remains, records the version and accepts the
    /// exchange (gateable event 102), which then runs like an inline one; or, for a streamed
    /// replacement, the update command accepted by §3.10 (event 103).
    pub async fn finish(mut self) -> Result<UploadReceipt, Error> {
        match self.complete().await {
            Ok(receipt) => Ok(receipt),
            Err(error) => {
                self.abort(error.reason).await;
                Err(error)
            }
        }
    }

    async fn complete(&mut self) -> Result<UploadReceipt, Error> {
        if let Some(n) = self.declared
            && self.received < n
        {
            return Err(Reason::StreamIncomplete.into());
        }
        if self.received < MIN_PAYLOAD as u64 {
            return Err(Reason::DataTokenDataTooShort.into());
        }
        if !self.buffer.is_empty() {
            self.seal_buffer().await?;
        }
        let sealer = match std::mem::replace(
            &mut self.sealing,
            Sealing::Staged {
                key: Box::new(StagingKey::generate()),
                chunks: 0,
            },
        ) {
            Sealing::Final(sealer) => *sealer,
            Sealing::Staged { key, chunks } => self.reseal(&key, chunks).await?,
        };
        let header = sealer.header();
        let digest = sealer
            .finish()
            .map_err(|e| Error::internal(format!("finishing an upload: {e}")))?;
        let version = TokenVersion {
            token: self.row.token.clone(),
            version: self.version,
            header: header.to_bytes(),
            digest: hex::encode(digest),
            total_size: self.received,
            chunk_count: header.core.chunk_count,
            committed: false,
        };
        let effects = vec![Effect::from(DataEffect::PutTokenVersion(version))];
        let id = match &self.replacement {
            // Recorded pending when the update was accepted.
            Some(replacement) => {
                self.engine
                    .submit_recorded(replacement.command.clone(), effects)
                    .await?
            }
            None => {
                let command = CommandRecord::new(
                    CommandId::new(),
                    self.row.profile_id,
                    self.row.application_id,
                    CommandPayload::ExchangeData {
                        token: self.row.token.clone(),
                        version: self.version,
                        streamed: true,
                    },
                );
                self.engine.accept_with(command, effects).await?
            }
        };
        self.settled = true;
        if self.replacement.is_some() {
            // From here the version row marks the replacement as unfinished.
            self.engine.streams.end_replacement(&self.row.token);
        }
        Ok(UploadReceipt {
            command_id: id,
            token: self.row.token.clone(),
            stored_size: self.received,
        })
    }

    /// Seals the staged chunks for good now that the size is known, in place in the spool.
    async fn reseal(&self, key: &StagingKey, chunks: u32) -> Result<Sealer, Error> {
        let engine = &self.engine;
        let mut sealer = Sealer::new(
            &engine.keyring(),
            &self.row.token,
            self.version,
            engine.config.storage.chunk_size,
            self.received,
        );
        for index in 0..chunks {
            let staged = engine
                .store
                .spool_chunk(&self.row.token, self.version, index)
                .await?
                .ok_or_else(|| Error::internal("a staged upload chunk is missing"))?;
            let plain = zeroize::Zeroizing::new(
                key.open(index, &staged)
                    .map_err(|e| Error::internal(format!("opening a staged chunk: {e}")))?,
            );
            let sealed = sealer
                .seal_next(&plain)
                .map_err(|e| Error::internal(format!("sealing an upload chunk: {e}")))?;
            self.spool(index, sealed).await?;
        }
        Ok(sealer)
    }

    /// Undoes a failed upload: an exchange gives the reservation back (`reserved` with a
    /// fresh value while its time is left, else `expired`); a streamed replacement's
    /// command fails with `reason` and version n stays served. The spooled chunks go.
    pub async fn abort(&mut self, reason: Reason) {
        if self.settled {
            return;
        }
        self.settled = true;
        if self.begun {
            undo(
                &self.engine,
                &self.row,
                self.version,
                self.replacement.as_deref(),
                reason,
            )
            .await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.begun && !self.settled {
            // The connection went away mid-body: undo all the same.
            let (engine, row, version) = (self.engine.clone(), self.row.clone(), self.version);
            let replacement = self.replacement.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    undo(
                        &engine,
                        &row,
                        version,
                        replacement.as_deref(),
                        Reason::StreamIncomplete,
                    )
                    .await
                });
            }
        }
    }
}

async fn undo(
    engine: &Engine,
    row: &DataToken,
    version: u32,
    replacement: Option<&Replacement>,
    reason: Reason,
) {
    let Some(replacement) = replacement else {
        return hand_back(engine, row, version).await;
    };
    let drop = DataEffect::DropSpool {
        token: row.token.clone(),
        version,
    };
    if let Err(error) = engine.apply(vec![drop]).await {
        tracing::warn!(token = %row.token, %error, "could not drop a failed replacement's chunks");
    }
    super::fail_replacement(engine, replacement, reason).await;
}

pub(super) async fn hand_back(engine: &Core, row: &DataToken, version: u32) {
    let expired = row
        .expires_at
        .is_some_and(|deadline| deadline <= engine.config.clock.now());
    let (status, upload_salt) = if expired {
        (TokenStatus::Expired, None)
    } else {
        (TokenStatus::Reserved, Some(crate::tokens::fresh_salt()))
    };
    let effects = vec![
        DataEffect::AbortExchange {
            token: row.token.clone(),
            status,
            upload_salt,
            at: Timestamp::now(),
        },
        DataEffect::DropSpool {
            token: row.token.clone(),
            version,
        },
    ];
    match engine.apply(effects).await {
        Ok(_) => tracing::info!(token = %row.token, "upload failed; reservation handed back"),
        Err(error) => {
            tracing::warn!(token = %row.token, %error, "could not hand an upload's reservation back")
        }
    }
}
