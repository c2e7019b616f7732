//! Shape of the engine's bearer secrets: a one-letter kind, a dash, 43 base64url
//! characters (256 random bits).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Profile,
    Qr,
    AuthorizationCode,
    Access,
    Refresh,
    Upload,
    Download,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Profile => "T-",
            Self::Qr => "Q-",
            Self::AuthorizationCode => "C-",
            Self::Access => "A-",
            Self::Refresh => "R-",
            Self::Upload => "U-",
            Self::Download => "D-",
        }
    }
}

/// 256 bits from the OS CSPRNG, formatted for `kind`.
pub fn generate_token(kind: TokenKind) -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(raw))
}

/// 256 bits from the OS CSPRNG as 43 base64url characters, with no kind prefix.
pub fn generate_secret() -> String {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn is_well_formed_token(kind: TokenKind, value: &str) -> bool {
    value.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape_and_differ() {
        let a = generate_token(TokenKind::Profile);
        let b = generate_token(TokenKind::Profile);
        assert!(is_well_formed_token(TokenKind::Profile, &a));
        assert!(!is_well_formed_token(TokenKind::Qr, &a));
        assert_eq!(a.len(), 45);
        assert_ne!(a, b);
    }
}
