//! End-to-end relaying between engines on loopback: edges pulling on demand from origins (one
//! upstream connection whatever the readers, failover), static pulls that survive their origin's
//! restart, pushes to another engine, on-demand start timeout and close-after, and the source
//! state the API shows.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::netns::{Link, Netns, NsEngine};
use tests::{eventually, free_port, Engine};

/// The origin's RTMP connections reading `path`.
fn readers_on(engine: &Engine, path: &str) -> usize {
    let list = engine.api("GET", "/v3/rtmpconns/list", None).json();
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|c| c["state"] == "read" && c["path"] == path)
                .count()
        })
        .unwrap_or(0)
}

fn assert_plays(probe: std::process::Child, what: &str) {
    let out = wait_with_timeout(probe, Duration::from_secs(60), what);
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(p.video_codec, "h264", "{what}");
    assert!(p.video_frames > 25, "{what}: {p:?}");
}

#[test]
fn edge_pulls_on_demand_once_for_many_readers() {
    let origin = Engine::start("");
    let edge = Engine::start(&format!(
        "paths:\n  \"~^live/\":\n    origins: [\"rtmp://127.0.0.1:{}/live\"]\n    sourceOnDemandCloseAfter: 2s\n",
        origin.rtmp_port
    ));
    let publisher = ff::publish(&origin.rtmp_url("live/s"), 10);
    origin.wait_for_log("publish started", Duration::from_secs(10));
    assert_eq!(edge.count_log("source starting"), 0, "no reader yet");

    let probes: Vec<_> = (0..3)
        .map(|_| ff::spawn_probe(&edge.rtmp_url("live/s")))
        .collect();
    let item = edge.wait_source_state("live/s", "ready", Duration::from_secs(15));
    assert_eq!(item["source"]["type"], "rtmpSource");
    assert_eq!(item["sourceOnDemand"], true);
    edge.wait_for_log_count("player started", 3, Duration::from_secs(15));
    // However many readers the edge has, the origin serves it one connection.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(readers_on(&origin, "live/s"), 1);
    assert_eq!(edge.count_log("source starting"), 1);

    for (i, p) in probes.into_iter().enumerate() {
        assert_plays(p, &format!("edge reader {i}"));
    }
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    // The last reader left: the pull closes after sourceOnDemandCloseAfter.
    edge.wait_for_log(
        "no readers for sourceOnDemandCloseAfter",
        Duration::from_secs(15),
    );
    assert!(eventually(Duration::from_secs(5), || readers_on(
        &origin, "live/s"
    ) == 0));
}

