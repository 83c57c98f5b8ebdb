//! End-to-end: `corestream-bench` against the real engine binary (built by
//! `cargo test --workspace`, found like the other end-to-end tests find it).
//!
//! Neither the bench nor this test ever sends SIGTERM: a scenario whose bench or engine died of one
//! fails saying so (on a shared machine, someone's `pkill corestream`), rather than as a bench bug.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Engine, TempDir};

const BENCH: &str = env!("CARGO_BIN_EXE_corestream-bench");

/// Runs the bench with `args`, killing it if it outlives `limit`.
fn bench(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(BENCH)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start corestream-bench");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for the bench").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("corestream-bench ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("bench output")
}

/// A scenario cut short by a signal this test did not send.
struct Interrupted(String);

/// `Err(Interrupted)` if `out` (or the engine) was stopped from outside.
fn check_interrupted(out: &Output, engine: &Engine, what: &str) -> Result<(), Interrupted> {
    if out.status.signal() == Some(15) {
        return Err(Interrupted(format!("{what} got SIGTERM")));
    }
    if let Some(line) = engine
        .log()
        .into_iter()
        .find(|l| l.contains("stopping signal="))
    {
        return Err(Interrupted(format!("the engine was stopped: {line}")));
    }
    Ok(())
}

/// Runs `scenario`; one stopped from outside fails with the reason.
fn judged(name: &str, scenario: impl Fn() -> Result<(), Interrupted>) {
    if let Err(Interrupted(why)) = scenario() {
        panic!("{name}: interrupted from outside ({why})");
    }
}

fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("the bench wrote its JSON report");
    serde_json::from_str(&text).expect("the JSON report parses")
}

fn num(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} missing in the report: {v:#}"))
}

fn assert_clean_players(r: &Value, players: f64, what: &str) {
    assert_eq!(num(r, "players.total"), players, "{what}");
    assert_eq!(num(r, "players.started"), players, "{what}: {r:#}");
    assert_eq!(num(r, "players.with_frames"), players, "{what}: {r:#}");
    assert_eq!(num(r, "players.failed"), 0.0, "{what}: {r:#}");
    assert_eq!(num(r, "players.ended_early"), 0.0, "{what}: {r:#}");
    assert_eq!(num(r, "players.frames_lost"), 0.0, "{what}: {r:#}");
    assert_eq!(num(r, "players.frames_out_of_order"), 0.0, "{what}: {r:#}");
    assert_eq!(num(r, "players.frames_foreign"), 0.0, "{what}: {r:#}");
    assert_eq!(num(r, "players.frames_unstamped"), 0.0, "{what}: {r:#}");
    // 25 fps for at least a second and a half of each player's ~2.5 s.
    assert!(
        num(r, "players.video_frames") >= players * 35.0,
        "{what}: {r:#}"
    );
    // Loopback latency: above zero, well under a second.
    let p50 = num(r, "players.latency_ms.p50");
    let max = num(r, "players.latency_ms.max");
    assert!(
        p50 > 0.0 && max < 1000.0,
        "{what}: latency {p50} .. {max} ms"
    );
    assert!(num(r, "players.latency_ms.count") > 0.0, "{what}");
    for key in ["connect_ms", "first_frame_ms", "first_keyframe_ms"] {
        let p = num(r, &format!("players.{key}.max"));
        assert!(p > 0.0 && p < 2000.0, "{what}: {key} max {p} ms");
    }
    let kbps = num(r, "players.bitrate_kbps.p50");
    assert!(kbps > 200.0, "{what}: player bitrate {kbps} kbit/s");
}

#[test]
fn run_against_the_engine_delivers_every_frame() {
    judged("run", run_scenario);
}

