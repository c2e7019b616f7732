//! In-memory request limits (governor's GCRA): a quota of `n` per minute allows a burst of
//! `n` and then one request every `60/n` seconds. Per engine node; a restart empties them.

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use lru::LruCache;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Mutex;
use std::time::Duration;

/// Whole seconds a client waits, rounded up (`Retry-After` has no fractions).
pub fn whole_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// One quota per key.
pub struct KeyedRate<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedRate<K, C> {
    pub fn per_minute(n: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::dashmap_with_clock(Quota::per_minute(n), clock.clone()),
            clock,
        }
    }

    /// Counts a request of `key`; `Err` with the seconds to wait when it is over the quota
    /// (and then not counted).
    pub fn check(&self, key: &K) -> Result<(), u64> {
        self.limiter
            .check_key(key)
            .map(drop)
            .map_err(|not_until| whole_seconds(not_until.wait_time_from(self.clock.now())))
    }

    /// Forgets keys whose state equals a fresh one, so memory follows recent use.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// Addresses barred until an instant: the after-the-fact side of a limit (a request that
/// turned out unauthenticated only once it ran). Bounded; the oldest entries go first.
pub struct Barred<C: Clock = DefaultClock> {
    until: Mutex<LruCache<IpAddr, C::Instant>>,
    clock: C,
}

const BARRED_MAX: usize = 65_536;

impl<C: Clock> Barred<C> {
    pub fn new(clock: C) -> Self {
        Self {
            until: Mutex::new(LruCache::new(
                NonZeroUsize::new(BARRED_MAX).expect("non-zero"),
            )),
            clock,
        }
    }

    pub fn bar(&self, ip: IpAddr, wait: Duration) {
        let until = self.clock.now() + wait.into();
        self.until.lock().expect("barred lock").put(ip, until);
    }

    /// Seconds `ip` still has to wait, if barred.
    pub fn wait(&self, ip: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let mut until = self.until.lock().expect("barred lock");
        let end = *until.peek(&ip)?;
        if end <= now {
            until.pop(&ip);
            return None;
        }
        Some(whole_seconds(end.duration_since(now).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let clock = FakeRelativeClock::default();
        let rate = KeyedRate::per_minute(nz(3), clock.clone());
        for _ in 0..3 {
            assert_eq!(rate.check(&"a"), Ok(()));
        }
        assert_eq!(rate.check(&"a"), Err(20), "one cell every 20 s");
        assert_eq!(rate.check(&"b"), Ok(()), "keys are independent");
        clock.advance(Duration::from_secs(19));
        assert_eq!(rate.check(&"a"), Err(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(rate.check(&"a"), Ok(()));
        assert_eq!(rate.check(&"a"), Err(20));
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let rate = KeyedRate::per_minute(nz(60), clock.clone());
        for key in 0..100 {
            rate.check(&key).unwrap();
        }
        assert_eq!(rate.keys(), 100);
        clock.advance(Duration::from_secs(2));
        rate.forget_idle();
        assert_eq!(rate.keys(), 0);
    }

    #[test]
    fn a_bar_lifts_when_its_time_is_up() {
        let clock = FakeRelativeClock::default();
        let barred = Barred::new(clock.clone());
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert_eq!(barred.wait(ip), None);
        barred.bar(ip, Duration::from_millis(2500));
        assert_eq!(barred.wait(ip), Some(3), "rounded up");
        assert_eq!(barred.wait(IpAddr::from([192, 0, 2, 2])), None);
        clock.advance(Duration::from_secs(2));
        assert_eq!(barred.wait(ip), Some(1));
        clock.advance(Duration::from_millis(500));
        assert_eq!(barred.wait(ip), None);
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(5)), 5);
    }
}