#[test]
fn edge_fails_over_to_the_next_origin() {
    let dead = free_port();
    let empty = Engine::start("playWaitTimeout: 1s\n");
    let live = Engine::start("");
    let edge = Engine::start(&format!(
        "paths:\n  \"~^live/\":\n    origins: [\"rtmp://127.0.0.1:{dead}/live\", \"rtmp://127.0.0.1:{}/live\", \"rtmp://127.0.0.1:{}/live\"]\n    sourceOnDemandStartTimeout: 15s\n",
        empty.rtmp_port, live.rtmp_port
    ));
    let publisher = ff::publish(&live.rtmp_url("live/f"), 8);
    live.wait_for_log("publish started", Duration::from_secs(10));
    let probe = ff::spawn_probe(&edge.rtmp_url("live/f"));
    let item = edge.wait_source_state("live/f", "ready", Duration::from_secs(20));
    assert_eq!(
        item["sourceUrl"],
        format!("rtmp://127.0.0.1:{}/live/f", live.rtmp_port)
    );
    let errors = edge.log().join("\n");
    assert!(errors.contains("connection refused"), "{errors}");
    assert!(errors.contains("NetStream.Play.StreamNotFound"), "{errors}");
    assert_eq!(readers_on(&live, "live/f"), 1);
    assert_plays(probe, "edge reader after failover");
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn static_pull_reports_errors_and_reconnects_after_its_origin_restarts() {
    let origin = Engine::start("");
    let closed = free_port();
    let edge = Engine::start(&format!(
        "paths:\n  live/s:\n    source: rtmp://127.0.0.1:{0}/live/s\n  live/h:\n    source: http://127.0.0.1:{1}/live/s.flv\n  live/dead:\n    source: rtmp://127.0.0.1:{closed}/live/x\n",
        origin.rtmp_port, origin.http_port
    ));
    // A source pointing at a closed port says so, in the system's words.
    let dead = edge.wait_source_state("live/dead", "error", Duration::from_secs(10));
    let error = dead["sourceError"].as_str().unwrap_or_default();
    assert!(error.contains("connection refused"), "{dead}");
    assert!(dead["sourceErrorTime"].is_string(), "{dead}");
    assert_eq!(dead["ready"], false);

    let publisher = ff::publish(&origin.rtmp_url("live/s"), 30);
    edge.wait_source_state("live/s", "ready", Duration::from_secs(20));
    let h = edge.wait_source_state("live/h", "ready", Duration::from_secs(20));
    assert_eq!(h["source"]["type"], "httpFlvSource");
    assert_plays(
        ff::spawn_probe_with(&edge.rtmp_url("live/h"), &["-read_intervals", "%+3"]),
        "reader of the http-flv pull",
    );

    // The origin goes away: the pull errors, then comes back by itself once the origin does.
    let stopped = origin.kill();
    let mut publisher = publisher;
    let _ = publisher.kill();
    let _ = publisher.wait();
    edge.wait_source_state("live/s", "error", Duration::from_secs(15));
    let origin = Engine::restart(stopped);
    let mut publisher = ff::publish(&origin.rtmp_url("live/s"), 12);
    edge.wait_source_state("live/s", "ready", Duration::from_secs(40));
    assert_plays(
        ff::spawn_probe_with(&edge.rtmp_url("live/s"), &["-read_intervals", "%+3"]),
        "reader after the origin restarted",
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn forward_pushes_a_live_stream_to_another_engine() {
    let target = Engine::start("playWaitTimeout: 20s\n");
    let source = Engine::start(&format!(
        "paths:\n  all_others:\n    forward:\n      - dest: rtmp://127.0.0.1:{}/pushed\n",
        target.rtmp_port
    ));
    let probe = ff::spawn_probe(&target.rtmp_url("pushed/p"));
    let publisher = ff::publish(&source.rtmp_url("live/p"), 8);
    target.wait_for_log("publish started", Duration::from_secs(15));
    let mut item = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            item = source.path_item("live/p");
            item["forwards"][0]["state"] == "live"
                && item["forwards"][0]["bytesSent"].as_u64() > Some(0)
        }),
        "{item}"
    );
    assert_plays(probe, "reader of the pushed stream");
    let _ = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn on_demand_source_times_out_its_reader_and_closes_after_the_last() {
    let origin = Engine::start("playWaitTimeout: 30s\n");
    let edge = Engine::start(&format!(
        "paths:\n  live/od:\n    source: rtmp://127.0.0.1:{}/live/od\n    sourceOnDemand: true\n    sourceOnDemandStartTimeout: 2s\n    sourceOnDemandCloseAfter: 1s\n",
        origin.rtmp_port
    ));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        edge.count_log("source starting"),
        0,
        "on demand: nothing before a reader"
    );
    // Listed from the start, as MediaMTX lists a configured on-demand source: its type, not
    // ready, no tracks, no pull running.
    let idle = edge.path_item("live/od");
    assert_eq!(idle["source"]["type"], "rtmpSource", "{idle}");
    assert_eq!(idle["ready"], false, "{idle}");
    assert_eq!(idle["tracks"], serde_json::json!([]), "{idle}");
    assert_eq!(idle["sourceState"], Value::Null, "{idle}");

    let started = Instant::now();
    let probe = ff::spawn_probe(&edge.rtmp_url("live/od"));
    edge.wait_for_log("source starting", Duration::from_secs(10));
    let out = wait_with_timeout(probe, Duration::from_secs(20), "ffprobe");
    let waited = started.elapsed();
    assert!(!out.status.success(), "the reader should have been refused");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(8),
        "refused after {waited:?}"
    );
    edge.wait_for_log("play refused: stream not found", Duration::from_secs(5));
    edge.wait_for_log(
        "no readers for sourceOnDemandCloseAfter",
        Duration::from_secs(10),
    );
    // The pull is gone from the edge; the configured path stays listed. (The origin itself only
    // notices when its waiting player's playWaitTimeout ends: a waiting RTMP player is not read
    // meanwhile.)
    assert!(eventually(Duration::from_secs(5), || {
        let item = edge.path_item("live/od");
        item["sourceState"].is_null()
            && item["source"]["type"] == "rtmpSource"
            && edge.api("GET", "/v3/rtmpconns/list", None).json()["itemCount"] == 0
    }));
}

