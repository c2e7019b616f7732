//! Password rules (docs/api/profile-and-keys.md §2) and Argon2id hashing.

use crate::{Error, Reason};
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

pub const MIN_LEN: usize = 10;
pub const MAX_LEN: usize = 1024;

/// Checks the password rules; lengths count Unicode scalar values.
pub fn check_rules(username: &str, password: &str) -> Result<(), Error> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(Error::new(Reason::ProfilePasswordTooShort).with_field("password"));
    }
    if len > MAX_LEN {
        return Err(Error::new(Reason::ProfilePasswordTooLong).with_field("password"));
    }
    if password.to_lowercase() == username.to_lowercase() {
        return Err(Error::new(Reason::ProfilePasswordEqualsUsername).with_field("password"));
    }
    Ok(())
}

/// Argon2id cost; the defaults are the contract's recommendation (m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashCost {
    fn hasher(&self) -> Argon2<'static> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .expect("valid Argon2 parameters");
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }
}

/// A PHC-format Argon2id hash. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

impl PasswordHash {
    pub fn from_phc(text: String) -> Self {
        Self(text)
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }

    /// CPU-heavy: call from a blocking thread.
    pub fn create(password: &str, cost: HashCost) -> Result<Self, Error> {
        let salt = SaltString::generate(&mut OsRng);
        cost.hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| Self(h.to_string()))
            .map_err(Error::internal)
    }

    /// Constant-time verification (argon2 compares digests in constant time).
    pub fn verify(&self, password: &str) -> bool {
        match argon2::password_hash::PasswordHash::new(&self.0) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashCost {
        HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn rules() {
        assert_eq!(
            check_rules("alice", "short").unwrap_err().reason,
            Reason::ProfilePasswordTooShort
        );
        assert_eq!(
            check_rules("alice", &"x".repeat(1025)).unwrap_err().reason,
            Reason::ProfilePasswordTooLong
        );
        assert_eq!(
            check_rules("Alice@Example.com", "alice@example.COM")
                .unwrap_err()
                .reason,
            Reason::ProfilePasswordEqualsUsername
        );
        // Ten scalar values, more bytes.
        assert!(check_rules("alice", "ééééééééé€").is_ok());
    }

    #[test]
    fn hash_is_argon2id_and_verifies() {
        let h = PasswordHash::create("correct-horse-battery", cheap()).unwrap();
        assert!(h.as_phc().starts_with("$argon2id$"));
        assert!(h.verify("correct-horse-battery"));
        assert!(!h.verify("wrong-horse-battery"));
        assert!(!PasswordHash::from_phc("garbage".into()).verify("x"));
    }

    #[test]
    fn default_cost_matches_the_contract() {
        let h = PasswordHash::create("correct-horse-battery", HashCost::default()).unwrap();
        assert!(h.as_phc().contains("m=19456,t=2,p=1"), "{}", h.as_phc());
    }
}
