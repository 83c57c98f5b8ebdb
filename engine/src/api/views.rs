//! Runtime views in MediaMTX's JSON shapes, built from what every data core reported
//! ([`CoreView`]): connections as they are, paths by grouping connections by path name.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::time::rfc3339;
use crate::config::Config;
use crate::record::RecordStats;
use crate::relay::{ForwardView, SourceView};
use crate::runtime::{
    ConnProtocol, ConnState, ConnView, CoreView, HlsMuxerView, HlsSessionView, TrackProps,
    TrackView,
};

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
        "user": c.user,
        "userAgent": &*c.user_agent,
        "bytesReceived": c.bytes_in,
        "bytesSent": c.bytes_out,
        "inboundBytes": c.bytes_in,
        "outboundBytes": c.bytes_out,
        "outboundFramesDiscarded": c.frames_discarded,
    })
}

/// An HLS muxer (`/v3/hlsmuxers/...`). The muxer writes segments in memory on its stream's
/// home core and never drops a frame: `outboundFramesDiscarded` is always 0.
pub fn hls_muxer_json(m: &HlsMuxerView) -> Value {
    json!({
        "path": m.path,
        "created": rfc3339(m.created_ms),
        "lastRequest": rfc3339(m.last_request_ms),
        "outboundBytes": m.bytes_sent,
        "outboundFramesDiscarded": 0,
        "bytesSent": m.bytes_sent,
    })
}

/// An HLS viewer's session (`/v3/hlssessions/...`); as for connections, the query's secret
/// parameters are redacted. There is no CDN session here (`isCDN` is always false): Corestream
/// has no `hlsCDNSecret`.
pub fn hls_session_json(s: &HlsSessionView, secrets: &[String]) -> Value {
    json!({
        "id": s.id.to_string(),
        "created": rfc3339(s.created_ms),
        "remoteAddr": s.opening.remote.map(|a| a.to_string()).unwrap_or_default(),
        "path": s.path,
        "query": super::redact::query(&s.opening.query, secrets),
        "user": s.opening.user,
        "userAgent": s.opening.user_agent,
        "isCDN": false,
        "outboundBytes": s.outbound_bytes,
    })
}

