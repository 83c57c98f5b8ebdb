//! `corestream-bench`: load generator for RTMP and HTTP-FLV relays.
//!
//! `publish` sends N streams (synthetic H.264/AAC or an FLV file, paced in real time), `play` runs
//! M players per stream (RTMP or HTTP-FLV), `run` does both at once, and `table` puts the JSON
//! reports of two runs side by side. Every video frame carries a latency stamp
//! (see `corestream_bench::stamp`).
#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use corestream_bench::args::{self, parse_bitrate, parse_cores, parse_duration, Target};
use corestream_bench::driver::{self, Plan, PlayPlan, PublishPlan, SourceSpec};
use corestream_bench::report::{self, ProcReport, Report, RunInfo};
use corestream_bench::slow::{SlowPlan, SlowReport};
use corestream_bench::source::{FlvFile, SyntheticSpec};
use corestream_bench::stats::{ProcSample, Progress};

#[derive(Parser)]
#[command(
    name = "corestream-bench",
    version,
    about = "Load generator for RTMP and HTTP-FLV relays: publishers, players, latency"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish N streams over RTMP.
    Publish {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// Play M players per stream over RTMP or HTTP-FLV.
    Play {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        players: PlayerArgs,
    },
    /// Publish and play at once: what the comparison runs.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        source: SourceArgs,
        #[command(flatten)]
        players: PlayerArgs,
        /// Where players connect, if not to --url (e.g. http://HOST:PORT/app/stream.flv).
        #[arg(long)]
        play_url: Option<String>,
    },
    /// The cluster's stream directory alone against a Redis: simulated nodes register,
    /// renew (every ttl/3, one pipeline per node) and look up streams; bounded in time.
    Directory {
        /// redis://HOST:PORT/DB (a Redis of its own: the run writes and deletes its keys).
        #[arg(long)]
        redis: String,
        #[arg(long, default_value_t = 10)]
        nodes: usize,
        #[arg(long, default_value_t = 100_000)]
        streams: usize,
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        ttl: Duration,
        /// Length of the steady phase (at most 120 s).
        #[arg(long, value_parser = parse_duration, default_value = "20s")]
        duration: Duration,
        /// Threads looking streams up, one round trip at a time each.
        #[arg(long, default_value_t = 4)]
        lookup_threads: usize,
        /// Pid of the redis-server, for its CPU time.
        #[arg(long)]
        redis_pid: Option<u32>,
        /// Write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Print the figures of JSON reports side by side as Markdown (the ratio when there are two).
    Table {
        /// Reports written by --json, as LABEL=FILE or FILE.
        #[arg(required = true)]
        reports: Vec<String>,
    },
}

