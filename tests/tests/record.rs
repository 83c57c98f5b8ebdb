//! Recording (issue 18): ffmpeg publishes over RTMP, the engine writes fMP4 / MPEG-TS segments,
//! and ffprobe and ffmpeg — not our code — read them back. The MediaMTX recordings API lists,
//! gets and deletes them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::http::auth_service;
use tests::{eventually, ff, Engine, TempDir};

/// What ffprobe says of a file: the format's duration and each stream's codec.
fn probe_file(file: &Path) -> (f64, Vec<String>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "default=nw=1",
        ])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("ffprobe is installed (tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut duration = 0.0;
    let mut codecs = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("duration=") {
            duration = d.parse().unwrap_or(0.0);
        } else if let Some(c) = line.strip_prefix("codec_name=") {
            codecs.push(c.to_owned());
        }
    }
    // A transport stream lists its streams twice: in its program and on their own.
    codecs.sort();
    codecs.dedup();
    (duration, codecs)
}

/// Decodes the whole file with ffmpeg; returns its error output (empty when clean) and the
/// number of video frames decoded.
fn decode_file(file: &Path) -> (String, u64) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-stats", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("frame=") && !l.trim().is_empty())
        .collect();
    (errors.join("\n"), ff::decoded_frames(&out).unwrap_or(0))
}

/// The segment files under `dir`, sorted by name (their start).
fn segments(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn record_config(dir: &Path, extra: &str) -> String {
    format!(
        "pathDefaults:\n  record: yes\n  recordPath: {}/%path/%Y-%m-%d_%H-%M-%S-%f\n  recordDeleteAfter: 0s\n{extra}",
        dir.display()
    )
}

fn publish_and_wait(engine: &Engine, path: &str, seconds: u32) {
    let publisher = ff::publish(&engine.rtmp_url(path), seconds);
    let out = ff::wait_with_timeout(
        publisher,
        Duration::from_secs(u64::from(seconds) + 20),
        "ffmpeg publisher",
    );
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An 8 s publish with 3 s segments and a keyframe each second: segments start at 0, 3 and
/// 6 s; each decodes completely with H.264 and AAC, and together they last 8 s (± a part).
#[test]
fn fmp4_segments_decode_completely_and_rotate_at_keyframes() {
    let dir = TempDir::new("rec-fmp4");
    let engine = Engine::start(&record_config(&dir.path, "  recordSegmentDuration: 3s\n"));
    publish_and_wait(&engine, "live/rec", 8);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 3));
    let files = segments(&dir.path.join("live/rec"), "mp4");
    assert_eq!(files.len(), 3, "{files:?}\n{}", engine.log().join("\n"));
    let mut total = 0.0;
    for (i, f) in files.iter().enumerate() {
        let (duration, codecs) = probe_file(f);
        assert_eq!(codecs, ["aac", "h264"], "{}", f.display());
        let (errors, frames) = decode_file(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
        if i < 2 {
            assert!(
                (duration - 3.0).abs() <= 1.0,
                "{}: {duration} s",
                f.display()
            );
            assert!(
                (frames as i64 - 75).abs() <= 25,
                "{}: {frames} frames",
                f.display()
            );
        }
        total += duration;
    }
    assert!((total - 8.0).abs() <= 1.0, "recorded {total} s of 8 s");
    let metric = |name: &str| {
        engine
            .metrics()
            .into_iter()
            .find(|(k, _)| k == &format!("{name}{{path=\"live/rec\"}}"))
            .map_or(0.0, |(_, v)| v)
    };
    assert_eq!(metric("corestream_record_segments_created_total"), 3.0);
    let on_disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    // The files hold exactly what was appended (the mvhd duration is written in place).
    assert_eq!(
        metric("corestream_record_bytes_written_total") as u64,
        on_disk
    );
}

/// MPEG-TS segments: whole packets, H.264 and AAC, the whole publish.
#[test]
fn mpegts_segments_decode_completely() {
    let dir = TempDir::new("rec-ts");
    let engine = Engine::start(&record_config(&dir.path, "  recordFormat: mpegts\n"));
    publish_and_wait(&engine, "live/ts", 5);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 1));
    let files = segments(&dir.path.join("live/ts"), "ts");
    assert_eq!(files.len(), 1, "{files:?}");
    let (duration, codecs) = probe_file(&files[0]);
    assert_eq!(codecs, ["aac", "h264"]);
    assert!((duration - 5.0).abs() <= 1.0, "{duration} s");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len() % 188, 0);
    let (errors, _) = decode_file(&files[0]);
    assert!(errors.is_empty(), "{errors}");
}

