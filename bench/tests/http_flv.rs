//! `corestream-bench` playing over HTTP-FLV from the real engine, with its own RTMP publisher:
//! every player parses the FLV body, reads the latency stamps and misses nothing.

use std::process::{Command, Stdio};

use tests::{Engine, TempDir};

const BENCH: &str = env!("CARGO_BIN_EXE_corestream-bench");

#[test]
fn http_flv_players_parse_the_stream() {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let dir = TempDir::new("bench-http");
    let json = dir.path.join("report.json");
    let out = Command::new(BENCH)
        .args(["run", "--url", &engine.rtmp_url("live/s")])
        .args(["--play-url", &engine.http_url("live/s.flv")])
        .args([
            "--streams",
            "1",
            "--players",
            "2",
            "--duration",
            "3",
            "--bitrate",
            "500k",
        ])
        .args(["--gop", "1s", "-q", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run the bench");
    engine.assert_not_stopped_by_someone_else();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    let p = &r["players"];
    assert_eq!(p["started"], 2, "{r:#}");
    assert_eq!(p["with_frames"], 2, "{r:#}");
    assert_eq!(p["frames_lost"], 0, "{r:#}");
    assert_eq!(p["frames_unstamped"], 0, "{r:#}");
    assert!(p["video_frames"].as_u64().unwrap_or(0) >= 2 * 40, "{r:#}");
    let latency_max = p["latency_ms"]["max"].as_f64().unwrap_or(-1.0);
    assert!(latency_max > 0.0 && latency_max < 1000.0, "{r:#}");
    engine.wait_for_log("flv player started", std::time::Duration::from_secs(1));
}

#[test]
fn a_stream_the_engine_does_not_have_is_refused_with_its_status() {
    let engine = Engine::start("playWaitTimeout: 1s\n");
    let out = Command::new(BENCH)
        .args(["play", "--url", &engine.http_url("live/x.flv")])
        .args(["--players", "1", "--duration", "3", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("run the bench");
    engine.assert_not_stopped_by_someone_else();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("server answered 404 Not Found"), "{stdout}");
}
