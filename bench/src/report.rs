//! The run's report: a table for people, JSON for machines, and the side-by-side comparison of two
//! JSON reports that `perf-scripts/compare.sh` prints.
#![forbid(unsafe_code)]

use std::fmt::Write;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::stats::Stats;

/// p50/p99/p99.9/max of a histogram, in milliseconds (or kbit/s for bitrates).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// `scale` divides the recorded values (1000 turns microseconds into milliseconds).
    pub fn of(h: &Histogram<u64>, scale: f64) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let v = |x: u64| x as f64 / scale;
        Percentiles {
            count: h.len(),
            min: v(h.min()),
            p50: v(h.value_at_quantile(0.5)),
            p99: v(h.value_at_quantile(0.99)),
            p999: v(h.value_at_quantile(0.999)),
            max: v(h.max()),
        }
    }
}

/// CPU and memory of a set of processes over the run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProcReport {
    pub pids: Vec<u32>,
    pub cpu_s: f64,
    /// CPU seconds per wall second, in percent (100 = one core busy).
    pub cpu_pct: f64,
    pub rss_max_mb: f64,
    pub rss_end_mb: f64,
}

/// What the run was asked to do.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunInfo {
    pub label: Option<String>,
    pub mode: &'static str,
    pub publish_url: Option<String>,
    pub play_url: Option<String>,
    pub streams: usize,
    pub players_per_stream: usize,
    pub source: String,
    pub duration_s: f64,
    pub cores: Option<Vec<usize>>,
    pub late_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PublisherReport {
    pub started: u64,
    pub failed: u64,
    pub ended_early: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub sends_behind: u64,
    pub connect_ms: Percentiles,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlayerReport {
    pub total: u64,
    pub started: u64,
    pub failed: u64,
    pub with_frames: u64,
    pub ended_early: u64,
    pub frames_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes_received: u64,
    pub frames_lost: u64,
    pub frames_late: u64,
    pub frames_out_of_order: u64,
    pub frames_backlog: u64,
    pub frames_unstamped: u64,
    pub frames_foreign: u64,
    pub connect_ms: Percentiles,
    pub first_frame_ms: Percentiles,
    pub first_keyframe_ms: Percentiles,
    pub latency_ms: Percentiles,
    pub bitrate_kbps: Percentiles,
    pub total_mbps: f64,
}

/// One named number, as the table and the comparison list them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub run: RunInfo,
    pub publishers: PublisherReport,
    pub players: PlayerReport,
    pub server: Option<ProcReport>,
    pub bench: ProcReport,
    /// Slow players (`--slow-players`), kept out of every player figure.
    pub slow: Option<crate::slow::SlowReport>,
    pub errors: Vec<String>,
    /// Every figure above that the comparison lists, flat.
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn new(
        run: RunInfo,
        stats: &Stats,
        total_players: u64,
        server: Option<ProcReport>,
        bench: ProcReport,
    ) -> Report {
        let ms = |h| Percentiles::of(h, 1000.0);
        let publishers = PublisherReport {
            started: stats.publishers_started,
            failed: stats.publishers_failed,
            ended_early: stats.publishers_ended_early,
            frames_sent: stats.frames_sent,
            bytes_sent: stats.bytes_sent,
            sends_behind: stats.sends_behind,
            connect_ms: ms(&stats.publish_connect_us),
        };
        let players = PlayerReport {
            total: total_players,
            started: stats.players_started,
            failed: stats.players_failed,
            with_frames: stats.players_with_frames,
            ended_early: stats.players_ended_early,
            frames_received: stats.frames_received,
            video_frames: stats.video_frames,
            audio_frames: stats.audio_frames,
            bytes_received: stats.bytes_received,
            frames_lost: stats.frames_lost,
            frames_late: stats.frames_late,
            frames_out_of_order: stats.frames_out_of_order,
            frames_backlog: stats.frames_backlog,
            frames_unstamped: stats.frames_unstamped,
            frames_foreign: stats.frames_foreign,
            connect_ms: ms(&stats.connect_us),
            first_frame_ms: ms(&stats.first_frame_us),
            first_keyframe_ms: ms(&stats.first_keyframe_us),
            latency_ms: ms(&stats.latency_us),
            bitrate_kbps: Percentiles::of(&stats.player_kbps, 1.0),
            total_mbps: stats.total_bps / 1e6,
        };
        let mut report = Report {
            run,
            publishers,
            players,
            server,
            bench,
            slow: None,
            errors: stats.errors.clone(),
            figures: Vec::new(),
        };
        report.figures = report.collect_figures();
        report
    }

    fn collect_figures(&self) -> Vec<Figure> {
        let mut f = Vec::new();
        let mut add = |name: &str, value: f64| {
            f.push(Figure {
                name: name.to_owned(),
                value,
            })
        };
        let p = &self.players;
        let u = &self.publishers;
        if self.run.publish_url.is_some() {
            add("publishers started", u.started as f64);
            add(
                "publishers failed or ended early",
                (u.failed + u.ended_early) as f64,
            );
            add("publish connect p50 (ms)", u.connect_ms.p50);
            add("publisher sends behind schedule", u.sends_behind as f64);
        }
        if self.run.play_url.is_some() {
            add("players started", p.started as f64);
            add("players with frames", p.with_frames as f64);
            add(
                "players failed or ended early",
                (p.failed + p.ended_early) as f64,
            );
            add("connect p50 (ms)", p.connect_ms.p50);
            add("connect p99 (ms)", p.connect_ms.p99);
            add("first frame p50 (ms)", p.first_frame_ms.p50);
            add("first frame p99 (ms)", p.first_frame_ms.p99);
            add("first keyframe p50 (ms)", p.first_keyframe_ms.p50);
            add("first keyframe p99 (ms)", p.first_keyframe_ms.p99);
            add("latency p50 (ms)", p.latency_ms.p50);
            add("latency p99 (ms)", p.latency_ms.p99);
            add("latency p99.9 (ms)", p.latency_ms.p999);
            add("latency max (ms)", p.latency_ms.max);
            add("player bitrate p50 (kbit/s)", p.bitrate_kbps.p50);
            add("player bitrate min (kbit/s)", p.bitrate_kbps.min);
            add("delivered total (Mbit/s)", p.total_mbps);
            add("frames lost", p.frames_lost as f64);
            add("frames late", p.frames_late as f64);
            add("frames out of order", p.frames_out_of_order as f64);
        }
        if let Some(s) = &self.server {
            add("server CPU (s)", s.cpu_s);
            add("server CPU (%)", s.cpu_pct);
            add("server RSS max (MB)", s.rss_max_mb);
        }
        add("bench CPU (%)", self.bench.cpu_pct);
        f
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let r = &self.run;
        let _ = writeln!(
            s,
            "corestream-bench {}{}: {} stream(s) x {} player(s), {:.1} s, source {}",
            r.mode,
            r.label
                .as_deref()
                .map(|l| format!(" [{l}]"))
                .unwrap_or_default(),
            r.streams,
            r.players_per_stream,
            r.duration_s,
            r.source
        );
        if let Some(u) = &r.publish_url {
            let _ = writeln!(s, "  publish: {u}");
        }
        if let Some(u) = &r.play_url {
            let _ = writeln!(s, "  play:    {u}");
        }
        let hist_row = |s: &mut String, name: &str, p: &Percentiles, unit: &str| {
            let _ = writeln!(
                s,
                "  {name:<22} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {unit} (n={})",
                p.p50, p.p99, p.p999, p.max, p.count
            );
        };
        let u = &self.publishers;
        if r.publish_url.is_some() {
            let _ = writeln!(
                s,
                "publishers: {} started, {} failed, {} ended early; {} frames, {:.1} MB sent, {} sends behind schedule",
                u.started,
                u.failed,
                u.ended_early,
                u.frames_sent,
                u.bytes_sent as f64 / 1e6,
                u.sends_behind
            );
        }
        let p = &self.players;
        if r.play_url.is_some() {
            let _ = writeln!(
                s,
                "players: {}/{} started, {} with frames, {} failed, {} ended early",
                p.started, p.total, p.with_frames, p.failed, p.ended_early
            );
            let _ = writeln!(
                s,
                "  frames: {} received ({} video, {} audio), {} lost, {} late (> {} ms), {} out of order, {} from before the play (GOP cache), {} unstamped, {} of another stream",
                p.frames_received,
                p.video_frames,
                p.audio_frames,
                p.frames_lost,
                p.frames_late,
                r.late_ms,
                p.frames_out_of_order,
                p.frames_backlog,
                p.frames_unstamped,
                p.frames_foreign
            );
            let _ = writeln!(
                s,
                "  {:<22} {:>10} {:>10} {:>10} {:>10}",
                "", "p50", "p99", "p99.9", "max"
            );
        }
        if r.publish_url.is_some() {
            hist_row(&mut s, "publish connect", &u.connect_ms, "ms");
        }
        if r.play_url.is_some() {
            hist_row(&mut s, "play connect", &p.connect_ms, "ms");
            hist_row(&mut s, "first frame", &p.first_frame_ms, "ms");
            hist_row(&mut s, "first keyframe", &p.first_keyframe_ms, "ms");
            hist_row(&mut s, "latency", &p.latency_ms, "ms");
            hist_row(&mut s, "player bitrate", &p.bitrate_kbps, "kbit/s");
            let _ = writeln!(s, "  delivered in total: {:.2} Mbit/s", p.total_mbps);
        }
        if let Some(srv) = &self.server {
            let _ = writeln!(
                s,
                "server {:?}: {:.2} CPU s ({:.1} %), RSS max {:.1} MB, at end {:.1} MB",
                srv.pids, srv.cpu_s, srv.cpu_pct, srv.rss_max_mb, srv.rss_end_mb
            );
        }
        if let Some(slow) = &self.slow {
            let _ = writeln!(
                s,
                "slow players (not in the figures above): {}/{} started, reading {:.1} kbit/s each, {} cut off by the server, {:.1} MB read",
                slow.started,
                slow.players,
                slow.read_bytes_per_s as f64 * 8.0 / 1000.0,
                slow.cut_by_server,
                slow.bytes_read as f64 / 1e6
            );
        }
        let _ = writeln!(
            s,
            "bench: {:.2} CPU s ({:.1} %), RSS max {:.1} MB",
            self.bench.cpu_s, self.bench.cpu_pct, self.bench.rss_max_mb
        );
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        s
    }
}