/// `kill -9` in the middle of a segment: the file on disk plays up to its last part; a torn
/// append (simulated: half a `moof` at the end) is cut off at the next start, which says so.
#[test]
fn kill_9_mid_segment_leaves_a_playable_file_and_a_torn_tail_is_cut_at_start() {
    let dir = TempDir::new("rec-kill");
    let engine = Engine::start(&record_config(&dir.path, ""));
    let mut publisher = ff::publish(&engine.rtmp_url("live/cam"), 30);
    assert!(eventually(Duration::from_secs(15), || {
        segments(&dir.path, "mp4")
            .first()
            .and_then(|f| std::fs::metadata(f).ok())
            .is_some_and(|m| m.len() > 100_000)
    }));
    std::thread::sleep(Duration::from_secs(3));
    let stopped = engine.kill();
    let _ = publisher.kill();
    let _ = publisher.wait();
    let files = segments(&dir.path, "mp4");
    assert_eq!(files.len(), 1);
    let file = &files[0];
    let (duration, codecs) = probe_file(file);
    assert_eq!(codecs, ["aac", "h264"]);
    assert!(duration >= 3.0, "{duration} s recorded before the kill");
    let (errors, frames) = decode_file(file);
    assert!(errors.is_empty(), "{errors}");
    assert!(frames >= 75, "{frames} frames");
    // A write the kill tore: the head of a moof and nothing more.
    let whole = std::fs::metadata(file).unwrap().len();
    let mut torn = std::fs::read(file).unwrap();
    torn.extend_from_slice(&[0, 0, 0x10, 0, b'm', b'o', b'o', b'f', 0, 0, 0, 0]);
    std::fs::write(file, &torn).unwrap();
    let engine = Engine::restart(stopped);
    assert!(
        engine.count_log("left unfinished by a crash") >= 1,
        "{}",
        engine.log().join("\n")
    );
    assert_eq!(std::fs::metadata(file).unwrap().len(), whole);
    let (errors, _) = decode_file(file);
    assert!(errors.is_empty(), "{errors}");
}

/// `/v3/recordings/list`, `/v3/recordings/get/{name}` and `DELETE
/// /v3/recordings/deletesegment?path=&start=`, in MediaMTX's shapes.
#[test]
fn recordings_api_lists_gets_and_deletes_segments() {
    let dir = TempDir::new("rec-api");
    let engine = Engine::start(&record_config(&dir.path, "  recordSegmentDuration: 2s\n"));
    publish_and_wait(&engine, "live/api", 5);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 2));
    // MediaMTX: TestRecordingsList, TestRecordingsGet, TestRecordingsDeleteSegment,
    // TestRecordingsSegmentGetInvalidPath (on real segments; on MediaMTX's own file names in
    // mediamtx_api_cases.rs)
    let list = engine.api("GET", "/v3/recordings/list", None);
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    assert_eq!(list["itemCount"], 1, "{list}");
    assert_eq!(list["items"][0]["name"], "live/api");
    let got = engine
        .api("GET", "/v3/recordings/get/live/api", None)
        .json();
    let segs = got["segments"].as_array().unwrap().clone();
    assert!(segs.len() >= 2, "{got}");
    assert_eq!(got, list["items"][0]);
    let first = segs[0]["start"].as_str().unwrap().to_owned();
    assert!(first.ends_with('Z') && first.contains('T'), "{first}");
    let before = segments(&dir.path, "mp4").len();
    let q = format!("/v3/recordings/deletesegment?path=live/api&start={first}");
    let r = engine.api("DELETE", &q, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(segments(&dir.path, "mp4").len(), before - 1);
    let again = engine.api("DELETE", &q, None);
    assert_eq!(again.status, 404, "{}", again.text());
    let got = engine
        .api("GET", "/v3/recordings/get/live/api", None)
        .json();
    assert_eq!(got["segments"].as_array().unwrap().len(), segs.len() - 1);
    assert_eq!(
        engine
            .api("GET", "/v3/recordings/get/live/none", None)
            .status,
        404
    );
    assert_eq!(
        engine.api("GET", "/v3/recordings/get/../etc", None).status,
        400
    );
    let bad = engine.api(
        "DELETE",
        "/v3/recordings/deletesegment?path=live/api&start=yesterday",
        None,
    );
    assert_eq!(bad.status, 400);
}

