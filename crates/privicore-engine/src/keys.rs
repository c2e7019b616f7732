use crate::engine::Engine;
use privicore_domain::auth::Caller;
use privicore_domain::command::{CommandPayload, CommandRecord};
use privicore_domain::envelope::KeyRing;
use privicore_domain::profile::RegisteredKey;
use privicore_domain::{CommandId, Error, Reason, Timestamp};
use privicore_wire::{KeyPair, SignedPublicKey};
use std::sync::Arc;

/// A key pair made for a client that cannot make its own.
pub struct GeneratedKeys {
    pub private_hex: String,
    pub public_signed: String,
}

impl std::fmt::Debug for GeneratedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeys")
            .field("public_signed", &self.public_signed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct CabKey {
    pub public_key: String,
    pub key_id: String,
    pub created_at: Timestamp,
}

impl Engine {
    /// `GET /generate-keys`: returned once, never kept or logged.
    pub fn generate_keys(&self, client: std::net::IpAddr) -> Result<GeneratedKeys, Error> {
        if !self.config.generate_keys_enabled {
            return Err(Reason::RequestUnknownRoute.into());
        }
        self.limits.generate_keys(client)?;
        let pair = KeyPair::generate();
        Ok(GeneratedKeys {
            private_hex: pair.private_hex(),
            public_signed: pair.public().to_hex(),
        })
    }

    /// Validates the signed key synchronously, then registers it as a command.
    pub async fn register_public_key(
        &self,
        caller: &Caller,
        text: &str,
    ) -> Result<CommandId, Error> {
        let key = SignedPublicKey::parse(text)?;
        self.accept_committed(CommandRecord::new(
            CommandId::new(),
            caller.profile_id,
            caller.application_id(),
            CommandPayload::RegisterPublicKey {
                public_key: key.to_hex(),
            },
        ))
        .await
    }

    pub async fn public_key_of(&self, caller: &Caller) -> Result<RegisteredKey, Error> {
        self.store
            .profile(caller.profile_id)
            .await?
            .and_then(|p| p.public_key)
            .ok_or_else(|| Reason::ProfilePublicKeyRequired.into())
    }

    /// The KEKs in use now.
    pub fn keyring_now(&self) -> Arc<KeyRing> {
        self.keyring()
    }

    /// Puts a new ring in force (KEK rotation): seals from now on use its active KEK.
    pub fn install_keyring(&self, ring: KeyRing) {
        *self.keyring.write().expect("keyring lock") = Arc::new(ring);
    }

    pub fn cab_key(&self) -> CabKey {
        CabKey {
            public_key: self.cab.public_key.clone(),
            key_id: self.cab.key_id.clone(),
            created_at: self.cab.created_at,
        }
    }
}
