//! `/metrics` in the Prometheus text format: MediaMTX's metric names (a `0` sample when a family
//! has no item, as MediaMTX writes it), then per-core figures and latency histograms. Rendering is
//! a pure function of what the cores reported.

use std::fmt::Write as _;

use super::views::{all_hls_muxers, all_hls_sessions, paths, rtmp_conns};
use crate::config::Config;
use crate::runtime::control::{Histogram, ROUND_TRIP_BUCKETS};
use crate::runtime::{CoreView, Limit, LimitHits};

/// Escapes a label value (`\`, `"`, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One of MediaMTX's per-item families: each item's samples under its tags, one per name in
/// `names`' order; with no item, one zero sample per name (MediaMTX writes one for an empty
/// family).
fn per_item<const N: usize>(
    out: &mut String,
    names: [&str; N],
    items: impl IntoIterator<Item = (String, [u64; N])>,
) {
    let mut any = false;
    for (tags, values) in items {
        any = true;
        for (name, value) in names.iter().zip(values) {
            let _ = writeln!(out, "{name}{tags} {value}");
        }
    }
    if !any {
        for name in names {
            let _ = writeln!(out, "{name} 0");
        }
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in ROUND_TRIP_BUCKETS.iter().enumerate() {
        cumulative += h.counts[i];
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += h.counts[ROUND_TRIP_BUCKETS.len()];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {}", h.sum_seconds);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

/// A per-core metric: name, Prometheus type, and how to read it from a core's view.
type PerCore = (&'static str, &'static str, fn(&CoreView) -> u64);

/// The limits the control core's own listeners enforce (API and metrics requests).
const CONTROL_LIMITS: [Limit; 5] = [
    Limit::HttpHeaderBytes,
    Limit::ApiBodyBytes,
    Limit::ApiConnections,
    Limit::ReadTimeout,
    Limit::Descriptors,
];

/// `corestream_limit_hits_total{core,limit}`: every limit of every data core, and the control
/// core's (`core="control"`).
fn limit_hits(out: &mut String, views: &[CoreView], control: &LimitHits) {
    let name = "corestream_limit_hits_total";
    let _ = writeln!(
        out,
        "# HELP {name} connections closed or refused (or GOPs uncached) for hitting a configured limit, by its key\n# TYPE {name} counter"
    );
    for v in views {
        for limit in Limit::ALL {
            let _ = writeln!(
                out,
                "{name}{{core=\"{}\",limit=\"{}\"}} {}",
                v.stats.core,
                limit.key(),
                v.stats.limit_hits.get(limit)
            );
        }
    }
    for limit in CONTROL_LIMITS {
        let _ = writeln!(
            out,
            "{name}{{core=\"control\",limit=\"{}\"}} {}",
            limit.key(),
            control.get(limit)
        );
    }
}

/// `corestream_record_*{path}`: what each path's recordings wrote and how they failed, over
/// every core.
fn recordings(out: &mut String, views: &[CoreView]) {
    let stats = super::views::record_stats(views);
    type Counter = (
        &'static str,
        &'static str,
        fn(&crate::record::RecordStats) -> u64,
    );
    let counters: [Counter; 2] = [
        (
            "corestream_record_bytes_written_total",
            "bytes appended to recording segments",
            |s| s.bytes_written,
        ),
        (
            "corestream_record_segments_created_total",
            "recording segment files created",
            |s| s.segments_created,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (path, s) in &stats {
            let _ = writeln!(out, "{name}{{path=\"{}\"}} {}", label(path), value(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP corestream_record_errors_total recording failures (a segment abandoned), by kind\n# TYPE corestream_record_errors_total counter"
    );
    for (path, s) in &stats {
        for (kind, n) in &s.errors {
            let _ = writeln!(
                out,
                "corestream_record_errors_total{{path=\"{}\",kind=\"{kind}\"}} {n}",
                label(path)
            );
        }
    }
}

/// The cluster's families (`cluster:` configured): this node's directory state and its Redis
/// traffic, labelled with the node's name.
pub fn cluster(out: &mut String, s: &crate::cluster::ClusterStatus) {
    let node = format!("{{node=\"{}\"}}", label(&s.node));
    let families: [(&str, u64); 10] = [
        ("cluster_redis_up", u64::from(s.redis_reachable)),
        ("cluster_redis_outages_total", s.redis_outages),
        ("cluster_redis_commands_total", s.redis_commands),
        ("cluster_redis_errors_total", s.redis_errors),
        ("cluster_streams_claimed", s.claimed_streams),
        ("cluster_streams_registered", s.registered_streams),
        ("cluster_reregistered_total", s.reregistered),
        ("cluster_lost_total", s.lost),
        ("cluster_lookups_total", s.lookups),
        ("cluster_claims_refused_total", s.claims_refused),
    ];
    for (name, value) in families {
        let _ = writeln!(out, "{name}{node} {value}");
    }
}

/// The whole scrape.
pub fn render(
    views: &[CoreView],
    config: &Config,
    control_limit_hits: &LimitHits,
    mesh_round_trip: &Histogram,
    api_latency: &Histogram,
) -> String {
    let mut out = String::with_capacity(4096);
    let paths = paths(views, config);
    per_item(
        &mut out,
        [
            "paths",
            "paths_bytes_received",
            "paths_bytes_sent",
            "paths_inbound_bytes",
            "paths_outbound_bytes",
            "paths_readers",
        ],
        paths.iter().map(|p| {
            let state = if p.ready() { "ready" } else { "notReady" };
            let tags = format!("{{name=\"{}\",state=\"{state}\"}}", label(&p.name));
            let (inbound, outbound) = (p.inbound_bytes(), p.outbound_bytes());
            let readers = p.readers.len() as u64;
            (tags, [1, inbound, outbound, inbound, outbound, readers])
        }),
    );
    per_item(
        &mut out,
        [
            "rtmp_conns",
            "rtmp_conns_bytes_received",
            "rtmp_conns_bytes_sent",
            "rtmp_conns_inbound_bytes",
            "rtmp_conns_outbound_bytes",
            "rtmp_conns_outbound_frames_discarded",
        ],
        rtmp_conns(views).into_iter().map(|c| {
            let tags = format!("{{id=\"{}\",state=\"{}\"}}", c.id, c.state.as_str());
            let (bytes_in, bytes_out) = (c.bytes_in, c.bytes_out);
            (
                tags,
                [
                    1,
                    bytes_in,
                    bytes_out,
                    bytes_in,
                    bytes_out,
                    c.frames_discarded,
                ],
            )
        }),
    );
    per_item(
        &mut out,
        ["hls_sessions", "hls_sessions_outbound_bytes"],
        all_hls_sessions(views).into_iter().map(|s| {
            let remote = s.opening.remote.map(|a| a.to_string()).unwrap_or_default();
            let tags = format!(
                "{{id=\"{}\",path=\"{}\",remoteAddr=\"{}\"}}",
                s.id,
                label(&s.path),
                label(&remote)
            );
            (tags, [1, s.outbound_bytes])
        }),
    );
    per_item(
        &mut out,
        [
            "hls_muxers",
            "hls_muxers_bytes_sent",
            "hls_muxers_outbound_bytes",
            "hls_muxers_outbound_frames_discarded",
        ],
        all_hls_muxers(views).into_iter().map(|m| {
            let tags = format!("{{name=\"{}\"}}", label(&m.path));
            (tags, [1, m.bytes_sent, m.bytes_sent, 0])
        }),
    );

    let per_core: [PerCore; 14] = [
        ("corestream_core_connections_open", "gauge", |v| {
            v.stats.connections_open
        }),
        (
            "corestream_core_connections_accepted_total",
            "counter",
            |v| v.stats.connections_accepted,
        ),
        ("corestream_core_publishers", "gauge", |v| {
            v.stats.publishers
        }),
        ("corestream_core_players_local", "gauge", |v| {
            v.stats.players_local
        }),
        ("corestream_core_players_remote", "gauge", |v| {
            v.stats.players_remote
        }),
        ("corestream_core_streams_owned", "gauge", |v| {
            v.stats.streams_owned
        }),
        ("corestream_core_frames_published_total", "counter", |v| {
            v.stats.frames_published
        }),
        ("corestream_core_frames_forwarded_total", "counter", |v| {
            v.stats.frames_forwarded
        }),
        ("corestream_core_frames_from_remote_total", "counter", |v| {
            v.stats.frames_from_remote
        }),
        ("corestream_core_frames_lost_remote_total", "counter", |v| {
            v.stats.frames_lost_remote
        }),
        ("corestream_core_players_too_slow_total", "counter", |v| {
            v.stats.players_too_slow
        }),
        ("corestream_core_bytes_sent_total", "counter", |v| {
            v.stats.bytes_sent
        }),
        ("corestream_core_socket_writes_total", "counter", |v| {
            v.stats.socket_writes
        }),
        ("corestream_core_socket_blocked_total", "counter", |v| {
            v.stats.socket_blocked
        }),
    ];
    for (name, kind, get) in per_core {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for v in views {
            let _ = writeln!(out, "{name}{{core=\"{}\"}} {}", v.stats.core, get(v));
        }
    }
    recordings(&mut out, views);
    let _ = writeln!(out, "# TYPE corestream_core_frames_discarded_total counter");
    for v in views {
        let dropped: u64 = v.conns.iter().map(|c| c.frames_discarded).sum();
        let _ = writeln!(
            out,
            "corestream_core_frames_discarded_total{{core=\"{}\"}} {dropped}",
            v.stats.core
        );
    }
    limit_hits(&mut out, views, control_limit_hits);
    histogram(
        &mut out,
        "corestream_mesh_round_trip_seconds",
        "control core request to data core answer",
        mesh_round_trip,
    );
    histogram(
        &mut out,
        "corestream_api_request_seconds",
        "control API request handling time",
        api_latency,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::views::tests::two_cores;

    /// Every line is a comment or `name{labels} value` with a numeric value.
    fn parse(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (name, value) = l.rsplit_once(' ').unwrap();
                (name.to_owned(), value.parse::<f64>().unwrap())
            })
            .collect()
    }

    #[test]
    fn renders_mediamtx_names_and_core_figures() {
        let mut h = Histogram::default();
        h.record(0.0003);
        h.record(5.0);
        let mut views = two_cores();
        views[0].stats.limit_hits.add(Limit::HandshakeTimeout);
        let mut control = LimitHits::default();
        control.add(Limit::ApiBodyBytes);
        control.add(Limit::ApiBodyBytes);
        let config = Config::parse("", "c").unwrap();
        let text = render(&views, &config, &control, &h, &Histogram::default());
        let samples = parse(&text);
        let get = |n: &str| samples.iter().find(|(k, _)| k == n).map(|s| s.1);
        assert_eq!(get("paths{name=\"live/a\",state=\"ready\"}"), Some(1.0));
        assert_eq!(
            get("paths_outbound_bytes{name=\"live/a\",state=\"ready\"}"),
            Some(500.0)
        );
        assert_eq!(
            get("corestream_core_connections_open{core=\"1\"}"),
            Some(0.0)
        );
        assert_eq!(
            get("corestream_mesh_round_trip_seconds_bucket{le=\"0.0005\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("corestream_mesh_round_trip_seconds_bucket{le=\"+Inf\"}"),
            Some(2.0)
        );
        assert_eq!(get("hls_muxers"), Some(0.0));
        let core0 = views[0].stats.core;
        assert_eq!(
            get(&format!(
                "corestream_limit_hits_total{{core=\"{core0}\",limit=\"handshakeTimeout\"}}"
            )),
            Some(1.0)
        );
        assert_eq!(
            get("corestream_limit_hits_total{core=\"control\",limit=\"apiMaxBodyBytes\"}"),
            Some(2.0)
        );
        let empty = render(&[], &config, &LimitHits::default(), &h, &h);
        assert!(parse(&empty).iter().any(|(k, v)| k == "paths" && *v == 0.0));
        assert_eq!(label("a\"b\\c"), "a\\\"b\\\\c");
    }
}
