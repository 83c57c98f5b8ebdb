//! End-to-end: Corestream as a drop-in for MediaMTX. The stock `mediamtx.yml` of MediaMTX v1.20.1
//! (the latest release) and of v1.16.1 (the last with YAML 1.1 `yes`/`no` booleans), vendored
//! unmodified under `tests/testdata/mediamtx/`, are checked and run as they are; only the
//! listen addresses are moved to free ports, through MediaMTX's own `MTX_*` overrides. The file
//! of rtsp-simple-server v0.20.0 is checked for MediaMTX's deprecated keys.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tests::ff::{self, wait_with_timeout};
use tests::http::get;
use tests::{engine_binary, Engine, TempDir};

const FILES: [&str; 2] = ["mediamtx-v1.20.1.yml", "mediamtx-v1.16.1.yml"];

fn stock(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/mediamtx")
        .join(name)
}

fn check_config(file: &Path) -> std::process::Output {
    Command::new(engine_binary())
        .args(["check-config", "--config"])
        .arg(file)
        .output()
        .expect("run corestream")
}

#[test]
fn check_config_accepts_stock_files_and_reports_what_is_not_served() {
    for name in FILES {
        let out = check_config(&stock(name));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in [
            ": ok",
            "applied: ",
            "rtmpAddress",
            "hlsAddress",
            "authInternalUsers",
            "accepted, not served:",
            "RTSP server: ASKED FOR by rtsp;",
            "WebRTC server: ASKED FOR by webrtc",
            "SRT server: ASKED FOR by srt;",
            "hlsVariant",
            "pathDefaults.recordPath",
            "playback server: not asked for",
            "refused: none",
        ] {
            assert!(
                stdout.contains(needle),
                "{name}: no `{needle}` in:\n{stdout}"
            );
        }
    }
}

/// rtsp-simple-server v0.20.0 (MediaMTX's former name), whose file is made of keys MediaMTX has
/// since deprecated: converted as MediaMTX converts them.
#[test]
fn check_config_converts_an_old_files_deprecated_keys() {
    let out = check_config(&stock("rtsp-simple-server-v0.20.0.yml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "rtmpDisable -> rtmp",
        "hlsDisable -> hls",
        "rtspDisable -> rtsp",
        "protocols -> rtspTransports",
        "paths.all.disablePublisherOverride -> overridePublisher",
        "paths.all.sourceProtocol -> rtspTransport",
        "readIPs -> authInternalUsers",
        "RTSP server: ASKED FOR by rtsp;",
    ] {
        assert!(stdout.contains(needle), "no `{needle}` in:\n{stdout}");
    }
}

#[test]
fn a_typo_in_a_stock_file_is_refused_with_its_position() {
    let dir = TempDir::new("mediamtx-typo");
    let text = std::fs::read_to_string(stock("mediamtx-v1.20.1.yml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("rtmpAddress:"))
        .unwrap()
        + 1;
    let typo = dir.path.join("mediamtx.yml");
    std::fs::write(&typo, text.replacen("\nrtmpAddress:", "\nrtmpAdress:", 1)).unwrap();
    let out = check_config(&typo);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:{line}:1: unknown field `rtmpAdress`",
            typo.display()
        )),
        "{stderr}"
    );

    // A typo inside a path entry is refused too, and a value MediaMTX would refuse.
    let in_path = text.replacen("\n  maxReaders: 0", "\n  maxReader: 0", 1);
    std::fs::write(&typo, in_path).unwrap();
    let stderr = String::from_utf8_lossy(&check_config(&typo).stderr).into_owned();
    assert!(stderr.contains("unknown field `maxReader`"), "{stderr}");
    let bad_bool = text.replacen("\nrtsp: true", "\nrtsp: maybe", 1);
    std::fs::write(&typo, bad_bool).unwrap();
    let stderr = String::from_utf8_lossy(&check_config(&typo).stderr).into_owned();
    assert!(stderr.contains("`maybe` is not a boolean"), "{stderr}");
}

