//! End-to-end: a path whose `source` is an HLS playlist (MediaMTX's `hlsSource`), pulled from
//! another engine's HLS output in each of its variants (MPEG-TS, fMP4, Low-Latency fMP4), read
//! back by ffprobe over RTMP; and the errors an unusable origin gives.

use std::time::Duration;

use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::{eventually, Engine};

#[test]
fn an_mpegts_hls_origin_is_pulled_and_replayed_over_rtmp() {
    pulled_and_replayed("mpegts");
}

#[test]
fn an_fmp4_hls_origin_is_pulled_and_replayed_over_rtmp() {
    pulled_and_replayed("fmp4");
}

#[test]
fn a_low_latency_hls_origin_is_pulled_and_replayed_over_rtmp() {
    // The default variant of Corestream and of MediaMTX: fMP4 segments made of parts.
    pulled_and_replayed("lowLatency");
}

/// An origin serving `variant` HLS, an edge pulling it, ffprobe reading the edge over RTMP.
fn pulled_and_replayed(variant: &str) {
    let origin = Engine::start(&format!("hlsVariant: {variant}\nhlsSegmentDuration: 1s\n"));
    let publisher = ff::publish(&origin.rtmp_url("live/s"), 25);
    origin.wait_for_log("publish started", Duration::from_secs(10));
    let edge = Engine::start(&format!(
        "paths:\n  live/s:\n    source: http://127.0.0.1:{}/live/s/index.m3u8\n",
        origin.http_port
    ));
    let item = edge.wait_source_state("live/s", "ready", Duration::from_secs(20));
    // MediaMTX: TestAPIPathsList ("hls source"), pulled (listed before it runs in mediamtx_api_cases.rs)
    assert_eq!(item["source"]["type"], "hlsSource", "{item}");
    assert!(eventually(Duration::from_secs(10), || {
        edge.path_item("live/s")["tracks"] == serde_json::json!(["H264", "MPEG-4 Audio"])
    }));

    // ffprobe reads the relayed stream for 5 s: both tracks, the publisher's picture size, and
    // frames at the publisher's rate (the pull paces segments by their timestamps).
    let probe = ff::spawn_probe_with(&edge.rtmp_url("live/s"), &["-read_intervals", "%+5"]);
    let out = wait_with_timeout(probe, Duration::from_secs(30), "ffprobe of the edge");
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("edge: {e}"));
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac"),
        "{p:?}"
    );
    assert_eq!((p.width, p.height), (320, 240));
    assert!(p.video_frames >= 75, "5 s at 25 fps, got {p:?}");
    let item = edge.path_item("live/s");
    assert!(
        item["sourceBytesReceived"].as_u64().unwrap() > 100_000,
        "{item}"
    );
    wait_with_timeout(publisher, Duration::from_secs(40), "publisher");
}

#[test]
fn unusable_hls_origins_are_reported() {
    let origin = Engine::start("");
    let edge = Engine::start(&format!(
        "paths:\n  live/none:\n    source: http://127.0.0.1:{0}/live/none/index.m3u8\n",
        origin.http_port
    ));
    let mut last = serde_json::Value::Null;
    // A stream the origin does not have: its 404.
    assert!(
        eventually(Duration::from_secs(20), || {
            last = edge.path_item("live/none");
            last["sourceError"]
                .as_str()
                .is_some_and(|e| e.starts_with("http status 404"))
        }),
        "{last}"
    );
    // Configuration: an HLS source is accepted through the API as in the file.
    let r = edge.api(
        "POST",
        "/v3/config/paths/add/live/api",
        Some(r#"{"source":"https://127.0.0.1:1/x/index.m3u8","sourceOnDemand":true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(edge.path_item("live/api")["source"]["type"], "hlsSource");
}
