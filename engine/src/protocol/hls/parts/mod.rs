//! fMP4 HLS packaging: segments made of parts (one `moof`/`mdat` fragment each), for the `fmp4`
//! variant (segments only in the playlist) and Low-Latency HLS (parts announced with
//! `#EXT-X-PART`, a preload hint for the next one, blocking playlist reload).

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::media::{Frame, MediaKind};
use crate::protocol::fmp4::{Fmp4Error, Fmp4Muxer, Fmp4Push};

/// How a [`PartSegmenter`] cuts, keeps and announces media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartsConfig {
    /// URIs are `<stream_name>-<sequence>.mp4` (segments), `<stream_name>-p<n>.mp4` (parts,
    /// numbered across segments so a preload hint always names a part that will exist) and
    /// `<stream_name>-init<n>.mp4` (init segments).
    pub stream_name: String,
    /// A segment is cut at the first keyframe at least this long after its start, and at any
    /// frame once it would exceed the playlist's target duration (this rounded up to seconds).
    pub segment_duration: Duration,
    /// A part ends before the frame that would make it longer than this.
    pub part_duration: Duration,
    /// Segments listed in the playlist.
    pub window: usize,
    /// Segments kept after they slide out of the window (RFC 8216 6.2.2).
    pub retain_after_removal: usize,
    /// Announce parts (`#EXT-X-PART`, `#EXT-X-PRELOAD-HINT`, `#EXT-X-SERVER-CONTROL`).
    pub low_latency: bool,
    /// A segment stops growing at this many bytes: the rest up to the next keyframe is dropped.
    pub max_segment_bytes: usize,
}

impl PartsConfig {
    pub fn new(stream_name: impl Into<String>) -> Self {
        PartsConfig {
            stream_name: stream_name.into(),
            segment_duration: Duration::from_secs(1),
            part_duration: Duration::from_millis(200),
            window: 7,
            retain_after_removal: 2,
            low_latency: true,
            max_segment_bytes: 16 * 1024 * 1024,
        }
    }
}

/// One part: a fragment, playable once the init segment is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Numbered across segments from 0.
    pub number: u64,
    pub duration_ms: u32,
    /// Starts with a keyframe.
    pub independent: bool,
    pub data: Bytes,
}

#[derive(Debug)]
struct PartSegment {
    sequence: u64,
    parts: Vec<Part>,
    discontinuity: bool,
    /// Version of the init segment its fragments need.
    init: u32,
    /// The parts concatenated, once the segment is complete.
    data: Bytes,
}

impl PartSegment {
    fn duration_ms(&self) -> u32 {
        self.parts.iter().map(|p| p.duration_ms).sum()
    }

    fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum()
    }
}

/// The segment being built and where its current part started.
#[derive(Debug)]
struct Building {
    segment: PartSegment,
    segment_start: u32,
    part_start: u32,
    last_ts: u32,
    /// Dropping frames until the next keyframe (the segment outgrew `max_segment_bytes`).
    overflowed: bool,
}

/// What [`PartSegmenter::push`] did with a frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartPush {
    Appended,
    /// One or more parts (and maybe a segment) were finished: waiting requests may be answered.
    PartClosed,
    Dropped,
}

/// Backwards steps of the frame timeline up to this are interleaving jitter, beyond it a break.
const MAX_BACKWARD_STEP_MS: i32 = 500;
/// Frame intervals above this are gaps, not a frame rate.
const MAX_FRAME_INTERVAL_MS: u32 = 1_000;
/// A forward gap beyond this (and beyond three target durations) is a break in the timeline.
const MIN_FORWARD_GAP_MS: i32 = 10_000;

