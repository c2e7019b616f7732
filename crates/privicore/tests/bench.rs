//! `privicore bench` as a user runs it: it starts its own engine, drives both flows and
//! prints one line per flow. Tiny counts: this checks the harness, not the figures.

mod common;

use common::run_privicore;

fn bench(args: &[&str]) -> String {
    run_privicore(&[&["bench"], args].concat(), &[])
}

/// The flows each result line reports, by its first word.
fn flows(output: &str, mode: &str) -> Option<u64> {
    output
        .lines()
        .find(|line| line.split_whitespace().next() == Some(mode))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn clients_sharing_one_profile_store_and_fetch_every_flow() {
    let out = bench(&["both", "--clients", "3", "--count", "4"]);
    assert!(out.contains("3 clients over 1 profile(s)"), "{out}");
    assert_eq!(flows(&out, "store"), Some(12), "{out}");
    assert_eq!(flows(&out, "fetch"), Some(12), "{out}");
    assert!(out.contains("cpu ms/flow engine"), "{out}");
}

#[test]
fn clients_with_a_profile_each_store_and_fetch_every_flow() {
    let out = bench(&[
        "both",
        "--clients",
        "2",
        "--count",
        "3",
        "--profiles",
        "0",
        "--client-threads",
        "2",
    ]);
    assert!(out.contains("2 clients over 2 profile(s)"), "{out}");
    assert_eq!(flows(&out, "store"), Some(6), "{out}");
    assert_eq!(flows(&out, "fetch"), Some(6), "{out}");
}

#[test]
fn idle_hosted_devices_are_measured() {
    let out = bench(&["devices", "--profiles", "2", "--idle-seconds", "1"]);
    assert!(
        out.contains("2 profile(s) x 3 hosted storage devices"),
        "{out}"
    );
    assert!(out.contains("registered 6 devices"), "{out}");
    let idle = out
        .lines()
        .find(|l| l.starts_with("idle with devices: rss "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(idle.ends_with(" fds"), "{out}");
    assert!(out.contains("per device: "), "{out}");
}

/// `(p50, p90, p99)` of the `vote -> result` line.
fn vote_to_result(output: &str) -> Option<(f64, f64, f64)> {
    let line = output.lines().find(|l| l.starts_with("vote -> result"))?;
    let after = |key: &str| -> Option<f64> {
        line.split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((after("p50 ")?, after("p90 ")?, after("p99 ")?))
}

#[test]
fn gated_stores_are_released_by_the_bench_authenticators_votes() {
    let out = bench(&["vote", "--clients", "2", "--count", "5"]);
    assert!(out.contains("2 clients over 1 profile(s)"), "{out}");
    assert!(
        out.contains("governance: 3 authenticator(s) per profile on the bus"),
        "{out}"
    );
    assert_eq!(flows(&out, "vote"), Some(10), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("vote -> result"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(" 10 pools"), "{out}");
    assert!(line.contains("yes 3 of 3 (unanimous, quorum 3)"), "{out}");
    assert!(line.ends_with("refused ballots 0 votes 0"), "{out}");
    let (p50, p90, p99) = vote_to_result(&out).unwrap_or_else(|| panic!("{out}"));
    assert!(0.0 < p50 && p50 <= p90 && p90 <= p99, "{out}");
}

#[test]
fn ungated_stores_run_with_policies_that_do_not_match() {
    // A policy that matched would hold every exchange with no voter connected: the run
    // would fail on its timeout instead of finishing.
    let out = bench(&["store", "--clients", "2", "--count", "3", "--policies", "2"]);
    assert!(
        out.contains("2 active policies on event 101 that do not match"),
        "{out}"
    );
    assert_eq!(flows(&out, "store"), Some(6), "{out}");
}

#[test]
fn one_object_is_streamed_both_ways_and_the_engine_measured() {
    let out = bench(&["stream", "--size", "3MiB"]);
    for expected in [
        "one object of 3.00 MiB",
        "3 hosted storage devices",
        "disk: sequential write of 3.00 MiB with fsync",
        "engine idle rss: ",
        "store  3.00 MiB: upload ",
        "fetch  3.00 MiB: ",
        "tag verified, content identical",
        "peak during the run ",
    ] {
        assert!(out.contains(expected), "{expected:?} missing in:\n{out}");
    }
}

/// The engine's memory stays bounded while a 256 MiB object is stored and fetched: it does
/// not hold the object (a run that queued it whole peaked a few hundred MiB above idle).
#[test]
fn the_engine_does_not_hold_a_streamed_object_in_memory() {
    let out = bench(&["stream", "--size", "256MiB"]);
    let mib_after = |label: &str| -> f64 {
        let rest = &out[out
            .find(label)
            .unwrap_or_else(|| panic!("{label:?} in:\n{out}"))
            + label.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let idle = mib_after("engine rss: idle ");
    let peak = mib_after("peak during the run ");
    assert!(
        peak - idle < 128.0,
        "engine peak {peak} MiB against {idle} MiB idle:\n{out}"
    );
    assert!(out.contains("tag verified, content identical"), "{out}");
}
