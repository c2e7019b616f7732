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