/// Every HLS session of every core, oldest first (then by id, for a stable order).
pub fn all_hls_sessions(views: &[CoreView]) -> Vec<&HlsSessionView> {
    let mut sessions: Vec<&HlsSessionView> = views.iter().flat_map(|v| &v.hls_sessions).collect();
    sessions.sort_by_key(|s| (s.created_ms, s.id));
    sessions
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

/// The clients of the RTMP listener (`/v3/rtmpconns`): not HTTP viewers, not the relay's links.
pub fn rtmp_conns(views: &[CoreView]) -> Vec<&ConnView> {
    let mut conns = all_conns(views);
    conns.retain(|c| c.protocol == ConnProtocol::Rtmp);
    conns
}

/// A path: configured by name, or with a publisher, readers or a pulled source.
#[derive(Debug, Default)]
pub struct PathView<'a> {
    pub name: String,
    /// MediaMTX's source type of the entry's `source` when it pulls (`rtmpSource`, …): shown
    /// before the pull runs, as MediaMTX shows a static or on-demand source.
    pub configured_source: Option<&'static str>,
    pub publisher: Option<&'a ConnView>,
    pub readers: Vec<&'a ConnView>,
    /// Its HLS viewers.
    pub hls_sessions: Vec<&'a HlsSessionView>,
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
        let hls: u64 = self.hls_sessions.iter().map(|s| s.outbound_bytes).sum();
        self.readers.iter().map(|r| r.bytes_out).sum::<u64>() + hls
    }

    /// The tracks of its stream, empty until the publisher sent a sequence header.
    pub fn tracks(&self) -> &[TrackView] {
        self.publisher.map_or(&[], |p| p.tracks.as_slice())
    }

    /// As MediaMTX: ready when a source publishes and its tracks are known, never before.
    pub fn ready(&self) -> bool {
        self.publisher.is_some() && !self.tracks().is_empty()
    }

    /// The readers MediaMTX would list: clients, not the relay's pushes (its hidden readers).
    fn listed_readers(&self) -> impl Iterator<Item = &ConnView> {
        self.readers
            .iter()
            .copied()
            .filter(|r| r.protocol != ConnProtocol::Relay)
    }

    /// `/v3/paths/...` item; `config` gives `confName`.
    pub fn json(&self, config: &Config) -> Value {
        let conf_name = config
            .path_conf(&self.name)
            .map(|c| c.name)
            .unwrap_or_default();
        let source = match (self.pull.map(|s| s.kind), self.configured_source) {
            (Some(kind), _) | (None, Some(kind)) => Some(json!({"type": kind, "id": ""})),
            (None, None) => self
                .publisher
                .map(|p| json!({"type": "rtmpConn", "id": p.id.to_string()})),
        };
        let ready = self.ready();
        let ready_time = ready
            .then(|| self.publisher.map(|p| rfc3339(p.since_ms)))
            .flatten();
        let tracks: Vec<&str> = self.tracks().iter().map(|t| t.codec).collect();
        let tracks2: Vec<Value> = self.tracks().iter().map(track_json).collect();
        let readers: Vec<Value> = self
            .listed_readers()
            .map(|r| json!({"type": "rtmpConn", "id": r.id.to_string()}))
            .chain(
                self.hls_sessions
                    .iter()
                    .map(|s| json!({"type": "hlsSession", "id": s.id.to_string()})),
            )
            .collect();
        let forwards: Vec<Value> = self.forwards.iter().map(|f| forward_json(f)).collect();
        let pull = self.pull;
        json!({
            "name": self.name,
            "confName": conf_name,
            "source": source,
            "ready": ready,
            "readyTime": ready_time,
            "available": ready,
            "availableTime": ready_time,
            "online": ready,
            "onlineTime": ready_time,
            "tracks": tracks,
            "tracks2": tracks2,
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

/// A `tracks2` item: the codec and its `codecProps` (MediaMTX's names for profiles and levels).
fn track_json(t: &TrackView) -> Value {
    let props = match &t.props {
        TrackProps::Unread => Value::Null,
        TrackProps::Video {
            profile,
            level,
            size,
        } => {
            let (width, height) = size.unwrap_or((0, 0));
            let (profile, level) = if t.codec == "H265" {
                (h265_profile(*profile), h265_level(*level))
            } else {
                (h264_profile(*profile), h264_level(*level))
            };
            json!({"width": width, "height": height, "profile": profile, "level": level})
        }
        TrackProps::Aac {
            sample_rate,
            channels,
        } => json!({"sampleRate": sample_rate, "channelCount": channels}),
    };
    json!({"codec": t.codec, "codecProps": props})
}

fn h264_profile(idc: u8) -> String {
    match idc {
        66 => "Baseline".into(),
        77 => "Main".into(),
        88 => "Extended".into(),
        100 => "High".into(),
        110 => "High 10".into(),
        122 => "High 4:2:2".into(),
        244 => "High 4:4:4 Predictive".into(),
        n => n.to_string(),
    }
}

/// `level_idc` is ten times the level (31 is 3.1).
fn h264_level(idc: u8) -> String {
    match idc % 10 {
        0 => (idc / 10).to_string(),
        minor => format!("{}.{minor}", idc / 10),
    }
}

fn h265_profile(idc: u8) -> String {
    match idc {
        1 => "Main".into(),
        2 => "Main 10".into(),
        3 => "Main Still Picture".into(),
        4 => "Range Extensions".into(),
        n => n.to_string(),
    }
}

/// `general_level_idc` is thirty times the level (93 is 3.1).
fn h265_level(idc: u8) -> String {
    let level = f64::from(idc) / 30.0;
    if idc.is_multiple_of(30) {
        format!("{level:.0}")
    } else {
        format!("{level:.1}")
    }
}

/// The path named `name`, added if missing (keys borrow the views' and the configuration's
/// names: a path with a hundred readers is looked up a hundred times per request).
fn entry<'m, 'a>(
    by_name: &'m mut BTreeMap<&'a str, PathView<'a>>,
    name: &'a str,
) -> &'m mut PathView<'a> {
    by_name.entry(name).or_insert_with(|| PathView {
        name: name.to_owned(),
        ..PathView::default()
    })
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

/// Every path MediaMTX would list, sorted by name: each entry of `config` named without a
/// regular expression (from the moment it is configured, published or not), and every path with
/// a publisher, a reader or a pulled source.
pub fn paths<'a>(views: &'a [CoreView], config: &'a Config) -> Vec<PathView<'a>> {
    let mut by_name: BTreeMap<&'a str, PathView<'a>> = BTreeMap::new();
    for name in config.paths.literal_names() {
        let configured_source = config
            .path_conf(name)
            .and_then(|c| crate::config::source_type(&c.source));
        by_name.insert(
            name,
            PathView {
                name: name.to_owned(),
                configured_source,
                ..PathView::default()
            },
        );
    }
    for s in views.iter().flat_map(|v| &v.sources) {
        entry(&mut by_name, &s.path).pull = Some(s);
    }
    for c in all_conns(views) {
        match c.state {
            ConnState::Publish => entry(&mut by_name, &c.path).publisher = Some(c),
            ConnState::Read => entry(&mut by_name, &c.path).readers.push(c),
            ConnState::Idle => {}
        }
    }
    for s in all_hls_sessions(views) {
        entry(&mut by_name, &s.path).hls_sessions.push(s);
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

    fn h264() -> TrackView {
        TrackView {
            codec: "H264",
            props: TrackProps::Video {
                profile: 100,
                level: 31,
                size: Some((1280, 720)),
            },
        }
    }

    pub(crate) fn conn(n: u8, state: ConnState, path: &str, bytes: (u64, u64)) -> ConnView {
        ConnView {
            id: ConnUuid([n; 16]),
            core: 0,
            protocol: ConnProtocol::Rtmp,
            created_ms: u64::from(n),
            remote: "127.0.0.1:5000".parse().ok(),
            state,
            path: path.into(),
            query: String::new(),
            user: String::new(),
            user_agent: std::sync::Arc::from("LNX 9,0,124,2"),
            since_ms: 1_000,
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            frames_discarded: 0,
            tracks: if state == ConnState::Publish {
                vec![h264()]
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
                hls_sessions: Vec::new(),
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
                hls_sessions: Vec::new(),
                sources: Vec::new(),
                forwards: Vec::new(),
                recordings: Vec::new(),
            },
        ]
    }

    #[test]
    fn paths_group_connections_across_cores() {
        let views = two_cores();
        let config = Config::parse("", "c").unwrap();
        let p = paths(&views, &config);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "live/a");
        assert_eq!((p[0].inbound_bytes(), p[0].outbound_bytes()), (1000, 500));
        assert!(!p[1].ready());
        let j = p[0].json(&config);
        assert_eq!(j["confName"], "all_others");
        assert_eq!(j["source"]["type"], "rtmpConn");
        assert_eq!(j["readers"].as_array().unwrap().len(), 2);
        assert_eq!(j["tracks"], json!(["H264"]));
        assert_eq!(
            j["tracks2"],
            json!([{"codec": "H264", "codecProps": {"width": 1280, "height": 720, "profile": "High", "level": "3.1"}}])
        );
        assert_eq!(
            (j["ready"].clone(), j["available"].clone()),
            (json!(true), json!(true))
        );
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
        let config = Config::parse("", "c").unwrap();
        let p = paths(&views, &config);
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
    fn configured_paths_are_listed_before_anyone_publishes() {
        let config = Config::parse(
            "paths:\n  all_others:\n  ~^re/:\n  cam: {}\n  pull:\n    source: rtsp://127.0.0.1:1/x\n    sourceOnDemand: yes\n",
            "c",
        )
        .unwrap();
        let mut views = two_cores();
        // A publisher whose stream has no sequence header yet is not ready.
        views[0].conns.push(ConnView {
            tracks: Vec::new(),
            ..conn(7, ConnState::Publish, "cam", (10, 0))
        });
        // HTTP viewers and the relay's links are not RTMP connections.
        views[1].conns[1].protocol = ConnProtocol::Http;
        let p = paths(&views, &config);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["cam", "live/a", "live/b", "pull"]);
        let cam = p[0].json(&config);
        assert_eq!(cam["ready"], false);
        assert_eq!(cam["tracks"], json!([]));
        assert_eq!(cam["readyTime"], Value::Null);
        assert_eq!(cam["source"]["type"], "rtmpConn");
        let pull = p[3].json(&config);
        assert_eq!(pull["source"], json!({"type": "rtspSource", "id": ""}));
        assert_eq!(
            (pull["ready"].clone(), pull["tracks"].clone()),
            (json!(false), json!([]))
        );
        assert_eq!(pull["confName"], "pull");
        assert_eq!(rtmp_conns(&views).len(), 5);
        assert_eq!(all_conns(&views).len(), 6);
    }

    #[test]
    fn levels_and_profiles_in_mediamtx_words() {
        assert_eq!((h264_level(31), h264_level(40)), ("3.1".into(), "4".into()));
        assert_eq!(
            (h265_level(93), h265_level(120)),
            ("3.1".into(), "4".into())
        );
        assert_eq!(
            (h264_profile(66), h264_profile(1)),
            ("Baseline".into(), "1".into())
        );
    }

    #[test]
    fn conn_shape() {
        let j = conn_json(&conn(9, ConnState::Read, "live/x", (1, 2)), &[]);
        assert_eq!(j["state"], "read");
        assert_eq!(j["bytesSent"], 2);
        assert_eq!(j["remoteAddr"], "127.0.0.1:5000");
        assert_eq!(
            (j["user"].clone(), j["userAgent"].clone()),
            (json!(""), json!("LNX 9,0,124,2"))
        );
        assert_eq!(j["id"].as_str().unwrap().len(), 36);
    }
}
