use super::*;

const AVC_SEQ: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 22, 0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05,
    0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
    1, 0, 4, 0x68, 0xce, 0x3c, 0x80,
];

fn headers() -> [Frame; 2] {
    [
        Frame::new(MediaKind::Video, 0, Bytes::from_static(AVC_SEQ)),
        Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        ),
    ]
}

fn video(ts: u32, key: bool) -> Frame {
    let first = if key { 0x17 } else { 0x27 };
    Frame::new(
        MediaKind::Video,
        ts,
        Bytes::from(vec![first, 1, 0, 0, 0, 0, 0, 0, 2, 0x65, 0x88]),
    )
}

fn audio(ts: u32) -> Frame {
    Frame::new(
        MediaKind::Audio,
        ts,
        Bytes::from_static(&[0xaf, 1, 0x21, 0x10]),
    )
}

fn started(low_latency: bool) -> PartSegmenter {
    let mut s = PartSegmenter::new(PartsConfig {
        low_latency,
        window: 3,
        ..PartsConfig::new("cam-1f")
    });
    let now = Instant::now();
    for f in headers() {
        assert_eq!(s.push(now, &f), Ok(PartPush::Appended));
    }
    s
}

/// 25 fps video with a keyframe every `gop_ms`, audio every 40 ms, over `[from, to)`.
fn run(s: &mut PartSegmenter, from: u32, to: u32, gop_ms: u32) {
    let now = Instant::now();
    for t in (from..to).step_by(40) {
        let _ = s.push(now, &video(t, t % gop_ms == 0)).unwrap();
        let _ = s.push(now, &audio(t + 5)).unwrap();
    }
}

#[test]
fn low_latency_playlist() {
    let mut s = started(true);
    assert!(!s.is_ready());
    run(&mut s, 0, 1000, 1000);
    assert!(!s.is_ready(), "no whole segment yet");
    assert!(s.has_part(0, Some(3)));
    assert!(!s.has_part(0, Some(4)));
    run(&mut s, 1000, 1600, 1000);
    assert!(!s.is_ready(), "a segment and 0.4 s of parts");
    run(&mut s, 1600, 1640, 1000);
    assert!(
        !s.is_ready(),
        "a segment and PART-HOLD-BACK of parts: one part short"
    );
    assert!(s.has_part(0, Some(9)) && s.has_part(1, Some(2)) && !s.has_part(1, Some(3)));
    assert!(!s.has_part(1, None) && s.has_part(0, None));
    let playlist = s.playlist();
    let lines: Vec<&str> = playlist.lines().collect();
    assert_eq!(
        lines[..7],
        [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            "#EXT-X-TARGETDURATION:1",
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600",
            "#EXT-X-PART-INF:PART-TARGET=0.200",
            "#EXT-X-MEDIA-SEQUENCE:0",
            "#EXT-X-MAP:URI=\"cam-1f-init0.mp4\"",
        ]
    );
    assert_eq!(
        lines[7..14],
        [
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p0.mp4\",INDEPENDENT=YES",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p1.mp4\"",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p2.mp4\"",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p3.mp4\"",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p4.mp4\"",
            "#EXTINF:1.000,",
            "cam-1f-0.mp4",
        ]
    );
    assert_eq!(
        lines[14..],
        [
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p5.mp4\",INDEPENDENT=YES",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p6.mp4\"",
            "#EXT-X-PART:DURATION=0.200,URI=\"cam-1f-p7.mp4\"",
            "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"cam-1f-p8.mp4\"",
        ]
    );
    // A segment is its parts back to back; every part is a moof then an mdat.
    let segment = s.segment(0).unwrap();
    let parts: Vec<Bytes> = (0..5).map(|n| s.part(n).unwrap()).collect();
    assert_eq!(segment, parts.concat());
    assert_eq!(&parts[1][4..8], b"moof");
    assert_eq!(&s.init(0).unwrap()[4..8], b"ftyp");
    assert!(s.part(8).is_none() && !s.has_part_number(8) && s.has_part_number(7));
    assert!(s.is_too_far(4) && !s.is_too_far(3));
    run(&mut s, 1640, 1840, 1000);
    assert!(s.is_ready(), "a segment, PART-HOLD-BACK and a part");
}

#[test]
fn fmp4_playlist_lists_segments_only_and_target_is_fixed() {
    let mut s = started(false);
    // A 2 s GOP under a 1 s target: segments are cut at 1 s anyway, the second one not on a
    // keyframe, and the target stays 1.
    run(&mut s, 0, 3040, 2000);
    assert!(s.is_ready(), "three target durations listed");
    let playlist = s.playlist();
    assert!(playlist.starts_with(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-MAP:URI=\"cam-1f-init0.mp4\"\n#EXTINF:1.000,\ncam-1f-0.mp4\n#EXTINF:1.000,\ncam-1f-1.mp4\n#EXTINF:1.000,\ncam-1f-2.mp4\n"
    ), "{playlist}");
    assert!(!playlist.contains("PART"));
}

#[test]
fn republish_is_a_discontinuity_with_growing_times() {
    let mut s = started(true);
    run(&mut s, 0, 2040, 1000);
    s.mark_discontinuity();
    for f in headers() {
        let _ = s.push(Instant::now(), &f).unwrap();
    }
    run(&mut s, 0, 1040, 1000);
    let playlist = s.playlist();
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    assert_eq!(
        playlist.matches("#EXT-X-MAP").count(),
        1,
        "same codecs, same init"
    );
    // The new timeline continues after the old one: the tfdt of the part after the break.
    let part = s.part(11).unwrap();
    let at = part.windows(4).position(|w| w == b"tfdt").unwrap() + 8;
    let tfdt = u64::from_be_bytes(part[at..at + 8].try_into().unwrap());
    assert!(tfdt >= 2040 * 90, "{tfdt}");
}

#[test]
fn audio_only_segments_end_on_a_part_boundary() {
    let mut s = PartSegmenter::new(PartsConfig {
        low_latency: true,
        window: 3,
        ..PartsConfig::new("a-1")
    });
    let now = Instant::now();
    let _ = s.push(now, &headers()[1]).unwrap();
    // AAC at 44.1 kHz: 1024 samples (23.22 ms) a frame, in RTMP's whole milliseconds.
    for n in 0..300u32 {
        let _ = s.push(now, &audio(n * 1024 * 1000 / 44_100)).unwrap();
    }
    let playlist = s.playlist();
    let mut parts: Vec<f64> = Vec::new();
    let mut segments = 0;
    for line in playlist.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:DURATION=") {
            parts.push(rest.split(',').next().unwrap().parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("#EXTINF:") {
            let extinf: f64 = rest.trim_end_matches(',').parse().unwrap();
            assert!(
                extinf.round() <= 1.0,
                "{extinf} beyond the target: {playlist}"
            );
            if !parts.is_empty() {
                segments += 1;
                // Parts are whole: none is cut short by the segment's end.
                assert!(parts.iter().all(|d| *d > 0.15), "{parts:?} in {playlist}");
                let sum: f64 = parts.iter().sum();
                assert!((sum - extinf).abs() < 0.01, "{parts:?} vs {extinf}");
            }
            parts.clear();
        }
    }
    assert!(segments >= 2, "{playlist}");
}
