//! End-to-end: clusters (issue 17). Three engines and a real redis-server on loopback, ffmpeg
//! publishing, ffprobe / ffmpeg / rtmpdump / curl reading, with no static relay configuration:
//! every node finds every stream through the directory in Redis.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::ff::{self, decoded_frames, parse_probe, wait_with_timeout};
use tests::redis::RedisServer;
use tests::{eventually, Engine, TempDir};

/// Each test runs three engines, a Redis and several ffmpeg processes, and some measure time:
/// they run one at a time (a failed test must not stop the others).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory key of `live/<stream>` under the default prefix.
fn entry(stream: &str) -> String {
    format!("corestream:stream:__defaultVhost__/live/{stream}")
}

/// A cluster node named `name` on the Redis `redis` (a URL), advertising its own RTMP port.
fn node(name: &str, redis: &str, ttl: &str, extra: &str) -> Engine {
    Engine::start_with("debug", |ports| {
        format!(
            "playWaitTimeout: 10s\ncluster:\n  redis: {redis}\n  nodeName: {name}\n  advertise: rtmp://127.0.0.1:{}\n  ttl: {ttl}\n{extra}",
            ports[0]
        )
    })
}

/// The node that owns `stream` in Redis (`GET`), or `None`.
fn owner(redis: &RedisServer, stream: &str) -> Option<String> {
    let reply = redis.command(&["GET", &entry(stream)]);
    // `$N\r\nvalue\r\n`, or `$-1\r\n` when absent.
    let mut lines = reply.split("\r\n");
    match lines.next() {
        Some(h) if h.starts_with('$') && h != "$-1" => lines.next().map(str::to_owned),
        _ => None,
    }
}

