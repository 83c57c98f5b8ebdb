//! Browser tests: headless Debian chromium plays the engine's player pages (hls.js for LL-HLS,
//! fMP4 HLS and MPEG-TS HLS; mpegts.js for HTTP-FLV) of streams ffmpeg publishes with audio and
//! video, video only and audio only. Each case checks that frames advance, the picture has its
//! size, no player error fired, and counts the first viewer's stalls; a screenshot of each goes
//! to `target/browser/`. The latency and stall figures are printed (README, "Browser figures").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::browser::{Browser, Tab};
use tests::ff;
use tests::Engine;

/// How long each page is watched: the first viewer's stalls are counted over this.
const WATCH: Duration = Duration::from_secs(20);

struct Case {
    name: String,
    tab: Tab,
    video: bool,
    opened: Instant,
    first_frame: Option<Duration>,
    /// (seconds since open, currentTime, latency estimate)
    samples: Vec<(f64, f64, Option<f64>)>,
    state: Value,
}

const PROBE: &str = r#"(function () {
  var v = document.getElementById("video"), s = window.corestream || {};
  var latency = null;
  if (s.kind === "hls" && s.player && typeof s.player.latency === "number" && s.player.latency > 0) {
    latency = s.player.latency;
  } else if (s.kind === "flv" && v.buffered.length) {
    latency = v.buffered.end(v.buffered.length - 1) - v.currentTime;
  }
  return { t: v.currentTime, w: v.videoWidth, h: v.videoHeight, latency: latency,
    errors: s.errors || [], warnings: (s.warnings || []).slice(0, 10), stalls: s.stalls || 0, seeks: s.seeks || 0, waits: s.waits || 0,
    stallLog: s.stallLog || [],
    playing: !!s.playing, firstFrame: s.firstFrameAt == null ? null : s.firstFrameAt - s.loadedAt };
})()"#;

fn screenshots() -> PathBuf {
    // tests/ -> target/browser
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/browser")
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    Some(v[v.len() / 2])
}

