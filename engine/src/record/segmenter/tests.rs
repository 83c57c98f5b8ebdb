use bytes::Bytes;

use super::*;
use crate::record::store::complete_length;

const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00,
    0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
];
const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

fn video_header(profile: u8) -> Frame {
    let mut p = vec![0x17, 0, 0, 0, 0, 1, profile, 0xc0, 0x0d, 0xff, 0xe1];
    p.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    p.extend_from_slice(SPS);
    p.push(1);
    p.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    p.extend_from_slice(PPS);
    Frame::new(MediaKind::Video, 0, Bytes::from(p))
}

fn audio_header() -> Frame {
    Frame::new(
        MediaKind::Audio,
        0,
        Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
    )
}

fn video(ts: u32, key: bool) -> Frame {
    let p = vec![
        if key { 0x17 } else { 0x27 },
        1,
        0,
        0,
        0,
        0,
        0,
        0,
        2,
        0x65,
        0x88,
    ];
    Frame::new(MediaKind::Video, ts, Bytes::from(p))
}

fn audio(ts: u32) -> Frame {
    Frame::new(
        MediaKind::Audio,
        ts,
        Bytes::from_static(&[0xaf, 1, 0x21, 0x10]),
    )
}

fn settings(format: RecordFormat) -> SegmenterSettings {
    SegmenterSettings {
        format,
        part_duration_ms: 1_000,
        max_part_bytes: 50 << 20,
        segment_duration_ms: 4_000,
    }
}

/// 25 fps video with a keyframe every `gop` frames, and audio every 23 ms, for `ms`.
fn feed(s: &mut Segmenter, from_ms: u32, ms: u32, gop: u32) -> Vec<RecordOutput> {
    let mut out = Vec::new();
    let mut next_audio = from_ms;
    for i in 0..ms / 40 {
        let ts = from_ms + i * 40;
        while next_audio < ts {
            s.push(&audio(next_audio), u64::from(next_audio) * 1000);
            next_audio += 23;
        }
        s.push(
            &video(ts, (ts / 40).is_multiple_of(gop)),
            u64::from(ts) * 1000,
        );
        while let Some(o) = s.poll_output() {
            out.push(o);
        }
    }
    out
}

/// The files the outputs describe.
fn files(outputs: &[RecordOutput]) -> Vec<(u64, Vec<u8>, Option<u64>)> {
    let mut files: Vec<(u64, Vec<u8>, Option<u64>)> = Vec::new();
    for o in outputs {
        match o {
            RecordOutput::Begin { start_us } => files.push((*start_us, Vec::new(), None)),
            RecordOutput::Append(b) => files.last_mut().unwrap().1.extend_from_slice(b),
            RecordOutput::End { duration_ms } => files.last_mut().unwrap().2 = Some(*duration_ms),
        }
    }
    files
}

#[test]
fn fmp4_segments_start_on_keyframes_after_the_segment_duration() {
    let mut s = Segmenter::new(settings(RecordFormat::Fmp4));
    s.push(&video_header(0x42), 0);
    s.push(&audio_header(), 0);
    // Audio before the first keyframe is not recorded; frames start at 0 with keyframes every
    // 2 s, so segments rotate at 4 s and 8 s.
    let mut outputs = feed(&mut s, 0, 10_000, 50);
    s.finish();
    outputs.extend(std::iter::from_fn(|| s.poll_output()));
    let files = files(&outputs);
    assert_eq!(
        files.len(),
        3,
        "{:?}",
        files.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>()
    );
    assert_eq!(files[0].0, 0);
    assert_eq!(files[1].0, 4_000_000);
    assert_eq!(files[2].0, 8_000_000);
    assert_eq!(files[0].2, Some(3_979), "to the last audio frame");
    for (_, bytes, _) in &files {
        // Whole boxes only: ftyp, moov, then moof+mdat pairs.
        assert_eq!(
            complete_length(RecordFormat::Fmp4, bytes),
            bytes.len() as u64
        );
        assert_eq!(&bytes[4..8], b"ftyp");
    }
}

