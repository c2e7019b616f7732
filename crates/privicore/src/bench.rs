//! `privicore bench`: the full flows over real HTTP and WebSocket, N concurrent clients
//! spread over P profiles (by default one: an application with its three storage devices);
//! the clients of a profile share its authorization token, HTTP connection pool and one
//! WebSocket session, as the threads of one application server would. `vote` gates every
//! exchange with a policy its authenticators, run inside the bench, approve (see `vote`).

use anyhow::Context;
use clap::{Args, ValueEnum};
use privicore_client::{Client, KeyPair, RequestStatus, Session};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;

mod devices;
mod stream;
mod vote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Store,
    Fetch,
    Both,
    /// Gated store flows: every exchange is held by a policy until the profile's
    /// authenticators (run inside the bench, voting `yes` at once) approve it.
    Vote,
    /// No flows: the resident memory, threads and files of idle hosted devices.
    Devices,
    /// One large object (`--size`, default 64 MiB) stored and fetched through the streaming
    /// listeners with client-side encryption: throughput both ways, the engine's memory, and
    /// the disk's own write speed beside them.
    Stream,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "both")]
    pub mode: Mode,
    /// API base URL of a running engine. Without it the bench starts its own engine
    /// (`privicore serve` on ephemeral ports, a temporary data directory, rate limits off).
    #[arg(long)]
    pub api: Option<String>,
    /// WebSocket URL of that engine.
    #[arg(long)]
    pub ws: Option<String>,
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Flows per client.
    #[arg(long, default_value_t = 200)]
    pub count: usize,
    /// Payload size: bytes of client ciphertext per flow (default 1024), or for `stream`
    /// the object's plaintext (default 64MiB). Units: `KiB`, `MiB`, `GiB` (or `KB`, `MB`,
    /// `GB`, powers of 1000), e.g. `1GiB`.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<usize>,
    /// Target flows per second across all clients (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Storage devices per profile.
    #[arg(long, default_value_t = 3)]
    pub devices: usize,
    /// Profiles the clients are spread over, each with its own devices and WebSocket
    /// session (0 = one per client).
    #[arg(long, default_value_t = 1)]
    pub profiles: usize,
    /// `store`/`both`: N active policies on the exchange event that do not match the
    /// bench's tokens (another context), to compare ungated stores with policies present.
    #[arg(long, default_value_t = 0)]
    pub policies: usize,
    /// Authenticators per profile: connected from the bench and voting for `vote`
    /// (all of them must vote yes), registered only for `--policies`.
    #[arg(long, default_value_t = 3)]
    pub authenticators: usize,
    /// Threads of the bench's own runtime.
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Write every measured ack as a CSV line `phase,start_ms,ack_ms` (start counted from
    /// the phase's start) to this file, to see when the slow ones happened.
    #[arg(long)]
    pub timeline: Option<PathBuf>,
    /// `devices` only: how long everything idles before it is measured (long enough for
    /// the runtime's spare blocking threads to exit, 10 s after their last job).
    #[arg(long, default_value_t = 15)]
    pub idle_seconds: u64,
}

impl BenchArgs {
    /// The flows' payload size.
    fn flow_size(&self) -> usize {
        self.size.unwrap_or(1024)
    }
}

/// `1024`, `64MiB`, `1GiB`, `1.5GiB`, `10MB`: a byte count with an optional unit.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1024, 64MiB or 1GiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > usize::MAX as f64 || bytes.fract() != 0.0 {
        return Err(format!("{text:?} is not a whole number of bytes"));
    }
    Ok(bytes as usize)
}

struct Spawned {
    child: Child,
    dir: tempfile::TempDir,
}

/// CPU time (user + system) a process has used so far, from `/proc` (Linux only).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / 100.0))
}

/// CPU used by the engine (when the bench started it) and by the bench itself.
struct CpuMeter {
    engine: Option<u32>,
    start: (Option<Duration>, Option<Duration>),
}

impl CpuMeter {
    fn start(engine: Option<u32>) -> Self {
        let start = (engine.and_then(cpu_time), cpu_time(std::process::id()));
        Self { engine, start }
    }

