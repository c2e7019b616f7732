//! Changes a command or a synchronous call makes to metadata. The store applies a list of
//! effects and, for commands, the completion record in one transaction, so an outcome is
//! never recorded without its effects or the other way round.

use crate::auth::{AuthToken, QrToken};
use crate::password::PasswordHash;
use crate::profile::Profile;
use crate::secret::TokenHash;
use crate::{ProfileId, Timestamp};

#[derive(Debug, Clone)]
pub enum Effect {
    /// Fails with [`crate::ports::StoreError::UsernameTaken`] when the name exists.
    CreateProfile(Profile),
    SetPassword {
        profile_id: ProfileId,
        hash: PasswordHash,
    },
    SetPublicKey {
        profile_id: ProfileId,
        public_key: String,
        at: Timestamp,
    },
    InsertAuthToken(AuthToken),
    /// Revokes one token; affects 0 rows when it was already revoked.
    RevokeAuthToken {
        hash: TokenHash,
        at: Timestamp,
    },
    /// Revokes every live token of the profile except `keep`.
    RevokeProfileTokens {
        profile_id: ProfileId,
        keep: Option<TokenHash>,
        at: Timestamp,
    },
    /// Replaces the profile's outstanding QR token.
    PutQrToken(QrToken),
}
