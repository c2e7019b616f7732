//! Durable fixed-window counters: failed password checks and registrations, kept in the
//! metadata store so that a restart does not reset a throttle (docs/api/README.md §3.5).

use crate::Timestamp;
use std::net::IpAddr;

/// One key's window as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub count: u32,
    /// The window ends here; the next hit after it starts a new one.
    pub window_end: Timestamp,
    /// The latest hit.
    pub last_at: Timestamp,
}

/// Failed password checks of one username from one client address.
pub fn login_pair_key(username_key: &str, client: IpAddr) -> String {
    format!("login:{client}:{username_key}")
}

/// Failed password checks of one username from every address.
pub fn login_username_key(username_key: &str) -> String {
    format!("login:*:{username_key}")
}

/// Registrations from one client address.
pub fn registration_key(client: IpAddr) -> String {
    format!("register:{client}")
}
