//! End-to-end: the real binary on two data cores, published by ffmpeg, played by ffprobe/ffmpeg.

use std::time::Duration;

use tests::ff::{self, decoded_frames, parse_probe, wait_with_timeout};
use tests::Engine;

const SECONDS: u32 = 6;
/// testsrc2 at 25 fps for SECONDS.
const FRAMES: u64 = 25 * SECONDS as u64;

#[test]
fn players_on_both_cores_receive_every_frame() {
    let engine = Engine::start("playWaitTimeout: 20s\n");
    let url = engine.rtmp_url("live/relay");

    // Players connect first and wait for the stream, so each must receive it from its very first
    // frame. SO_REUSEPORT spreads them over the cores: keep adding players until both cores hold
    // at least one, so whichever core the publisher lands on, a player is remote from it.
    let (probes, decoders) = engine.players_on_both_cores(&url);
    let players = probes.len() + decoders.len();
    // Let every player reach `play` before the publisher starts.
    engine.wait_for_log_count("play requested", players, Duration::from_secs(10));

    let publisher = ff::publish(&url, SECONDS);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    engine.wait_for_log_count("player started", players, Duration::from_secs(10));
    assert!(
        engine.count_log("via=\"remote\"") >= 1,
        "no player was served across cores"
    );
    assert!(
        engine.count_log("via=\"local\"") >= 1,
        "no player was served on the publisher's core"
    );

    let out = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert!(
        out.status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    for probe in probes {
        let out = wait_with_timeout(probe, Duration::from_secs(30), "ffprobe");
        let p = parse_probe(&out).unwrap();
        assert_eq!(p.video_codec, "h264");
        assert_eq!(p.audio_codec, "aac");
        assert_eq!((p.width, p.height), (320, 240));
        assert_eq!(p.video_frames, FRAMES, "ffprobe counted {p:?}");
    }
    for decoder in decoders {
        let out = wait_with_timeout(decoder, Duration::from_secs(30), "ffmpeg decoder");
        assert_eq!(
            decoded_frames(&out),
            Some(FRAMES),
            "ffmpeg decode: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The publisher's core forwarded frames to the other core, which fanned them out.
    let mut engine = engine;
    let (status, _) = engine.terminate();
    assert!(status.success());
    let stats: Vec<String> = engine
        .log()
        .into_iter()
        .filter(|l| l.contains("core stopped"))
        .collect();
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert!(
        stats
            .iter()
            .any(|l| l.contains("frames_forwarded=") && !l.contains("frames_forwarded=0 ")),
        "{stats:?}"
    );
    assert!(
        stats
            .iter()
            .any(|l| l.contains("frames_from_remote=") && !l.contains("frames_from_remote=0 ")),
        "{stats:?}"
    );
}

#[test]
fn late_player_starts_on_a_keyframe_with_codec_headers() {
    let engine = Engine::start("");
    let url = engine.rtmp_url("live/late");
    let publisher = ff::publish(&url, 8);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(2500));
    let probe = ff::spawn_probe(&url);
    let out = wait_with_timeout(probe, Duration::from_secs(30), "ffprobe");
    let p = parse_probe(&out).unwrap();
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert_eq!((p.width, p.height), (320, 240));
    // Joined ~2.5 s into 8 s: the GOP cache gives it the current GOP (1 s), so it sees between
    // the rest of the stream and one GOP more; never a partial GOP it cannot decode.
    assert!(
        (100..=175).contains(&p.video_frames),
        "late player decoded {} frames",
        p.video_frames
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("non-existing PPS"),
        "decoder started mid-GOP: {stderr}"
    );
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn second_publisher_is_refused_and_first_keeps_flowing() {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let url = engine.rtmp_url("live/dup");
    let probe = ff::spawn_probe(&url);
    let first = ff::publish(&url, SECONDS);
    engine.wait_for_log("publish started", Duration::from_secs(10));

    let second = ff::publish(&url, SECONDS);
    let out = wait_with_timeout(second, Duration::from_secs(15), "second publisher");
    assert!(!out.status.success(), "second publisher was not refused");
    engine.wait_for_log(
        "publish refused: stream is already being published",
        Duration::from_secs(5),
    );

    let out = wait_with_timeout(first, Duration::from_secs(30), "first publisher");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(30),
        "ffprobe",
    ))
    .unwrap();
    assert_eq!(p.video_frames, FRAMES);
}

#[test]
fn second_publisher_replaces_the_first_when_configured() {
    let engine = Engine::start("overridePublisher: true\n");
    let url = engine.rtmp_url("live/replace");
    let first = ff::publish(&url, 20);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let second = ff::publish(&url, 3);
    engine.wait_for_log_count("publish started", 2, Duration::from_secs(10));
    engine.wait_for_log("notice=Replaced", Duration::from_secs(5));
    let out = wait_with_timeout(first, Duration::from_secs(15), "replaced publisher");
    assert!(
        !out.status.success(),
        "the replaced publisher should have been cut off"
    );
    let out = wait_with_timeout(second, Duration::from_secs(30), "second publisher");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_stream_is_not_found_after_the_wait() {
    let engine = Engine::start("playWaitTimeout: 1s\n");
    let started = std::time::Instant::now();
    let probe = ff::spawn_probe(&engine.rtmp_url("live/nothing"));
    let out = wait_with_timeout(probe, Duration::from_secs(15), "ffprobe");
    assert!(!out.status.success());
    assert!(started.elapsed() >= Duration::from_millis(900));
    engine.wait_for_log("play refused: stream not found", Duration::from_secs(2));
}

#[test]
fn sigterm_stops_within_two_seconds_with_clients_connected() {
    let mut engine = Engine::start("");
    let url = engine.rtmp_url("live/stop");
    let publisher = ff::publish(&url, 30);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let player = ff::spawn_decoder(&url);
    engine.wait_for_log("player started", Duration::from_secs(10));
    let (status, took) = engine.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    wait_with_timeout(publisher, Duration::from_secs(10), "publisher");
    wait_with_timeout(player, Duration::from_secs(10), "player");
}

#[test]
fn a_waiting_player_that_leaves_is_let_go_at_once() {
    let engine = Engine::start("playWaitTimeout: 60s\n");
    let mut probe = ff::spawn_probe(&engine.rtmp_url("live/never"));
    engine.wait_for_log("play requested", Duration::from_secs(10));
    probe.kill().unwrap();
    probe.wait().unwrap();
    // Not 60 s later: the wait notices the client hung up.
    engine.wait_for_log("play refused: stream not found", Duration::from_secs(2));
}
