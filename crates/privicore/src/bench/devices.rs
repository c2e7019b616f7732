//! `privicore bench devices`: what hosted storage devices cost while idle. Starts its own
//! engine, registers P profiles with D hosted devices each, lets everything settle and
//! prints the engine's resident memory, threads and open files (from `/proc`) before and
//! after.

use super::{BenchArgs, setup, spawn_engine};
use futures_util::StreamExt;
use std::time::Duration;

/// Profiles set up at once (each registration hashes a password with 19 MiB of memory).
const SETUP_AT_ONCE: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok(Usage {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64,
    })
}

fn line(label: &str, u: Usage) -> String {
    format!(
        "{label}: rss {:.1} MB, {} threads, {} fds",
        u.rss_kib as f64 / 1024.0,
        u.threads,
        u.fds
    )
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.api.is_none() && args.ws.is_none(),
        "bench devices starts its own engine (it reads the engine's /proc entries)"
    );
    anyhow::ensure!(args.profiles > 0, "--profiles must be at least 1");
    let (engine, api, ws) = spawn_engine()?;
    let pid = engine.child.id();
    let idle = Duration::from_secs(args.idle_seconds);
    tokio::time::sleep(idle.min(Duration::from_secs(2))).await;
    let before = usage(pid)?;
    println!(
        "privicore bench devices: {} profile(s) x {} hosted storage devices, idle {} s",
        args.profiles, args.devices, args.idle_seconds
    );
    println!("{}", line("engine alone", before));
    let started = std::time::Instant::now();
    let set_up: Vec<anyhow::Result<_>> = futures_util::stream::iter(0..args.profiles)
        .map(|_| setup(&api, &ws, args.devices))
        .buffer_unordered(SETUP_AT_ONCE)
        .collect()
        .await;
    for profile in set_up {
        // Only the devices stay: the clients' sockets would count as the engine's files.
        drop(profile?);
    }
    println!(
        "registered {} devices in {:.1} s",
        args.profiles * args.devices,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(idle).await;
    let after = usage(pid)?;
    println!("{}", line("idle with devices", after));
    let n = (args.profiles * args.devices).max(1) as f64;
    println!(
        "per device: {:.1} KiB rss, {:.2} threads, {:.2} fds",
        after.rss_kib.saturating_sub(before.rss_kib) as f64 / n,
        after.threads.saturating_sub(before.threads) as f64 / n,
        after.fds.saturating_sub(before.fds) as f64 / n
    );
    Ok(())
}