/// `record` turned on and off through the API while a viewer watches: recording starts and
/// ends, the viewer is never cut.
#[test]
fn record_is_hot_applied_without_touching_viewers() {
    let dir = TempDir::new("rec-hot");
    let engine = Engine::start(&format!(
        "pathDefaults:\n  recordPath: {}/%path/%s-%f\n",
        dir.path.display()
    ));
    let mut publisher = ff::publish(&engine.rtmp_url("live/hot"), 20);
    std::thread::sleep(Duration::from_secs(2));
    let viewer = ff::spawn_decoder(&engine.http_url("live/hot.flv"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(segments(&dir.path, "mp4").is_empty());
    let r = engine.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"record": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment created")
        >= 1));
    std::thread::sleep(Duration::from_secs(3));
    let r = engine.api(
        "PATCH",
        "/v3/config/pathdefaults/patch",
        Some(r#"{"record": false}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 1));
    let files = segments(&dir.path, "mp4");
    assert_eq!(files.len(), 1);
    let (duration, _) = probe_file(&files[0]);
    assert!((2.0..=5.0).contains(&duration), "{duration} s");
    let out = ff::wait_with_timeout(viewer, Duration::from_secs(40), "viewer");
    let _ = publisher.wait();
    let frames = ff::decoded_frames(&out).unwrap_or(0);
    // The viewer saw the publish to its end (20 s at 25 fps, less the 2 s before it joined).
    assert!(
        frames >= 400,
        "viewer decoded {frames} frames:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tmpfs the test mounts (the engine's disk fills for real), unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount a tmpfs at {} (the tests run as root)",
            path.display()
        );
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A full disk (a 2 MiB tmpfs): the recording reports `no_space` (log, API, metric), every
/// file already written still decodes whole, the viewer watching the stream never notices, and
/// once there is room again the recording resumes on its own.
#[test]
fn a_full_disk_is_reported_and_retried_while_viewers_are_served() {
    let dir = TempDir::new("rec-full");
    let disk = SmallDisk::mount(dir.path.join("disk"), "2m");
    let engine = Engine::start(&format!(
        "pathDefaults:\n  record: yes\n  recordPath: {}/%path/%s-%f\n  recordSegmentDuration: 2s\n  recordDeleteAfter: 0s\n",
        disk.path.display()
    ));
    let publisher = ff::publish_sized(
        &engine.rtmp_url("live/full"),
        24,
        "640x480",
        &[
            "-b:v", "3M", "-minrate", "3M", "-maxrate", "3M", "-bufsize", "3M",
        ],
    );
    std::thread::sleep(Duration::from_secs(1));
    let viewer = ff::spawn_decoder(&engine.http_url("live/full.flv"));
    assert!(
        eventually(Duration::from_secs(20), || engine
            .count_log("recording failed (no_space)")
            >= 1),
        "{}",
        engine.log().join("\n")
    );
    let errors = engine
        .metrics()
        .into_iter()
        .find(|(k, _)| k == "corestream_record_errors_total{path=\"live/full\",kind=\"no_space\"}")
        .map(|(_, v)| v);
    assert!(errors.is_some_and(|v| v >= 1.0), "{errors:?}");
    let item = engine
        .api("GET", "/v3/recordings/get/live/full", None)
        .json();
    assert!(
        item["recorder"]["errors"]["no_space"].as_u64().unwrap_or(0) >= 1,
        "{item}"
    );
    // Nothing written is damaged: every file decodes without an error.
    let files = segments(&disk.path, "mp4");
    assert!(!files.is_empty());
    for f in &files {
        let (errors, frames) = decode_file(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
        assert!(frames > 0, "{}", f.display());
    }
    // Room again: the recording starts a new segment after its backoff.
    let created = engine.count_log("recording segment created");
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    assert!(
        eventually(Duration::from_secs(10), || engine
            .count_log("recording segment created")
            > created),
        "never resumed"
    );
    let out = ff::wait_with_timeout(viewer, Duration::from_secs(60), "viewer");
    let published = ff::wait_with_timeout(publisher, Duration::from_secs(60), "publisher");
    assert!(published.status.success());
    let frames = ff::decoded_frames(&out).unwrap_or(0);
    assert!(
        frames >= 500,
        "the viewer decoded {frames} of ~575 frames:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(engine);
}

/// What ffprobe shows of a file's video stream: `entries` (`-show_entries`) as CSV, with
/// `options` before the file (a read interval, the CSV's separator).
fn probe_video(file: &Path, entries: &str, options: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
        ])
        .args(options)
        .arg(file)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// ffprobe of the first video frame of a file: whether it is a keyframe.
fn first_video_frame_is_key(file: &Path) -> bool {
    probe_video(
        file,
        "frame=key_frame",
        &["-read_intervals", "%+#1", "-of", "csv=p=0"],
    )
    .starts_with('1')
}

fn playback_get(port: u16, query: &str, auth: &[(&str, &str)]) -> tests::http::Response {
    tests::http::get(port, query, auth)
}

/// The playback server: `/list` gives one span for segments that follow each other; `/get` of
/// a range across a segment boundary, as fMP4 and as MP4, starts on a keyframe, decodes without
/// an error and lasts the range (from the keyframe at or before its start).
#[test]
fn playback_lists_spans_and_gets_a_range_across_segments() {
    let dir = TempDir::new("rec-playback");
    let port = tests::free_port();
    let engine = Engine::start(&record_config(
        &dir.path,
        &format!("  recordSegmentDuration: 2s\nplayback: yes\nplaybackAddress: 127.0.0.1:{port}\n"),
    ));
    publish_and_wait(&engine, "live/pb", 7);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 3));
    let list = playback_get(port, "/list?path=live/pb", &[]);
    assert_eq!(list.status, 200, "{}", list.text());
    let spans = list.json();
    let spans = spans.as_array().unwrap();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let duration = spans[0]["duration"].as_f64().unwrap();
    assert!((duration - 7.0).abs() <= 1.0, "{duration}");
    let url = spans[0]["url"].as_str().unwrap();
    // The request's Host, as MediaMTX builds it.
    assert!(
        url.starts_with("http://127.0.0.1")
            && url.contains("/get?")
            && url.contains("path=live%2Fpb"),
        "{url}"
    );
    let start = spans[0]["start"].as_str().unwrap().to_owned();
    let start_us = corestream::record::path::parse_rfc3339(&start).unwrap();
    // 1.5 s in, for 3 s: across the segment boundary at 2 s (and 4 s); the answer starts at
    // the keyframe at 1 s.
    let from = corestream::record::path::rfc3339_us(start_us + 1_500_000);
    for format in ["fmp4", "mp4"] {
        let r = playback_get(
            port,
            &format!("/get?path=live/pb&start={from}&duration=3&format={format}"),
            &[],
        );
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        let file = dir.path.join(format!("answer-{format}.mp4"));
        std::fs::write(&file, &r.body).unwrap();
        let (duration, codecs) = probe_file(&file);
        assert_eq!(codecs, ["aac", "h264"], "{format}");
        assert!((3.0..=4.6).contains(&duration), "{format}: {duration} s");
        assert!(first_video_frame_is_key(&file), "{format}");
        let (errors, frames) = decode_file(&file);
        assert!(errors.is_empty(), "{format}: {errors}");
        assert!((75..=115).contains(&frames), "{format}: {frames} frames");
    }
    let r = playback_get(
        port,
        "/get?path=live/pb&start=2000-01-01T00:00:00Z&duration=1",
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = playback_get(
        port,
        &format!("/get?path=live/pb&start={from}&duration=3&format=mkv"),
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(playback_get(port, "/list?path=live/none", &[]).status, 404);
}

/// Who may read recordings: the `playback` permission of `authInternalUsers`, per path.
#[test]
fn playback_needs_the_playback_permission() {
    let dir = TempDir::new("rec-playback-auth");
    let port = tests::free_port();
    let engine = Engine::start(&record_config(
        &dir.path,
        &format!(
            "playback: yes\nplaybackAddress: 127.0.0.1:{port}\nauthInternalUsers:\n  - user: any\n    permissions:\n      - action: publish\n      - action: read\n  - user: any\n    ips: [127.0.0.1]\n    permissions:\n      - action: api\n  - user: archivist\n    pass: s3cret\n    permissions:\n      - action: playback\n        path: live/secret\n"
        ),
    ));
    publish_and_wait(&engine, "live/secret", 3);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 1));
    let anonymous = playback_get(port, "/list?path=live/secret", &[]);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous.header("www-authenticate").is_some());
    // "archivist:wrong" and "archivist:s3cret".
    let wrong = playback_get(
        port,
        "/list?path=live/secret",
        &[("Authorization", "Basic YXJjaGl2aXN0Ondyb25n")],
    );
    assert_eq!(wrong.status, 401);
    let good = [("Authorization", "Basic YXJjaGl2aXN0OnMzY3JldA==")];
    let ok = playback_get(port, "/list?path=live/secret", &good);
    assert_eq!(ok.status, 200, "{}", ok.text());
    // The permission is for that path only.
    assert_eq!(
        playback_get(port, "/list?path=live/other", &good).status,
        401
    );
    let start = ok.json()[0]["start"].as_str().unwrap().to_owned();
    let got = playback_get(
        port,
        &format!("/get?path=live/secret&start={start}&duration=1"),
        &good,
    );
    assert_eq!(got.status, 200);
    assert!(got.body.len() > 10_000);
}

/// Listing a long archive: 10,000 segments of one path (hard links of one real 2 s segment,
/// named 2 s apart) are listed by `/v3/recordings/get` in under 100 ms, and by the playback
/// server's `/list` as one span; a second `/list` (headers known) is under 100 ms too.
#[test]
fn ten_thousand_segments_list_in_under_100_ms() {
    let dir = TempDir::new("rec-many");
    let port = tests::free_port();
    let engine = Engine::start_logging(
        &record_config(
            &dir.path,
            &format!(
                "  recordSegmentDuration: 2s\nplayback: yes\nplaybackAddress: 127.0.0.1:{port}\n"
            ),
        ),
        "info",
    );
    let publisher = ff::publish_sized(&engine.rtmp_url("live/one"), 3, "160x120", &[]);
    let out = ff::wait_with_timeout(publisher, Duration::from_secs(20), "publisher");
    assert!(out.status.success());
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 1));
    let source = segments(&dir.path.join("live/one"), "mp4")[0].clone();
    let many = dir.path.join("live/many");
    std::fs::create_dir_all(&many).unwrap();
    let first_us: u64 = 1_700_000_000_000_000;
    for i in 0..10_000u64 {
        let start = first_us + i * 2_000_000;
        let name = corestream::record::Template::new(
            &format!("{}/%path/%Y-%m-%d_%H-%M-%S-%f", dir.path.display()),
            ".mp4",
        )
        .encode("live/many", start);
        std::fs::hard_link(&source, name).unwrap();
    }
    // Each answer is timed by the wall clock and by the engine's CPU time (/proc: user +
    // system), the best of three: on a loaded machine the wall clock measures the load, the CPU
    // time what the answer cost.
    let cpu_ms = || {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", engine.pid())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks * 10
    };
    let timed = |f: &dyn Fn() -> tests::http::Response| {
        let mut best = (Duration::MAX, u64::MAX);
        let mut last = None;
        for _ in 0..3 {
            let (t, c) = (std::time::Instant::now(), cpu_ms());
            let r = f();
            best = (best.0.min(t.elapsed()), best.1.min(cpu_ms() - c));
            last = Some(r);
        }
        (last.expect("three answers"), best)
    };
    let (r, api) = timed(&|| engine.api("GET", "/v3/recordings/get/live/many", None));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["segments"].as_array().unwrap().len(), 10_000);
    // The first /list reads every segment's header.
    let (t, c) = (std::time::Instant::now(), cpu_ms());
    let cold_list = playback_get(port, "/list?path=live/many", &[]);
    let cold = (t.elapsed(), cpu_ms() - c);
    assert_eq!(cold_list.status, 200, "{}", cold_list.text());
    let spans = cold_list.json();
    assert_eq!(
        spans.as_array().unwrap().len(),
        1,
        "the segments follow each other: one span"
    );
    let (warm_list, warm) = timed(&|| playback_get(port, "/list?path=live/many", &[]));
    assert_eq!(warm_list.status, 200);
    eprintln!(
        "10,000 segments: /v3/recordings/get {:?} ({} ms CPU), playback /list first {:?} ({} ms CPU), then {:?} ({} ms CPU)",
        api.0, api.1, cold.0, cold.1, warm.0, warm.1
    );
    // The figure holds for an optimized engine (README: `CORESTREAM_BIN=target/release/…`); an
    // unoptimized one, which `tests/run.sh` builds, is held to five times that.
    let optimized = tests::engine_binary()
        .components()
        .any(|c| c.as_os_str() == "release");
    let bound = if optimized { 100 } else { 500 };
    assert!(api.1 < bound, "/v3/recordings/get took {api:?}");
    assert!(warm.1 < bound, "playback /list took {warm:?}");
}

