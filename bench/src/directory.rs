//! `corestream-bench directory`: the cluster's stream directory alone, against a real Redis.
//!
//! Simulated nodes (one thread and one connection each) register their share of the streams
//! with the engine's own claim script, then renew all of them every `ttl / 3` in one pipeline
//! per node (as the engine's cluster thread does), while lookup threads ask `stream → node` one
//! round trip at a time (as an edge's first reader does). At the end every entry is released
//! with the compare-and-delete script. Everything is bounded: the run lasts `duration` (at most
//! two minutes), the stream count at most a million.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corestream::cluster::directory::{Keys, CLAIM_SCRIPT, RELEASE_SCRIPT, RENEW_SCRIPT};
use corestream::registry::{StreamKey, DEFAULT_VHOST};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(120);
/// Most streams accepted.
pub const MAX_STREAMS: usize = 1_000_000;
/// Claims and releases go in pipelines this long.
const BATCH: usize = 1_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct DirectoryPlan {
    pub redis: String,
    pub nodes: usize,
    pub streams: usize,
    pub ttl: Duration,
    pub duration: Duration,
    pub lookup_threads: usize,
    /// Pid of the redis-server, to read its CPU time from /proc.
    pub redis_pid: Option<u32>,
}

/// What it measured.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryReport {
    pub nodes: usize,
    pub streams: usize,
    pub ttl_ms: u64,
    pub register_seconds: f64,
    pub registrations_per_second: f64,
    pub steady_seconds: f64,
    pub renewals: u64,
    /// Renewal commands per second the nodes sent (streams × 3 / ttl, when they keep up).
    pub renewals_per_second: f64,
    /// Longest renewal pass of one node (all its streams, one pipeline).
    pub renew_pass_max_ms: f64,
    pub lookups: u64,
    pub lookups_per_second: f64,
    pub lookup_p50_us: u64,
    pub lookup_p99_us: u64,
    pub lookup_max_us: u64,
    /// Entries that were not ours at renewal (must be 0) and lookups that found no owner.
    pub renewals_lost: u64,
    pub lookups_missed: u64,
    /// Commands Redis processed per second in the steady phase (`INFO stats`).
    pub redis_commands_per_second: f64,
    /// Redis CPU in the steady phase, as a share of one core (with --redis-pid).
    pub redis_cpu_share: Option<f64>,
    pub redis_used_memory_bytes: u64,
    pub release_seconds: f64,
}

fn key(i: usize) -> StreamKey {
    StreamKey::new(DEFAULT_VHOST, "live", &format!("s{i}"))
}

fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(url)?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(conn)
}

fn load(conn: &mut redis::Connection, script: &str) -> redis::RedisResult<String> {
    redis::cmd("SCRIPT").arg("LOAD").arg(script).query(conn)
}

/// One `EVALSHA sha 1 key node argv…` per key, in one pipeline: each of the engine's directory
/// scripts takes one stream key, the node's name as `ARGV[1]`, then its own arguments.
fn evalsha_each(sha: &str, keys: &[String], node: &str, argv: &[&str]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for key in keys {
        let call = pipe.cmd("EVALSHA").arg(sha).arg(1).arg(key).arg(node);
        for arg in argv {
            call.arg(*arg);
        }
    }
    pipe
}

