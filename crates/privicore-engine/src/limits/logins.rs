//! Failed password checks and registrations, counted in the metadata store so a restart
//! does not reset them (docs/api/README.md §3.5; keys and back-off are our design, see
//! docs/contract-decisions.md).
//!
//! A failed check locks its (username, client address) pair once the pair reaches the
//! limit within the window: an attacker locks out their own address, not the user. Every
//! failure also counts for the username across all addresses; past what one address may
//! make, each further attempt on the username must wait after the latest failure, twice
//! as long per failure, at most [`BACKOFF_CAP_SECONDS`]. That slows a guesser with many
//! addresses without ever locking the user out for longer than the cap.

use super::{client_key, exceeded};
use privicore_domain::counter::{Counter, login_pair_key, login_username_key, registration_key};
use privicore_domain::ports::MetadataStore;
use privicore_domain::{Error, Timestamp};
use std::net::IpAddr;

pub const LOGIN_WINDOW_SECONDS: i64 = 15 * 60;
pub const REGISTRATION_WINDOW_SECONDS: i64 = 3600;
pub const BACKOFF_CAP_SECONDS: i64 = 60;

/// Seconds the pair waits: locked from the `limit`-th failure to the window's end.
fn pair_wait(pair: Option<Counter>, limit: u32, now: Timestamp) -> Option<i64> {
    pair.filter(|c| c.count >= limit)
        .map(|c| now.seconds_until(c.window_end))
}

/// Seconds the username waits: the back-off after its latest failure.
fn username_wait(all: Option<Counter>, limit: u32, now: Timestamp) -> Option<i64> {
    let c = all.filter(|c| c.count > limit)?;
    let doublings = (c.count - limit - 1).min(16);
    let backoff = (1i64 << doublings).min(BACKOFF_CAP_SECONDS);
    let wait = now.seconds_until(c.last_at.plus_seconds(backoff));
    (wait > 0).then_some(wait)
}

/// `None` and 0 both switch a limit off.
fn on(limit: Option<u32>) -> Option<u32> {
    limit.filter(|n| *n > 0)
}

fn refuse(wait: Option<i64>) -> Result<(), Error> {
    match wait {
        Some(seconds) => Err(exceeded(seconds.max(1) as u64)),
        None => Ok(()),
    }
}

/// What a password check may do; `failed_before` tells whether success has a pair to clear.
pub struct LoginGate {
    failed_before: bool,
}

/// Refuses the check while the pair is locked or the username is backing off.
pub async fn open_login(
    store: &dyn MetadataStore,
    limit: Option<u32>,
    username_key: &str,
    client: IpAddr,
    now: Timestamp,
) -> Result<LoginGate, Error> {
    let Some(limit) = on(limit) else {
        return Ok(LoginGate {
            failed_before: false,
        });
    };
    let pair = store
        .counter(&login_pair_key(username_key, client_key(client)), now)
        .await?;
    refuse(pair_wait(pair, limit, now))?;
    let all = store
        .counter(&login_username_key(username_key), now)
        .await?;
    refuse(username_wait(all, limit, now))?;
    Ok(LoginGate {
        failed_before: pair.is_some(),
    })
}

pub async fn login_failed(
    store: &dyn MetadataStore,
    limit: Option<u32>,
    username_key: &str,
    client: IpAddr,
    now: Timestamp,
) -> Result<(), Error> {
    if on(limit).is_some() {
        for key in [
            login_pair_key(username_key, client_key(client)),
            login_username_key(username_key),
        ] {
            store.hit_counter(&key, now, LOGIN_WINDOW_SECONDS).await?;
        }
    }
    Ok(())
}

/// The pair starts over; the username's count does not (it only decays with its window).
pub async fn login_succeeded(
    store: &dyn MetadataStore,
    gate: LoginGate,
    username_key: &str,
    client: IpAddr,
) -> Result<(), Error> {
    if gate.failed_before {
        store
            .clear_counter(&login_pair_key(username_key, client_key(client)))
            .await?;
    }
    Ok(())
}