/// rtmpdump of `url` for `seconds` of stream time into `out`.
fn rtmpdump(url: &str, seconds: u32, out: &Path) -> Child {
    Command::new("rtmpdump")
        .args(["-q", "-v", "-r", url, "-B", &seconds.to_string(), "-o"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rtmpdump is installed (tests/run.sh installs it)")
}

/// curl of `url` for `seconds` into `out`.
fn curl(url: &str, seconds: u32, out: &Path) -> Child {
    Command::new("curl")
        .args(["-s", "-N", "--max-time", &seconds.to_string(), "-o"])
        .arg(out)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is installed")
}

#[test]
fn publish_on_one_node_plays_on_the_others_and_a_duplicate_is_refused() {
    let _serial = serial();
    let redis = RedisServer::start();
    let url = redis.url();
    let a = node("a", &url, "3s", "");
    let b = node("b", &url, "3s", "");
    let c = node("c", &url, "3s", "");

    let publisher = ff::publish(&a.rtmp_url("live/cam"), 14);
    a.wait_for_log("publish started", Duration::from_secs(10));
    assert!(
        eventually(Duration::from_secs(3), || owner(&redis, "cam").as_deref()
            == Some("a")),
        "the directory does not name a: {:?}",
        owner(&redis, "cam")
    );

    // Readers on B and C, over RTMP, HTTP-FLV and HLS; none of the nodes has a relay config.
    let rtmp_probe = ff::spawn_probe(&b.rtmp_url("live/cam"));
    let decoder = ff::spawn_decoder(&b.rtmp_url("live/cam"));
    let files = TempDir::new("cluster");
    let (dumped, curled) = (files.path.join("dump.flv"), files.path.join("curl.flv"));
    let dump = rtmpdump(&b.rtmp_url("live/cam"), 6, &dumped);
    let flv_probe = ff::spawn_probe(&c.http_url("live/cam.flv"));
    let flv_curl = curl(&c.http_url("live/cam.flv"), 4, &curled);
    let hls = std::thread::spawn({
        let url = b.http_url("live/cam.m3u8");
        move || ff::probe_live_hls(&url)
    });

    // A second encoder of the same stream on C: refused, as a local duplicate would be.
    std::thread::sleep(Duration::from_secs(1));
    let duplicate = ff::publish(&c.rtmp_url("live/cam"), 5);
    let out = wait_with_timeout(duplicate, Duration::from_secs(15), "duplicate publisher");
    assert!(
        !out.status.success(),
        "the duplicate publish on c was accepted"
    );
    c.wait_for_log(
        "publish refused: another cluster node publishes the stream",
        Duration::from_secs(5),
    );
    assert_eq!(owner(&redis, "cam").as_deref(), Some("a"));

    let out = wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (probe, what) in [(rtmp_probe, "rtmp on b"), (flv_probe, "http-flv on c")] {
        let out = wait_with_timeout(probe, Duration::from_secs(40), what);
        let p = parse_probe(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_str()),
            ("h264", "aac"),
            "{what}"
        );
        assert_eq!((p.width, p.height), (320, 240), "{what}");
        assert!(
            p.video_frames >= 200,
            "{what}: only {} frames",
            p.video_frames
        );
    }
    let out = wait_with_timeout(decoder, Duration::from_secs(40), "ffmpeg on b");
    let frames = decoded_frames(&out).unwrap_or(0);
    assert!(frames >= 200, "ffmpeg on b decoded {frames} frames");
    wait_with_timeout(dump, Duration::from_secs(40), "rtmpdump on b");
    let dumped = std::fs::read(&dumped).unwrap_or_default();
    assert!(dumped.starts_with(b"FLV"), "rtmpdump wrote no FLV");
    assert!(
        dumped.len() > 100_000,
        "rtmpdump got {} bytes",
        dumped.len()
    );
    wait_with_timeout(flv_curl, Duration::from_secs(20), "curl on c");
    let curled = std::fs::read(&curled).unwrap_or_default();
    assert!(curled.starts_with(b"FLV"), "curl got no FLV from c");
    assert!(curled.len() > 50_000, "curl got {} bytes", curled.len());
    let p = hls.join().expect("hls probe");
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert!(p.video_frames >= 100, "hls on b: {} frames", p.video_frames);

    // One upstream per stream per node, whatever its readers: A served exactly two pulls.
    let pulls = a
        .log()
        .iter()
        .filter(|l| l.contains("player started"))
        .count();
    assert_eq!(
        pulls,
        2,
        "a served {pulls} players; log:\n{}",
        a.log().join("\n")
    );
    // Unpublished: the entry went at once (compare-and-delete), not at its expiry.
    assert!(
        eventually(Duration::from_millis(1500), || owner(&redis, "cam")
            .is_none()),
        "the entry outlived the publish"
    );
    // The API lists the cluster, and nothing shows the Redis URL's secrets (there are none
    // here; see `redis_password_is_never_shown`).
    let status = a.api("GET", "/v3/cluster/status", None);
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(status.json()["redisReachable"], true, "{}", status.text());
    assert_eq!(status.json()["node"], "a");
}

/// Publishes `url` for `seconds`, again and again until a publish is accepted (a node refuses
/// it while the dead owner's entry lives); returns the accepted publisher.
fn publish_until_accepted(engine: &Engine, url: &str, seconds: u32, within: Duration) -> Child {
    let deadline = std::time::Instant::now() + within;
    loop {
        let before = engine.count_log("publish started");
        let mut p = ff::publish(url, seconds);
        let accepted = eventually(Duration::from_secs(3), || {
            engine.count_log("publish started") > before || matches!(p.try_wait(), Ok(Some(_)))
        });
        if accepted && engine.count_log("publish started") > before {
            return p;
        }
        let _ = p.kill();
        let _ = p.wait();
        assert!(
            std::time::Instant::now() < deadline,
            "no publish accepted within {within:?}; log:\n{}",
            engine.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn viewers_resume_from_the_new_origin_after_kill_9() {
    let _serial = serial();
    // `CLUSTER_TTL_SECS=10` measures the default ttl (the README's figure); 2 s by default.
    let ttl_secs: u64 = std::env::var("CLUSTER_TTL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let ttl = format!("{ttl_secs}s");
    let redis = RedisServer::start();
    let url = redis.url();
    let a = node("a", &url, &ttl, "");
    let b = node("b", &url, &ttl, "");
    let c = node("c", &url, &ttl, "");

    let first = ff::publish(&a.rtmp_url("live/ko"), 60);
    a.wait_for_log("publish started", Duration::from_secs(10));
    // Viewers on b: one RTMP decoder, one HTTP-FLV decoder; both run through the failover.
    let viewers_started = std::time::Instant::now();
    let rtmp_viewer = ff::spawn_decoder(&b.rtmp_url("live/ko"));
    let flv_viewer = ff::spawn_decoder(&b.http_url("live/ko.flv"));
    b.wait_for_log("source ready", Duration::from_secs(10));
    // And an HLS viewer, which keeps reloading the playlist through the gap.
    let hls_viewer =
        ff::spawn_probe_with(&b.http_url("live/ko.m3u8"), &["-m3u8_hold_counters", "30"]);
    b.wait_for_log_count("player started", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));

    let killed = std::time::Instant::now();
    drop(a.kill());
    let mut first = first;
    let _ = first.kill();
    let _ = first.wait();
    // The encoder reconnects to c, which accepts it once a's entry expired.
    let second = publish_until_accepted(
        &c,
        &c.rtmp_url("live/ko"),
        8,
        Duration::from_secs(ttl_secs + 15),
    );
    let republished = killed.elapsed();
    assert!(
        eventually(Duration::from_secs(10), || b.count_log("source resumed")
            > 0),
        "b's players never resumed; log:\n{}",
        b.log().join("\n")
    );
    let resumed = killed.elapsed();
    assert_eq!(owner(&redis, "ko").as_deref(), Some("c"));
    eprintln!(
        "failover: origin killed -> encoder accepted on c {republished:?} -> b's viewers resumed {resumed:?} (ttl {ttl})"
    );
    // Within one retry step of the republish (ttl/4, 250 ms to 2 s) and a connection.
    let step = Duration::from_millis((ttl_secs * 250).clamp(250, 2_000));
    assert!(
        resumed - republished < step + Duration::from_millis(1_500),
        "resumed {:?} after the republish",
        resumed - republished
    );

    let out = wait_with_timeout(second, Duration::from_secs(30), "second publisher");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Frames before the kill and after the resume, in one decode each: the viewers never
    // reconnected (b started each player once).
    let before = 25 * (killed - viewers_started).as_secs() + 50;
    for (viewer, what) in [
        (rtmp_viewer, "rtmp viewer"),
        (flv_viewer, "http-flv viewer"),
    ] {
        let out = wait_with_timeout(viewer, Duration::from_secs(60), what);
        let frames = decoded_frames(&out).unwrap_or(0);
        assert!(
            frames >= before.saturating_sub(60) + 120,
            "{what} decoded {frames} frames; at most {before} came before the kill; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(b.count_log("player started"), 2, "a viewer reconnected");
    // HLS went on over one timeline: frames from before and after the failover.
    let out = wait_with_timeout(hls_viewer, Duration::from_secs(90), "hls viewer");
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("hls viewer: {e}"));
    assert!(
        p.video_frames >= before.saturating_sub(60) + 120,
        "hls viewer decoded {} frames; at most {before} came before the kill",
        p.video_frames
    );
}

/// The value of the metric `name` (its first sample) on `engine`.
fn metric(engine: &Engine, name: &str) -> Option<f64> {
    engine
        .metrics()
        .into_iter()
        .find(|(n, _)| n == name || n.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
}

#[test]
fn redis_outage_keeps_streams_live_and_registers_them_again() {
    let _serial = serial();
    let mut redis = RedisServer::start();
    let url = redis.url();
    let a = node("a", &url, "2s", "");
    let b = node("b", &url, "2s", "");
    let strict = node("strict", &url, "2s", "  failOpen: false\n");

    let one = ff::publish(&a.rtmp_url("live/one"), 30);
    a.wait_for_log("publish started", Duration::from_secs(10));
    let viewer = ff::spawn_decoder(&b.rtmp_url("live/one"));
    b.wait_for_log("source ready", Duration::from_secs(10));
    assert_eq!(metric(&a, "cluster_redis_up"), Some(1.0));

    redis.kill();
    let down = std::time::Instant::now();
    a.wait_for_log("cluster: redis unreachable", Duration::from_secs(5));
    // Publishes go on (failOpen, the default) on a; refused on the node with failOpen: false.
    let two = ff::publish(&a.rtmp_url("live/two"), 20);
    a.wait_for_log_count("publish started", 2, Duration::from_secs(10));
    let refused = ff::publish(&strict.rtmp_url("live/three"), 5);
    let out = wait_with_timeout(refused, Duration::from_secs(20), "publisher on strict");
    assert!(
        !out.status.success(),
        "strict accepted a publish without Redis"
    );
    strict.wait_for_log(
        "publish refused: the cluster directory is unreachable",
        Duration::from_secs(5),
    );
    // A lookup fails with a clear error, and the reader is refused.
    let lost = ff::spawn_probe(&b.rtmp_url("live/two"));
    let out = wait_with_timeout(lost, Duration::from_secs(30), "probe of live/two");
    assert!(!out.status.success(), "a stream was found without Redis");
    b.wait_for_log("cluster: cannot look the stream up", Duration::from_secs(5));
    let status = a.api("GET", "/v3/cluster/status", None).json();
    assert_eq!(status["redisReachable"], false, "{status}");
    assert!(status["lastError"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(metric(&a, "cluster_redis_up"), Some(0.0));
    let streams = a.api("GET", "/v3/cluster/streams", None);
    assert_eq!(streams.status, 503, "{}", streams.text());
    // Several renewals failed meanwhile; the outage is logged once.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(down.elapsed()));
    assert_eq!(a.count_log("cluster: redis unreachable"), 1);

    // Redis back, empty (no persistence): both live streams are registered again.
    redis.restart();
    assert!(
        eventually(Duration::from_secs(4), || owner(&redis, "one").as_deref()
            == Some("a")
            && owner(&redis, "two").as_deref() == Some("a")),
        "not registered again: one={:?} two={:?}",
        owner(&redis, "one"),
        owner(&redis, "two")
    );
    assert_eq!(
        a.count_log("cluster: redis reachable"),
        2,
        "start and return"
    );
    assert!(a.count_log("cluster: stream registered again") >= 2);
    assert_eq!(metric(&a, "cluster_redis_outages_total"), Some(1.0));
    assert!(metric(&a, "cluster_reregistered_total").unwrap_or(0.0) >= 2.0);
    let status = a.api("GET", "/v3/cluster/status", None).json();
    assert_eq!(status["redisReachable"], true, "{status}");
    assert_eq!(status["registeredStreams"], 2, "{status}");
    // The stream published during the outage now plays on b.
    let late = ff::spawn_probe(&b.rtmp_url("live/two"));

    let out = wait_with_timeout(one, Duration::from_secs(40), "publisher of one");
    assert!(out.status.success());
    let out = wait_with_timeout(viewer, Duration::from_secs(40), "viewer of one on b");
    // The viewer on b went on through the outage: (nearly) the whole stream.
    let frames = decoded_frames(&out).unwrap_or(0);
    assert!(frames >= 600, "viewer of one decoded {frames} frames");
    wait_with_timeout(two, Duration::from_secs(40), "publisher of two");
    let out = wait_with_timeout(late, Duration::from_secs(40), "probe of two on b");
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("two on b: {e}"));
    assert!(p.video_frames > 50, "{p:?}");
}

#[test]
fn nodes_streams_doctor_and_the_redis_password_never_shown() {
    let _serial = serial();
    const PASSWORD: &str = "s3cret-pw-17";
    let redis = RedisServer::start_args(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let a = node("a", &url, "2s", "");
    let b = node("b", &url, "2s", "");

    let publisher = ff::publish(&a.rtmp_url("live/list"), 12);
    a.wait_for_log("publish started", Duration::from_secs(10));
    let viewer = ff::spawn_decoder(&b.rtmp_url("live/list"));
    b.wait_for_log("source ready", Duration::from_secs(10));

    // Every node's load record, with a's stream and b's player, from either node.
    let mut nodes = serde_json::Value::Null;
    let listed = eventually(Duration::from_secs(6), || {
        nodes = b.api("GET", "/v3/cluster/nodes", None).json();
        let items = nodes["items"].as_array().cloned().unwrap_or_default();
        let find = |n: &str| items.iter().find(|i| i["name"] == n).cloned();
        matches!((find("a"), find("b")), (Some(na), Some(nb))
            if na["streams"] == 1 && nb["players"] == 1
                && na["outboundBitrate"].as_u64().is_some_and(|r| r > 0)
                && na["lastHeartbeatMs"].as_u64().is_some_and(|t| t > 0)
                && na["advertise"] == format!("rtmp://127.0.0.1:{}", a.rtmp_port))
    });
    assert!(listed, "/v3/cluster/nodes: {nodes}");
    let streams = a.api("GET", "/v3/cluster/streams", None).json();
    assert_eq!(
        streams["items"],
        serde_json::json!([{"stream": "__defaultVhost__/live/list", "node": "a"}]),
        "{streams}"
    );

    // doctor: Redis answers as a master, the advertise address takes connections.
    let out = tests::cli(&a.config_path, &["doctor", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["cluster"]["redisOk"], true, "{report}");
    assert_eq!(report["cluster"]["advertiseConnect"], "ok", "{report}");
    assert!(
        !text.contains(PASSWORD),
        "doctor printed the password: {text}"
    );
    // A wrong password: reported as a problem, still without the password.
    let wrong = a.config_path.with_file_name("wrong.yaml");
    let config = std::fs::read_to_string(&a.config_path).unwrap();
    std::fs::write(&wrong, config.replace(PASSWORD, "not-the-password")).unwrap();
    let out = tests::cli(&wrong, &["doctor", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["cluster"]["redisOk"], false, "{report}");
    assert!(!out.status.success());
    assert!(!text.contains("not-the-password"), "{text}");

    // The password is in no API answer and no log line.
    let global = a.api("GET", "/v3/config/global/get", None).json();
    let shown = global["cluster"]["redis"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(shown.contains("<redacted>"), "{global}");
    let status = a.api("GET", "/v3/cluster/status", None).text();
    let metrics: String = a.metrics().iter().map(|(n, _)| n.clone()).collect();
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    wait_with_timeout(viewer, Duration::from_secs(30), "viewer");
    for (what, text) in [
        ("global config", global.to_string()),
        ("cluster status", status),
        ("metrics", metrics),
        ("a's log", a.log().join("\n")),
        ("b's log", b.log().join("\n")),
    ] {
        assert!(
            !text.contains(PASSWORD),
            "{what} shows the Redis password:\n{text}"
        );
    }
}

#[test]
fn sentinel_failover_with_streams_live() {
    let _serial = serial();
    let mut master = RedisServer::start();
    let replica = RedisServer::start_args(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
    let sentinel = RedisServer::start_sentinel("corestream", master.port, 1000);
    // Sentinel learns of the replica from the master's INFO; wait until it knows it.
    let replica_port = replica.port.to_string();
    assert!(
        eventually(Duration::from_secs(20), || sentinel
            .command(&["SENTINEL", "REPLICAS", "corestream"])
            .contains(&replica_port)),
        "sentinel never saw the replica"
    );
    let url = format!("redis+sentinel://127.0.0.1:{}/corestream/0", sentinel.port);
    let a = node("a", &url, "2s", "");
    let b = node("b", &url, "2s", "");

    let publisher = ff::publish(&a.rtmp_url("live/ha"), 30);
    a.wait_for_log("publish started", Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(3), || owner(&master, "ha")
        .as_deref()
        == Some("a")));
    let viewer = ff::spawn_decoder(&b.rtmp_url("live/ha"));
    b.wait_for_log("source ready", Duration::from_secs(10));

    // The master dies; Sentinel promotes the replica; the nodes follow it.
    master.kill();
    assert!(
        eventually(Duration::from_secs(30), || replica
            .command(&["ROLE"])
            .contains("master")),
        "sentinel never promoted the replica"
    );
    assert!(
        eventually(Duration::from_secs(10), || owner(&replica, "ha").as_deref()
            == Some("a")),
        "the entry is not on the new master"
    );
    a.wait_for_log_count("cluster: redis reachable", 2, Duration::from_secs(10));
    // New streams are claimed on, and found through, the new master.
    let second = ff::publish(&a.rtmp_url("live/ha2"), 8);
    assert!(
        eventually(Duration::from_secs(10), || owner(&replica, "ha2")
            .as_deref()
            == Some("a")),
        "live/ha2 was not registered on the new master"
    );
    let probe = ff::spawn_probe(&b.rtmp_url("live/ha2"));
    let out = wait_with_timeout(probe, Duration::from_secs(40), "probe of ha2 on b");
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("ha2 on b: {e}"));
    assert!(p.video_frames > 50, "{p:?}");
    wait_with_timeout(second, Duration::from_secs(30), "publisher of ha2");

    // The viewer on b went on through the failover.
    wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
    let out = wait_with_timeout(viewer, Duration::from_secs(40), "viewer");
    let frames = decoded_frames(&out).unwrap_or(0);
    assert!(frames >= 600, "viewer decoded {frames} frames");
    assert_eq!(b.count_log("player started"), 2, "{}", b.log().join("\n"));
}

/// Redis commands per live stream, as the engine counts them (`cluster_redis_commands_total`:
/// one per script call) and as Redis does (`total_commands_processed`: a script's inner
/// commands too). Printed for the README; bounded by what the design sends: one renewal per
/// stream per ttl/3, and the node's own heartbeat (two commands per ttl/3).
#[test]
fn redis_commands_per_live_stream() {
    let _serial = serial();
    let redis = RedisServer::start();
    let a = node("a", &redis.url(), "3s", "");
    let streams = 2;
    let publishers: Vec<Child> = (0..streams)
        .map(|i| ff::publish(&a.rtmp_url(&format!("live/load{i}")), 16))
        .collect();
    a.wait_for_log_count("publish started", streams, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let processed = |r: &RedisServer| -> f64 {
        r.command(&["INFO", "stats"])
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (ours0, redis0) = (
        metric(&a, "cluster_redis_commands_total").unwrap_or(0.0),
        processed(&redis),
    );
    let window = Duration::from_secs(9);
    std::thread::sleep(window);
    let (ours1, redis1) = (
        metric(&a, "cluster_redis_commands_total").unwrap_or(0.0),
        processed(&redis),
    );
    let secs = window.as_secs_f64();
    let ticks = secs / 1.0; // ttl 3s: a tick every second
    let per_stream = (ours1 - ours0 - 2.0 * ticks) / streams as f64 / secs;
    let redis_per_stream = (redis1 - redis0 - 2.0 * ticks - 2.0) / streams as f64 / secs;
    eprintln!(
        "redis commands per live stream per second at ttl 3s: engine {per_stream:.2} (script calls), redis {redis_per_stream:.2} (with the scripts' inner commands); node heartbeat 2 per tick"
    );
    // One renewal per stream per tick (1/s at ttl 3s), a tick's jitter either way.
    assert!((0.6..=1.4).contains(&per_stream), "{per_stream}");
    for p in publishers {
        wait_with_timeout(p, Duration::from_secs(30), "publisher");
    }
}

#[test]
fn override_publisher_takes_a_stream_over_across_nodes() {
    let _serial = serial();
    let redis = RedisServer::start();
    let url = redis.url();
    let a = node("a", &url, "2s", "overridePublisher: true\n");
    let b = node("b", &url, "2s", "overridePublisher: true\n");
    let first = ff::publish(&a.rtmp_url("live/take"), 30);
    a.wait_for_log("publish started", Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(3), || owner(&redis, "take")
        .as_deref()
        == Some("a")));
    let started = std::time::Instant::now();
    let second = ff::publish(&b.rtmp_url("live/take"), 8);
    b.wait_for_log("publish started", Duration::from_secs(10));
    b.wait_for_log(
        "cluster: stream taken over from another node",
        Duration::from_secs(5),
    );
    assert_eq!(owner(&redis, "take").as_deref(), Some("b"));
    // a's publisher stops at a's next renewal (within ttl/3 and a tick).
    a.wait_for_log(
        "publisher replaced by one on another cluster node",
        Duration::from_secs(3),
    );
    let out = wait_with_timeout(first, Duration::from_secs(10), "first publisher");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a's publisher ran on"
    );
    drop(out);
    // a's unpublish did not remove b's entry (compare-and-delete).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(owner(&redis, "take").as_deref(), Some("b"));
    let out = wait_with_timeout(second, Duration::from_secs(30), "second publisher");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The publish domain `127.0.0.1` signs URLs (type B); the play domain `localhost` (type A)
/// serves its streams: as in `auth.rs`.
const PUBLISH_DOMAIN: &str = "\
type: publish
name: 127.0.0.1
url_auth:
  type: B
  sign_param: volcSecret
  time_param: volcTime
  primary_key: 123abc
apps:
  - name: live
";

const PLAY_DOMAIN: &str = "\
type: play
name: localhost
publish_domain: 127.0.0.1
url_auth:
  type: A
  sign_param: auth_key
  primary_key: play789
apps:
  - name: live
";

#[test]
fn pulls_between_nodes_are_signed_with_the_origin_domain_rule() {
    let _serial = serial();
    let redis = RedisServer::start();
    let url = redis.url();
    let dir = TempDir::new("cluster-auth");
    std::fs::create_dir_all(dir.path.join("domains")).unwrap();
    std::fs::write(dir.path.join("domains/publish.yaml"), PUBLISH_DOMAIN).unwrap();
    std::fs::write(dir.path.join("domains/play.yaml"), PLAY_DOMAIN).unwrap();
    let domains = format!("domainsDir: {}\n", dir.path.join("domains").display());
    let cli_config = dir.path.join("cli.yaml");
    std::fs::write(&cli_config, "domainsDir: domains\n").unwrap();
    let a = node("a", &url, "3s", &domains);
    let b = node("b", &url, "3s", &domains);

    let publish = tests::sign(&cli_config, &a.rtmp_url("live/s"), &[]);
    let publisher = ff::publish(&publish, 12);
    a.wait_for_log("publish started", Duration::from_secs(10));
    // a checks signatures: an unsigned reader of its play domain is refused there.
    let unsigned = ff::spawn_probe(&format!("rtmp://localhost:{}/live/s", a.rtmp_port));
    let out = wait_with_timeout(unsigned, Duration::from_secs(20), "unsigned reader on a");
    assert!(!out.status.success(), "a served an unsigned reader");
    // A signed viewer on b (play domain): b pulls from a with a URL signed by the publish
    // domain's rule, which a accepts.
    let play = tests::sign(
        &cli_config,
        &format!("rtmp://localhost:{}/live/s", b.rtmp_port),
        &[],
    );
    let probe = ff::spawn_probe(&play);
    let out = wait_with_timeout(probe, Duration::from_secs(40), "signed viewer on b");
    let p = parse_probe(&out).unwrap_or_else(|e| {
        panic!(
            "viewer on b: {e}\nb:\n{}\na:\n{}",
            b.log().join("\n"),
            a.log().join("\n")
        )
    });
    assert!(p.video_frames > 100, "{p:?}");
    b.wait_for_log("source ready", Duration::from_secs(1));
    // The signature never reaches a log line of b or its API.
    assert_eq!(b.count_log("volcSecret"), 0, "{}", b.log().join("\n"));
    let paths = b.api("GET", "/v3/paths/list", None).text();
    assert!(!paths.contains("volcSecret"), "{paths}");
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn a_reader_waiting_on_one_node_gets_a_stream_published_later_on_another() {
    let _serial = serial();
    let redis = RedisServer::start();
    let url = redis.url();
    let a = node("a", &url, "3s", "");
    let b = node("b", &url, "3s", "");
    // The reader comes first and waits (playWaitTimeout: 10s) while the directory has nothing.
    let probe = ff::spawn_probe(&b.rtmp_url("live/later"));
    b.wait_for_log("play requested", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    let lookups_while_waiting = b.api("GET", "/v3/cluster/status", None).json()["lookups"]
        .as_u64()
        .unwrap_or(0);
    // The wait polls every 100 ms; the directory is asked at most every 500 ms.
    assert!(
        lookups_while_waiting <= 6,
        "{lookups_while_waiting} lookups in ~2 s of waiting"
    );
    let publisher = ff::publish(&a.rtmp_url("live/later"), 8);
    let out = wait_with_timeout(probe, Duration::from_secs(40), "waiting reader on b");
    let p =
        parse_probe(&out).unwrap_or_else(|e| panic!("reader on b: {e}\n{}", b.log().join("\n")));
    assert!(p.video_frames > 100, "{p:?}");
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}
