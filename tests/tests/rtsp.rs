//! RTSP sources against a server nobody here wrote: GStreamer's rtsp-server (driven by
//! `tests/scripts/rtsp_server.py` with the system python3) serving an H.264 test pattern and an
//! AAC tone, with and without Digest auth. The engine pulls it over interleaved TCP and over UDP
//! (`rtspTransport: udp`, and `automatic`, which falls back to TCP when UDP is refused); ffprobe
//! decodes the relayed stream over RTMP, HTTP-FLV and HLS; camera failures (wrong path, wrong
//! password, nothing listening) show in `/v3/paths/get` in the server's or the system's words.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::{free_port, Engine};

/// A running GStreamer RTSP server; killed when dropped.
struct GstServer {
    child: Child,
    port: u16,
}

impl GstServer {
    /// Serves `/cam` on a free port, behind Digest auth when `credentials` (`user:pass`) is given.
    fn start(credentials: Option<&str>) -> GstServer {
        GstServer::start_with(credentials, false)
    }

    /// `tcp_only`: the server refuses RTP over UDP (SETUP answers 461 Unsupported Transport).
    fn start_with(credentials: Option<&str>, tcp_only: bool) -> GstServer {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rtsp_server.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg(port.to_string()).arg("/cam");
        cmd.args(credentials);
        if tcp_only {
            cmd.env("RTSP_TCP_ONLY", "1");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 runs (tests/run.sh installs GStreamer's RTSP server)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait for the rtsp server");
            panic!(
                "GStreamer's RTSP server did not start: run tests/run.sh, which installs \
                 gir1.2-gst-rtsp-server-1.0, python3-gst-1.0 and the GStreamer plugins \
                 (stdout {line:?}, stderr {})",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        GstServer { child, port }
    }

    fn url(&self, credentials: &str, mount: &str) -> String {
        format!("rtsp://{credentials}127.0.0.1:{}/{mount}", self.port)
    }
}

impl Drop for GstServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GStreamer encodes in real time: two servers under test at once on a small machine starve each
/// other (DESCRIBE then answers 503), so these tests take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads 3 s of `url` with ffprobe: H.264 320x240 with AAC, at 25 fps.
fn assert_relays(url: &str) {
    assert_relays_with(url, &[]);
}

fn assert_relays_with(url: &str, options: &[&str]) {
    let mut args = vec!["-read_intervals", "%+3"];
    args.extend_from_slice(options);
    let probe = ff::spawn_probe_with(url, &args);
    let out = wait_with_timeout(probe, Duration::from_secs(60), url);
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(p.video_codec, "h264", "{url}: {p:?}");
    assert_eq!((p.width, p.height), (320, 240), "{url}: {p:?}");
    assert_eq!(p.audio_codec, "aac", "{url}: {p:?}");
    assert!(p.video_frames >= 50, "{url}: {p:?}");
}

#[test]
fn pulls_gstreamer_and_relays_over_rtmp_and_http_flv() {
    let _serial = serial();
    let gst = GstServer::start(None);
    let closed = free_port();
    let engine = Engine::start(&format!(
        "hlsSegmentDuration: 1s\nhlsAlwaysRemux: true\npaths:\n  live/cam:\n    source: {}\n    rtspTransport: tcp\n  live/missing:\n    source: {}\n  live/dead:\n    source: rtsp://127.0.0.1:{closed}/cam\n",
        gst.url("", "cam"),
        gst.url("", "nope"),
    ));
    let item = engine.wait_source_state("live/cam", "ready", Duration::from_secs(20));
    assert_eq!(item["source"]["type"], "rtspSource", "{item}");
    assert_relays(&engine.rtmp_url("live/cam"));
    assert_relays(&engine.http_url("live/cam.flv"));
    assert_relays_with(
        &engine.http_url("live/cam.m3u8"),
        &["-m3u8_hold_counters", "2"],
    );

    let missing = engine.wait_source_state("live/missing", "error", Duration::from_secs(20));
    assert_eq!(
        missing["sourceError"], "DESCRIBE: rtsp status 404 Not Found",
        "{missing}"
    );
    let dead = engine.wait_source_state("live/dead", "error", Duration::from_secs(20));
    let error = dead["sourceError"].as_str().unwrap_or_default();
    assert!(error.contains("connection refused"), "{dead}");
}

#[test]
fn digest_auth_right_and_wrong_credentials() {
    let _serial = serial();
    let gst = GstServer::start(Some("cam:s3cret"));
    let engine = Engine::start(&format!(
        "paths:\n  live/good:\n    source: {}\n    sourceOnDemand: true\n  live/bad:\n    source: {}\n",
        gst.url("cam:s3cret@", "cam"),
        gst.url("cam:wrong@", "cam"),
    ));
    let bad = engine.wait_source_state("live/bad", "error", Duration::from_secs(20));
    let error = bad["sourceError"].as_str().unwrap_or_default();
    assert!(error.contains("401 Unauthorized"), "{bad}");
    // The API never shows the password.
    assert_eq!(
        bad["sourceUrl"],
        format!("rtsp://127.0.0.1:{}/cam", gst.port),
        "{bad}"
    );
    // On demand: the first reader starts the pull and gets the stream.
    assert_relays(&engine.rtmp_url("live/good"));
    let good = engine.path_item("live/good");
    assert_eq!(good["sourceOnDemand"], true, "{good}");
}

#[test]
fn pulls_over_udp_and_automatic() {
    let _serial = serial();
    let gst = GstServer::start(None);
    let engine = Engine::start(&format!(
        "paths:\n  live/udp:\n    source: {}\n    rtspTransport: udp\n  live/auto:\n    source: {}\n    rtspTransport: automatic\n",
        gst.url("", "cam"),
        gst.url("", "cam"),
    ));
    let item = engine.wait_source_state("live/udp", "ready", Duration::from_secs(20));
    assert_eq!(item["source"]["type"], "rtspSource", "{item}");
    // `udp` never falls back: what plays came over UDP.
    assert_relays(&engine.rtmp_url("live/udp"));
    engine.wait_source_state("live/auto", "ready", Duration::from_secs(20));
    assert_relays(&engine.rtmp_url("live/auto"));
    // Both played over UDP: `automatic` had no reason to fall back.
    let log = engine.log();
    for path in ["live/udp", "live/auto"] {
        assert!(
            log.iter().any(|l| l.contains("rtsp source playing")
                && l.contains(&format!("stream={path} "))
                && l.ends_with("udp=true")),
            "{path} never played over udp: {log:#?}"
        );
    }
    assert!(!log.iter().any(|l| l.contains("trying tcp")), "{log:#?}");
}

#[test]
fn automatic_falls_back_to_tcp_when_udp_is_refused() {
    let _serial = serial();
    // One server per path: a client whose UDP SETUP is refused can leave the server's shared
    // media unprepared for a moment (DESCRIBE then answers 503), which would race the other path.
    let gst = GstServer::start_with(None, true);
    let gst_udp = GstServer::start_with(None, true);
    let engine = Engine::start(&format!(
        "paths:\n  live/auto:\n    source: {}\n  live/udp:\n    source: {}\n    rtspTransport: udp\n",
        gst.url("", "cam"),
        gst_udp.url("", "cam"),
    ));
    engine.wait_source_state("live/auto", "ready", Duration::from_secs(20));
    assert_relays(&engine.rtmp_url("live/auto"));
    let log = engine.log();
    assert!(
        log.iter().any(
            |l| l.contains("rtsp over udp failed (SETUP: rtsp status 461")
                && l.contains("stream=live/auto")
        ),
        "{log:#?}"
    );
    // `udp` only: the refusal is the source's error.
    let udp = engine.wait_source_state("live/udp", "error", Duration::from_secs(20));
    let error = udp["sourceError"].as_str().unwrap_or_default();
    assert!(error.contains("SETUP: rtsp status 461"), "{udp}");
}
