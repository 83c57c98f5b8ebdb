//! Runtime views in MediaMTX's JSON shapes, built from what every data core reported
//! ([`CoreView`]): connections as they are, paths by grouping connections by path name.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::time::rfc3339;
use crate::config::Config;
use crate::record::RecordStats;
use crate::relay::{ForwardView, SourceView};
use crate::runtime::{ConnState, ConnView, CoreView, HlsMuxerView};

/// An RTMP connection (`/v3/rtmpconns/...`); the query's secret parameters (`secrets`, and
/// passwords and tokens) are redacted.
pub fn conn_json(c: &ConnView, secrets: &[String]) -> Value {
    json!({
        "id": c.id.to_string(),
        "created": rfc3339(c.created_ms),
        "remoteAddr": c.remote.map(|a| a.to_string()).unwrap_or_default(),
        "state": c.state.as_str(),
        "path": c.path,
        "query": super::redact::query(&c.query, secrets),
        "bytesReceived": c.bytes_in,
        "bytesSent": c.bytes_out,
        "inboundBytes": c.bytes_in,
        "outboundBytes": c.bytes_out,
        "outboundFramesDiscarded": c.frames_discarded,
    })
}

/// An HLS muxer (`/v3/hlsmuxers/list`).
pub fn hls_muxer_json(m: &HlsMuxerView) -> Value {
    json!({
        "path": m.path,
        "created": rfc3339(m.created_ms),
        "lastRequest": rfc3339(m.last_request_ms),
        "bytesSent": m.bytes_sent,
    })
}

/// Every HLS muxer of every core, by path.
pub fn all_hls_muxers(views: &[CoreView]) -> Vec<&HlsMuxerView> {
    let mut muxers: Vec<&HlsMuxerView> = views.iter().flat_map(|v| &v.hls_muxers).collect();
    muxers.sort_by(|a, b| a.path.cmp(&b.path));
    muxers
}

/// Every connection of every core, oldest first (then by id, for a stable order).
pub fn all_conns(views: &[CoreView]) -> Vec<&ConnView> {
    let mut conns: Vec<&ConnView> = views.iter().flat_map(|v| &v.conns).collect();
    conns.sort_by_key(|c| (c.created_ms, c.id));
    conns
}

/// A path with a publisher or readers, as the cores see it.
#[derive(Debug, Default)]
pub struct PathView<'a> {
    pub name: String,
    pub publisher: Option<&'a ConnView>,
    pub readers: Vec<&'a ConnView>,
    /// The path's pulled source, if it has one running.
    pub pull: Option<&'a SourceView>,
    /// The pushes of its live stream.
    pub forwards: Vec<&'a ForwardView>,
}

impl PathView<'_> {
    pub fn inbound_bytes(&self) -> u64 {
        self.publisher.map_or(0, |p| p.bytes_in)
    }

    pub fn outbound_bytes(&self) -> u64 {
        self.readers.iter().map(|r| r.bytes_out).sum()
    }

    pub fn ready(&self) -> bool {
        self.publisher.is_some()
    }

    /// `/v3/paths/...` item; `config` gives `confName`.
    pub fn json(&self, config: &Config) -> Value {
        let conf_name = config
            .path_conf(&self.name)
            .map(|c| c.name)
            .unwrap_or_default();
        let source = match (self.pull, self.publisher) {
            (Some(s), _) => Some(json!({"type": s.kind, "id": ""})),
            (None, p) => p.map(|p| json!({"type": "rtmpConn", "id": p.id.to_string()})),
        };
        let ready_time = self.publisher.map(|p| rfc3339(p.since_ms));
        let tracks: Vec<&str> = self.publisher.map(|p| p.tracks.clone()).unwrap_or_default();
        let readers: Vec<Value> = self
            .readers
            .iter()
            .map(|r| json!({"type": "rtmpConn", "id": r.id.to_string()}))
            .collect();
        let forwards: Vec<Value> = self.forwards.iter().map(|f| forward_json(f)).collect();
        let pull = self.pull;
        json!({
            "name": self.name,
            "confName": conf_name,
            "source": source,
            "ready": self.ready(),
            "readyTime": ready_time,
            "available": self.ready(),
            "availableTime": ready_time,
            "online": self.ready(),
            "onlineTime": ready_time,
            "tracks": tracks,
            "bytesReceived": self.inbound_bytes(),
            "bytesSent": self.outbound_bytes(),
            "inboundBytes": self.inbound_bytes(),
            "outboundBytes": self.outbound_bytes(),
            "inboundFramesInError": 0,
            "readers": readers,
            "sourceUrl": pull.map(|s| s.url.clone()),
            "sourceOnDemand": pull.map(|s| s.on_demand),
            "sourceState": pull.map(|s| s.state.source_str()),
            "sourceError": pull.and_then(|s| s.last_error.clone()),
            "sourceErrorTime": pull.and_then(|s| s.last_error_ms).map(rfc3339),
            "sourceBytesReceived": pull.map(|s| s.bytes_received),
            "forwards": forwards,
        })
    }
}

/// A push target (`forwards` of a path item).
pub fn forward_json(f: &ForwardView) -> Value {
    json!({
        "dest": super::redact::url(&f.dest),
        "state": f.state.forward_str(),
        "error": f.last_error,
        "errorTime": f.last_error_ms.map(rfc3339),
        "bytesSent": f.bytes_sent,
    })
}