    /// Milliseconds of CPU per flow, engine and client, since `start`.
    fn per_flow(&self, flows: usize) -> String {
        let ms = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
            (Some(b), Some(a)) if flows > 0 => {
                format!("{:.2}", (a - b).as_secs_f64() * 1000.0 / flows as f64)
            }
            _ => "n/a".into(),
        };
        format!(
            "cpu ms/flow engine {} client {}",
            ms(self.start.0, self.engine.and_then(cpu_time)),
            ms(self.start.1, cpu_time(std::process::id()))
        )
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_engine() -> anyhow::Result<(Spawned, String, String)> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args([
            "serve",
            "--api-port",
            "0",
            "--ws-port",
            "0",
            "--log-level",
            "warn",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("PRIVICORE_REGISTRATIONS_PER_HOUR", "0")
        .env("PRIVICORE_FAILED_LOGINS_PER_15MIN", "0")
        // One token serves every client of the run, far above the per-token default.
        .env("PRIVICORE_REQUESTS_PER_TOKEN_PER_MINUTE", "0")
        .env("PRIVICORE_UNAUTHENTICATED_PER_MINUTE", "0")
        .env("PRIVICORE_GENERATE_KEYS_PER_MINUTE", "0")
        // The streaming listeners on free ports too, so benches can run side by side.
        .env("PRIVICORE_UPSTREAM_PORT", "0")
        .env("PRIVICORE_DOWNSTREAM_PORT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the engine")?;
    let endpoints: PathBuf = dir.path().join("run/endpoints.json");
    let spawned = Spawned { child, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&endpoints) {
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let api = v["api"].as_str().unwrap_or_default().to_owned();
            let ws = v["ws"].as_str().unwrap_or_default().to_owned();
            return Ok((spawned, api, ws));
        }
        anyhow::ensure!(Instant::now() < deadline, "the engine did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Bencher {
    api: Client,
    session: Session,
    /// `vote`: the profile's authenticators and the votes they sent.
    gate: Option<vote::Gate>,
}

async fn setup(api_url: &str, ws_url: &str, devices: usize) -> anyhow::Result<Bencher> {
    let api = Client::new(api_url);
    let username = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let password = "bench-password-1";
    let registered = api.register_profile(&username, password).await?;
    match api
        .poll_command(&registered.command_id, Duration::from_secs(60))
        .await?
    {
        RequestStatus::Succeeded(_) => {}
        other => anyhow::bail!("registration failed: {other:?}"),
    }
    let token = api
        .authenticate(&username, password)
        .await?
        .authorization_token;
    let me = api.with_token(&token);
    let session = Session::connect(ws_url).await?;
    session.join(&token).await?;
    let key = me
        .register_public_key(&KeyPair::generate().public().to_hex())
        .await?;
    session
        .wait_command(&key.command_id, Duration::from_secs(60))
        .await?
        .result()?;
    for i in 0..devices {
        me.attach_storage_device(&session, &format!("bench-{i}"))
            .await?;
    }
    Ok(Bencher {
        api: me,
        session,
        gate: None,
    })
}

#[derive(Default)]
struct Samples {
    flows: Vec<Duration>,
    /// When each measured ack's request was sent (since the phase started), and its latency.
    acks: Vec<(Duration, Duration)>,
    /// `vote`: from the deciding vote's send to the command's `command_status: 2`.
    votes: Vec<Duration>,
}

impl Samples {
    fn extend(&mut self, other: Samples) {
        self.flows.extend(other.flows);
        self.acks.extend(other.acks);
        self.votes.extend(other.votes);
    }
}

/// Paced clients start spread over one interval, not all at once (bursts would measure
/// queueing, not the engine).
fn stagger(pause: Option<Duration>, client: usize, clients: usize) -> Duration {
    pause.map_or(Duration::ZERO, |p| {
        p.mul_f64(client as f64 / clients as f64)
    })
}

/// Milliseconds a fixed single-threaded workload (sorting and hashing a million integers)
/// takes here, the fastest of three: this machine's speed varies by a factor of two over
/// the day, so figures are only comparable next to it.
fn reference_ms() -> f64 {
    use std::collections::HashMap;
    use std::hint::black_box;
    let once = || {
        let started = Instant::now();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values: Vec<u64> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        values.sort_unstable();
        let counts: HashMap<u64, u32> = values.iter().map(|v| (v % 200_003, 1)).collect();
        black_box((values, counts));
        started.elapsed().as_secs_f64() * 1000.0
    };
    (0..3).map(|_| once()).fold(f64::INFINITY, f64::min)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn write_timeline(path: &std::path::Path, phase: &str, acks: &[(Duration, Duration)]) {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (start, ack) in acks {
        let _ = writeln!(
            text,
            "{phase},{:.3},{:.3}",
            start.as_secs_f64() * 1000.0,
            ack.as_secs_f64() * 1000.0
        );
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot write the timeline to {}: {e}", path.display());
    }
}

/// `vote`'s second line: from the deciding vote to the result event.
fn report_votes(mut votes: Vec<Duration>, needed: usize, refusals: (u64, u64)) {
    votes.sort();
    println!(
        "vote -> result {:>7} pools  ms p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  | deciding vote: yes {needed} of {needed} (unanimous, quorum {needed})  | refused ballots {} votes {}",
        votes.len(),
        percentile(&votes, 0.5),
        percentile(&votes, 0.9),
        percentile(&votes, 0.99),
        refusals.0,
        refusals.1,
    );
}

fn report(name: &str, args: &BenchArgs, elapsed: Duration, mut s: Samples, cpu: &CpuMeter) {
    if let Some(path) = &args.timeline {
        s.acks.sort();
        write_timeline(path, name, &s.acks);
    }
    let size = args.flow_size();
    s.flows.sort();
    let mut acks: Vec<Duration> = s.acks.iter().map(|(_, ack)| *ack).collect();
    acks.sort();
    let n = s.flows.len();
    println!(
        "{name:<6} {n:>7} flows  {:>9.1} flows/s  latency ms p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  | ack ms p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  | payload {size} B  | {}",
        n as f64 / elapsed.as_secs_f64(),
        percentile(&s.flows, 0.5),
        percentile(&s.flows, 0.9),
        percentile(&s.flows, 0.99),
        percentile(&acks, 0.5),
        percentile(&acks, 0.9),
        percentile(&acks, 0.99),
        cpu.per_flow(n),
    );
}

/// One store flow: reserve → ack → temporary token → exchange → ack → file meta. Gated
/// (`vote`), the exchange is held (`command_status: 1`) until the votes release it; its ack
/// is then the `command_status: 2` and the time from the deciding vote to it is noted.
async fn store_once(
    b: &Bencher,
    payload: &[u8],
    phase_started: Instant,
    samples: &mut Samples,
) -> anyhow::Result<String> {
    let wait = Duration::from_secs(60);
    let reserved = b.api.reserve_token_space("/bench", None).await?;
    let token = b
        .session
        .wait_command(&reserved.command_id, wait)
        .await?
        .result()?["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    b.api.temporary_data_token(&reserved.command_id).await?;
    let sent = Instant::now();
    let exchanged = b.api.exchange_data(&token, payload).await?;
    b.session
        .wait_command(&exchanged.command_id, wait)
        .await?
        .result()?;
    let result_at = Instant::now();
    samples.acks.push((sent - phase_started, result_at - sent));
    if let Some(gate) = &b.gate {
        let events = b.session.events_for(&exchanged.command_id);
        let pool = vote::held_pool(&events).ok_or_else(|| {
            anyhow::anyhow!("the exchange was not held for a vote (no command_status 1)")
        })?;
        let deciding = vote::deciding_vote(&gate.log.take(&pool), gate.needed)
            .ok_or_else(|| anyhow::anyhow!("pool {pool} was approved without its votes"))?;
        samples
            .votes
            .push(result_at.saturating_duration_since(deciding));
    }
    b.api
        .configure_file_meta(
            serde_json::json!({ "token": token, "fileName": "bench.bin", "size": payload.len() }),
        )
        .await?;
    Ok(token)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.mode {
        Mode::Devices => return devices::run(&args).await,
        Mode::Stream => return stream::run(&args).await,
        _ => {}
    }
    let (spawned, api, ws) = match (&args.api, &args.ws) {
        (Some(api), Some(ws)) => (None, api.clone(), ws.clone()),
        (None, None) => {
            let (s, api, ws) = spawn_engine()?;
            (Some(s), api, ws)
        }
        _ => anyhow::bail!("give both --api and --ws, or neither"),
    };
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let profiles = match args.profiles {
        0 => args.clients,
        p => p.min(args.clients),
    };
    println!(
        "privicore bench: {} clients over {profiles} profile(s), {} flows each, {} B payloads, {} storage devices per profile, rate {}",
        args.clients,
        args.count,
        args.flow_size(),
        args.devices,
        if args.rate > 0.0 {
            format!("{} flows/s", args.rate)
        } else {
            "unlimited".into()
        }
    );
    println!(
        "machine reference: {:.1} ms (a fixed single-threaded workload; lower is faster)",
        reference_ms()
    );
    let quit = tokio_util::sync::CancellationToken::new();
    let _stop_voters = quit.clone().drop_guard();
    let mut per_profile = Vec::new();
    for _ in 0..profiles {
        let mut b = setup(&api, &ws, args.devices).await?;
        if args.mode == Mode::Vote {
            b.gate = Some(vote::gate(&b, args.authenticators, &quit).await?);
        } else if args.policies > 0 {
            vote::unmatched_policies(&b, args.authenticators, args.policies).await?;
        }
        per_profile.push(Arc::new(b));
    }
    if args.mode == Mode::Vote {
        println!(
            "governance: {} authenticator(s) per profile on the bus inside the bench, voting yes on every ballot; one active policy on event 101 (exchange data for token), unanimous with quorum {}",
            args.authenticators, args.authenticators
        );
    } else if args.policies > 0 {
        println!(
            "governance: {} authenticator(s) per profile (not connected), {} active policies on event 101 that do not match the bench's context",
            args.authenticators.max(1),
            args.policies
        );
    }
    let benchers: Vec<_> = (0..args.clients)
        .map(|i| per_profile[i % profiles].clone())
        .collect();
    let payload: Vec<u8> = (0..args.flow_size())
        .map(|_| rand::random::<u8>())
        .collect();
    let pause = (args.rate > 0.0).then(|| Duration::from_secs_f64(args.clients as f64 / args.rate));

    // Store.
    let engine_pid = spawned.as_ref().map(|s| s.child.id());
    let barrier = Arc::new(Barrier::new(args.clients));
    let cpu = CpuMeter::start(engine_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, b) in benchers.iter().enumerate() {
        let (b, payload, barrier, count) =
            (b.clone(), payload.clone(), barrier.clone(), args.count);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut samples = Samples::default();
            let mut tokens = Vec::new();
            let mut next = Instant::now() + stagger(pause, i, args.clients);
            for _ in 0..count {
                if let Some(p) = pause {
                    tokio::time::sleep_until(next.into()).await;
                    next += p;
                }
                let t = Instant::now();
                tokens.push(store_once(&b, &payload, started, &mut samples).await?);
                samples.flows.push(t.elapsed());
            }
            anyhow::Ok((samples, tokens))
        }));
    }
    let mut all = Samples::default();
    let mut tokens = Vec::new();
    for t in tasks {
        let (s, tk) = t.await??;
        all.extend(s);
        tokens.push(tk);
    }
    let store_elapsed = started.elapsed();
    if args.mode == Mode::Vote {
        let votes = std::mem::take(&mut all.votes);
        let gate = per_profile[0].gate.as_ref();
        let refusals = per_profile
            .iter()
            .filter_map(|b| b.gate.as_ref().map(|g| g.log.refusals()))
            .fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1));
        report("vote", &args, store_elapsed, all, &cpu);
        report_votes(votes, gate.map_or(0, |g| g.needed), refusals);
        return Ok(());
    }
    if args.mode != Mode::Fetch {
        report("store", &args, store_elapsed, all, &cpu);
    }
    if args.mode == Mode::Store {
        return Ok(());
    }