/// `INFO` field `name` as a number.
fn info_field(conn: &mut redis::Connection, section: &str, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(conn)
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs the plan; `Err` names what failed.
pub fn run(plan: &DirectoryPlan) -> Result<DirectoryReport, String> {
    if plan.nodes == 0 || plan.streams == 0 || plan.streams > MAX_STREAMS {
        return Err(format!(
            "--nodes must be at least 1 and --streams 1..={MAX_STREAMS}"
        ));
    }
    if plan.duration > MAX_DURATION {
        return Err(format!("--duration is at most {}s", MAX_DURATION.as_secs()));
    }
    let e = |e: redis::RedisError| e.to_string();
    let keys = Keys::new("corestream-bench:");
    let ttl_ms = plan.ttl.as_millis() as u64;
    // The scripts' TTL argument, as the text Redis receives; borrowed by every node thread.
    let ttl_text = ttl_ms.to_string();
    let ttl = ttl_text.as_str();
    let mut admin = connect(&plan.redis).map_err(e)?;

    // Each node's share of the streams: stream i belongs to node i % nodes.
    let shares: Vec<Vec<String>> = (0..plan.nodes)
        .map(|n| {
            (n..plan.streams)
                .step_by(plan.nodes)
                .map(|i| keys.stream(&key(i)))
                .collect()
        })
        .collect();

    // Registration: every node claims its share at once.
    let started = Instant::now();
    let registered: Result<Vec<()>, String> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .enumerate()
            .map(|(n, share)| {
                let url = plan.redis.clone();
                s.spawn(move || -> Result<(), String> {
                    let mut conn = connect(&url).map_err(e)?;
                    let sha = load(&mut conn, CLAIM_SCRIPT).map_err(e)?;
                    let node = format!("node{n}");
                    for chunk in share.chunks(BATCH) {
                        let pipe = evalsha_each(&sha, chunk, &node, &[ttl, "0"]);
                        let answers: Vec<(i64, String)> = pipe.query(&mut conn).map_err(e)?;
                        if let Some((_, owner)) = answers.iter().find(|(c, _)| *c != 1) {
                            return Err(format!("a claim was refused (owner {owner}): is another run using this Redis?"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a node thread panicked".into()))
            })
            .collect()
    });
    registered?;
    let register_seconds = started.elapsed().as_secs_f64();

    // Steady state: renewals every ttl / 3 per node, lookups as fast as the threads go.
    let stop = Arc::new(AtomicBool::new(false));
    let renewals = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let renew_max_us = Arc::new(AtomicU64::new(0));
    let lookups = Arc::new(AtomicU64::new(0));
    let missed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let commands_before = info_field(&mut admin, "stats", "total_commands_processed");
    let cpu_before = plan.redis_pid.and_then(cpu_seconds);
    let steady = Instant::now();
    let result: Result<(), String> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (n, share) in shares.iter().enumerate() {
            let (url, stop, renewals, lost, renew_max_us) = (
                plan.redis.clone(),
                stop.clone(),
                renewals.clone(),
                lost.clone(),
                renew_max_us.clone(),
            );
            let period = plan.ttl / 3;
            let nodes = plan.nodes as u32;
            handles.push(s.spawn(move || -> Result<(), String> {
                let mut conn = connect(&url).map_err(e)?;
                let sha = load(&mut conn, RENEW_SCRIPT).map_err(e)?;
                let node = format!("node{n}");
                // Nodes' passes spread over the period, as independent nodes' would be.
                std::thread::sleep(period * n as u32 / nodes);
                while !stop.load(Ordering::Relaxed) {
                    let pass = Instant::now();
                    let pipe = evalsha_each(&sha, share, &node, &[ttl]);
                    let answers: Vec<(i64, String)> = pipe.query(&mut conn).map_err(e)?;
                    renewals.fetch_add(answers.len() as u64, Ordering::Relaxed);
                    let not_ours = answers.iter().filter(|(c, _)| *c == 0).count();
                    lost.fetch_add(not_ours as u64, Ordering::Relaxed);
                    renew_max_us.fetch_max(pass.elapsed().as_micros() as u64, Ordering::Relaxed);
                    let next = pass + period;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(10).min(next - Instant::now()));
                    }
                }
                Ok(())
            }));
        }
        for t in 0..plan.lookup_threads {
            let (url, stop, lookups, missed, latencies) = (
                plan.redis.clone(),
                stop.clone(),
                lookups.clone(),
                missed.clone(),
                latencies.clone(),
            );
            let keys = keys.clone();
            let streams = plan.streams;
            handles.push(s.spawn(move || -> Result<(), String> {
                let mut conn = connect(&url).map_err(e)?;
                let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                    .map_err(|e| e.to_string())?;
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i = (i + 104_729) % streams;
                    let at = Instant::now();
                    let owner: Option<String> = redis::cmd("GET")
                        .arg(keys.stream(&key(i)))
                        .query(&mut conn)
                        .map_err(e)?;
                    let _ = local.record(at.elapsed().as_micros().max(1) as u64);
                    lookups.fetch_add(1, Ordering::Relaxed);
                    if owner.is_none() {
                        missed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Ok(mut h) = latencies.lock() {
                    let _ = h.add(&local);
                }
                Ok(())
            }));
        }
        std::thread::sleep(plan.duration);
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
    });
    result?;
    let steady_seconds = steady.elapsed().as_secs_f64();
    let commands = info_field(&mut admin, "stats", "total_commands_processed") - commands_before;
    let cpu = match (cpu_before, plan.redis_pid.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some((b - a) / steady_seconds),
        _ => None,
    };
    let memory = info_field(&mut admin, "memory", "used_memory");

    // Release: every entry, compare-and-delete.
    let released = Instant::now();
    let sha = load(&mut admin, RELEASE_SCRIPT).map_err(e)?;
    for (n, share) in shares.iter().enumerate() {
        let node = format!("node{n}");
        for chunk in share.chunks(BATCH) {
            evalsha_each(&sha, chunk, &node, &[])
                .query::<()>(&mut admin)
                .map_err(e)?;
        }
    }
    let h = latencies.lock().map_err(|_| "lookup histogram poisoned")?;
    let renewals = renewals.load(Ordering::Relaxed);
    let lookups = lookups.load(Ordering::Relaxed);
    Ok(DirectoryReport {
        nodes: plan.nodes,
        streams: plan.streams,
        ttl_ms,
        register_seconds,
        registrations_per_second: plan.streams as f64 / register_seconds,
        steady_seconds,
        renewals,
        renewals_per_second: renewals as f64 / steady_seconds,
        renew_pass_max_ms: renew_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        lookups,
        lookups_per_second: lookups as f64 / steady_seconds,
        lookup_p50_us: h.value_at_quantile(0.5),
        lookup_p99_us: h.value_at_quantile(0.99),
        lookup_max_us: h.max(),
        renewals_lost: lost.load(Ordering::Relaxed),
        lookups_missed: missed.load(Ordering::Relaxed),
        redis_commands_per_second: commands as f64 / steady_seconds,
        redis_cpu_share: cpu,
        redis_used_memory_bytes: memory,
        release_seconds: released.elapsed().as_secs_f64(),
    })
}

impl DirectoryReport {
    pub fn to_text(&self) -> String {
        let cpu = self
            .redis_cpu_share
            .map_or("n/a (no --redis-pid)".to_owned(), |c| {
                format!("{:.1} % of one core", c * 100.0)
            });
        format!(
            "directory: {} nodes, {} streams, ttl {} ms\n\
             register:  {:.2} s ({:.0} claims/s)\n\
             steady:    {:.1} s: {:.0} renewals/s (pass max {:.1} ms, {} not ours), {:.0} lookups/s \
             (p50 {} us, p99 {} us, max {} us, {} missed)\n\
             redis:     {:.0} commands/s, CPU {cpu}, {:.1} MiB used\n\
             release:   {:.2} s\n",
            self.nodes,
            self.streams,
            self.ttl_ms,
            self.register_seconds,
            self.registrations_per_second,
            self.steady_seconds,
            self.renewals_per_second,
            self.renew_pass_max_ms,
            self.renewals_lost,
            self.lookups_per_second,
            self.lookup_p50_us,
            self.lookup_p99_us,
            self.lookup_max_us,
            self.lookups_missed,
            self.redis_commands_per_second,
            self.redis_used_memory_bytes as f64 / (1 << 20) as f64,
            self.release_seconds,
        )
    }
}