/// ffmpeg publishes to rtmp://…/mystream and ffprobe reads MediaMTX's
/// http://…/mystream/index.m3u8, on the stock file run unmodified.
fn publish_and_read_hls(name: &str) -> Engine {
    let engine = Engine::start_file(&stock(name), &[]);
    // One line per feature the file asks for that is not served, at start.
    for feature in ["RTSP server", "WebRTC server", "SRT server"] {
        let line = engine.wait_for_log(
            &format!("{feature}: not served by corestream"),
            Duration::from_secs(5),
        );
        assert_eq!(
            engine.count_log(&format!("{feature}: not served")),
            1,
            "{line}"
        );
    }
    let publisher = ff::publish(&engine.rtmp_url("mystream"), 12);
    engine.wait_for_log("publish started", Duration::from_secs(10));

    let playlist = get(engine.http_port, "/mystream/index.m3u8", &[]);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let text = playlist.text();
    // Low-Latency HLS by default, as MediaMTX: fMP4 segments.
    let segment = text
        .lines()
        .find(|l| {
            let name = l.split('?').next().unwrap();
            !l.starts_with('#') && (name.ends_with(".mp4") || name.ends_with(".ts"))
        })
        .unwrap_or_else(|| panic!("no segment in {text}"));
    assert!(segment.starts_with("../mystream-"), "{text}");
    // The segment URI resolves to /mystream-….mp4.
    let seg = get(engine.http_port, &format!("/{}", &segment[3..]), &[]);
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("Content-Type"), Some("video/mp4"));

    let p = ff::probe_live_hls(&engine.http_url("mystream/index.m3u8"));
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert_eq!((p.width, p.height), (320, 240));
    assert!(p.video_frames > 0, "{p:?}");
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    engine
}