/// A new publisher starts a new segment; segments older than `recordDeleteAfter` are deleted
/// by the retention task, which logs each batch.
#[test]
fn a_new_publisher_starts_a_segment_and_old_segments_are_deleted() {
    let dir = TempDir::new("rec-retention");
    let engine = Engine::start(&format!(
        "pathDefaults:\n  record: yes\n  recordPath: {}/%path/%Y-%m-%d_%H-%M-%S-%f\n  recordSegmentDuration: 1s\n  recordDeleteAfter: 4s\n",
        dir.path.display()
    ));
    publish_and_wait(&engine, "live/gone", 2);
    let after_first = engine.count_log("recording segment created");
    assert!(after_first >= 1);
    publish_and_wait(&engine, "live/gone", 2);
    assert!(
        engine.count_log("recording segment created") > after_first,
        "the second publisher got a segment of its own"
    );
    assert!(eventually(Duration::from_secs(3), || engine
        .count_log("recording ended")
        >= 2));
    assert!(!segments(&dir.path, "mp4").is_empty());
    // Every segment is older than 4 s within about 5 s of the end; retention looks every 2 s.
    assert!(
        eventually(Duration::from_secs(12), || segments(&dir.path, "mp4")
            .is_empty()),
        "left: {:?}",
        segments(&dir.path, "mp4")
    );
    assert!(engine.count_log("past recordDeleteAfter deleted") >= 1);
}

