//! When a hosted device tries its bus session again. A session that was welcomed and then
//! lost comes back at once; one the engine refused (a key other than the pinned one, after
//! the device's data directory vanished) would be refused again until the owner reissues
//! the bundle, so its attempts back off to one every ten minutes.

use std::time::Duration;

const LOST_FIRST: Duration = Duration::from_millis(100);
const LOST_MAX: Duration = Duration::from_secs(5);
pub const REFUSED_FIRST: Duration = Duration::from_secs(5);
pub const REFUSED_MAX: Duration = Duration::from_secs(600);

/// How the last session ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Welcomed, then lost or revoked: the device works, reconnect soon.
    AfterWelcome,
    /// Lost before any welcome.
    BeforeWelcome,
    /// The engine refused the device.
    Refused,
}

#[derive(Debug, Default, Clone)]
pub struct Reconnect {
    lost: u32,
    refused: u32,
}

/// `first` doubled for every attempt after the first, at most `max`.
fn doubling(first: Duration, max: Duration, attempt: u32) -> Duration {
    first
        .saturating_mul(1 << attempt.saturating_sub(1).min(20))
        .min(max)
}

impl Reconnect {
    /// The pause before the next attempt, after a session that ended this way.
    pub fn next(&mut self, ended: Ended) -> Duration {
        match ended {
            Ended::AfterWelcome => {
                *self = Self::default();
                LOST_FIRST
            }
            Ended::BeforeWelcome => {
                self.refused = 0;
                self.lost += 1;
                doubling(LOST_FIRST, LOST_MAX, self.lost)
            }
            Ended::Refused => {
                self.lost = 0;
                self.refused += 1;
                doubling(REFUSED_FIRST, REFUSED_MAX, self.refused)
            }
        }
    }

    /// Refusals in a row so far.
    pub fn refusals(&self) -> u32 {
        self.refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn refusals_back_off_to_ten_minutes() {
        let mut r = Reconnect::default();
        let pauses: Vec<u64> = (0..10).map(|_| secs(r.next(Ended::Refused))).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(r.refusals(), 10);
        // A thousand refusals later the schedule still holds (no overflow).
        for _ in 0..1000 {
            r.next(Ended::Refused);
        }
        assert_eq!(r.next(Ended::Refused), REFUSED_MAX);
    }

    #[test]
    fn a_welcome_resets_the_schedule_and_losses_back_off_briefly() {
        let mut r = Reconnect::default();
        r.next(Ended::Refused);
        r.next(Ended::Refused);
        assert_eq!(r.next(Ended::AfterWelcome), LOST_FIRST);
        assert_eq!(r.refusals(), 0);
        assert_eq!(
            r.next(Ended::Refused),
            REFUSED_FIRST,
            "counted from the start again"
        );
        let lost: Vec<Duration> = (0..8).map(|_| r.next(Ended::BeforeWelcome)).collect();
        assert_eq!(lost[0], LOST_FIRST);
        assert_eq!(lost[1], LOST_FIRST * 2);
        assert_eq!(*lost.last().unwrap(), LOST_MAX);
        assert_eq!(r.refusals(), 0);
    }
}
