//! One error type for the whole engine. Every failure carries a stable dotted
//! [`Reason`]; the edge maps the [`ErrorKind`] to a transport status.

use std::fmt;

/// Transport-neutral category of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooLarge,
    UnsupportedMedia,
    Validation,
    RateLimited,
    Internal,
    Unavailable,
    /// The client was too slow (HTTP 408).
    Timeout,
}

macro_rules! reasons {
    ($($variant:ident => $code:literal, $kind:ident, $message:literal;)*) => {
        /// Every dotted error key the engine can emit (docs/api/README.md §10.3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason { $($variant),* }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant),*];

            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code),* }
            }

            pub fn kind(self) -> ErrorKind {
                match self { $(Reason::$variant => ErrorKind::$kind),* }
            }

            pub fn default_message(self) -> &'static str {
                match self { $(Reason::$variant => $message),* }
            }

            pub fn from_code(code: &str) -> Option<Reason> {
                match code { $($code => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    RequestMalformed => "request.malformed", BadRequest, "The request body or frame cannot be parsed.";
    RequestUnsupportedMediaType => "request.unsupported_media_type", UnsupportedMedia, "This content type is not accepted.";
    RequestTooLarge => "request.too_large", TooLarge, "The request is too large.";
    RequestUnknownRoute => "request.unknown_route", NotFound, "No such route.";
    RequestMethodNotAllowed => "request.method_not_allowed", MethodNotAllowed, "This method is not allowed on this path.";
    RequestUnknownAction => "request.unknown_action", BadRequest, "Unknown WebSocket action.";
    RequestIdempotencyConflict => "request.idempotency_conflict", Conflict, "The Idempotency-Key was used with another body.";
    ChannelNotFound => "channel.not_found", NotFound, "Unknown channel id.";
    ChannelLagged => "channel.lagged", Unavailable, "The socket fell behind its events; join again (undelivered events wait in the replay buffer).";
    ValidationMissingField => "validation.missing_field", Validation, "A required field is absent or empty.";
    ValidationInvalidType => "validation.invalid_type", Validation, "A field has the wrong type.";
    ValidationInvalidFormat => "validation.invalid_format", Validation, "A field is malformed.";
    ValidationOutOfRange => "validation.out_of_range", Validation, "A value is outside its bounds.";
    ValidationUnknownFilter => "validation.unknown_filter", Validation, "Unknown filter.";
    ValidationNoChanges => "validation.no_changes", Validation, "Nothing to change.";
    ValidationAmbiguousShape => "validation.ambiguous_shape", Validation, "Mutually exclusive fields were both present, or neither.";
    ValidationInvalidCredentialsForm => "validation.invalid_credentials_form", Validation, "Send either username and password, or qrToken.";
    RateLimitExceeded => "rate_limit.exceeded", RateLimited, "Too many requests; retry later.";
    InternalError => "internal.error", Internal, "The engine failed unexpectedly.";
    ServiceUnavailable => "service.unavailable", Unavailable, "A dependency of the engine is unavailable.";
    AuditUnavailable => "audit.unavailable", Unavailable, "The decision was not carried out: its audit record could not be written.";
    CommandNotFound => "command.not_found", NotFound, "Unknown command id.";
    AuthMissingToken => "auth.missing_token", Unauthorized, "The X-DPT-AUTHORIZATION header is missing.";
    AuthInvalidToken => "auth.invalid_token", Unauthorized, "Invalid authorization token.";
    AuthTokenExpired => "auth.token_expired", Unauthorized, "The authorization token has expired.";
    AuthTokenRevoked => "auth.token_revoked", Unauthorized, "The authorization token was revoked.";
    AuthInvalidCredentials => "auth.invalid_credentials", Unauthorized, "Invalid username or password.";
    AuthInvalidQrToken => "auth.invalid_qr_token", Unauthorized, "The QR token is unknown, used or expired.";
    ProfileInactive => "profile.inactive", Forbidden, "The profile is not active.";
    ProfilePublicKeyRequired => "profile.public_key_required", Forbidden, "Register a public key before using this endpoint.";
    ProfileInvalidUsername => "profile.invalid_username", Validation, "Usernames are 3 to 254 characters of A-Z a-z 0-9 . _ @ + - and start with a letter or digit.";
    ProfilePasswordTooShort => "profile.password_too_short", Validation, "Passwords have at least 10 characters.";
    ProfilePasswordTooLong => "profile.password_too_long", Validation, "Passwords have at most 1024 characters.";
    ProfilePasswordEqualsUsername => "profile.password_equals_username", Validation, "The password must differ from the username.";
    ProfilePasswordUnchanged => "profile.password_unchanged", Validation, "The new password equals the current one.";
    ProfileUsernameTaken => "profile.username_taken", Conflict, "The username is taken.";
    ProfileInvalidCurrentPassword => "profile.invalid_current_password", Validation, "The current password does not match.";
    PublicKeyInvalidFormat => "public_key.invalid_format", Validation, "A signed public key is exactly 200 hexadecimal characters.";
    PublicKeyUnsupportedVersion => "public_key.unsupported_version", Validation, "The key's version tag must be 31420500.";
    PublicKeyInvalidDigest => "public_key.invalid_digest", Validation, "The key's BLAKE2b-512 digest does not match.";
    PublicKeyWeakKey => "public_key.weak_key", Validation, "The key is all-zero or a small-order point.";
    OauthProfileTokenRequired => "oauth.profile_token_required", Forbidden, "This endpoint needs a profile token.";
    OauthScopeDenied => "oauth.scope_denied", Forbidden, "The token lacks the scope this call needs.";
    OauthInvalidScope => "oauth.invalid_scope", Validation, "Unknown scope name.";
    OauthInvalidRedirectUri => "oauth.invalid_redirect_uri", Validation, "The redirect URI is not an acceptable absolute URI.";
    OauthApplicationNameTaken => "oauth.application_name_taken", Conflict, "The profile already has an application with this name.";
    OauthApplicationNotFound => "oauth.application_not_found", NotFound, "Unknown application, or its registration has not succeeded.";
    OauthNotOwner => "oauth.not_owner", Forbidden, "The application belongs to another profile.";
    OauthAlreadyRetrieved => "oauth.already_retrieved", Validation, "This was already retrieved once.";
    OauthUnknownClient => "oauth.unknown_client", NotFound, "No application with this client_id.";
    OauthInvalidNonce => "oauth.invalid_nonce", Validation, "The nonce is missing or malformed (8..128 of A-Z a-z 0-9 . _ ~ -).";
    OauthNonceReused => "oauth.nonce_reused", Conflict, "The nonce was already used with this client.";
    OauthInvalidClient => "oauth.invalid_client", Unauthorized, "Missing, malformed or wrong client credentials.";
    OauthAuthorizationRequestNotFound => "oauth.authorization_request_not_found", NotFound, "Unknown or failed authorization request.";
    OauthAuthorizationRequestPending => "oauth.authorization_request_pending", Conflict, "The authorization request has not finished.";
    OauthNonceMismatch => "oauth.nonce_mismatch", Validation, "The nonce differs from the one of the request.";
    OauthAuthorizationCodeExpired => "oauth.authorization_code_expired", Validation, "The authorization code expired.";
    OauthInvalidAuthorizationCode => "oauth.invalid_authorization_code", Validation, "Unknown, foreign or already exchanged authorization code.";
    OauthInvalidAccessToken => "oauth.invalid_access_token", Unauthorized, "Missing, unknown, expired or revoked access token.";
    OauthInvalidRefreshToken => "oauth.invalid_refresh_token", Unauthorized, "Unknown refresh token, or not paired with the access token.";
    OauthRefreshTokenExpired => "oauth.refresh_token_expired", Unauthorized, "The refresh token expired.";
    OauthRefreshTokenReused => "oauth.refresh_token_reused", Unauthorized, "The refresh token was already used; the grant is revoked.";
    DirectoryNotFound => "directory.not_found", NotFound, "Unknown directory.";
    DirectoryForbidden => "directory.forbidden", Forbidden, "The caller's role in this directory does not allow this.";
    DirectoryInvalidName => "directory.invalid_name", Validation, "Directory names are 1..100 characters.";
    DirectoryInvalidMeta => "directory.invalid_meta", Validation, "meta must be a JSON object of at most 64 KiB serialized.";
    DirectoryNameTaken => "directory.name_taken", Conflict, "The owner already has a directory with this name.";
    DirectoryLimitReached => "directory.limit_reached", Conflict, "The profile owns the maximum number of directories.";
    DirectoryUserNotFound => "directory.user_not_found", NotFound, "The profile is not a member of this directory.";
    DirectoryInvalidMemberFields => "directory.invalid_member_fields", Validation, "A member field is out of bounds.";
    DirectoryUserLimitReached => "directory.user_limit_reached", Conflict, "The directory has the maximum number of members.";
    DirectoryCannotModifyOwner => "directory.cannot_modify_owner", Conflict, "Nobody can change or remove the owner's membership.";
    DirectoryInvalidStatusChange => "directory.invalid_status_change", Conflict, "This status change is not possible.";
    DirectoryUserNotManaged => "directory.user_not_managed", Conflict, "The profile is not a managed user of this directory.";
    DirectoryInviteeNotFound => "directory.invitee_not_found", NotFound, "No profile with this username or id.";
    DirectoryCannotInviteSelf => "directory.cannot_invite_self", Conflict, "A profile cannot invite itself.";
    DirectoryAlreadyMember => "directory.already_member", Conflict, "The profile is already a member of this directory.";
    DirectoryInvitationPending => "directory.invitation_pending", Conflict, "The profile already has a pending invitation to this directory.";
    DirectoryInvitationNotFound => "directory.invitation_not_found", NotFound, "Unknown invitation, or addressed to someone else.";
    DirectoryInvalidDecision => "directory.invalid_decision", Validation, "decision is accept or decline.";
    DirectoryInvitationNotPending => "directory.invitation_not_pending", Conflict, "The invitation was already processed.";
    DirectoryInvitationExpired => "directory.invitation_expired", Conflict, "The invitation expired.";
    DataTokenNotFound => "data_token.not_found", NotFound, "Unknown, deleted or expired data token.";
    DataTokenNotOwner => "data_token.not_owner", Forbidden, "The data token belongs to another profile.";
    DataTokenReservationNotFound => "data_token.reservation_not_found", NotFound, "Unknown or unfinished reservation.";
    DataTokenReservationExpired => "data_token.reservation_expired", NotFound, "The reservation expired.";
    DataTokenAlreadyExchanged => "data_token.already_exchanged", Conflict, "The token is already exchanging or active.";
    DataTokenNotActive => "data_token.not_active", Conflict, "The operation needs an active token.";
    DataTokenBusy => "data_token.busy", Conflict, "The token is exchanging or being replaced.";
    DataTokenUpdateInProgress => "data_token.update_in_progress", Conflict, "A data replacement is already running.";
    DataTokenTooManyReservations => "data_token.too_many_reservations", Conflict, "Too many outstanding reservations.";
    DataTokenInvalidContext => "data_token.invalid_context", Validation, "A context is 1 to 512 characters without control characters.";
    DataTokenInvalidMeta => "data_token.invalid_meta", Validation, "The metadata breaks its rules.";
    DataTokenInvalidDataEncoding => "data_token.invalid_data_encoding", Validation, "The data is not base64.";
    DataTokenDataTooShort => "data_token.data_too_short", Validation, "A payload has at least 28 bytes (IV and tag).";
    DataTokenPayloadTooLarge => "data_token.payload_too_large", TooLarge, "Inline payloads are at most 1 MiB; use the upstream listener.";
    StreamInvalidAuth => "stream.invalid_auth", Unauthorized, "The stream value is unusable.";
    StreamNotStarted => "stream.not_started", Conflict, "The replacement upload did not start in time.";
    StreamTooLarge => "stream.too_large", TooLarge, "The upload is larger than the upload limit.";
    StreamIncomplete => "stream.incomplete", BadRequest, "The upload ended before all announced bytes arrived, or its chunked framing is malformed.";
    StreamIdleTimeout => "stream.idle_timeout", Timeout, "The upload stalled or exceeded its total duration.";
    StreamSpoolFull => "stream.spool_full", Unavailable, "The engine spool has no room for an upload; try again later.";
    StreamNotReady => "stream.not_ready", Unavailable, "The download cannot be served yet; try again shortly.";
    StreamDataSuperseded => "stream.data_superseded", Conflict, "A newer version was committed; the requested version is no longer held.";
    StatisticsInvalidRange => "statistics.invalid_range", Validation, "`to` must be after `from`.";
    StatisticsRangeTooLarge => "statistics.range_too_large", Validation, "At most 1000 buckets.";
    DeviceNotFound => "device.not_found", NotFound, "Unknown device.";
    DeviceNotOwner => "device.not_owner", Forbidden, "The device belongs to another profile.";
    DeviceRequestNotFound => "device.request_not_found", NotFound, "Unknown or unfinished identifier request.";
    DeviceInvalidName => "device.invalid_name", Validation, "Device names are 1 to 100 characters without control characters.";
    DeviceInvalidMeta => "device.invalid_meta", Validation, "Device meta breaks its rules.";
    DeviceInvalidState => "device.invalid_state", Conflict, "The transition is not allowed from the device's status.";
    DeviceNotApproved => "device.not_approved", Conflict, "The device is pending or rejected.";
    DeviceInactive => "device.inactive", Conflict, "The device was removed.";
    DeviceLimitReached => "device.limit_reached", Conflict, "Too many devices.";
    DeviceInvalidCredentials => "device.invalid_credentials", Unauthorized, "Invalid device credentials.";
    DevicePublicKeyMismatch => "device.public_key_mismatch", Conflict, "The device key differs from the pinned one.";
    BusUnsupportedVersion => "bus.unsupported_version", BadRequest, "Unsupported bus protocol version.";
    StorageNoStorageDevices => "storage.no_storage_devices", Conflict, "The profile has no storage device.";
    StorageWriteFailed => "storage.write_failed", Unavailable, "The write quorum was not reached in time.";
    StorageDataUnavailable => "storage.data_unavailable", Unavailable, "No device delivered data that authenticates.";
    StorageAlreadyRegistered => "storage.already_registered", Conflict, "The device already has the storage role.";
    StorageNotRegistered => "storage.not_registered", Conflict, "The device lacks the storage role.";
    StorageLastReplica => "storage.last_replica", Conflict, "The device holds the last confirmed replica of some token.";
    StorageDeviceOffline => "storage.device_offline", Conflict, "The device is not connected.";
    StorageSyncInProgress => "storage.sync_in_progress", Conflict, "A sync of this device is running.";
    StorageSyncInterrupted => "storage.sync_interrupted", Unavailable, "The device stopped answering during a sync.";
    AuthenticatorAlreadyRegistered => "authenticator.already_registered", Conflict, "The device is already an authenticator.";
    AuthenticatorNotRegistered => "authenticator.not_registered", Conflict, "The device is not an authenticator.";
    AuthenticatorRequiredByActivePolicy => "authenticator.required_by_active_policy", Conflict, "Removing it would leave an active policy with fewer eligible authenticators than its quorum size.";
    VotingInvalidStrategy => "voting.invalid_strategy", Validation, "The strategy is one of unanimous, consensus, affirmative, minimum_percentage.";
    VotingInvalidPercentage => "voting.invalid_percentage", Validation, "The percentage is required for minimum_percentage and lies within 0..100.";
    VotingInvalidTimeLimit => "voting.invalid_time_limit", Validation, "The time limit lies within 10..86400 seconds.";
    VotingInvalidAttempts => "voting.invalid_attempts", Validation, "The number of attempts lies within 1..10.";
    VotingInvalidQuorumSize => "voting.invalid_quorum_size", Validation, "The quorum size lies within 1..100.";
    VotingInvalidTitle => "voting.invalid_title", Validation, "A title is 1 to 120 characters.";
    VotingInvalidQuestion => "voting.invalid_question", Validation, "A question is 1 to 2000 characters.";
    VotingRejected => "voting.rejected", Conflict, "The vote refused the command.";
    VotingExpired => "voting.expired", Conflict, "The vote ended without quorum.";
    VotingNoEligibleAuthenticators => "voting.no_eligible_authenticators", Conflict, "No eligible authenticator can vote.";
    VotingQuorumUnreachable => "voting.quorum_unreachable", Conflict, "Fewer eligible authenticators than the quorum size.";
    VotingPoolNotFound => "voting.pool_not_found", NotFound, "Unknown voting pool.";
    VotingCancelled => "voting.cancelled", Conflict, "The pool was cancelled because another pool of its command failed.";
    BallotNotFound => "ballot.not_found", NotFound, "Unknown ballot, or not addressed to this device.";
    BallotAlreadyVoted => "ballot.already_voted", Conflict, "This ballot was already answered.";
    BallotClosed => "ballot.closed", Conflict, "The ballot's attempt is closed.";
    BallotInvalidDecision => "ballot.invalid_decision", Validation, "The decision is yes or no.";
    BallotInvalidMac => "ballot.invalid_mac", Validation, "The vote's MAC does not verify.";
    VotingConfigurationNotFound => "voting_configuration.not_found", NotFound, "Unknown voting configuration id or name.";
    VotingConfigurationInvalidName => "voting_configuration.invalid_name", Validation, "Names are 1 to 100 characters without control characters and must not look like a UUID.";
    VotingConfigurationNameTaken => "voting_configuration.name_taken", Conflict, "A voting configuration of the profile has this name.";
    VotingConfigurationUnknownAuthenticator => "voting_configuration.unknown_authenticator", Conflict, "A listed device is not an authenticator of the profile.";
    PolicyTemplateNotFound => "policy.template_not_found", Validation, "Unknown policy template id.";
    PolicyInvalidEvent => "policy.invalid_event", Validation, "An event id is not in the template.";
    PolicyInvalidConfiguration => "policy.invalid_configuration", Validation, "The configuration is empty or has an unknown or invalid key.";
    PolicyInvalidName => "policy.invalid_name", Validation, "Names are 1 to 100 characters without control characters and must not look like a UUID.";
    PolicyNameTaken => "policy.name_taken", Conflict, "A policy of the profile has this name.";
    PolicyNotFound => "policy.not_found", NotFound, "Unknown policy id or name.";
    PolicyAlreadyActive => "policy.already_active", Conflict, "The policy is already active.";
    PolicyAlreadyInactive => "policy.already_inactive", Conflict, "The policy is already inactive.";
    PolicyMustBeInactive => "policy.must_be_inactive", Conflict, "Only inactive policies can be deleted.";
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A failure as clients see it: a reason, a human message and, for validation, the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for rate limits.
    pub retry_after: Option<u64>,
}

impl Error {
    pub fn new(reason: Reason) -> Self {
        Self {
            reason,
            message: reason.default_message().to_owned(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.reason.kind()
    }

    /// An unexpected failure: the detail is for the log, never for the client.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(detail = %detail, "internal error");
        Self::new(Reason::InternalError)
    }

    pub fn missing(field: &str) -> Self {
        Self::new(Reason::ValidationMissingField)
            .with_field(field)
            .with_message(format!("The field {field} is required."))
    }

    pub fn invalid_type(field: &str, expected: &str) -> Self {
        Self::new(Reason::ValidationInvalidType)
            .with_field(field)
            .with_message(format!("The field {field} must be {expected}."))
    }

    pub fn out_of_range(field: &str, bounds: impl fmt::Display) -> Self {
        Self::new(Reason::ValidationOutOfRange)
            .with_field(field)
            .with_message(format!("The field {field} must be within {bounds}."))
    }

    pub fn invalid_format(field: &str) -> Self {
        Self::new(Reason::ValidationInvalidFormat)
            .with_field(field)
            .with_message(format!("The field {field} is malformed."))
    }
}

impl From<Reason> for Error {
    fn from(reason: Reason) -> Self {
        Self::new(reason)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.code(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<privicore_wire::SignedKeyError> for Error {
    fn from(e: privicore_wire::SignedKeyError) -> Self {
        let reason = Reason::from_code(e.code()).expect("public_key codes are in the catalogue");
        Self::new(reason).with_field("publicKey")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dotted_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let code = reason.code();
            let (domain, rest) = code.split_once('.').expect("dotted");
            assert!(!domain.is_empty() && !rest.is_empty(), "{code}");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{code}"
            );
            assert!(seen.insert(code), "duplicate {code}");
            assert_eq!(Reason::from_code(code), Some(*reason));
        }
    }
}