/// With `authMethod: http`, playback is asked of the auth service, with MediaMTX's body
/// (`action: playback` and the path).
#[test]
fn playback_is_asked_of_the_http_auth_service() {
    let dir = TempDir::new("rec-playback-hook");
    let (auth_port, seen) = auth_service();
    let port = tests::free_port();
    let engine = Engine::start(&record_config(
        &dir.path,
        &format!(
            "playback: yes\nplaybackAddress: 127.0.0.1:{port}\nauthMethod: http\nauthHTTPAddress: http://127.0.0.1:{auth_port}/auth\n"
        ),
    ));
    publish_and_wait(&engine, "live/hook?user=good&pass=x", 3);
    assert!(eventually(Duration::from_secs(5), || engine
        .count_log("recording segment complete")
        >= 1));
    // "good:x" and "bad:x".
    let ok = playback_get(
        port,
        "/list?path=live/hook",
        &[("Authorization", "Basic Z29vZDp4")],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let refused = playback_get(
        port,
        "/list?path=live/hook",
        &[("Authorization", "Basic YmFkOng=")],
    );
    assert_eq!(refused.status, 401);
    let bodies = seen.lock().unwrap().clone();
    let asked: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["action"] == "playback")
        .collect();
    assert_eq!(asked.len(), 2, "{bodies:?}");
    assert_eq!(asked[0]["path"], "live/hook", "{bodies:?}");
}

