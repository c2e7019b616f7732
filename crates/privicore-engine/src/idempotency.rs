//! `Idempotency-Key` (docs/api/README.md §4.7): the slot of a request is claimed before it runs and
//! settled with its reply once accepted, so a repeat gets the same reply.

use crate::engine::Engine;
use privicore_domain::auth::Access;
use privicore_domain::idempotency::{
    ABANDONED_AFTER_SECONDS, IdempotencySlot, Presented, RETENTION_SECONDS, judge,
};
use privicore_domain::{Error, ProfileId, Timestamp};

impl Engine {
    /// Whose keys a request uses: the caller's profile, or nobody's before registration.
    /// `None` when the authorization header does not authenticate: the request then fails on
    /// its own, and there is no reply to remember.
    pub async fn idempotency_scope(
        &self,
        authorization: Option<&str>,
    ) -> Option<Option<ProfileId>> {
        match authorization {
            None => Some(None),
            Some(header) => {
                let lenient = Access {
                    key_exempt: true,
                    ..Access::any()
                };
                let caller = self.authorize(Some(header), lenient).await.ok()?;
                Some(Some(caller.profile_id))
            }
        }
    }

    /// The fingerprint of a canonical request body (secret fields already left out), keyed
    /// with an engine secret.
    pub fn idempotency_fingerprint(&self, canonical_body: &[u8]) -> Vec<u8> {
        privicore_domain::idempotency::fingerprint(self.secrets.idempotency(), canonical_body)
    }

    /// Presents a key with the fingerprint of the request body.
    pub async fn present_idempotency_key(
        &self,
        slot: IdempotencySlot,
        body_hash: &[u8],
    ) -> Result<Presented, Error> {
        let now = Timestamp::now();
        let held = self
            .store
            .claim_idempotency_slot(
                &slot,
                body_hash,
                now,
                now.plus_seconds(-RETENTION_SECONDS),
                now.plus_seconds(-ABANDONED_AFTER_SECONDS),
            )
            .await?;
        Ok(match held {
            None => Presented::Claimed(slot),
            Some(record) => judge(&record, body_hash),
        })
    }

    /// Remembers the reply of a claimed slot; `None` frees it (the request was refused, so
    /// a repeat should run again).
    pub async fn settle_idempotency_key(
        &self,
        slot: &IdempotencySlot,
        reply: Option<&str>,
    ) -> Result<(), Error> {
        Ok(self.store.settle_idempotency_slot(slot, reply).await?)
    }
}