#[test]
fn sources_follow_path_add_patch_and_delete_through_the_api() {
    let engine = Engine::start("");
    let (a, b) = (free_port(), free_port());
    let add = engine.api(
        "POST",
        "/v3/config/paths/add/live/api",
        Some(&format!(r#"{{"source":"rtmp://127.0.0.1:{a}/live/x"}}"#)),
    );
    assert_eq!(add.status, 200, "{}", add.text());
    let item = engine.wait_source_state("live/api", "error", Duration::from_secs(10));
    assert!(
        item["sourceError"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("127.0.0.1:{a}: connection refused")),
        "{item}"
    );
    // A patched source replaces the running one.
    let patch = engine.api(
        "PATCH",
        "/v3/config/paths/patch/live/api",
        Some(&format!(
            r#"{{"source":"http://127.0.0.1:{b}/live/x.flv"}}"#
        )),
    );
    assert_eq!(patch.status, 200, "{}", patch.text());
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(10), || {
            last = engine.path_item("live/api");
            last["sourceUrl"] == format!("http://127.0.0.1:{b}/live/x.flv")
                && last["sourceState"] == "error"
        }),
        "{last}"
    );
    assert_eq!(last["source"]["type"], "httpFlvSource");
    // Deleting the path stops its source.
    let delete = engine.api("DELETE", "/v3/config/paths/delete/live/api", None);
    assert_eq!(delete.status, 200, "{}", delete.text());
    assert!(eventually(Duration::from_secs(5), || engine
        .path_item("live/api")
        .is_null()));
    engine.wait_for_log("source stopped", Duration::from_secs(5));
}

/// A plain HTTP GET over a fresh connection; the body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

#[test]
fn a_source_behind_an_overlapping_bridge_is_diagnosed() {
    let ns = Netns::create("csrelay");
    // The "real" uplink: a veth to the host side, which plays the gateway and reaches the API.
    let Link {
        host_ip,
        ns_ip,
        ns_if,
        ..
    } = ns.link_to_host(213);
    ns.ip(&format!("route add default via {host_ip} dev {ns_if}"));
    // Docker's default bridge, holding the camera's network.
    ns.ip("link add docker0 type bridge");
    ns.ip("addr add 172.17.0.1/16 dev docker0");
    ns.ip("link set docker0 up");

    let dir = tests::TempDir::new("netns");
    let engine = NsEngine::start(
        &ns,
        &dir.path,
        &format!(
            "cores: 1\nlogLevel: debug\nrtmpAddress: 127.0.0.1:1935\nhttpAddress: 127.0.0.1:8080\napiAddress: {ns_ip}:9997\nmetricsAddress: 127.0.0.1:9998\nauthInternalUsers:\n  - user: any\n    permissions: [{{action: api}}, {{action: read}}, {{action: publish}}]\npaths:\n  live/cam:\n    source: rtmp://172.17.5.9/live/cam\n"
        ),
    );
    let api = format!("{ns_ip}:9997");
    let mut item = Value::Null;
    let diagnosed = eventually(Duration::from_secs(30), || {
        item = http_get(&api, "/v3/paths/get/live/cam")
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null);
        item["sourceError"]
            .as_str()
            .is_some_and(|e| e.contains("no route to host"))
    });
    let doctor = ns
        .exec(&tests::engine_binary())
        .arg("--config")
        .arg(engine.config())
        .args(["doctor", "rtmp://172.17.5.9/live/cam", "--json"])
        .output()
        .expect("run doctor");
    let engine_log = engine.stop();
    assert!(
        diagnosed,
        "the API never showed `no route to host`: {item}\n{engine_log}"
    );
    assert_eq!(item["sourceState"], "error");

    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}{}",
            String::from_utf8_lossy(&doctor.stdout),
            String::from_utf8_lossy(&doctor.stderr)
        )
    });
    assert_eq!(doctor.status.code(), Some(1), "{report:#}");
    let target = &report["target"];
    assert_eq!(target["route"]["interface"], "docker0", "{report:#}");
    assert_eq!(target["bridgeOverlaps"][0]["bridge"], "docker0");
    assert_eq!(target["bridgeOverlaps"][0]["network"], "172.17.0.0/16");
    assert_eq!(target["bridgeOverlaps"][0]["chosen"], true);
    assert_eq!(target["connect"], "no route to host");
    let remedies = target["remedies"].to_string();
    assert!(remedies.contains("daemon.json"), "{remedies}");
    assert!(
        remedies.contains(&format!(
            "ip route add 172.17.5.9/32 via {host_ip} dev {ns_if}"
        )),
        "{remedies}"
    );
    let rtmp = &report["ports"][0];
    assert_eq!(
        (rtmp["name"].as_str(), rtmp["listening"].as_bool()),
        (Some("rtmp"), Some(true)),
        "{report:#}"
    );
}