/// Paths with a publisher, a reader or a pulled source, sorted by name.
pub fn paths(views: &[CoreView]) -> Vec<PathView<'_>> {
    let mut by_name: BTreeMap<&str, PathView<'_>> = BTreeMap::new();
    for s in views.iter().flat_map(|v| &v.sources) {
        by_name
            .entry(&s.path)
            .or_insert_with(|| PathView {
                name: s.path.clone(),
                ..PathView::default()
            })
            .pull = Some(s);
    }
    for c in all_conns(views) {
        if c.state == ConnState::Idle {
            continue;
        }
        let p = by_name.entry(&c.path).or_insert_with(|| PathView {
            name: c.path.clone(),
            ..PathView::default()
        });
        match c.state {
            ConnState::Publish => p.publisher = Some(c),
            ConnState::Read => p.readers.push(c),
            ConnState::Idle => {}
        }
    }
    for f in views.iter().flat_map(|v| &v.forwards) {
        if let Some(p) = by_name.get_mut(f.path.as_str()) {
            p.forwards.push(f);
        }
    }
    by_name.into_values().collect()
}

/// Each path's recording counters, summed over the cores (a path's publishers may have been
/// on several).
pub fn record_stats(views: &[CoreView]) -> BTreeMap<String, RecordStats> {
    let mut all: BTreeMap<String, RecordStats> = BTreeMap::new();
    for v in views {
        for (path, s) in &v.recordings {
            let sum = all.entry(path.clone()).or_default();
            sum.bytes_written += s.bytes_written;
            sum.segments_created += s.segments_created;
            for (kind, n) in &s.errors {
                *sum.errors.entry(kind).or_default() += n;
            }
            if s.last_error.is_some() {
                sum.last_error.clone_from(&s.last_error);
            }
            if s.current_file.is_some() {
                sum.current_file.clone_from(&s.current_file);
            }
        }
    }
    all
}

/// A path's recording counters as the API shows them (a Corestream addition to MediaMTX's
/// recording item).
pub fn record_stats_json(s: &RecordStats) -> Value {
    json!({
        "bytesWritten": s.bytes_written,
        "segmentsCreated": s.segments_created,
        "errors": s.errors,
        "lastError": s.last_error,
        "currentFile": s.current_file,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::runtime::{ConnUuid, CoreStats};

    pub(crate) fn conn(n: u8, state: ConnState, path: &str, bytes: (u64, u64)) -> ConnView {
        ConnView {
            id: ConnUuid([n; 16]),
            core: 0,
            created_ms: u64::from(n),
            remote: "127.0.0.1:5000".parse().ok(),
            state,
            path: path.into(),
            query: String::new(),
            since_ms: 1_000,
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            frames_discarded: 0,
            tracks: if state == ConnState::Publish {
                vec!["H264"]
            } else {
                vec![]
            },
        }
    }

    pub(crate) fn two_cores() -> Vec<CoreView> {
        vec![
            CoreView {
                stats: CoreStats::default(),
                conns: vec![
                    conn(1, ConnState::Publish, "live/a", (1000, 0)),
                    conn(2, ConnState::Read, "live/a", (10, 300)),
                ],
                hls_muxers: Vec::new(),
                sources: Vec::new(),
                forwards: Vec::new(),
                recordings: Vec::new(),
            },
            CoreView {
                stats: CoreStats {
                    core: 1,
                    ..CoreStats::default()
                },
                conns: vec![
                    conn(3, ConnState::Read, "live/a", (10, 200)),
                    conn(4, ConnState::Idle, "", (5, 5)),
                    conn(5, ConnState::Read, "live/b", (1, 1)),
                ],
                hls_muxers: Vec::new(),
                sources: Vec::new(),
                forwards: Vec::new(),
                recordings: Vec::new(),
            },
        ]
    }

    #[test]
    fn paths_group_connections_across_cores() {
        let views = two_cores();
        let p = paths(&views);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "live/a");
        assert_eq!((p[0].inbound_bytes(), p[0].outbound_bytes()), (1000, 500));
        assert!(!p[1].ready());
        let config = Config::parse("", "c").unwrap();
        let j = p[0].json(&config);
        assert_eq!(j["confName"], "all_others");
        assert_eq!(j["source"]["type"], "rtmpConn");
        assert_eq!(j["readers"].as_array().unwrap().len(), 2);
        assert_eq!(j["tracks"], json!(["H264"]));
        assert_eq!(p[1].json(&config)["source"], Value::Null);
    }

    #[test]
    fn pulled_sources_show_their_state_without_a_publisher() {
        let mut views = two_cores();
        views[1].sources.push(SourceView {
            path: "live/pulled".into(),
            kind: "rtmpSource",
            url: "rtmp://127.0.0.1:1/live/x".into(),
            on_demand: false,
            state: crate::relay::LinkState::Error,
            last_error: Some("connect 127.0.0.1:1: connection refused".into()),
            last_error_ms: Some(1_000),
            bytes_received: 0,
        });
        let p = paths(&views);
        let pulled = p.iter().find(|p| p.name == "live/pulled").unwrap();
        let j = pulled.json(&Config::parse("", "c").unwrap());
        assert_eq!(j["source"], json!({"type": "rtmpSource", "id": ""}));
        assert_eq!(j["ready"], false);
        assert_eq!(j["sourceState"], "error");
        assert_eq!(j["sourceError"], "connect 127.0.0.1:1: connection refused");
        assert_eq!(j["sourceErrorTime"], "1970-01-01T00:00:01.000Z");
        // A path without a pulled source has nulls there.
        assert_eq!(
            p[0].json(&Config::parse("", "c").unwrap())["sourceState"],
            Value::Null
        );
    }

    #[test]
    fn conn_shape() {
        let j = conn_json(&conn(9, ConnState::Read, "live/x", (1, 2)), &[]);
        assert_eq!(j["state"], "read");
        assert_eq!(j["bytesSent"], 2);
        assert_eq!(j["remoteAddr"], "127.0.0.1:5000");
        assert_eq!(j["id"].as_str().unwrap().len(), 36);
    }
}
