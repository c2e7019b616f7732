//! Token metadata and listings: file meta, risk meta, metadata updates, the list.

use super::*;

impl Engine {
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
                application_id: caller.application_id(),
            });
        }
        self.apply(effects).await?;
        Ok(row.token)
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

    pub(super) fn require_active(&self, row: &DataToken) -> Result<(), Error> {
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
}
