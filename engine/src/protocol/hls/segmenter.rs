use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::media::{Frame, MediaKind};
use crate::protocol::ts::{MuxOutcome, TsError, TsMuxer};

/// How a [`Segmenter`] cuts and keeps segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Segment URIs are `<stream_name>-<sequence>.ts`.
    pub stream_name: String,
    /// A segment is cut at the first cut point (keyframe, or any audio frame in audio-only
    /// streams) at least this long after its start.
    pub target_duration: Duration,
    /// Segments listed in the playlist.
    pub window: usize,
    /// Segments kept, but no longer listed, after they slide out of the window: RFC 8216 6.2.2
    /// asks that a removed segment stay available to clients that loaded an older playlist.
    pub retain_after_removal: usize,
    /// A segment stops growing once it holds this many bytes (it then holds at most this plus
    /// one frame); the frames up to the next cut point are dropped and the next segment starts
    /// with a discontinuity. Bounds memory when keyframes stop coming.
    pub max_segment_bytes: usize,
}

impl SegmenterConfig {
    pub fn new(stream_name: impl Into<String>) -> Self {
        Self {
            stream_name: stream_name.into(),
            target_duration: Duration::from_secs(2),
            window: 6,
            retain_after_removal: 2,
            max_segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One finished segment: a complete MPEG-TS file starting with PAT, PMT and a keyframe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub sequence: u64,
    /// From the segment's first timestamp to the next segment's first timestamp.
    pub duration_ms: u32,
    /// The segment follows a break in the timeline or in the encoding (publisher came back,
    /// timestamps jumped, frames dropped): the playlist puts `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
    pub data: Bytes,
}

/// What [`Segmenter::push`] did with a frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Muxed into the segment being built (or, for a sequence header, stored).
    Appended,
    /// The frame finished segment `sequence`, now in the playlist, and starts the next one.
    SegmentClosed { sequence: u64 },
    /// Not part of any segment: before the first keyframe, after an overflow until the next cut
    /// point, or carrying nothing (script data).
    Dropped,
}

/// The segment being built.
#[derive(Debug)]
struct Building {
    buf: BytesMut,
    start_ts: u32,
    /// Timestamp of the last frame muxed, to measure jumps.
    last_ts: u32,
    /// Timestamp of the last frame of the cut kind (video, or audio in audio-only streams).
    last_cut_kind_ts: u32,
    discontinuity: bool,
}

impl Building {
    /// A segment closed without a following cut point lasts until one frame interval after its
    /// last frame of the cut kind.
    fn duration_without_successor(&self, frame_interval: u32) -> u32 {
        let by_cut_kind = self
            .last_cut_kind_ts
            .wrapping_sub(self.start_ts)
            .saturating_add(frame_interval);
        by_cut_kind.max(self.last_ts.wrapping_sub(self.start_ts))
    }
}

/// Backwards steps of the frame timeline up to this are interleaving jitter, beyond it a break.
const MAX_BACKWARD_STEP_MS: i32 = 500;
/// Frame intervals above this are gaps, not a frame rate.
const MAX_FRAME_INTERVAL_MS: u32 = 1_000;
/// A forward gap beyond this (and beyond three target durations) is a break in the timeline.
const MIN_FORWARD_GAP_MS: i32 = 10_000;

/// Live HLS packager for one stream.
///
/// Call order: [`push`](Self::push) every frame of the stream in order, sequence headers
/// included, with the current time; [`mark_discontinuity`](Self::mark_discontinuity) when a
/// publisher comes back (before its first frame), [`flush`](Self::flush) when it leaves. Serve
/// [`playlist`](Self::playlist) and [`segment`](Self::segment) at any time. Frame timestamps alone
/// measure durations; `now` only records activity for [`idle_for`](Self::idle_for).
///
/// Memory is bounded by `window + retain_after_removal` finished segments plus the one being
/// built, each at most `max_segment_bytes` plus one frame.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    muxer: TsMuxer,
    /// Finished segments, oldest first, consecutive sequence numbers.
    segments: VecDeque<Segment>,
    building: Option<Building>,
    next_sequence: u64,
    /// Discontinuity tags that left memory (and so the playlist) with their segments.
    removed_discontinuities: u64,
    /// The next segment starts after a break.
    discontinuity_pending: bool,
    /// The latest interval between two frames of the cut kind, for segments closed early.
    frame_interval: u32,
    last_input: Option<Instant>,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            muxer: TsMuxer::new(),
            segments: VecDeque::new(),
            building: None,
            next_sequence: 0,
            removed_discontinuities: 0,
            discontinuity_pending: false,
            frame_interval: 0,
            last_input: None,
        }
    }

    pub fn config(&self) -> &SegmenterConfig {
        &self.config
    }

    /// Muxes one frame. An error concerns this frame only (unsupported codec, malformed
    /// payload); it is dropped and the segmenter stays usable.
    pub fn push(&mut self, now: Instant, frame: &Frame) -> Result<PushOutcome, TsError> {
        self.last_input = Some(now);
        if frame.kind == MediaKind::Script {
            return Ok(PushOutcome::Dropped);
        }
        if frame.is_sequence_header() {
            let mut none = BytesMut::new();
            return match self.muxer.write_frame(frame, &mut none)? {
                MuxOutcome::ConfigStored | MuxOutcome::Written => Ok(PushOutcome::Appended),
                MuxOutcome::Ignored => Ok(PushOutcome::Dropped),
            };
        }
        let cut_kind = if self.muxer.has_video() {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let cut_point =
            frame.kind == cut_kind && (cut_kind == MediaKind::Audio || frame.is_keyframe());

        if let Some(b) = &self.building {
            let step = frame.timestamp.wrapping_sub(b.last_ts) as i32;
            let max_gap = MIN_FORWARD_GAP_MS.max(self.target_ms().saturating_mul(3) as i32);
            if step < -MAX_BACKWARD_STEP_MS || step > max_gap {
                self.flush();
                self.discontinuity_pending = true;
            }
        }

        let mut closed = None;
        match &self.building {
            None if !cut_point => return Ok(PushOutcome::Dropped),
            None => self.start_building(frame.timestamp),
            Some(b) => {
                // Signed: a cut point a little behind the start (jitter) is not a long segment.
                let elapsed = frame.timestamp.wrapping_sub(b.start_ts) as i32;
                // At a keyframe past the configured duration, or at any frame of the cut kind
                // rather than outgrow the playlist's fixed target duration.
                let force = frame.kind == cut_kind
                    && elapsed >= 0
                    && elapsed as u32 >= self.target_seconds().saturating_mul(1000);
                if (cut_point && elapsed >= 0 && elapsed as u32 >= self.target_ms()) || force {
                    closed = self.close(elapsed as u32);
                    self.start_building(frame.timestamp);
                }
            }
        }

        let Some(b) = &mut self.building else {
            return Ok(PushOutcome::Dropped);
        };
        let outcome = self.muxer.write_frame(frame, &mut b.buf);
        if outcome.is_ok() {
            b.last_ts = frame.timestamp;
            if frame.kind == cut_kind {
                let interval = frame.timestamp.wrapping_sub(b.last_cut_kind_ts);
                if interval > 0 && interval <= MAX_FRAME_INTERVAL_MS {
                    self.frame_interval = interval;
                }
                b.last_cut_kind_ts = frame.timestamp;
            }
        }
        if b.buf.len() >= self.config.max_segment_bytes {
            // Full: publish what there is and skip to the next cut point.
            self.flush();
            self.discontinuity_pending = true;
        }
        let _ = outcome?;
        Ok(match closed {
            Some(sequence) => PushOutcome::SegmentClosed { sequence },
            None => PushOutcome::Appended,
        })
    }

    /// The publisher is back after a break: the next segment (cut at its first keyframe) carries
    /// `#EXT-X-DISCONTINUITY`. Finishes the segment being built, if any.
    pub fn mark_discontinuity(&mut self) {
        self.flush();
        self.discontinuity_pending = true;
    }

    /// Finishes the segment being built, if any, so it appears in the playlist (publisher gone).
    /// Its duration runs to its last frame plus one frame interval. Returns its sequence number.
    pub fn flush(&mut self) -> Option<u64> {
        let duration = self
            .building
            .as_ref()?
            .duration_without_successor(self.frame_interval);
        self.close(duration)
    }

    /// The live media playlist over the current window.
    pub fn playlist(&self) -> String {
        super::playlist::render(self)
    }

    /// A finished segment still held in memory (listed, or recently slid out of the window).
    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        let first = self.segments.front()?.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.segments.get(index).map(|s| s.data.clone())
    }

    /// The URI of a segment in the playlist: `<stream_name>-<sequence>.ts`.
    pub fn segment_uri(&self, sequence: u64) -> String {
        format!("{}-{}.ts", self.config.stream_name, sequence)
    }

    /// The sequence number a segment URI (last path component) names, if it is one of ours.
    pub fn sequence_from_uri(&self, uri: &str) -> Option<u64> {
        let digits = uri
            .strip_prefix(self.config.stream_name.as_str())?
            .strip_prefix('-')?
            .strip_suffix(".ts")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Segments listed in the playlist, oldest first.
    pub fn listed(&self) -> impl Iterator<Item = &Segment> {
        let skip = self.segments.len().saturating_sub(self.config.window);
        self.segments.iter().skip(skip)
    }

    /// Whether the playlist holds enough media for a player to start at a safe distance from
    /// the live edge: three target durations (where hls.js and Safari start), or a full window.
    pub fn is_ready(&self) -> bool {
        if self.config.window == 0 || self.segments.is_empty() {
            return false;
        }
        let listed: u64 = self.listed().map(|s| u64::from(s.duration_ms)).sum();
        listed >= 3 * u64::from(self.target_seconds()) * 1000
            || self.listed().count() >= self.config.window
    }

    /// `#EXT-X-TARGETDURATION`: the configured duration rounded up to whole seconds, fixed for
    /// the life of the playlist (RFC 8216 4.3.3.1); segments are cut rather than exceed it.
    pub fn target_seconds(&self) -> u32 {
        self.target_ms().div_ceil(1000).max(1)
    }

    /// The `#EXT-X-DISCONTINUITY-SEQUENCE` of the playlist: discontinuity tags that have left it.
    pub fn discontinuity_sequence(&self) -> u64 {
        let unlisted = self.segments.len().saturating_sub(self.config.window);
        let dropped_here = self
            .segments
            .iter()
            .take(unlisted)
            .filter(|s| s.discontinuity)
            .count() as u64;
        self.removed_discontinuities + dropped_here
    }

    /// The `#EXT-X-MEDIA-SEQUENCE` of the playlist.
    pub fn media_sequence(&self) -> u64 {
        self.listed()
            .next()
            .map_or(self.next_sequence, |s| s.sequence)
    }

    /// Time since the last frame was pushed, `None` before the first.
    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        self.last_input.map(|t| now.saturating_duration_since(t))
    }

    fn target_ms(&self) -> u32 {
        u32::try_from(self.config.target_duration.as_millis()).unwrap_or(u32::MAX)
    }

    fn start_building(&mut self, timestamp: u32) {
        self.muxer.start_segment();
        self.building = Some(Building {
            buf: BytesMut::new(),
            start_ts: timestamp,
            last_ts: timestamp,
            last_cut_kind_ts: timestamp,
            discontinuity: std::mem::take(&mut self.discontinuity_pending),
        });
    }

    /// Publishes the segment being built with `duration_ms`; an empty one is discarded, its
    /// discontinuity passed on.
    fn close(&mut self, duration_ms: u32) -> Option<u64> {
        let b = self.building.take()?;
        if b.buf.is_empty() {
            self.discontinuity_pending |= b.discontinuity;
            return None;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.segments.push_back(Segment {
            sequence,
            duration_ms,
            discontinuity: b.discontinuity,
            data: b.buf.freeze(),
        });
        let keep = self.config.window + self.config.retain_after_removal;
        while self.segments.len() > keep {
            if let Some(old) = self.segments.pop_front() {
                self.removed_discontinuities += u64::from(old.discontinuity);
            }
        }
        Some(sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ts::PACKET_SIZE;

    const AVC_SEQ: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2,
        0x68, 0xce,
    ];

    fn seq_headers() -> [Frame; 2] {
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
        let nal = if key { 0x65 } else { 0x41 };
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![first, 1, 0, 0, 0, 0, 0, 0, 3, nal, 0x88, 0x80]),
        )
    }

    fn audio(ts: u32) -> Frame {
        Frame::new(
            MediaKind::Audio,
            ts,
            Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]),
        )
    }

    fn config(window: usize, retain: usize) -> SegmenterConfig {
        SegmenterConfig {
            window,
            retain_after_removal: retain,
            ..SegmenterConfig::new("live")
        }
    }

    /// Pushes 25 fps video with a keyframe every `gop_ms`, and audio every 40 ms, over
    /// `[from, to)` (timestamps relative to `base`).
    fn run(seg: &mut Segmenter, now: Instant, from: u32, to: u32, gop_ms: u32) -> Vec<u64> {
        let mut closed = Vec::new();
        for t in (from..to).step_by(40) {
            for f in [video(t, t % gop_ms == 0), audio(t + 5)] {
                match seg.push(now, &f).unwrap() {
                    PushOutcome::SegmentClosed { sequence } => closed.push(sequence),
                    PushOutcome::Appended | PushOutcome::Dropped => {}
                }
            }
        }
        closed
    }

    fn started(cfg: SegmenterConfig, now: Instant) -> Segmenter {
        let mut seg = Segmenter::new(cfg);
        for f in seq_headers() {
            assert_eq!(seg.push(now, &f), Ok(PushOutcome::Appended));
        }
        seg
    }

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    #[test]
    fn playlist_slides() {
        let now = Instant::now();
        let mut seg = started(config(3, 1), now);
        assert!(!seg.is_ready());
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:0"
            ]
        );
        assert_eq!(run(&mut seg, now, 0, 4001, 1000), [0, 1]);
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:0",
                "#EXTINF:2.000,",
                "live-0.ts",
                "#EXTINF:2.000,",
                "live-1.ts",
            ]
        );
        assert_eq!(run(&mut seg, now, 4040, 10001, 1000), [2, 3, 4]);
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:2",
                "#EXTINF:2.000,",
                "live-2.ts",
                "#EXTINF:2.000,",
                "live-3.ts",
                "#EXTINF:2.000,",
                "live-4.ts",
            ]
        );
        // Slid out but retained for one more window step; older ones are gone.
        assert!(seg.segment(1).is_some());
        assert!(seg.segment(0).is_none());
        assert!(seg.segment(5).is_none());
        let data = seg.segment(4).unwrap();
        assert_eq!(data.len() % PACKET_SIZE, 0);
        // PAT, PMT, then the keyframe's PES.
        assert_eq!(&data[..3], &[0x47, 0x40, 0x00]);
        assert_eq!(&data[PACKET_SIZE..PACKET_SIZE + 3], &[0x47, 0x50, 0x00]);
        assert_eq!(
            &data[2 * PACKET_SIZE..2 * PACKET_SIZE + 3],
            &[0x47, 0x41, 0x00]
        );
    }

    #[test]
    fn target_duration_is_fixed_and_long_gops_are_cut() {
        let now = Instant::now();
        let mut seg = started(config(6, 0), now);
        // Keyframes every 3.52 s under a 2 s target: segments are cut at 2 s, keyframe or not.
        assert_eq!(run(&mut seg, now, 0, 7041, 3520), [0, 1, 2]);
        assert!(seg.is_ready(), "three target durations listed");
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:0",
                "#EXTINF:2.000,",
                "live-0.ts",
                "#EXTINF:2.000,",
                "live-1.ts",
                "#EXTINF:2.000,",
                "live-2.ts",
            ]
        );
    }

    #[test]
    fn discontinuity_tag_and_sequence() {
        let now = Instant::now();
        let mut seg = started(config(2, 0), now);
        assert_eq!(run(&mut seg, now, 0, 4001, 1000), [0, 1]);
        // Publisher leaves after 4.000..4.080 and comes back with its clock at 0.
        let _ = run(&mut seg, now, 4040, 4100, 1000);
        assert_eq!(seg.flush(), Some(2));
        seg.mark_discontinuity();
        for f in seq_headers() {
            let _ = seg.push(now, &f).unwrap();
        }
        assert_eq!(run(&mut seg, now, 0, 2001, 1000), [3]);
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:2",
                "#EXTINF:0.120,",
                "live-2.ts",
                "#EXT-X-DISCONTINUITY",
                "#EXTINF:2.000,",
                "live-3.ts",
            ]
        );
        assert_eq!(run(&mut seg, now, 2040, 4001, 1000), [4]);
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:3",
                "#EXT-X-DISCONTINUITY",
                "#EXTINF:2.000,",
                "live-3.ts",
                "#EXTINF:2.000,",
                "live-4.ts",
            ]
        );
        assert_eq!(run(&mut seg, now, 4040, 6001, 1000), [5]);
        assert_eq!(
            lines(&seg.playlist()),
            [
                "#EXTM3U",
                "#EXT-X-VERSION:3",
                "#EXT-X-TARGETDURATION:2",
                "#EXT-X-MEDIA-SEQUENCE:4",
                "#EXT-X-DISCONTINUITY-SEQUENCE:1",
                "#EXTINF:2.000,",
                "live-4.ts",
                "#EXTINF:2.000,",
                "live-5.ts",
            ]
        );
    }

    #[test]
    fn timestamp_jump_is_a_discontinuity() {
        let now = Instant::now();
        let mut seg = started(config(6, 0), now);
        assert_eq!(run(&mut seg, now, 0, 2001, 1000), [0]);
        // Jump back to 0 without mark_discontinuity: segment 1 (one keyframe at 2.000, one frame
        // interval long) is published.
        assert_eq!(run(&mut seg, now, 0, 2001, 1000), [2]);
        let listed: Vec<(u64, u32, bool)> = seg
            .listed()
            .map(|s| (s.sequence, s.duration_ms, s.discontinuity))
            .collect();
        assert_eq!(listed, [(0, 2000, false), (1, 40, false), (2, 2000, true)]);
    }

    #[test]
    fn audio_only_cuts_on_time() {
        let now = Instant::now();
        let mut seg = Segmenter::new(config(6, 0));
        let _ = seg.push(now, &seq_headers()[1]).unwrap();
        let mut closed = Vec::new();
        for i in 0..200u32 {
            if let PushOutcome::SegmentClosed { sequence } = seg.push(now, &audio(i * 23)).unwrap()
            {
                closed.push((sequence, i * 23));
            }
        }
        // 87 * 23 = 2001 ms is the first frame at least 2 s after the start.
        assert_eq!(closed, [(0, 2001), (1, 4002)]);
        assert_eq!(seg.listed().next().map(|s| s.duration_ms), Some(2001));
        assert!(seg.playlist().contains("#EXTINF:2.001,\nlive-0.ts\n"));
    }

    #[test]
    fn waits_for_a_keyframe_and_caps_segment_size() {
        let now = Instant::now();
        let mut seg = started(
            SegmenterConfig {
                max_segment_bytes: 2 * PACKET_SIZE * 10,
                ..config(6, 0)
            },
            now,
        );
        assert_eq!(seg.push(now, &audio(0)), Ok(PushOutcome::Dropped));
        assert_eq!(seg.push(now, &video(0, false)), Ok(PushOutcome::Dropped));
        assert_eq!(seg.push(now, &video(40, true)), Ok(PushOutcome::Appended));
        // Each frame here is 2 packets (video) or 2 (audio with PES); the cap is reached
        // before the next keyframe, so the segment is closed early and the rest dropped.
        let closed = run(&mut seg, now, 80, 2000, 10_000);
        assert!(closed.is_empty());
        let first = seg.listed().next().unwrap();
        assert!(first.data.len() <= 2 * PACKET_SIZE * 10 + 4 * PACKET_SIZE);
        assert_eq!(seg.push(now, &video(2000, false)), Ok(PushOutcome::Dropped));
        assert_eq!(seg.push(now, &video(2040, true)), Ok(PushOutcome::Appended));
        assert_eq!(seg.flush(), Some(1));
        assert!(seg.listed().nth(1).unwrap().discontinuity);
        assert_eq!(seg.idle_for(now), Some(Duration::ZERO));
    }

    #[test]
    fn uris() {
        let seg = Segmenter::new(config(6, 0));
        assert_eq!(seg.segment_uri(12), "live-12.ts");
        assert_eq!(seg.sequence_from_uri("live-12.ts"), Some(12));
        assert_eq!(seg.sequence_from_uri("live-.ts"), None);
        assert_eq!(seg.sequence_from_uri("live-+1.ts"), None);
        assert_eq!(seg.sequence_from_uri("other-1.ts"), None);
        assert_eq!(seg.idle_for(Instant::now()), None);
    }

    #[test]
    fn unsupported_codec_is_reported_and_skipped() {
        let now = Instant::now();
        let mut seg = started(config(6, 0), now);
        let mp3 = Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff]));
        assert!(matches!(
            seg.push(now, &video(0, true)),
            Ok(PushOutcome::Appended)
        ));
        assert!(seg.push(now, &mp3).is_err());
        assert_eq!(seg.push(now, &video(40, false)), Ok(PushOutcome::Appended));
    }
}