/// A stopping engine (SIGTERM) lets its recordings finish their segments before it exits.
#[test]
fn sigterm_completes_the_segments_being_written() {
    let dir = TempDir::new("rec-term");
    let mut engine = Engine::start(&record_config(&dir.path, ""));
    let mut publisher = ff::publish(&engine.rtmp_url("live/term"), 20);
    assert!(eventually(Duration::from_secs(15), || engine
        .count_log("recording segment created")
        >= 1));
    std::thread::sleep(Duration::from_secs(3));
    let (status, _) = engine.terminate();
    assert!(status.success(), "{status:?}");
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert_eq!(
        engine.count_log("recording segment complete"),
        1,
        "{}",
        engine.log().join("\n")
    );
    let files = segments(&dir.path, "mp4");
    let (duration, _) = probe_file(&files[0]);
    assert!(duration >= 2.5, "{duration} s");
    let (errors, _) = decode_file(&files[0]);
    assert!(errors.is_empty(), "{errors}");
}

/// A read-only disk: `read_only` reported and retried, the viewer served; writable again, the
/// recording starts.
#[test]
fn a_read_only_disk_is_reported_and_retried() {
    let dir = TempDir::new("rec-ro");
    let disk = SmallDisk::mount(dir.path.join("disk"), "4m");
    let remount = |mode: &str| {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&disk.path)
            .status()
            .expect("mount runs")
            .success();
        assert!(ok, "remount {mode}");
    };
    remount("ro");
    let engine = Engine::start(&record_config(&disk.path, ""));
    let publisher = ff::publish(&engine.rtmp_url("live/ro"), 12);
    std::thread::sleep(Duration::from_secs(1));
    let viewer = ff::spawn_decoder(&engine.http_url("live/ro.flv"));
    assert!(
        eventually(Duration::from_secs(10), || engine
            .count_log("recording failed (read_only)")
            >= 2),
        "{}",
        engine.log().join("\n")
    );
    assert!(segments(&disk.path, "mp4").is_empty());
    remount("rw");
    assert!(
        eventually(Duration::from_secs(10), || engine
            .count_log("recording segment created")
            >= 1),
        "never resumed"
    );
    let out = ff::wait_with_timeout(viewer, Duration::from_secs(40), "viewer");
    let _ = ff::wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
    let frames = ff::decoded_frames(&out).unwrap_or(0);
    assert!(frames >= 250, "the viewer decoded {frames} frames");
    drop(engine);
}