#[derive(Args)]
struct Common {
    /// rtmp://HOST:PORT/app/stream (http://HOST:PORT/app/stream.flv for HTTP-FLV players).
    /// Streams get a suffix -0, -1, ... when there are several.
    #[arg(long)]
    url: String,
    /// Number of streams.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// How long the run lasts (10, 10s, 1m).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// CPUs for the bench's executors, e.g. 1 or 2-3 (one executor per CPU). Default: one
    /// executor, not pinned.
    #[arg(long, value_parser = parse_core_list)]
    cores: Option<CoreList>,
    /// Pid(s) of the server to sample CPU time and RSS from (/proc), comma-separated.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A name for this run in the report (e.g. the server's).
    #[arg(long)]
    label: Option<String>,
    /// A frame later than this counts as late.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    late: Duration,
    /// Connection set-up timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    connect_timeout: Duration,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

/// A `--cores` list (a newtype, so clap takes it as one value rather than many).
#[derive(Clone, Debug, PartialEq)]
struct CoreList(Vec<usize>);

fn parse_core_list(s: &str) -> Result<CoreList, args::ArgError> {
    parse_cores(s).map(CoreList)
}

#[derive(Args)]
struct SourceArgs {
    /// Synthetic stream bitrate (audio + video), e.g. 2500k, 2.5M.
    #[arg(long, value_parser = parse_bitrate, default_value = "2500k")]
    bitrate: u64,
    /// Synthetic stream keyframe interval.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    gop: Duration,
    /// Synthetic stream frame rate.
    #[arg(long, default_value_t = 25)]
    fps: u32,
    /// Publish this FLV file (looped, paced in real time) instead of the synthetic stream.
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Args)]
struct PlayerArgs {
    /// Players per stream.
    #[arg(long, default_value_t = 1)]
    players: usize,
    /// New players per second (over all streams).
    #[arg(long, default_value_t = 500.0)]
    ramp: f64,
    /// When players start after publishers (run only).
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    player_delay: Duration,
    /// Extra players (over all streams) that read slowly; kept out of every player figure, to
    /// measure how they affect the healthy ones.
    #[arg(long, default_value_t = 0)]
    slow_players: usize,
    /// What slow players read, as a fraction of the stream's bitrate.
    #[arg(long, default_value_t = 0.1)]
    slow_read_fraction: f64,
    /// The stream bitrate slow players' reading is a fraction of (default: `--bitrate`; needed
    /// with `play`).
    #[arg(long, value_parser = parse_bitrate)]
    slow_bitrate: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("corestream-bench: {e}");
            ExitCode::from(2)
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

fn execute(command: Command) -> Result<ExitCode, BoxError> {
    let (common, source, players, play_url, mode) = match command {
        Command::Table { reports } => return table(&reports),
        Command::Directory {
            redis,
            nodes,
            streams,
            ttl,
            duration,
            lookup_threads,
            redis_pid,
            json,
        } => {
            let plan = corestream_bench::directory::DirectoryPlan {
                redis,
                nodes,
                streams,
                ttl,
                duration,
                lookup_threads,
                redis_pid,
            };
            let report = corestream_bench::directory::run(&plan)?;
            print!("{}", report.to_text());
            if let Some(path) = json {
                std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Publish { common, source } => (common, Some(source), None, None, "publish"),
        Command::Play { common, players } => (common, None, Some(players), None, "play"),
        Command::Run {
            common,
            source,
            players,
            play_url,
        } => (common, Some(source), Some(players), play_url, "run"),
    };
    if common.streams == 0 {
        return Err("--streams must be at least 1".into());
    }
    let url = Target::parse(&common.url)?;
    let mut source_name = String::new();
    let publish = match &source {
        Some(s) => {
            if url.scheme != args::Scheme::Rtmp {
                return Err("publishers need an rtmp:// --url".into());
            }
            let spec = match &s.file {
                Some(path) => {
                    source_name = format!("file {}", path.display());
                    SourceSpec::File(FlvFile::load(path)?)
                }
                None => {
                    if s.fps == 0 || s.fps > 240 {
                        return Err("--fps must be 1..=240".into());
                    }
                    source_name = format!(
                        "synthetic H.264/AAC {} kbit/s, GOP {:?}, {} fps",
                        s.bitrate / 1000,
                        s.gop,
                        s.fps
                    );
                    SourceSpec::Synthetic(SyntheticSpec {
                        fps: s.fps,
                        ..SyntheticSpec::new(s.bitrate, s.gop)
                    })
                }
            };
            Some(PublishPlan {
                target: url.clone(),
                source: spec,
            })
        }
        None => None,
    };
    let play = match &players {
        Some(p) => {
            let target = match &play_url {
                Some(u) => Target::parse(u)?,
                None => url.clone(),
            };
            if p.ramp <= 0.0 {
                return Err("--ramp must be positive".into());
            }
            let slow = if p.slow_players == 0 {
                None
            } else {
                if !(p.slow_read_fraction > 0.0 && p.slow_read_fraction <= 1.0) {
                    return Err("--slow-read-fraction must be in (0, 1]".into());
                }
                let bitrate = p
                    .slow_bitrate
                    .or(source.as_ref().map(|s| s.bitrate))
                    .ok_or("--slow-players with play needs --slow-bitrate")?;
                Some(SlowPlan::new(p.slow_players, p.slow_read_fraction, bitrate))
            };
            Some(PlayPlan {
                target,
                players_per_stream: p.players,
                ramp_per_s: p.ramp,
                start_delay: if publish.is_some() {
                    p.player_delay
                } else {
                    Duration::ZERO
                },
                slow,
            })
        }
        None => None,
    };
    let total_players = play
        .as_ref()
        .map_or(0, |p| (p.players_per_stream * common.streams) as u64);
    let plan = Plan {
        streams: common.streams,
        publish,
        play,
        duration: common.duration,
        cores: common.cores.clone().map(|c| c.0),
        late: common.late,
        connect_timeout: common.connect_timeout,
    };
    let play_url_text = plan
        .play
        .as_ref()
        .map(|p| match (&play_url, p.target.scheme) {
            (Some(u), _) => u.clone(),
            (None, _) => common.url.clone(),
        });
    let info = RunInfo {
        label: common.label.clone(),
        mode,
        publish_url: plan.publish.as_ref().map(|_| common.url.clone()),
        play_url: play_url_text,
        streams: common.streams,
        players_per_stream: plan.play.as_ref().map_or(0, |p| p.players_per_stream),
        source: if source_name.is_empty() {
            "none".into()
        } else {
            source_name
        },
        duration_s: common.duration.as_secs_f64(),
        cores: common.cores.clone().map(|c| c.0),
        late_ms: common.late.as_secs_f64() * 1000.0,
    };

    let slow_plan = plan.play.as_ref().and_then(|p| p.slow);
    let progress = Arc::new(Progress::default());
    let mut monitor = Monitor::new(
        common.server_pid.clone(),
        progress.clone(),
        total_players,
        common.streams as u64 * u64::from(plan.publish.is_some()),
        !common.quiet,
    );
    let (stats, wall) = driver::run(plan, progress.clone(), Duration::from_secs(1), |elapsed| {
        monitor.tick(elapsed)
    })?;
    monitor.finish_line();
    let (server, bench) = monitor.reports(wall);
    let mut report = Report::new(info, &stats, total_players, server, bench);
    report.slow = slow_plan.map(|plan| {
        let c = &progress.slow;
        SlowReport {
            players: plan.players as u64,
            read_bytes_per_s: plan.read_bytes_per_s,
            started: Progress::get(&c.started),
            cut_by_server: Progress::get(&c.cut),
            bytes_read: Progress::get(&c.bytes_read),
        }
    });
    print!("{}", report.table());
    if let Some(path) = &common.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let publish_ok = report.run.publish_url.is_none() || report.publishers.started > 0;
    let play_ok = total_players == 0 || report.players.started > 0;
    Ok(if publish_ok && play_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn table(reports: &[String]) -> Result<ExitCode, BoxError> {
    let mut loaded = Vec::new();
    for r in reports {
        let (label, path) = match r.split_once('=') {
            Some((l, p)) => (l.to_owned(), p.to_owned()),
            None => (r.clone(), r.clone()),
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        loaded.push((label, value));
    }
    print!("{}", report::compare_markdown(&loaded)?);
    Ok(ExitCode::SUCCESS)
}

/// Samples the server and the bench from /proc and prints the progress line.
struct Monitor {
    pids: Vec<u32>,
    progress: Arc<Progress>,
    players: u64,
    publishers: u64,
    show: bool,
    tty: bool,
    server_start: Option<ProcSample>,
    server_last: Option<ProcSample>,
    server_rss_max: u64,
    bench_start: Option<ProcSample>,
    bench_rss_max: u64,
    last_bytes: u64,
    last_elapsed: Duration,
    last_server_cpu: f64,
}

impl Monitor {
    fn new(
        pids: Vec<u32>,
        progress: Arc<Progress>,
        players: u64,
        publishers: u64,
        show: bool,
    ) -> Self {
        let server_start = ProcSample::read_all(&pids);
        Monitor {
            server_last: server_start,
            server_rss_max: server_start.map_or(0, |s| s.rss_bytes),
            last_server_cpu: server_start.map_or(0.0, |s| s.cpu_s),
            server_start,
            bench_start: ProcSample::read(None),
            bench_rss_max: 0,
            pids,
            progress,
            players,
            publishers,
            show,
            tty: std::io::stderr().is_terminal(),
            last_bytes: 0,
            last_elapsed: Duration::ZERO,
        }
    }

    fn sample(&mut self) {
        if let Some(s) = ProcSample::read_all(&self.pids) {
            self.server_rss_max = self.server_rss_max.max(s.rss_bytes);
            self.server_last = Some(s);
        }
        if let Some(b) = ProcSample::read(None) {
            self.bench_rss_max = self.bench_rss_max.max(b.rss_bytes);
        }
    }

    fn tick(&mut self, elapsed: Duration) {
        self.sample();
        if !self.show {
            return;
        }
        let p = &self.progress;
        let bytes = Progress::get(&p.bytes_received);
        let dt = (elapsed - self.last_elapsed).as_secs_f64().max(1e-3);
        let mbps = (bytes - self.last_bytes) as f64 * 8.0 / dt / 1e6;
        self.last_bytes = bytes;
        self.last_elapsed = elapsed;
        let mut line = format!(
            "[{:5.1}s] publishing {}/{}  playing {}/{} (done {})  recv {:.1} Mbit/s  frames {}  lost {}  late {}  latency {:.1} ms",
            elapsed.as_secs_f64(),
            Progress::get(&p.publishers_live),
            self.publishers,
            Progress::get(&p.players_live),
            self.players,
            Progress::get(&p.players_done),
            mbps,
            Progress::get(&p.frames_received),
            Progress::get(&p.frames_lost),
            Progress::get(&p.frames_late),
            Progress::get(&p.last_latency_us) as f64 / 1000.0,
        );
        if let Some(s) = self.server_last {
            let _ = std::fmt::Write::write_fmt(
                &mut line,
                format_args!(
                    "  server {:.0} % CPU, {:.0} MB",
                    (s.cpu_s - self.last_server_cpu) / dt * 100.0,
                    s.rss_bytes as f64 / 1e6
                ),
            );
            self.last_server_cpu = s.cpu_s;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish_line(&mut self) {
        self.sample();
        if self.show && self.tty {
            eprintln!();
        }
    }

    fn reports(&self, wall: Duration) -> (Option<ProcReport>, ProcReport) {
        let secs = wall.as_secs_f64().max(1e-3);
        let server = match (self.server_start, self.server_last) {
            (Some(a), Some(b)) => Some(ProcReport {
                pids: self.pids.clone(),
                cpu_s: b.cpu_s - a.cpu_s,
                cpu_pct: (b.cpu_s - a.cpu_s) / secs * 100.0,
                rss_max_mb: self.server_rss_max as f64 / 1e6,
                rss_end_mb: b.rss_bytes as f64 / 1e6,
            }),
            _ => None,
        };
        let bench_end = ProcSample::read(None);
        let bench = match (self.bench_start, bench_end) {
            (Some(a), Some(b)) => ProcReport {
                pids: vec![std::process::id()],
                cpu_s: b.cpu_s - a.cpu_s,
                cpu_pct: (b.cpu_s - a.cpu_s) / secs * 100.0,
                rss_max_mb: self.bench_rss_max.max(b.rss_bytes) as f64 / 1e6,
                rss_end_mb: b.rss_bytes as f64 / 1e6,
            },
            _ => ProcReport::default(),
        };
        (server, bench)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_command_line() {
        let cli = Cli::try_parse_from([
            "corestream-bench",
            "run",
            "--url",
            "rtmp://127.0.0.1:1935/live/s",
            "--streams",
            "4",
            "--players",
            "10",
            "--duration",
            "3s",
            "--bitrate",
            "2.5M",
            "--gop",
            "1s",
            "--cores",
            "1,3",
            "--server-pid",
            "10,11",
            "--play-url",
            "http://127.0.0.1:8080/live/s.flv",
        ])
        .unwrap();
        let Command::Run {
            common,
            source,
            players,
            play_url,
        } = cli.command
        else {
            panic!("not run");
        };
        assert_eq!(common.streams, 4);
        assert_eq!(common.duration, Duration::from_secs(3));
        assert_eq!(common.cores, Some(CoreList(vec![1, 3])));
        assert_eq!(common.server_pid, vec![10, 11]);
        assert_eq!(source.bitrate, 2_500_000);
        assert_eq!(source.gop, Duration::from_secs(1));
        assert_eq!(players.players, 10);
        assert_eq!(
            play_url.as_deref(),
            Some("http://127.0.0.1:8080/live/s.flv")
        );
        assert!(Cli::try_parse_from([
            "corestream-bench",
            "run",
            "--url",
            "x",
            "--bitrate",
            "fast"
        ])
        .is_err());
    }
}
