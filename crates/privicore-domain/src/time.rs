//! Whole-second UTC timestamps, written as RFC 3339 with an explicit `+00:00`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp())
    }

    pub fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }

    pub fn seconds_until(self, later: Timestamp) -> i64 {
        later.0.saturating_sub(self.0)
    }

    pub fn rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp(self.0, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    }

    /// Accepts `Z`, any numeric offset and fractional seconds; truncates to whole seconds.
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Self(t.with_timezone(&Utc).timestamp()))
    }
}

/// Where the engine takes the time of what it records. The system clock in production; a
/// [`ManualClock`] in tests that need to choose it.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told otherwise.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(std::sync::atomic::AtomicI64::new(at.unix()))
    }

    pub fn set(&self, at: Timestamp) {
        self.0.store(at.unix(), std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.0
            .fetch_add(seconds, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_explicit_offset() {
        let t = Timestamp::parse_rfc3339("2026-02-21T16:33:44.9+01:00").unwrap();
        assert_eq!(t.rfc3339(), "2026-02-21T15:33:44+00:00");
        assert_eq!(Timestamp::parse_rfc3339("2026-02-21T15:33:44Z").unwrap(), t);
    }
}