/// Live fMP4 HLS packager for one stream.
///
/// Call order: [`push`](Self::push) every frame in order, sequence headers included;
/// [`mark_discontinuity`](Self::mark_discontinuity) when a publisher comes back,
/// [`flush`](Self::flush) when it leaves. Serve [`playlist`](Self::playlist),
/// [`segment`](Self::segment), [`part`](Self::part) and [`init`](Self::init) at any time;
/// [`has_part`](Self::has_part) tells whether a blocking request can be answered. Durations come
/// from frame timestamps; `now` only records activity.
///
/// `#EXT-X-TARGETDURATION` is fixed for the life of the packager (RFC 8216 4.3.3.1 forbids a
/// change): the configured segment duration rounded up to whole seconds, and a segment is cut at a
/// non-keyframe rather than outgrow it.
#[derive(Debug)]
pub struct PartSegmenter {
    config: PartsConfig,
    muxer: Fmp4Muxer,
    /// Init segments by version, the current one last; older ones kept while a held segment
    /// needs them.
    inits: Vec<(u32, Bytes)>,
    /// The muxer's codec configuration changed since the current init was made.
    init_stale: bool,
    segments: VecDeque<PartSegment>,
    building: Option<Building>,
    next_sequence: u64,
    next_part: u64,
    removed_discontinuities: u64,
    discontinuity_pending: bool,
    frame_interval: u32,
    target_s: u32,
    last_input: Option<Instant>,
}

impl PartSegmenter {
    pub fn new(config: PartsConfig) -> Self {
        let target_s = u32::try_from(config.segment_duration.as_millis().div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1);
        PartSegmenter {
            config,
            muxer: Fmp4Muxer::new(),
            inits: Vec::new(),
            init_stale: false,
            segments: VecDeque::new(),
            building: None,
            next_sequence: 0,
            next_part: 0,
            removed_discontinuities: 0,
            discontinuity_pending: false,
            frame_interval: 0,
            target_s,
            last_input: None,
        }
    }

    pub fn config(&self) -> &PartsConfig {
        &self.config
    }

    fn part_ms(&self) -> u32 {
        u32::try_from(self.config.part_duration.as_millis()).unwrap_or(u32::MAX)
    }

    fn segment_ms(&self) -> u32 {
        u32::try_from(self.config.segment_duration.as_millis()).unwrap_or(u32::MAX)
    }