#[test]
fn stock_v1_20_file_publishes_over_rtmp_and_plays_over_mediamtx_hls_urls() {
    let engine = publish_and_read_hls("mediamtx-v1.20.1.yml");
    // A path of two parts, as MediaMTX names them: rtmp://…/cam/1, http://…/cam/1/index.m3u8;
    // our own /cam/1.m3u8 serves the same muxer.
    let publisher = ff::publish(&engine.rtmp_url("cam/1"), 6);
    engine.wait_for_log("publish started stream=cam/1", Duration::from_secs(10));
    let playlist = get(engine.http_port, "/cam/1/index.m3u8", &[]);
    assert_eq!(playlist.status, 200, "{}", playlist.text());
    let text = playlist.text();
    let segment = text
        .lines()
        .find(|l| !l.starts_with('#') && l.split('?').next().unwrap().ends_with(".mp4"))
        .unwrap();
    assert!(segment.starts_with("../1-"), "{text}");
    let seg = get(engine.http_port, &format!("/cam/{}", &segment[3..]), &[]);
    assert_eq!(seg.status, 200);
    let own = get(engine.http_port, "/cam/1.m3u8", &[]);
    assert_eq!(own.status, 200);
    // The same segment, named for another viewer's session.
    let name = segment[3..].split('?').next().unwrap();
    assert!(own.text().contains(name), "{}", own.text());
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn stock_v1_16_file_with_yes_no_booleans_publishes_and_plays() {
    publish_and_read_hls("mediamtx-v1.16.1.yml");
}

#[test]
fn the_api_answers_with_the_files_values() {
    // The stock file has `api: no`; MediaMTX's own override turns it on.
    let engine = Engine::start_file(&stock("mediamtx-v1.16.1.yml"), &[("MTX_API", "yes")]);
    let global = get(engine.api_port, "/v3/config/global/get", &[]);
    assert_eq!(global.status, 200, "{}", global.text());
    let g = global.json();
    // Applied keys, as the file and the overrides set them.
    assert_eq!(g["readTimeout"], "10s", "{g}");
    assert_eq!(g["rtmp"], true, "{g}");
    assert_eq!(g["hls"], true, "{g}");
    assert_eq!(g["hlsSegmentCount"], 7, "{g}");
    assert_eq!(g["hlsSegmentDuration"], "1s", "{g}");
    assert_eq!(
        g["rtmpAddress"],
        format!("127.0.0.1:{}", engine.rtmp_port),
        "{g}"
    );
    // Kept keys, shown back as the file wrote them (YAML 1.1 booleans as booleans).
    assert_eq!(g["rtsp"], true, "{g}");
    assert_eq!(g["webrtc"], true, "{g}");
    assert_eq!(g["playback"], false, "{g}");
    assert_eq!(g["rtspAddress"], ":8554", "{g}");
    assert_eq!(g["hlsVariant"], "lowLatency", "{g}");
    assert_eq!(g["writeQueueSize"], 512, "{g}");
    assert_eq!(g["logDestinations"], serde_json::json!(["stdout"]), "{g}");

    let defaults = get(engine.api_port, "/v3/config/pathdefaults/get", &[]).json();
    assert_eq!(defaults["source"], "publisher", "{defaults}");
    assert_eq!(defaults["overridePublisher"], true, "{defaults}");
    assert_eq!(defaults["record"], false, "{defaults}");
    assert_eq!(defaults["rpiCameraWidth"], 1920, "{defaults}");
    assert_eq!(
        defaults["recordPath"], "./recordings/%path/%Y-%m-%d_%H-%M-%S-%f",
        "{defaults}"
    );

    // A backend written for MediaMTX adds a path with keys Corestream does not serve: kept and
    // shown back; a typo is still a 400.
    let added = engine.api(
        "POST",
        "/v3/config/paths/add/cam",
        Some(r#"{"source":"publisher","maxReaders":2,"record":true,"runOnReady":"ffmpeg -i x"}"#),
    );
    assert_eq!(added.status, 200, "{}", added.text());
    let cam = get(engine.api_port, "/v3/config/paths/get/cam", &[]).json();
    assert_eq!(cam["maxReaders"], 2, "{cam}");
    assert_eq!(cam["record"], true, "{cam}");
    assert_eq!(cam["runOnReady"], "ffmpeg -i x", "{cam}");
    assert_eq!(cam["rpiCameraWidth"], 1920, "{cam}");
    let typo = engine.api(
        "POST",
        "/v3/config/paths/add/cam2",
        Some(r#"{"recrd":true}"#),
    );
    assert_eq!(typo.status, 400, "{}", typo.text());
    assert_eq!(typo.error(), "json: unknown field \"recrd\"");
    let patched = engine.api(
        "PATCH",
        "/v3/config/global/patch",
        Some(r#"{"rtsp":false,"readTimeout":"5s"}"#),
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    let g = get(engine.api_port, "/v3/config/global/get", &[]).json();
    assert_eq!(g["rtsp"], false, "{g}");
    assert_eq!(g["readTimeout"], "5s", "{g}");
}

#[test]
fn rtmp_and_hls_switches_and_a_second_hls_listener() {
    // hlsAddress on another port: the same HTTP service on both.
    let hls_port = tests::free_port();
    let engine = Engine::start(&format!("hlsAddress: 127.0.0.1:{hls_port}\n"));
    for port in [engine.http_port, hls_port] {
        let r = get(port, "/nothing-here.txt", &[]);
        assert_eq!(r.status, 404, "port {port}");
    }
    drop(engine);

    // `rtmp: false` binds no RTMP port; `hls: false` answers 404 for HLS, HTTP-FLV routes stay.
    let engine = Engine::start("rtmp: false\nhls: false\nplayWaitTimeout: 1s\n");
    assert!(std::net::TcpStream::connect(("127.0.0.1", engine.rtmp_port)).is_err());
    let started = std::time::Instant::now();
    assert_eq!(get(engine.http_port, "/live/cam.m3u8", &[]).status, 404);
    assert_eq!(
        get(engine.http_port, "/live/cam/index.m3u8", &[]).status,
        404
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "hls: false waits for nothing"
    );
    // An HTTP-FLV request waits playWaitTimeout for the stream, then 404: still routed.
    assert_eq!(get(engine.http_port, "/live/cam.flv", &[]).status, 404);
    let ready = engine.log().join("\n");
    assert!(ready.contains("off (rtmp: false)"), "{ready}");
}
