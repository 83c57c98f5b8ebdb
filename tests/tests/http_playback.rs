//! End-to-end: HTTP-FLV and HLS from a two-core engine, published by ffmpeg over RTMP.

use std::time::Duration;

use tests::ff::{self, decoded_frames, parse_probe, wait_with_timeout};
use tests::http::{get, raw_request, request};
use tests::Engine;

#[test]
fn flv_viewers_on_both_cores_receive_every_frame() {
    let engine = Engine::start("playWaitTimeout: 20s\n");
    let url = engine.http_url("live/flv.flv");
    let (probes, decoders) = engine.players_on_both_cores(&url);
    let viewers = probes.len() + decoders.len();
    let publisher = ff::publish(&engine.rtmp_url("live/flv"), 6);
    engine.wait_for_log_count("flv player started", viewers, Duration::from_secs(15));
    assert!(
        engine.count_log("via=\"remote\"") >= 1,
        "no viewer was served across cores"
    );
    assert!(
        wait_with_timeout(publisher, Duration::from_secs(30), "publisher")
            .status
            .success()
    );
    for probe in probes {
        let p = parse_probe(&wait_with_timeout(
            probe,
            Duration::from_secs(30),
            "ffprobe",
        ))
        .unwrap();
        assert_eq!(
            (p.video_codec.as_str(), p.audio_codec.as_str()),
            ("h264", "aac")
        );
        assert_eq!((p.width, p.height), (320, 240));
        assert_eq!(p.video_frames, 150, "{p:?}");
    }
    for decoder in decoders {
        let out = wait_with_timeout(decoder, Duration::from_secs(30), "ffmpeg");
        assert_eq!(
            decoded_frames(&out),
            Some(150),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn flv_response_headers_and_missing_stream() {
    let engine =
        Engine::start("playWaitTimeout: 1s\nhttpAllowOrigins: [\"https://player.example\"]\n");
    let missing = get(engine.http_port, "/live/none.flv", &[]);
    assert_eq!(missing.status, 404);
    let publisher = ff::publish(&engine.rtmp_url("live/h"), 4);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let head = request(
        engine.http_port,
        "HEAD",
        "/live/h.flv",
        None,
        &[("Origin", "https://player.example")],
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("video/x-flv"));
    assert_eq!(
        head.header("Access-Control-Allow-Origin"),
        Some("https://player.example")
    );
    let other = request(
        engine.http_port,
        "HEAD",
        "/live/h.flv",
        None,
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(other.header("Access-Control-Allow-Origin"), None);
    wait_with_timeout(publisher, Duration::from_secs(20), "publisher");
}

/// The lines of a playlist that carry a tag's value, e.g. `#EXT-X-MEDIA-SEQUENCE`.
fn tag<'a>(playlist: &'a str, name: &str) -> Option<&'a str> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
}

fn durations(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| d.trim_end_matches(',').parse().expect("EXTINF duration"))
        .collect()
}

#[test]
fn hls_playlist_slides_and_segments_decode() {
    let engine = Engine::start("hlsVariant: mpegts\nhlsSegmentDuration: 1s\nhlsSegmentCount: 3\n");
    let publisher = ff::publish(&engine.rtmp_url("live/hls"), 14);
    engine.wait_for_log("publish started", Duration::from_secs(10));

    let first = get(engine.http_port, "/live/hls.m3u8", &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.header("Content-Type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(first.header("Cache-Control"), Some("max-age=1"));
    let mut last_sequence: Option<u64> = None;
    let mut slid = false;
    for _ in 0..8 {
        let p = get(engine.http_port, "/live/hls.m3u8", &[]).text();
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(lines[0], "#EXTM3U", "{p}");
        assert!(p.contains("#EXT-X-VERSION:3"), "{p}");
        let target: f64 = tag(&p, "#EXT-X-TARGETDURATION").unwrap().parse().unwrap();
        let seq: u64 = tag(&p, "#EXT-X-MEDIA-SEQUENCE").unwrap().parse().unwrap();
        let segs = durations(&p);
        assert!(!segs.is_empty() && segs.len() <= 3, "window of 3: {p}");
        for d in &segs {
            assert!(
                *d > 0.0 && *d <= target,
                "segment of {d}s over target {target}: {p}"
            );
        }
        if let Some(prev) = last_sequence {
            assert!(seq >= prev, "media sequence went back: {p}");
            slid |= seq > prev;
        }
        last_sequence = Some(seq);
        // Every listed segment is served, whole, as MPEG-TS.
        let uri = lines
            .iter()
            .rev()
            .find(|l| l.split('?').next().unwrap().ends_with(".ts"))
            .unwrap();
        let seg = get(engine.http_port, &format!("/live/{uri}"), &[]);
        assert_eq!(seg.status, 200);
        assert_eq!(seg.header("Content-Type"), Some("video/mp2t"));
        assert!(seg.header("Cache-Control").unwrap().contains("immutable"));
        assert_eq!(seg.body.len() % 188, 0);
        assert!(seg.body.chunks(188).all(|p| p[0] == 0x47));
        std::thread::sleep(Duration::from_millis(900));
    }
    assert!(slid, "the window never slid");

    // The control API lists the stream's one muxer, however many cores served its viewers.
    let muxers = tests::http::get(engine.api_port, "/v3/hlsmuxers/list", &[]).json();
    assert_eq!(muxers["itemCount"], 1, "{muxers}");
    assert_eq!(muxers["items"][0]["path"], "live/hls", "{muxers}");
    assert!(
        muxers["items"][0]["bytesSent"].as_u64().unwrap() > 0,
        "{muxers}"
    );

    // ffprobe reads the live playlist and decodes the right codecs and resolution.
    let p = ff::probe_live_hls(&engine.http_url("live/hls.m3u8"));
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert_eq!((p.width, p.height), (320, 240));
    wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
}

#[test]
fn hls_holds_the_whole_stream_when_muxed_from_the_start() {
    let engine = Engine::start(
        "hlsVariant: mpegts\nhlsAlwaysRemux: true\nhlsSegmentDuration: 1s\nhlsSegmentCount: 10\n",
    );
    let publisher = ff::publish(&engine.rtmp_url("live/all"), 6);
    assert!(
        wait_with_timeout(publisher, Duration::from_secs(30), "publisher")
            .status
            .success()
    );
    let probe = ff::spawn_probe_with(
        &engine.http_url("live/all.m3u8"),
        // ffmpeg 5.1 fails on the first segment with a hold counter of 1 and start index 0.
        &["-live_start_index", "0", "-m3u8_hold_counters", "3"],
    );
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(40),
        "ffprobe hls",
    ))
    .unwrap();
    assert_eq!(p.video_frames, 150, "{p:?}");
}

#[test]
fn republish_makes_a_discontinuity() {
    let engine = Engine::start("hlsVariant: mpegts\nhlsSegmentDuration: 1s\nhlsSegmentCount: 10\n");
    let url = engine.rtmp_url("live/re");
    let first = ff::publish(&url, 4);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let p = get(engine.http_port, "/live/re.m3u8", &[]);
    assert_eq!(p.status, 200);
    assert!(!p.text().contains("#EXT-X-DISCONTINUITY"), "{}", p.text());
    wait_with_timeout(first, Duration::from_secs(20), "first publisher");
    engine.wait_for_log("publish stopped", Duration::from_secs(5));

    let second = ff::publish(&url, 4);
    engine.wait_for_log_count("publish started", 2, Duration::from_secs(10));
    let found = tests::eventually(Duration::from_secs(10), || {
        get(engine.http_port, "/live/re.m3u8", &[])
            .text()
            .contains("#EXT-X-DISCONTINUITY")
    });
    assert!(
        found,
        "{}",
        get(engine.http_port, "/live/re.m3u8", &[]).text()
    );
    wait_with_timeout(second, Duration::from_secs(20), "second publisher");
}

#[test]
fn malformed_requests_get_their_status_while_a_stream_flows() {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let probe = ff::spawn_probe(&engine.http_url("live/ok.flv"));
    let publisher = ff::publish(&engine.rtmp_url("live/ok"), 6);
    engine.wait_for_log("flv player started", Duration::from_secs(15));

    let port = engine.http_port;
    assert_eq!(raw_request(port, b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(
        raw_request(port, b"GET /live/ok.flv HTTP/2.0\r\nHost: x\r\n\r\n").status,
        505
    );
    let huge = format!(
        "GET /live/ok.m3u8 HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw_request(port, huge.as_bytes()).status, 431);
    assert_eq!(request(port, "POST", "/live/ok.flv", None, &[]).status, 405);
    assert_eq!(get(port, "/live/ok.mp4", &[]).status, 404);
    assert_eq!(get(port, "/nothing.txt", &[]).status, 404);
    assert_eq!(get(port, "/live/missing-0-0.ts", &[]).status, 404);
    let options = request(
        port,
        "OPTIONS",
        "/live/ok.m3u8",
        None,
        &[
            ("Origin", "https://a.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(options.status, 204);
    assert_eq!(options.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(options
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("GET"));

    // Keep-alive: two requests on one connection.
    let two = b"GET /a.m3u8 HTTP/1.1\r\nHost: x\r\n\r\nGET /live/ok.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut s, two).unwrap();
    let mut both = String::new();
    std::io::Read::read_to_string(&mut s, &mut both).unwrap();
    assert_eq!(
        both.matches("HTTP/1.1 404 Not Found\r\n").count(),
        2,
        "{both}"
    );

    assert!(
        wait_with_timeout(publisher, Duration::from_secs(30), "publisher")
            .status
            .success()
    );
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(30),
        "ffprobe",
    ))
    .unwrap();
    assert_eq!(p.video_frames, 150, "the live viewer lost frames: {p:?}");
}

/// The FLV header bytes of `path`'s HTTP-FLV response (HTTP/1.0, so the body is not chunked).
fn flv_header_of(port: u16, path: &str) -> [u8; 13] {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "response ended early: {got:?}");
        got.extend_from_slice(&buf[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= end + 4 + 13 {
                return got[end + 4..end + 4 + 13].try_into().unwrap();
            }
        }
    }
}

/// The codec types ffprobe finds in `url`, read to its end.
fn probed_kinds(url: &str) -> (Vec<String>, String) {
    let out = wait_with_timeout(ff::spawn_probe(url), Duration::from_secs(30), "ffprobe");
    let kinds = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("codec_type="))
        .map(str::to_owned)
        .collect();
    (kinds, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn flv_header_flags_the_tracks_the_stream_has() {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    // (ffmpeg output option, stream, header flags, what ffprobe finds)
    let cases: [(&str, &str, u8, &[&str]); 3] = [
        ("-an", "video", 0x01, &["video"]),
        ("-vn", "audio", 0x04, &["audio"]),
        ("-sn", "both", 0x05, &["video", "audio"]),
    ];
    for (i, (option, name, flags, kinds)) in cases.into_iter().enumerate() {
        let publisher = ff::publish_with(&engine.rtmp_url(&format!("live/{name}")), 5, &[option]);
        engine.wait_for_log_count("publish started", i + 1, Duration::from_secs(10));
        let path = format!("/live/{name}.flv");
        let header = flv_header_of(engine.http_port, &path);
        assert_eq!(&header[..3], b"FLV");
        assert_eq!(header[4], flags, "{name}: {header:02x?}");
        let (found, stderr) = probed_kinds(&engine.http_url(&path[1..]));
        assert_eq!(found, kinds, "{name}: {stderr}");
        assert!(
            wait_with_timeout(publisher, Duration::from_secs(30), "publisher")
                .status
                .success()
        );
    }
}

/// A publisher whose metadata and sequence headers promise audio that never comes: after a
/// second of video the header flags video only, for a viewer that was waiting meanwhile.
#[test]
fn flv_header_leaves_out_a_promised_track_that_never_comes() {
    use corestream::media::{Frame, MediaKind};
    use corestream::protocol::rtmp::amf0::{self, Amf0Value};
    use corestream::protocol::rtmp::ClientMode;
    use tests::rtmp_client::RtmpClient;

    let engine = Engine::start("playWaitTimeout: 10s\n");
    let mut publisher =
        RtmpClient::connect(engine.rtmp_port, "live", "liar", ClientMode::Publish).unwrap();
    publisher
        .wait_publish_started(Duration::from_secs(10))
        .unwrap();
    let mut meta = bytes::BytesMut::new();
    amf0::encode_all(
        &mut meta,
        &[
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("videocodecid".into(), Amf0Value::Number(7.0)),
                ("audiocodecid".into(), Amf0Value::Number(10.0)),
            ]),
        ],
    )
    .unwrap();
    let frame = |kind, ts, body: &[u8]| Frame::new(kind, ts, bytes::Bytes::copy_from_slice(body));
    publisher
        .send_media(&frame(MediaKind::Script, 0, &meta))
        .unwrap();
    let avc_seq = [
        0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2,
        0x68, 0xce,
    ];
    publisher
        .send_media(&frame(MediaKind::Video, 0, &avc_seq))
        .unwrap();
    publisher
        .send_media(&frame(MediaKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]))
        .unwrap();
    let port = engine.http_port;
    let viewer = std::thread::spawn(move || flv_header_of(port, "/live/liar.flv"));
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..40u32 {
        let key = i % 25 == 0;
        let body = [if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
        publisher
            .send_media(&frame(MediaKind::Video, i * 40, &body))
            .unwrap();
    }
    let header = viewer.join().unwrap();
    assert_eq!(header[4], 0x01, "video only: {header:02x?}");
    // A viewer arriving now gets the same.
    assert_eq!(flv_header_of(engine.http_port, "/live/liar.flv")[4], 0x01);
}