/// Opens every page at once, watches them for [`WATCH`], then checks and reports each.
/// `published` is when the publisher of the `-av` pages started: testsrc2 burns its media time
/// into the picture, so crops of it (under `target/browser/latency/`, named with the publisher's
/// edge at capture) give the glass-to-glass latency.
fn watch(browser: &mut Browser, engine: &Engine, published: Instant, pages: &[(&str, &str, bool)]) {
    let mut cases: Vec<Case> = pages
        .iter()
        .map(|(name, path, video)| Case {
            name: (*name).to_owned(),
            tab: browser.open(&engine.http_url(path)),
            video: *video,
            opened: Instant::now(),
            first_frame: None,
            samples: Vec::new(),
            state: Value::Null,
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < WATCH {
        std::thread::sleep(Duration::from_millis(500));
        for c in &mut cases {
            let s = browser.eval(&c.tab, PROBE);
            let t = s["t"].as_f64().unwrap_or(0.0);
            if c.first_frame.is_none() && s["playing"] == true {
                c.first_frame = Some(c.opened.elapsed());
            }
            c.samples
                .push((c.opened.elapsed().as_secs_f64(), t, s["latency"].as_f64()));
            c.state = s;
        }
    }
    for c in &mut cases {
        browser.screenshot(&c.tab, &screenshots().join(format!("{}.png", c.name)));
    }
    // The 320x240 picture scaled into the 640x480 window is 472 px wide from x = 84; testsrc2's
    // clock is in its top left corner.
    for i in 0..5 {
        for c in cases.iter().filter(|c| c.name.ends_with("-av")) {
            let edge = published.elapsed().as_millis();
            let path = screenshots()
                .join("latency")
                .join(format!("{}-{i}-edge{edge}ms.png", c.name));
            browser.screenshot_clip(&c.tab, &path, (84.0, 0.0, 160.0, 30.0));
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    for c in cases {
        let s = &c.state;
        let latencies: Vec<f64> = c
            .samples
            .iter()
            .rev()
            .filter_map(|(_, _, l)| *l)
            .take(5)
            .collect();
        eprintln!(
            "browser figure: {:<16} first frame {:>5.2} s, stalls in {} s: {} {} (seeks {}, waits {}), latency median of 5: {}",
            c.name,
            c.first_frame.map_or(f64::NAN, |d| d.as_secs_f64()),
            WATCH.as_secs(),
            s["stalls"],
            s["stallLog"],
            s["seeks"],
            s["waits"],
            median(latencies).map_or("n/a".to_owned(), |l| format!("{l:.2} s")),
        );
        assert_eq!(s["errors"], Value::Array(Vec::new()), "{}: {s}", c.name);
        assert!(c.first_frame.is_some(), "{}: never played: {s}", c.name);
        // Frames advance: over the last 5 s of watching, currentTime moved by at least 3 s.
        let last = c.samples.last().copied().unwrap_or_default();
        let earlier = c
            .samples
            .iter()
            .rev()
            .find(|(at, _, _)| last.0 - at >= 5.0)
            .copied()
            .unwrap_or_default();
        assert!(
            last.1 - earlier.1 >= 3.0,
            "{}: currentTime {} -> {} over the last 5 s: {s}",
            c.name,
            earlier.1,
            last.1
        );
        // The first viewer starts at a safe distance from the edge: at most a few stalls even
        // on a loaded machine (0 is the usual).
        assert!(
            s["stalls"].as_u64().unwrap_or(0) <= 3,
            "{}: first viewer stalled: {s}",
            c.name
        );
        if c.video {
            assert_eq!(
                (s["w"].as_u64(), s["h"].as_u64()),
                (Some(320), Some(240)),
                "{}",
                c.name
            );
        }
        browser.close(c.tab);
    }
}

/// Publishes `live/av` (audio and video), `live/v` (video only) and `live/a` (audio only).
fn publish_all(engine: &Engine, seconds: u32) -> Vec<std::process::Child> {
    let publishers = vec![
        ff::publish(&engine.rtmp_url("live/av"), seconds),
        ff::publish_with(&engine.rtmp_url("live/v"), seconds, &["-an"]),
        ff::publish_with(&engine.rtmp_url("live/a"), seconds, &["-vn"]),
    ];
    engine.wait_for_log_count("publish started", 3, Duration::from_secs(10));
    publishers
}

#[test]
fn browser_plays_low_latency_hls_and_http_flv() {
    let engine = Engine::start_logging("", "info");
    let published = Instant::now();
    let mut publishers = publish_all(&engine, 40);
    let mut browser = Browser::launch();
    // The stream list page links to every live stream's player.
    let index = browser.open(&engine.http_url(""));
    let deadline = Instant::now() + Duration::from_secs(10);
    let links = loop {
        let links = browser.eval(
            &index,
            "Array.from(document.querySelectorAll('#streams a')).map(a => a.getAttribute('href'))",
        );
        if links.as_array().is_some_and(|l| l.len() == 6) || Instant::now() > deadline {
            break links;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        links,
        serde_json::json!([
            "/live/a",
            "/live/a?type=flv",
            "/live/av",
            "/live/av?type=flv",
            "/live/v",
            "/live/v?type=flv"
        ])
    );
    browser.screenshot(&index, &screenshots().join("index.png"));
    browser.close(index);
    watch(
        &mut browser,
        &engine,
        published,
        &[
            ("ll-hls-av", "live/av", true),
            ("ll-hls-video", "live/v", true),
            ("ll-hls-audio", "live/a", false),
            ("flv-av", "live/av?type=flv", true),
            ("flv-video", "live/v?type=flv", true),
            ("flv-audio", "live/a?type=flv", false),
        ],
    );
    for p in &mut publishers {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn browser_plays_fmp4_and_mpegts_hls() {
    for variant in ["fmp4", "mpegts"] {
        let engine = Engine::start_logging(&format!("hlsVariant: {variant}\n"), "info");
        let published = Instant::now();
        let mut publisher = ff::publish(&engine.rtmp_url("live/av"), 40);
        engine.wait_for_log("publish started", Duration::from_secs(10));
        let mut browser = Browser::launch();
        watch(
            &mut browser,
            &engine,
            published,
            &[(&format!("{variant}-hls-av"), "live/av", true)],
        );
        let _ = publisher.kill();
        let _ = publisher.wait();
    }
}
