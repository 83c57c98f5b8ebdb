//! Players over a network link rather than the loopback: the engine in a network namespace of the
//! test's own, publisher and players on the host, a veth pair between them (MTU 1500).
//!
//! The loopback takes a player's start-up burst (a GOP) or an HLS segment in one `sendmsg`; a
//! 1500-byte link does not, so the engine's path for full sockets runs for every player that
//! joins and every segment, and a player that is stuck there gets its start-up burst (or the
//! first part of a segment) and nothing after it.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tests::ff::{self, decoded_frames, wait_with_timeout};
use tests::netns::{Netns, NsEngine};
use tests::TempDir;

/// Bytes `child` writes to its stdout within `window`; then it is killed.
fn bytes_within(mut child: Child, window: Duration) -> usize {
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut total = 0;
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let deadline = Instant::now() + window;
    while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    reader.join().expect("reader thread")
}

#[test]
fn rtmp_http_flv_and_hls_players_over_a_1500_byte_link_play_to_the_end() {
    let ns = Netns::create("cslink");
    let link = ns.link_to_host(214);
    let dir = TempDir::new("link");
    let ip = &link.ns_ip;
    // A fresh namespace: the usual ports are free in it. writeMergeLatency is the default.
    let engine = NsEngine::start(
        &ns,
        &dir.path,
        &format!(
            "cores: 1\nlogLevel: debug\nrtmpAddress: {ip}:1935\nhttpAddress: {ip}:8080\napi: false\nmetrics: false\n"
        ),
    );
    let rtmp = format!("rtmp://{ip}:1935/live/s");
    let flv = format!("http://{ip}:8080/live/s.flv");
    // 2 Mbit/s: a GOP is a start-up burst of a few hundred KiB, more than a fresh socket takes.
    let mut publisher = ff::publish_with(&rtmp, 14, &["-b:v", "2M"]);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));

    const WINDOW: Duration = Duration::from_secs(6);
    let decoder = ff::spawn_decoder(&rtmp);
    let rtmpdump = Command::new("rtmpdump")
        .args(["-q", "-r", &rtmp, "-o", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtmpdump is installed (tests/run.sh installs it)");
    let curl = Command::new("curl")
        .args(["-s", "--max-time", "30", &flv])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl is installed");
    let (rtmp_bytes, flv_bytes) = std::thread::scope(|s| {
        let r = s.spawn(|| bytes_within(rtmpdump, WINDOW));
        let f = s.spawn(|| bytes_within(curl, WINDOW));
        (r.join().unwrap(), f.join().unwrap())
    });
    // HLS segments of 2 Mbit/s are larger than a fresh socket takes, as the bursts are: 4 s of
    // the live playlist, decoded.
    let hls = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
        .args([
            "-rw_timeout",
            "10000000",
            "-i",
            &format!("http://{ip}:8080/live/s.m3u8"),
        ])
        .args(["-t", "4", "-map", "0:v", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed (tests/run.sh installs it)");
    let hls = wait_with_timeout(hls, Duration::from_secs(40), "ffmpeg decoding HLS");
    // The decoder plays until the publisher ends (about 10 s of the 14 are left).
    let decoded = wait_with_timeout(
        decoder,
        Duration::from_secs(40),
        "ffmpeg decoding over RTMP",
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    let log = engine.log_text();

    // 2 Mbit/s for 6 s is 1.5 MB; a player stuck after its start-up burst has ~100 KB.
    let least = 600 * 1024;
    assert!(
        rtmp_bytes >= least,
        "rtmpdump got {rtmp_bytes} bytes in {WINDOW:?} over the link\n{log}"
    );
    assert!(
        flv_bytes >= least,
        "curl (HTTP-FLV) got {flv_bytes} bytes in {WINDOW:?} over the link\n{log}"
    );
    let hls_frames = decoded_frames(&hls).unwrap_or(0);
    assert!(
        hls_frames >= 75,
        "ffmpeg decoded {hls_frames} frames of 4 s of HLS at 25 fps over the link:\n{}\n{log}",
        String::from_utf8_lossy(&hls.stderr)
    );
    let frames = decoded_frames(&decoded).unwrap_or(0);
    assert!(
        frames >= 150,
        "ffmpeg decoded {frames} frames at 25 fps over the link in ~10 s:\n{}\n{log}",
        String::from_utf8_lossy(&decoded.stderr)
    );
}