fn run_scenario() -> Result<(), Interrupted> {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let dir = TempDir::new("bench-run");
    let json = dir.path.join("report.json");
    let url = engine.rtmp_url("live/bench");
    let pid = engine.pid().to_string();
    let out = bench(
        &[
            "run",
            "--url",
            &url,
            "--streams",
            "2",
            "--players",
            "3",
            "--duration",
            "3",
            "--bitrate",
            "1M",
            "--gop",
            "1s",
            "--server-pid",
            &pid,
            "--json",
            json.to_str().expect("utf-8 temp path"),
        ],
        Duration::from_secs(20),
    );
    check_interrupted(&out, &engine, "the bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    // The final table and the progress line.
    assert!(stdout.contains("players: 6/6 started"), "{stdout}");
    assert!(stdout.contains("latency"), "{stdout}");
    assert!(stderr.contains("playing 6/6"), "{stderr}");

    let r = read_report(&json);
    assert_eq!(num(&r, "publishers.started"), 2.0, "{r:#}");
    assert_eq!(num(&r, "publishers.failed"), 0.0, "{r:#}");
    assert_clean_players(&r, 6.0, "run");
    // The server was sampled.
    assert!(num(&r, "server.cpu_s") >= 0.0);
    assert!(num(&r, "server.rss_max_mb") > 1.0, "{r:#}");
    // The engine saw two publishers and six players.
    assert_eq!(engine.count_log("publish started"), 2);
    Ok(())
}

#[test]
fn separate_publish_and_play_processes_share_the_stamps() {
    judged("publish + play", split_scenario);
}

fn split_scenario() -> Result<(), Interrupted> {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let dir = TempDir::new("bench-split");
    let json = dir.path.join("play.json");
    let url = engine.rtmp_url("live/split");
    let publisher = Command::new(BENCH)
        .args([
            "publish",
            "--url",
            &url,
            "--duration",
            "5",
            "--bitrate",
            "250k",
            "-q",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the publisher");
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let out = bench(
        &[
            "play",
            "--url",
            &url,
            "--players",
            "2",
            "--duration",
            "3",
            "-q",
            "--json",
            json.to_str().expect("utf-8 temp path"),
        ],
        Duration::from_secs(20),
    );
    let pub_out = publisher.wait_with_output().expect("publisher output");
    check_interrupted(&out, &engine, "the player bench")?;
    check_interrupted(&pub_out, &engine, "the publisher bench")?;
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        pub_out.status.success(),
        "publisher: {:?}\n{}\n{}",
        pub_out.status,
        String::from_utf8_lossy(&pub_out.stdout),
        String::from_utf8_lossy(&pub_out.stderr)
    );
    assert!(String::from_utf8_lossy(&pub_out.stdout).contains("publishers: 1 started"));
    let r = read_report(&json);
    assert_clean_players(&r, 2.0, "play");
    Ok(())
}

#[test]
fn a_refused_play_is_reported_and_fails_the_run() {
    judged("refused play", refused_scenario);
}

fn refused_scenario() -> Result<(), Interrupted> {
    // Nobody publishes: the engine answers StreamNotFound after playWaitTimeout.
    let engine = Engine::start("playWaitTimeout: 500ms\n");
    let url = engine.rtmp_url("live/nobody");
    let out = bench(
        &[
            "play",
            "--url",
            &url,
            "--players",
            "2",
            "--duration",
            "2",
            "-q",
        ],
        Duration::from_secs(20),
    );
    check_interrupted(&out, &engine, "the bench")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("players: 0/2 started"), "{stdout}");
    assert!(stdout.contains("StreamNotFound"), "{stdout}");
    Ok(())
}

#[test]
fn ffprobe_recognises_the_synthetic_stream() {
    judged("ffprobe", probe_scenario);
}

fn probe_scenario() -> Result<(), Interrupted> {
    let engine = Engine::start("");
    let url = engine.rtmp_url("live/probe");
    let mut publisher = Command::new(BENCH)
        .args(["publish", "--url", &url, "--duration", "4", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the publisher");
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let probe = tests::ff::wait_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "quiet", "-rw_timeout", "10000000"])
            .args([
                "-show_entries",
                "stream=codec_name,profile,width,height,channels",
            ])
            .args(["-of", "compact", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffprobe (tests/run.sh installs ffmpeg)"),
        Duration::from_secs(20),
        "ffprobe",
    );
    let status = publisher.wait().expect("publisher exit");
    if status.signal() == Some(15) {
        return Err(Interrupted("the publisher got SIGTERM".into()));
    }
    let text = String::from_utf8_lossy(&probe.stdout);
    assert!(
        text.contains("codec_name=h264|profile=Constrained Baseline|width=1280|height=720"),
        "{text}"
    );
    assert!(text.contains("codec_name=aac|profile=LC"), "{text}");
    assert!(text.contains("channels=2"), "{text}");
    Ok(())
}