#[test]
fn parts_are_cut_by_duration_size_and_keyframes() {
    let mut s = Segmenter::new(settings(RecordFormat::Fmp4));
    s.push(&video_header(0x42), 0);
    s.push(&audio_header(), 0);
    let outputs = feed(&mut s, 0, 3_000, 50);
    let appends = outputs
        .iter()
        .filter(|o| matches!(o, RecordOutput::Append(_)))
        .count();
    // The init segment, then parts at 1 s and at 2 s (the keyframe).
    assert_eq!(appends, 3, "{outputs:?}");
    let mut s = Segmenter::new(SegmenterSettings {
        max_part_bytes: 100,
        ..settings(RecordFormat::Fmp4)
    });
    s.push(&video_header(0x42), 0);
    let outputs = feed(&mut s, 0, 1_000, 50);
    assert_eq!(
        outputs.len(),
        1 + 1 + 2,
        "begin, init, a part per ~100 bytes: {outputs:?}"
    );
}

#[test]
fn a_codec_change_ends_the_segment() {
    let mut s = Segmenter::new(settings(RecordFormat::Fmp4));
    s.push(&video_header(0x42), 0);
    let mut outputs = feed(&mut s, 0, 1_000, 50);
    s.push(&video_header(0x42), 1_000_000);
    assert!(s.is_recording(), "the same header again changes nothing");
    s.push(&video_header(0x4d), 1_000_000);
    assert!(!s.is_recording());
    outputs.extend(std::iter::from_fn(|| s.poll_output()));
    // Non-keyframes wait; the next keyframe (2 s) starts the new segment.
    outputs.extend(feed(&mut s, 1_000, 2_000, 50));
    let files = files(&outputs);
    assert_eq!(files.len(), 2);
    assert_eq!(files[1].0, 2_000_000);
    assert!(files[0].2.is_some());
}

#[test]
fn mpegts_parts_are_whole_packets() {
    let mut s = Segmenter::new(settings(RecordFormat::Mpegts));
    s.push(&video_header(0x42), 0);
    s.push(&audio_header(), 0);
    let mut outputs = feed(&mut s, 0, 5_000, 50);
    s.finish();
    outputs.extend(std::iter::from_fn(|| s.poll_output()));
    let files = files(&outputs);
    assert_eq!(files.len(), 2);
    for (_, bytes, end) in &files {
        assert!(end.is_some());
        assert_eq!(bytes.len() % 188, 0);
        assert_eq!(bytes[0], 0x47);
    }
}

#[test]
fn a_restart_abandons_the_segment_until_the_next_keyframe() {
    let mut s = Segmenter::new(settings(RecordFormat::Fmp4));
    s.push(&video_header(0x42), 0);
    let _ = feed(&mut s, 0, 500, 50);
    s.restart();
    assert!(s.poll_output().is_none());
    let outputs = feed(&mut s, 520, 1_600, 50);
    let files = files(&outputs);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, 2_000_000);
}

/// Frames that arrive late or in bursts do not move segment starts: after the first, a
/// segment starts where the media time says, so segments neither overlap nor leave gaps.
#[test]
fn segment_starts_follow_media_time_not_arrival() {
    let mut s = Segmenter::new(settings(RecordFormat::Fmp4));
    s.push(&video_header(0x42), 0);
    let mut outputs = Vec::new();
    for i in 0..250u32 {
        let ts = i * 40;
        // Arrival: on time, then 1.3 s late for a while (a stall), then a burst.
        let late = if (100..150).contains(&i) {
            1_300_000
        } else {
            0
        };
        s.push(
            &video(ts, i % 50 == 0),
            5_000_000 + u64::from(ts) * 1000 + late,
        );
        outputs.extend(std::iter::from_fn(|| s.poll_output()));
    }
    let starts: Vec<u64> = files(&outputs).iter().map(|f| f.0).collect();
    assert_eq!(starts, [5_000_000, 9_000_000, 13_000_000]);
}
