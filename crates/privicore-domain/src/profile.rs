//! Profiles: the actors of the engine.

use crate::password::PasswordHash;
use crate::{Error, ProfileId, Reason, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    User,
    DirectoryUser,
}

impl ProfileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::DirectoryUser => "directory_user",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "directory_user" => Some(Self::DirectoryUser),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileStatus {
    Active,
    Suspended,
    Removed,
}

impl ProfileStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Removed => "removed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "removed" => Some(Self::Removed),
            _ => None,
        }
    }
}

/// A registered public key with its registration time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredKey {
    pub public_key: String,
    pub registered_at: Timestamp,
}

/// A profile once its register command has succeeded. (`registering` profiles exist only
/// as pending commands.)
#[derive(Debug, Clone)]
pub struct Profile {
    pub id: ProfileId,
    pub username: String,
    pub kind: ProfileKind,
    pub status: ProfileStatus,
    pub password_hash: Option<PasswordHash>,
    pub public_key: Option<RegisteredKey>,
    pub created_at: Timestamp,
}

/// Username rules: 3..254 characters of `A-Z a-z 0-9 . _ @ + -`, starting with a letter
/// or digit.
pub fn check_username(username: &str) -> Result<(), Error> {
    let ok_len = (3..=254).contains(&username.chars().count());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'));
    let ok_start = username
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(Error::new(Reason::ProfileInvalidUsername).with_field("username"))
    }
}

/// Usernames are unique case-insensitively; this is the comparison key.
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn username_rules() {
        assert!(check_username("alice@example.com").is_ok());
        assert!(check_username("a1+b_c-d.e").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username(".alice").is_err());
        assert!(check_username("ali ce").is_err());
        assert!(check_username("álice").is_err());
        assert!(check_username(&"a".repeat(255)).is_err());
        assert!(check_username(&"a".repeat(254)).is_ok());
    }

    proptest! {
        #[test]
        fn username_check_never_panics(s in "\\PC{0,300}") {
            let _ = check_username(&s);
        }
    }
}
