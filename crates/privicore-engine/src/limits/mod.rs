//! Rate limits (docs/api/README.md §3.5). Requests per token, unauthenticated requests and generated
//! keys per client address are kept in memory ([`rate`]); failed password checks and
//! registrations are counted durably in the metadata store ([`logins`]).

pub mod logins;
pub mod rate;

use crate::access::bearer_value;
use crate::config::RateLimits;
use governor::clock::DefaultClock;
use privicore_domain::secret::Secret;
use privicore_domain::{Error, Reason};
use rate::{Barred, KeyedRate};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

pub(crate) fn exceeded(wait_seconds: u64) -> Error {
    Error::new(Reason::RateLimitExceeded).with_retry_after(wait_seconds)
}

/// The key a client address is limited by: IPv6 clients by their /64, which one host
/// usually holds whole; IPv4-mapped IPv6 as IPv4.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::from(segments)
            }
        },
    }
}

/// The in-memory limits of one engine node.
pub struct Limits {
    generate_keys: Option<KeyedRate<IpAddr>>,
    per_token: Option<KeyedRate<[u8; 32]>>,
    unauthenticated: Option<KeyedRate<IpAddr>>,
    barred: Barred,
}

fn per_minute<K: std::hash::Hash + Eq + Clone>(n: Option<u32>) -> Option<KeyedRate<K>> {
    n.and_then(NonZeroU32::new)
        .map(|n| KeyedRate::per_minute(n, DefaultClock::default()))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    rate: &Option<KeyedRate<K>>,
    key: &K,
) -> Result<(), Error> {
    match rate {
        Some(rate) => rate.check(key).map_err(exceeded),
        None => Ok(()),
    }
}

impl Limits {
    pub fn new(config: &RateLimits) -> Self {
        Self {
            generate_keys: per_minute(config.generate_keys_per_minute),
            per_token: per_minute(config.requests_per_token_per_minute),
            unauthenticated: per_minute(config.unauthenticated_per_minute),
            barred: Barred::new(DefaultClock::default()),
        }
    }

    /// Counts a request that presents the `X-DPT-AUTHORIZATION` value `header`.
    pub fn token_request(&self, header: &str) -> Result<(), Error> {
        if self.per_token.is_none() {
            return Ok(());
        }
        let hash = Secret::new(bearer_value(header)).hash();
        check(&self.per_token, &hash.0)
    }

    /// Counts a request that does not authenticate (public endpoints, no token).
    pub fn unauthenticated_request(&self, client: IpAddr) -> Result<(), Error> {
        let client = client_key(client);
        if let Some(wait) = self.barred.wait(client) {
            return Err(exceeded(wait));
        }
        check(&self.unauthenticated, &client)
    }

    /// Refuses a request from an address that went over its unauthenticated limit with
    /// tokens that did not authenticate.
    pub fn address_open(&self, client: IpAddr) -> Result<(), Error> {
        // Only this limit bars addresses; off, there is nothing to look up.
        if self.unauthenticated.is_none() {
            return Ok(());
        }
        match self.barred.wait(client_key(client)) {
            Some(wait) => Err(exceeded(wait)),
            None => Ok(()),
        }
    }

    /// A request whose token did not authenticate counts as unauthenticated, after the
    /// fact; once that goes over the limit the address is barred for the wait.
    pub fn token_not_authenticated(&self, client: IpAddr) {
        let client = client_key(client);
        if let Some(rate) = &self.unauthenticated
            && let Err(wait) = rate.check(&client)
        {
            self.barred.bar(client, Duration::from_secs(wait));
        }
    }

    pub(crate) fn generate_keys(&self, client: IpAddr) -> Result<(), Error> {
        check(&self.generate_keys, &client_key(client))
    }

    pub(crate) fn forget_idle(&self) {
        for rate in [&self.generate_keys, &self.unauthenticated]
            .into_iter()
            .flatten()
        {
            rate.forget_idle();
        }
        if let Some(rate) = &self.per_token {
            rate.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::from([192, 0, 2, 7]));
    }

    #[test]
    fn unauthenticated_tokens_bar_the_address_once_over_the_limit() {
        let limits = Limits::new(&RateLimits {
            unauthenticated_per_minute: Some(2),
            ..RateLimits::default()
        });
        let ip = IpAddr::from([192, 0, 2, 1]);
        limits.token_not_authenticated(ip);
        limits.token_not_authenticated(ip);
        assert!(limits.address_open(ip).is_ok(), "within the limit");
        limits.token_not_authenticated(ip);
        let err = limits.address_open(ip).unwrap_err();
        assert_eq!(err.reason, Reason::RateLimitExceeded);
        assert!(err.retry_after.unwrap() >= 1);
        assert!(limits.unauthenticated_request(ip).is_err());
        assert!(limits.address_open(IpAddr::from([192, 0, 2, 2])).is_ok());
    }

    #[test]
    fn zero_switches_a_limit_off() {
        let limits = Limits::new(&RateLimits {
            requests_per_token_per_minute: Some(0),
            unauthenticated_per_minute: None,
            ..RateLimits::default()
        });
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..1000 {
            limits.token_request("T-abc").unwrap();
            limits.unauthenticated_request(ip).unwrap();
        }
    }
}
