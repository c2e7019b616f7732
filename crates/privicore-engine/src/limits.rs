//! Fixed-window rate limits kept in memory (per engine node).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    window: Duration,
    limit: Option<u32>,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(limit: Option<u32>, window: Duration) -> Self {
        Self {
            window,
            limit,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds to wait if `key` is over its limit, without counting a hit.
    pub fn blocked_for(&self, key: &str) -> Option<u64> {
        let limit = self.limit?;
        let hits = self.hits.lock().expect("limiter lock");
        let (start, count) = hits.get(key)?;
        let elapsed = start.elapsed();
        (elapsed < self.window && *count >= limit).then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Counts a hit; returns the wait in seconds when the hit goes over the limit.
    pub fn hit(&self, key: &str) -> Option<u64> {
        let limit = self.limit?;
        let mut hits = self.hits.lock().expect("limiter lock");
        if hits.len() > 100_000 {
            let window = self.window;
            hits.retain(|_, (start, _)| start.elapsed() < window);
        }
        let now = Instant::now();
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if entry.0.elapsed() >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        (entry.1 > limit).then(|| (self.window - entry.0.elapsed()).as_secs().max(1))
    }

    pub fn reset(&self, key: &str) {
        self.hits.lock().expect("limiter lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_key_within_the_window() {
        let l = RateLimiter::new(Some(2), Duration::from_secs(60));
        assert_eq!(l.hit("a"), None);
        assert_eq!(l.hit("a"), None);
        assert!(l.blocked_for("a").is_some());
        assert!(l.hit("a").is_some());
        assert_eq!(l.hit("b"), None);
        l.reset("a");
        assert_eq!(l.blocked_for("a"), None);
    }

    #[test]
    fn no_limit_means_never_blocked() {
        let l = RateLimiter::new(None, Duration::from_secs(60));
        for _ in 0..100 {
            assert_eq!(l.hit("a"), None);
        }
    }
}
