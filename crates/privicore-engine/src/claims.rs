//! Resources being worked on right now. Exchanges claim their token before the token row is
//! read and hold it until the exchange's record is written, so two exchanges of one token
//! never both send a version 1 to the devices; a synchronization claims its device while it
//! runs, so another one is refused with `storage.sync_in_progress`.

use std::collections::HashSet;
use std::sync::Mutex;

#[derive(Default)]
pub(crate) struct Claims {
    held: Mutex<HashSet<String>>,
}

/// Released on drop.
pub(crate) struct Claim<'a> {
    claims: &'a Claims,
    token: String,
}

impl Claims {
    /// None while another claim on the token is held.
    pub fn claim(&self, token: &str) -> Option<Claim<'_>> {
        let fresh = self
            .held
            .lock()
            .expect("claims lock")
            .insert(token.to_owned());
        fresh.then(|| Claim {
            claims: self,
            token: token.to_owned(),
        })
    }

    pub fn is_held(&self, token: &str) -> bool {
        self.held.lock().expect("claims lock").contains(token)
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.claims
            .held
            .lock()
            .expect("claims lock")
            .remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_token_until_dropped() {
        let claims = Claims::default();
        let first = claims.claim("dtk-a").expect("free");
        assert!(claims.claim("dtk-a").is_none());
        assert!(claims.is_held("dtk-a"));
        assert!(claims.claim("dtk-b").is_some());
        drop(first);
        assert!(claims.claim("dtk-a").is_some());
    }
}