    /// Muxes one frame. An error concerns this frame only.
    pub fn push(&mut self, now: Instant, frame: &Frame) -> Result<PartPush, Fmp4Error> {
        self.last_input = Some(now);
        if frame.kind == MediaKind::Script {
            let _ = self.muxer.push(frame)?;
            return Ok(PartPush::Dropped);
        }
        if frame.is_sequence_header() {
            if self.muxer.push(frame)? == Fmp4Push::ConfigChanged {
                // Fragments after this need the new init: they start a new segment.
                let closed = self.flush();
                self.init_stale = true;
                return Ok(if closed {
                    PartPush::PartClosed
                } else {
                    PartPush::Appended
                });
            }
            return Ok(PartPush::Appended);
        }
        let cut_kind = if self.muxer.has_video() {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        let keyframe =
            frame.kind == cut_kind && (cut_kind == MediaKind::Audio || frame.is_keyframe());
        let ts = frame.timestamp;
        let mut closed = false;
        if let Some(b) = &self.building {
            let step = ts.wrapping_sub(b.last_ts) as i32;
            let max_gap = MIN_FORWARD_GAP_MS.max(self.segment_ms().saturating_mul(3) as i32);
            if step < -MAX_BACKWARD_STEP_MS || step > max_gap {
                closed |= self.flush();
                self.discontinuity_pending = true;
                self.muxer.restart_timeline(self.frame_interval.max(1));
            }
        }
        if let Some(b) = &self.building {
            if b.overflowed && !keyframe {
                return Ok(PartPush::Dropped);
            }
        }
        let Some(b) = &self.building else {
            if !keyframe {
                return Ok(PartPush::Dropped);
            }
            let _ = self.muxer.push(frame)?;
            self.start_segment(ts);
            return Ok(if closed {
                PartPush::PartClosed
            } else {
                PartPush::Appended
            });
        };
        let overflowed = b.overflowed;
        let (seg_start, part_start) = (b.segment_start, b.part_start);
        let _ = self.muxer.push(frame)?;
        if frame.kind == cut_kind {
            let interval = ts.wrapping_sub(self.building.as_ref().map_or(ts, |b| b.last_ts));
            if interval > 0 && interval <= MAX_FRAME_INTERVAL_MS {
                self.frame_interval = interval;
            }
        }
        if frame.kind != cut_kind {
            if let Some(b) = &mut self.building {
                b.last_ts = b.last_ts.max(ts);
            }
            return Ok(if closed {
                PartPush::PartClosed
            } else {
                PartPush::Appended
            });
        }
        // Signed: a frame a little behind the start (jitter) is not a long segment.
        let in_segment = ts.wrapping_sub(seg_start) as i32;
        let in_part = ts.wrapping_sub(part_start) as i32;
        let force = in_segment >= 0 && in_segment as u32 >= self.target_s.saturating_mul(1000);
        let part_due = in_part >= 0 && in_part as u32 + self.frame_interval > self.part_ms();
        let segment_due = keyframe
            && in_segment >= 0
            && if cut_kind == MediaKind::Audio {
                // Audio may end a segment at any frame: end it where a part ends anyway, the
                // nearest such boundary to the segment duration, so no segment closes on a short
                // part (hls.js is late fetching those, and stalls on them at the live edge).
                part_due && in_segment as u32 + self.part_ms() / 2 >= self.segment_ms()
            } else {
                in_segment as u32 >= self.segment_ms()
            };
        if overflowed || segment_due || force {
            closed |= self.close_part(ts);
            closed |= self.close_segment();
            if overflowed {
                self.discontinuity_pending = true;
            }
            self.start_segment(ts);
        } else if part_due {
            closed |= self.close_part(ts);
            if let Some(b) = &mut self.building {
                b.part_start = ts;
            }
        }
        if let Some(b) = &mut self.building {
            b.last_ts = ts;
            if b.segment.bytes() + self.muxer.queued_bytes() >= self.config.max_segment_bytes {
                b.overflowed = true;
            }
        }
        Ok(if closed {
            PartPush::PartClosed
        } else {
            PartPush::Appended
        })
    }

    fn start_segment(&mut self, ts: u32) {
        if self.init_stale || self.inits.is_empty() {
            if let Some(init) = self.muxer.init_segment() {
                let version = self.inits.last().map_or(0, |(v, _)| v + 1);
                self.inits.push((version, init));
            }
            self.init_stale = false;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.building = Some(Building {
            segment: PartSegment {
                sequence,
                parts: Vec::new(),
                discontinuity: std::mem::take(&mut self.discontinuity_pending),
                init: self.inits.last().map_or(0, |(v, _)| *v),
                data: Bytes::new(),
            },
            segment_start: ts,
            part_start: ts,
            last_ts: ts,
            overflowed: false,
        });
    }

    /// Ends the current part at `end` (the timestamp of the frame after it); whether one was made.
    fn close_part(&mut self, end: u32) -> bool {
        let Some(b) = &mut self.building else {
            return false;
        };
        let mut out = BytesMut::new();
        let Some(info) = self.muxer.fragment(&mut out) else {
            return false;
        };
        let duration_ms = end.wrapping_sub(b.part_start);
        // A part measured backwards (jitter) takes the muxer's own measure.
        let duration_ms = if duration_ms > MAX_FRAME_INTERVAL_MS * 60 {
            u32::try_from(info.duration_ms).unwrap_or(0)
        } else {
            duration_ms
        };
        b.segment.parts.push(Part {
            number: self.next_part,
            duration_ms,
            independent: info.independent,
            data: out.freeze(),
        });
        self.next_part += 1;
        true
    }

    fn close_segment(&mut self) -> bool {
        let Some(b) = self.building.take() else {
            return false;
        };
        let mut segment = b.segment;
        if segment.parts.is_empty() {
            self.discontinuity_pending |= segment.discontinuity;
            // Its sequence number is reused: nothing was listed under it.
            self.next_sequence = segment.sequence;
            return false;
        }
        let mut data = BytesMut::with_capacity(segment.bytes());
        for p in &segment.parts {
            data.extend_from_slice(&p.data);
        }
        segment.data = data.freeze();
        self.segments.push_back(segment);
        let keep = self.config.window + self.config.retain_after_removal;
        while self.segments.len() > keep {
            if let Some(old) = self.segments.pop_front() {
                self.removed_discontinuities += u64::from(old.discontinuity);
            }
        }
        let oldest = self.segments.front().map_or(u32::MAX, |s| s.init);
        let current = self.inits.last().map(|(v, _)| *v);
        self.inits
            .retain(|(v, _)| *v >= oldest || Some(*v) == current);
        true
    }

    /// The publisher is back: the next segment carries `#EXT-X-DISCONTINUITY`.
    pub fn mark_discontinuity(&mut self) {
        self.flush();
        self.discontinuity_pending = true;
        self.muxer.restart_timeline(self.frame_interval.max(1));
    }

    /// Finishes the segment being built (publisher gone); whether a part was finished.
    pub fn flush(&mut self) -> bool {
        let Some(b) = &self.building else {
            return false;
        };
        let end = b.last_ts.wrapping_add(self.frame_interval);
        self.muxer.flush(self.frame_interval.max(1));
        let closed = self.close_part(end);
        self.close_segment() || closed
    }

    fn listed(&self) -> impl Iterator<Item = &PartSegment> {
        let skip = self.segments.len().saturating_sub(self.config.window);
        self.segments.iter().skip(skip)
    }

    /// Milliseconds of media the playlist lists (segments, and parts of the one being built
    /// when parts are announced).
    fn listed_ms(&self) -> u64 {
        let segments: u64 = self.listed().map(|s| u64::from(s.duration_ms())).sum();
        let building = if self.config.low_latency {
            self.building
                .as_ref()
                .map_or(0, |b| u64::from(b.segment.duration_ms()))
        } else {
            0
        };
        segments + building
    }

    /// `PART-HOLD-BACK`: three part targets, as the LL-HLS draft recommends.
    fn part_hold_back_ms(&self) -> u64 {
        3 * u64::from(self.part_ms())
    }

    /// Whether the playlist holds enough media for a player to start at a safe distance from
    /// the live edge: a whole segment (a keyframe to start on) plus `PART-HOLD-BACK` of parts
    /// and one part more for Low-Latency HLS (a player's first requests, the init segment and
    /// the parts up to the edge and only then its first blocking reload, take round trips the
    /// hold-back alone does not cover: hls.js stalled in the first second of audio-only streams
    /// without it); three target durations (where players start) or a full window for segments.
    pub fn is_ready(&self) -> bool {
        if self.segments.is_empty() || self.inits.is_empty() {
            return false;
        }
        let listed = self.listed_ms();
        if self.config.low_latency {
            listed
                >= u64::from(self.segment_ms())
                    + self.part_hold_back_ms()
                    + u64::from(self.part_ms())
        } else {
            listed >= 3 * u64::from(self.target_s) * 1000
                || self.listed().count() >= self.config.window
        }
    }

    /// Whether a blocking playlist request for segment `msn` (and part `part` of it) can be
    /// answered: the playlist holds it or something later.
    pub fn has_part(&self, msn: u64, part: Option<u64>) -> bool {
        let building = self.building.as_ref().map(|b| &b.segment);
        match (building, part) {
            (Some(b), Some(part)) if b.sequence == msn => b.parts.len() as u64 > part,
            (Some(b), _) => b.sequence > msn,
            (None, _) => self.next_sequence > msn,
        }
    }

    /// Whether `msn` is too far ahead to be waited for (more than two segments past the last):
    /// the draft answers such a request with 400.
    pub fn is_too_far(&self, msn: u64) -> bool {
        // The last segment (the one being built) is `next_sequence - 1`.
        msn > self.next_sequence + 1
    }

    /// Whether part `number` exists (or is past).
    pub fn has_part_number(&self, number: u64) -> bool {
        self.next_part > number
    }

    /// The next part's number: what a preload hint names.
    pub fn next_part_number(&self) -> u64 {
        self.next_part
    }

    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        self.segments
            .iter()
            .find(|s| s.sequence == sequence)
            .map(|s| s.data.clone())
    }

    pub fn part(&self, number: u64) -> Option<Bytes> {
        let building = self.building.as_ref().map(|b| &b.segment);
        self.segments
            .iter()
            .rev()
            .chain(building)
            .flat_map(|s| s.parts.iter())
            .find(|p| p.number == number)
            .map(|p| p.data.clone())
    }

    pub fn init(&self, version: u32) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, b)| b.clone())
    }

    pub fn idle_for(&self, now: Instant) -> Option<Duration> {
        self.last_input.map(|t| now.saturating_duration_since(t))
    }

    fn uri(&self, what: std::fmt::Arguments<'_>) -> String {
        format!("{}-{what}.mp4", self.config.stream_name)
    }

    /// The live media playlist.
    pub fn playlist(&self) -> String {
        let ll = self.config.low_latency;
        let mut out = String::with_capacity(512 + self.config.window * 400);
        let media_sequence = self
            .listed()
            .next()
            .map_or(self.next_sequence, |s| s.sequence);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:{}\n#EXT-X-TARGETDURATION:{}\n",
            if ll { 9 } else { 7 },
            self.target_s
        );
        if ll {
            let _ = write!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}\n#EXT-X-PART-INF:PART-TARGET={}\n",
                seconds(self.part_hold_back_ms()),
                seconds(u64::from(self.part_ms()))
            );
        }
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
        let unlisted = self.segments.len().saturating_sub(self.config.window);
        let discontinuities = self.removed_discontinuities
            + self
                .segments
                .iter()
                .take(unlisted)
                .filter(|s| s.discontinuity)
                .count() as u64;
        if discontinuities > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}");
        }
        // Parts are listed for the segments within three target durations of the end.
        let total_ms = self.listed_ms();
        let parts_from_ms = total_ms.saturating_sub(3 * u64::from(self.target_s) * 1000);
        let mut at_ms = 0u64;
        let mut map: Option<u32> = None;
        let building = self.building.as_ref().map(|b| &b.segment);
        let write_map = |out: &mut String, init: u32, map: &mut Option<u32>| {
            if *map != Some(init) {
                let _ = writeln!(
                    out,
                    "#EXT-X-MAP:URI=\"{}\"",
                    self.uri(format_args!("init{init}"))
                );
                *map = Some(init);
            }
        };
        for s in self.listed() {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            write_map(&mut out, s.init, &mut map);
            let end = at_ms + u64::from(s.duration_ms());
            if ll && end > parts_from_ms {
                for p in &s.parts {
                    self.write_part(&mut out, p);
                }
            }
            at_ms = end;
            let _ = write!(
                out,
                "#EXTINF:{},\n{}\n",
                seconds(u64::from(s.duration_ms())),
                self.uri(format_args!("{}", s.sequence))
            );
        }
        if ll {
            if let Some(b) = building {
                if b.discontinuity {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                write_map(&mut out, b.init, &mut map);
                for p in &b.parts {
                    self.write_part(&mut out, p);
                }
            }
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{}\"",
                self.uri(format_args!("p{}", self.next_part))
            );
        }
        out
    }

    fn write_part(&self, out: &mut String, p: &Part) {
        let _ = writeln!(
            out,
            "#EXT-X-PART:DURATION={},URI=\"{}\"{}",
            seconds(u64::from(p.duration_ms)),
            self.uri(format_args!("p{}", p.number)),
            if p.independent {
                ",INDEPENDENT=YES"
            } else {
                ""
            }
        );
    }
}

/// Milliseconds as seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests;