/// The picture size of a file's video, by ffprobe.
fn video_size(file: &Path) -> String {
    probe_video(file, "stream=width,height", &["-of", "csv=p=0:s=x"])
}

/// New codec parameters in the middle of one publish (ffmpeg encodes 320x240, then 640x480;
/// our RTMP client sends both as one stream): the segment ends at the change and the next one,
/// with the new init segment, starts at the new parameters' first keyframe. Both decode.
#[test]
fn a_codec_change_mid_publish_starts_a_new_segment() {
    use corestream::media::MediaKind;
    use corestream::protocol::flv::FlvReader;
    use corestream::protocol::rtmp::ClientMode;
    use tests::rtmp_client::RtmpClient;
    let dir = TempDir::new("rec-codec");
    let engine = Engine::start(&record_config(&dir.path, ""));
    let mut frames = Vec::new();
    let mut offset = 0u32;
    for size in ["320x240", "640x480"] {
        let file = dir.path.join(format!("{size}.flv"));
        let ok = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("testsrc2=size={size}:rate=25:duration=3"))
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=44100:duration=3",
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(&file)
            .status()
            .expect("ffmpeg")
            .success();
        assert!(ok, "ffmpeg made {size}.flv");
        let mut reader = FlvReader::new();
        reader.feed(&std::fs::read(&file).unwrap());
        let mut last = 0;
        while let Some(mut f) = reader.poll_frame().unwrap() {
            f.timestamp += offset;
            last = last.max(f.timestamp);
            frames.push(f);
        }
        offset = last + 40;
    }
    let mut publisher =
        RtmpClient::connect(engine.rtmp_port, "live", "codec", ClientMode::Publish).unwrap();
    publisher
        .wait_publish_started(Duration::from_secs(5))
        .unwrap();
    for f in &frames {
        publisher.send_media(f).unwrap();
        if f.kind == MediaKind::Video {
            // A little pacing, as an encoder's: 25 fps at ten times real time.
            std::thread::sleep(Duration::from_millis(4));
        }
    }
    publisher.goodbye().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || engine
            .count_log("recording segment complete")
            >= 2),
        "{}",
        engine.log().join("\n")
    );
    let files = segments(&dir.path.join("live/codec"), "mp4");
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(video_size(&files[0]), "320x240");
    assert_eq!(video_size(&files[1]), "640x480");
    for f in &files {
        let (duration, codecs) = probe_file(f);
        assert_eq!(codecs, ["aac", "h264"]);
        assert!(
            (duration - 3.0).abs() <= 1.0,
            "{}: {duration} s",
            f.display()
        );
        let (errors, frames) = decode_file(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
        assert!(frames >= 70, "{}: {frames} frames", f.display());
    }
}