/// Counts a registration from `client`; refused past the limit.
pub async fn count_registration(
    store: &dyn MetadataStore,
    limit: Option<u32>,
    client: IpAddr,
    now: Timestamp,
) -> Result<(), Error> {
    let Some(limit) = on(limit) else {
        return Ok(());
    };
    let c = store
        .hit_counter(
            &registration_key(client_key(client)),
            now,
            REGISTRATION_WINDOW_SECONDS,
        )
        .await?;
    refuse((c.count > limit).then(|| now.seconds_until(c.window_end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix(1_700_000_000 + s)
    }

    fn counter(count: u32, window_end: i64, last_at: i64) -> Option<Counter> {
        Some(Counter {
            count,
            window_end: at(window_end),
            last_at: at(last_at),
        })
    }

    #[test]
    fn a_pair_locks_at_the_limit_until_its_window_ends() {
        assert_eq!(pair_wait(None, 3, at(0)), None);
        assert_eq!(pair_wait(counter(2, 900, 10), 3, at(10)), None);
        assert_eq!(pair_wait(counter(3, 900, 10), 3, at(10)), Some(890));
        assert_eq!(pair_wait(counter(3, 900, 10), 3, at(899)), Some(1));
    }

    #[test]
    fn a_username_backs_off_only_past_what_one_address_may_make() {
        let limit = 10;
        assert_eq!(username_wait(counter(10, 900, 100), limit, at(100)), None);
        assert_eq!(
            username_wait(counter(11, 900, 100), limit, at(100)),
            Some(1)
        );
        assert_eq!(username_wait(counter(11, 900, 100), limit, at(101)), None);
        assert_eq!(
            username_wait(counter(13, 900, 100), limit, at(101)),
            Some(3)
        );
        assert_eq!(
            username_wait(counter(16, 900, 100), limit, at(100)),
            Some(32)
        );
    }

    #[test]
    fn the_username_back_off_is_capped() {
        for count in [17, 40, 10_000] {
            let wait = username_wait(counter(count, 900, 100), 10, at(100));
            assert_eq!(wait, Some(BACKOFF_CAP_SECONDS), "{count} failures");
        }
        assert_eq!(
            username_wait(counter(10_000, 900, 100), 10, at(100 + BACKOFF_CAP_SECONDS)),
            None,
            "a user who waits the cap may try again, however many failures"
        );
    }

    #[tokio::test]
    async fn failures_lock_the_pair_and_slow_the_username_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = privicore_store_sqlite::SqliteStore::open(&dir.path().join("db"))
            .await
            .unwrap();
        let (limit, user) = (Some(2), "victim@example.com");
        let attacker = IpAddr::from([203, 0, 113, 7]);
        let second = IpAddr::from([203, 0, 113, 8]);
        let victim = IpAddr::from([198, 51, 100, 9]);
        for _ in 0..2 {
            open_login(&store, limit, user, attacker, at(0))
                .await
                .unwrap();
            login_failed(&store, limit, user, attacker, at(0))
                .await
                .unwrap();
        }
        let locked = open_login(&store, limit, user, attacker, at(1))
            .await
            .err()
            .unwrap();
        assert_eq!(locked.retry_after, Some(899));
        let gate = open_login(&store, limit, user, victim, at(1))
            .await
            .unwrap();
        login_succeeded(&store, gate, user, victim).await.unwrap();

        // A second address pushes the username past what one address may make.
        login_failed(&store, limit, user, second, at(10))
            .await
            .unwrap();
        let slowed = open_login(&store, limit, user, victim, at(10))
            .await
            .err()
            .unwrap();
        assert_eq!(slowed.retry_after, Some(1));
        open_login(&store, limit, user, victim, at(11))
            .await
            .unwrap();

        // The window ends: the pair may try again.
        open_login(&store, limit, user, attacker, at(900))
            .await
            .unwrap();
        assert!(
            open_login(&store, None, user, attacker, at(1))
                .await
                .is_ok(),
            "off"
        );
        store.close().await;
    }

    #[tokio::test]
    async fn registrations_are_counted_per_address_within_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = privicore_store_sqlite::SqliteStore::open(&dir.path().join("db"))
            .await
            .unwrap();
        let (a, b) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        count_registration(&store, Some(1), a, at(0)).await.unwrap();
        let refused = count_registration(&store, Some(1), a, at(600))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.retry_after, Some(3000));
        count_registration(&store, Some(1), b, at(600))
            .await
            .unwrap();
        count_registration(&store, Some(1), a, at(3600))
            .await
            .unwrap();
        count_registration(&store, Some(0), a, at(3600))
            .await
            .unwrap();
        store.close().await;
    }
}