    // Fetch: request-data → inline body, each client over its own tokens.
    let barrier = Arc::new(Barrier::new(args.clients));
    let cpu = CpuMeter::start(engine_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (b, tk)) in benchers.iter().zip(tokens).enumerate() {
        let (b, barrier, expected) = (b.clone(), barrier.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut samples = Samples::default();
            let mut next = Instant::now() + stagger(pause, i, args.clients);
            for token in tk {
                if let Some(p) = pause {
                    tokio::time::sleep_until(next.into()).await;
                    next += p;
                }
                let t = Instant::now();
                let got = b.api.fetch_payload(&b.session, &token).await?;
                anyhow::ensure!(got == expected, "fetched bytes differ");
                samples.flows.push(t.elapsed());
                samples.acks.push((t - started, t.elapsed()));
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        all.extend(t.await??);
    }
    report("fetch", &args, started.elapsed(), all, &cpu);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_appends_one_csv_line_per_ack_in_milliseconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acks.csv");
        let ms = Duration::from_micros;
        write_timeline(&path, "store", &[(ms(0), ms(1_500)), (ms(2_250), ms(40))]);
        write_timeline(&path, "fetch", &[(ms(10_000), ms(999))]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "store,0.000,1.500",
                "store,2.250,0.040",
                "fetch,10.000,0.999"
            ]
        );
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4gib"), Ok(4 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert!(parse_size("1.3B").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("GiB").is_err());
    }

    #[test]
    fn percentiles_pick_the_nearest_rank_and_tolerate_no_samples() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), 51.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
