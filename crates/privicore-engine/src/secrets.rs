//! Engine secrets derived from the root key: never stored, never logged.

use zeroize::Zeroizing;

/// The keys of the engine's own MACs.
pub struct EngineSecrets {
    idempotency: Zeroizing<[u8; 32]>,
    upload: Zeroizing<[u8; 32]>,
    audit: privicore_domain::audit::AuditKey,
}

impl std::fmt::Debug for EngineSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineSecrets(..)")
    }
}

impl EngineSecrets {
    /// `idempotency` keys the body fingerprints of `Idempotency-Key`; `upload` the upload
    /// values of reservations. The audit chain's key is random until [`Self::with_audit_key`]
    /// sets the one derived from the root key: a chain under a random key verifies only in
    /// this process.
    pub fn new(idempotency: [u8; 32], upload: [u8; 32]) -> Self {
        use rand::RngCore;
        let mut audit = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(audit.as_mut());
        Self {
            idempotency: Zeroizing::new(idempotency),
            upload: Zeroizing::new(upload),
            audit: privicore_domain::audit::AuditKey::new(*audit),
        }
    }

    /// The MAC key of the audit chain (docs/audit.md), derived from the root key.
    pub fn with_audit_key(mut self, key: [u8; 32]) -> Self {
        self.audit = privicore_domain::audit::AuditKey::new(key);
        self
    }

    /// Fresh random secrets, for engines whose values need not outlive the process.
    pub fn random() -> Self {
        use rand::RngCore;
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut a);
        rand::rngs::OsRng.fill_bytes(&mut b);
        let secrets = Self::new(a, b);
        zeroize::Zeroize::zeroize(&mut a);
        zeroize::Zeroize::zeroize(&mut b);
        secrets
    }

    pub(crate) fn idempotency(&self) -> &[u8; 32] {
        &self.idempotency
    }

    pub(crate) fn upload(&self) -> &[u8; 32] {
        &self.upload
    }

    pub(crate) fn audit(&self) -> &privicore_domain::audit::AuditKey {
        &self.audit
    }
}
