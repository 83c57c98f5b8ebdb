//! End-to-end: the three HLS variants (MediaMTX's `hlsVariant`) from an engine published by
//! ffmpeg, read by ffmpeg and by plain requests (blocking reload, preload hints).

use std::time::{Duration, Instant};

use tests::ff::{self, decoded_frames, parse_probe, wait_with_timeout};
use tests::http::get;
use tests::Engine;

fn tag<'a>(playlist: &'a str, name: &str) -> Option<&'a str> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

/// The `URI="…"` of the last line starting with `prefix`.
fn last_uri<'a>(playlist: &'a str, prefix: &str) -> Option<&'a str> {
    let line = playlist.lines().rev().find(|l| l.starts_with(prefix))?;
    line.split("URI=\"").nth(1)?.split('"').next()
}

/// ffprobe finds H.264 320x240 and AAC in the playlist, and ffmpeg decodes frames from it.
fn assert_decodes(engine: &Engine, path: &str) {
    let url = engine.http_url(path);
    let probe = ff::spawn_probe_with(&url, &["-m3u8_hold_counters", "2"]);
    // Both stop once the playlist stops growing (the publisher left).
    let decoder = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "info"])
        .args(["-m3u8_hold_counters", "2", "-i", &url])
        .args(["-map", "0:v", "-f", "null", "-"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(40),
        "ffprobe",
    ))
    .unwrap();
    assert_eq!(
        (
            p.video_codec.as_str(),
            p.audio_codec.as_str(),
            p.width,
            p.height
        ),
        ("h264", "aac", 320, 240)
    );
    let out = wait_with_timeout(decoder, Duration::from_secs(40), "ffmpeg");
    let frames = decoded_frames(&out).unwrap_or(0);
    assert!(
        frames >= 50,
        "{frames} frames: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn low_latency_hls_parts_blocking_reload_and_preload_hint() {
    let engine = Engine::start("hlsSegmentCount: 7\n");
    let publisher = ff::publish(&engine.rtmp_url("live/ll"), 16);
    engine.wait_for_log("publish started", Duration::from_secs(10));

    // The first answer waits for a whole segment plus PART-HOLD-BACK of parts.
    let first = get(engine.http_port, "/live/ll.m3u8", &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("Cache-Control"), Some("max-age=1"));
    let p = first.text();
    assert!(p.contains("#EXT-X-VERSION:9\n"), "{p}");
    assert_eq!(tag(&p, "#EXT-X-TARGETDURATION"), Some("1"), "{p}");
    assert_eq!(
        tag(&p, "#EXT-X-SERVER-CONTROL"),
        Some("CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600"),
        "{p}"
    );
    assert_eq!(tag(&p, "#EXT-X-PART-INF"), Some("PART-TARGET=0.200"));
    assert!(p.contains("#EXTINF:"), "a whole segment: {p}");
    let parts = p.lines().filter(|l| l.starts_with("#EXT-X-PART:")).count();
    assert!(parts >= 3, "{p}");

    let init = last_uri(&p, "#EXT-X-MAP").unwrap();
    let init = get(engine.http_port, &format!("/live/{init}"), &[]);
    assert_eq!(init.status, 200);
    assert_eq!(init.header("Content-Type"), Some("video/mp4"));
    assert!(init.header("Cache-Control").unwrap().contains("immutable"));
    assert_eq!(&init.body[4..8], b"ftyp");

    // A blocking reload for the next segment is held until it exists, then answered with it.
    let seq: u64 = tag(&p, "#EXT-X-MEDIA-SEQUENCE").unwrap().parse().unwrap();
    let segments = p.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
    let next = seq + segments + 1;
    let asked = Instant::now();
    let blocked = get(
        engine.http_port,
        &format!("/live/ll.m3u8?_HLS_msn={next}&_HLS_part=0"),
        &[],
    );
    let waited = asked.elapsed();
    assert_eq!(blocked.status, 200);
    assert_eq!(blocked.header("Cache-Control"), Some("no-cache"));
    let b = blocked.text();
    assert!(
        waited > Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let last_seq: u64 = tag(&b, "#EXT-X-MEDIA-SEQUENCE")
        .unwrap()
        .parse::<u64>()
        .unwrap()
        + b.lines().filter(|l| l.starts_with("#EXTINF")).count() as u64;
    assert_eq!(last_seq, next, "segment {next} is being built: {b}");
    // Too far ahead: 400.
    let far = get(
        engine.http_port,
        &format!("/live/ll.m3u8?_HLS_msn={}", next + 10),
        &[],
    );
    assert_eq!(far.status, 400);

    // The preload hint names the next part: its request is held until the part exists.
    let hint = last_uri(&b, "#EXT-X-PRELOAD-HINT").unwrap().to_owned();
    let asked = Instant::now();
    let part = get(engine.http_port, &format!("/live/{hint}"), &[]);
    assert_eq!(part.status, 200, "{hint}");
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(&part.body[4..8], b"moof");
    // Listed parts and segments are served.
    let listed = last_uri(&b, "#EXT-X-PART:").unwrap();
    assert_eq!(
        get(engine.http_port, &format!("/live/{listed}"), &[]).status,
        200
    );

    assert_decodes(&engine, "live/ll.m3u8");
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn fmp4_and_mpegts_variants_decode() {
    for (variant, media, pages) in [("fmp4", ".mp4", true), ("mpegts", ".ts", false)] {
        let engine = Engine::start(&format!(
            "hlsVariant: {variant}\nhttpPlayerPages: {pages}\n"
        ));
        let publisher = ff::publish(&engine.rtmp_url("live/v"), 12);
        engine.wait_for_log("publish started", Duration::from_secs(10));
        let asked = Instant::now();
        let first = get(engine.http_port, "/live/v.m3u8", &[]);
        assert_eq!(first.status, 200, "{}", first.text());
        let p = first.text();
        // The first answer waits for three target durations of segments.
        let listed: f64 = p
            .lines()
            .filter_map(|l| l.strip_prefix("#EXTINF:"))
            .map(|d| d.trim_end_matches(',').parse::<f64>().unwrap())
            .sum();
        assert!(
            listed >= 3.0,
            "{variant}: {listed} s listed after {:?}: {p}",
            asked.elapsed()
        );
        assert_eq!(tag(&p, "#EXT-X-TARGETDURATION"), Some("1"), "{p}");
        assert!(!p.contains("#EXT-X-PART"), "{p}");
        // A media URI carries the viewer's session in its query.
        let uri = p
            .lines()
            .rev()
            .find(|l| l.split('?').next().unwrap().ends_with(media))
            .unwrap();
        let seg = get(engine.http_port, &format!("/live/{uri}"), &[]);
        assert_eq!(seg.status, 200, "{variant}");
        // The player pages follow httpPlayerPages.
        let status = if pages { 200 } else { 404 };
        for path in ["/live/v", "/", "/_player/hls.min.js"] {
            assert_eq!(get(engine.http_port, path, &[]).status, status, "{path}");
        }
        assert_decodes(&engine, "live/v.m3u8");
        wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    }
}