#[test]
fn killing_the_first_origin_fails_over_to_the_second() {
    let first = Engine::start("");
    let second = Engine::start("");
    let edge = Engine::start(&format!(
        "paths:\n  \"~^live/\":\n    origins: [\"rtmp://127.0.0.1:{}/live\", \"rtmp://127.0.0.1:{}/live\"]\n    sourceOnDemandStartTimeout: 15s\n",
        first.rtmp_port, second.rtmp_port
    ));
    // The same stream on both origins (as a publisher pushing to two ingest points would).
    let mut p1 = ff::publish(&first.rtmp_url("live/k"), 30);
    let p2 = ff::publish(&second.rtmp_url("live/k"), 14);
    first.wait_for_log("publish started", Duration::from_secs(10));
    second.wait_for_log("publish started", Duration::from_secs(10));

    let early = ff::spawn_probe_with(&edge.rtmp_url("live/k"), &["-read_intervals", "%+2"]);
    let item = edge.wait_source_state("live/k", "ready", Duration::from_secs(15));
    assert_eq!(
        item["sourceUrl"],
        format!("rtmp://127.0.0.1:{}/live/k", first.rtmp_port)
    );
    assert_plays(early, "reader through the first origin");

    let _stopped = first.kill();
    let _ = p1.kill();
    let _ = p1.wait();
    let reader = ff::spawn_probe_with(&edge.rtmp_url("live/k"), &["-read_intervals", "%+2"]);
    let mut last = Value::Null;
    assert!(
        eventually(Duration::from_secs(15), || {
            last = edge.path_item("live/k");
            last["sourceState"] == "ready"
                && last["sourceUrl"] == format!("rtmp://127.0.0.1:{}/live/k", second.rtmp_port)
        }),
        "{last}"
    );
    assert!(
        last["sourceError"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "the first origin's refusal is kept as the last error: {last}"
    );
    assert_plays(reader, "reader after the failover");
    assert_eq!(readers_on(&second, "live/k"), 1);
    let mut p2 = p2;
    let _ = p2.kill();
    let _ = p2.wait();
}

/// An HLS playlist request is a reader like any other: it starts the path's on-demand source and
/// waits for the first segment instead of answering 404.
#[test]
fn hls_request_starts_an_on_demand_source() {
    let origin = Engine::start("playWaitTimeout: 30s\n");
    let publisher = ff::publish(&origin.rtmp_url("live/hod"), 12);
    origin.wait_for_log("publish started", Duration::from_secs(10));
    let edge = Engine::start(&format!(
        "hlsVariant: mpegts\nhlsSegmentDuration: 1s\npaths:\n  live/hod:\n    source: rtmp://127.0.0.1:{}/live/hod\n    sourceOnDemand: true\n    sourceOnDemandStartTimeout: 5s\n",
        origin.rtmp_port
    ));
    let playlist = tests::http::get(edge.http_port, "/live/hod.m3u8", &[]);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    assert!(playlist.text().contains(".ts"), "{}", playlist.text());
    edge.wait_for_log("source starting", Duration::from_secs(1));
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}