/// Why two reports cannot be compared.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{path}: {reason}")]
    Bad { path: String, reason: String },
}

/// A Markdown table of the figures of `reports` side by side (each `(column label, JSON report)`),
/// with the ratio first / second when there are two.
pub fn compare_markdown(reports: &[(String, Value)]) -> Result<String, CompareError> {
    let mut columns: Vec<Vec<(String, f64)>> = Vec::new();
    for (label, v) in reports {
        let figures =
            v.get("figures")
                .and_then(Value::as_array)
                .ok_or_else(|| CompareError::Bad {
                    path: label.clone(),
                    reason: "no \"figures\" array: not a corestream-bench --json report".into(),
                })?;
        columns.push(
            figures
                .iter()
                .filter_map(|f| {
                    Some((
                        f.get("name")?.as_str()?.to_owned(),
                        f.get("value")?.as_f64()?,
                    ))
                })
                .collect(),
        );
    }
    // Row order: the first report's, then any names only the others have.
    let mut names: Vec<String> = Vec::new();
    for col in &columns {
        for (n, _) in col {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let mut s = String::new();
    let labels: Vec<&str> = reports.iter().map(|(l, _)| l.as_str()).collect();
    let ratio = reports.len() == 2;
    let _ = write!(s, "| figure | {} |", labels.join(" | "));
    if ratio {
        let _ = write!(s, " {} / {} |", labels[0], labels[1]);
    }
    s.push('\n');
    let _ = write!(s, "| --- |{}", " ---: |".repeat(labels.len()));
    if ratio {
        s.push_str(" ---: |");
    }
    s.push('\n');
    for name in &names {
        let values: Vec<Option<f64>> = columns
            .iter()
            .map(|c| c.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .collect();
        let _ = write!(s, "| {name} |");
        for v in &values {
            let _ = write!(s, " {} |", v.map(fmt_value).unwrap_or_else(|| "–".into()));
        }
        if ratio {
            let r = match (values[0], values[1]) {
                (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                (Some(a), Some(b)) if a == b => "1.00".into(),
                _ => "–".into(),
            };
            let _ = write!(s, " {r} |");
        }
        s.push('\n');
    }
    Ok(s)
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> RunInfo {
        RunInfo {
            label: Some("x".into()),
            mode: "run",
            publish_url: Some("rtmp://127.0.0.1/live/s".into()),
            play_url: Some("rtmp://127.0.0.1/live/s".into()),
            streams: 1,
            players_per_stream: 2,
            source: "synthetic".into(),
            duration_s: 3.0,
            cores: None,
            late_ms: 500.0,
        }
    }

    #[test]
    fn percentiles_in_ms() {
        let mut h = crate::stats::histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let p = Percentiles::of(&h, 1000.0);
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0);
        assert!((p.p99 - 990.0).abs() < 1.0);
        assert!((p.max - 1000.0).abs() < 1.0);
        assert_eq!(
            Percentiles::of(&crate::stats::histogram(), 1.0),
            Percentiles::default()
        );
    }

    #[test]
    fn json_has_figures_and_compares() {
        let mut stats = Stats {
            players_started: 2,
            frames_lost: 3,
            ..Stats::default()
        };
        let a = Report::new(info(), &stats, 2, None, ProcReport::default());
        stats.frames_lost = 6;
        let b = Report::new(info(), &stats, 2, None, ProcReport::default());
        assert!(a.table().contains("players: 2/2 started"));
        let ja = serde_json::to_value(&a).unwrap();
        let jb = serde_json::to_value(&b).unwrap();
        let md = compare_markdown(&[("Corestream".into(), ja), ("nginx-rtmp".into(), jb)]).unwrap();
        let mut lines = md.lines();
        assert_eq!(
            lines.next().unwrap(),
            "| figure | Corestream | nginx-rtmp | Corestream / nginx-rtmp |"
        );
        assert!(md.contains("| frames lost | 3 | 6 | 0.50 |"), "{md}");
        assert!(md.contains("| players started | 2 | 2 | 1.00 |"), "{md}");
        assert!(md.contains("| frames late | 0 | 0 | 1.00 |"), "{md}");
        assert!(compare_markdown(&[("x".into(), serde_json::json!({}))]).is_err());
    }
}
