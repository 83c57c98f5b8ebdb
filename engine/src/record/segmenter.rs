//! The recording of one stream as segments and parts, without I/O.
//!
//! [`Segmenter`] is fed the stream's frames and the wall-clock time, and is polled for what to
//! do with the file system: start a new segment file, append bytes to it, end it. Every append
//! is a whole part (fMP4: one `moof`+`mdat`; MPEG-TS: whole 188-byte packets), and the first
//! append of an fMP4 segment is its init segment (`ftyp`+`moov`), so a file cut after any append
//! is well-formed and plays up to its last part.
//!
//! A segment starts on a keyframe (any frame of an audio-only stream): the first one, the first
//! after `segment_duration`, and the first after the codec parameters changed (the old segment
//! ends at the change). A part ends before a frame that would take it past `part_duration`,
//! before a video keyframe (so a keyframe always opens a part), or once it holds
//! `max_part_bytes`.
//!
//! Call order: [`push`](Segmenter::push) each frame in stream order, then drain
//! [`poll_output`](Segmenter::poll_output); [`finish`](Segmenter::finish) when the stream ends
//! (the last part and the segment's end are then polled); [`restart`](Segmenter::restart) after
//! the file system failed: the current segment is abandoned (no more output for it) and the next
//! starts at the next keyframe.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::config::RecordFormat;
use crate::media::{Frame, MediaKind};
use crate::protocol::fmp4::Fmp4Muxer;
use crate::protocol::ts::TsMuxer;

/// What the segmenter asks of the file system, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutput {
    /// Create a new segment file for a segment starting at `start_us` (Unix microseconds).
    /// A segment still open is ended first by an [`RecordOutput::End`].
    Begin { start_us: u64 },
    /// Append these bytes to the current segment file: a whole part (or the init segment).
    Append(Bytes),
    /// The current segment is complete: make it durable and close it. `duration_ms` is its
    /// media duration.
    End { duration_ms: u64 },
}

/// How a recording is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterSettings {
    pub format: RecordFormat,
    pub part_duration_ms: u64,
    pub max_part_bytes: u64,
    pub segment_duration_ms: u64,
}

enum Muxer {
    Fmp4(Box<Fmp4Muxer>),
    Ts { muxer: TsMuxer, pending: BytesMut },
}

/// The open segment.
struct Open {
    muxer: Muxer,
    /// Timestamp (ms, the stream's clock) of its first frame.
    start_ts: u32,
    /// Timestamp of the first frame of the part being filled; `None` when it is empty.
    part_start_ts: Option<u32>,
    /// Timestamp of the latest frame.
    last_ts: u32,
    /// Media bytes in the part being filled.
    part_bytes: u64,
}

/// A stream's recording, cut into segments and parts; see the module documentation.
pub struct Segmenter {
    settings: SegmenterSettings,
    /// The latest metadata and sequence headers: every segment starts with them.
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
    open: Option<Open>,
    out: VecDeque<RecordOutput>,
    /// The first recorded frame's timestamp and wall-clock time: later segments start at the
    /// wall-clock time their media time gives, so segments follow each other without gaps or
    /// overlaps however the frames were delayed on their way.
    anchor: Option<(u32, u64)>,
    /// Frames dropped because their format cannot carry them (an unsupported codec).
    pub unsupported_frames: u64,
}

impl Segmenter {
    pub fn new(settings: SegmenterSettings) -> Self {
        Segmenter {
            settings,
            metadata: None,
            video_header: None,
            audio_header: None,
            open: None,
            out: VecDeque::new(),
            anchor: None,
            unsupported_frames: 0,
        }
    }

    pub fn settings(&self) -> SegmenterSettings {
        self.settings
    }

    /// Whether a segment is open.
    pub fn is_recording(&self) -> bool {
        self.open.is_some()
    }

    /// The next thing to do with the file system.
    pub fn poll_output(&mut self) -> Option<RecordOutput> {
        self.out.pop_front()
    }

    /// Feeds the next frame of the stream, received at `now_us` (Unix microseconds).
    pub fn push(&mut self, frame: &Frame, now_us: u64) {
        if frame.kind == MediaKind::Script {
            self.metadata = Some(frame.clone());
            return;
        }
        if frame.is_sequence_header() {
            let slot = match frame.kind {
                MediaKind::Video => &mut self.video_header,
                _ => &mut self.audio_header,
            };
            if slot.as_ref().map(|f| &f.payload) == Some(&frame.payload) {
                return;
            }
            *slot = Some(frame.clone());
            // New codec parameters: the segment ends here; the next starts on a keyframe
            // with the new init segment.
            self.end_segment();
            return;
        }
        let has_video = self.video_header.is_some();
        let starts_gop = match frame.kind {
            MediaKind::Video => frame.is_keyframe(),
            _ => !has_video,
        };
        if let Some(open) = &self.open {
            let elapsed = u64::from(frame.timestamp.wrapping_sub(open.start_ts));
            if starts_gop && elapsed >= self.settings.segment_duration_ms && elapsed < 1 << 31 {
                self.end_segment();
            }
        }
        if self.open.is_none() {
            // Video without its header is undecodable; audio waits for the video's first
            // keyframe when there is video.
            if !starts_gop || (frame.kind == MediaKind::Video && !has_video) {
                return;
            }
            if frame.kind == MediaKind::Audio && self.audio_header.is_none() {
                return;
            }
            self.begin_segment(frame.timestamp, now_us);
        }
        let Some(open) = &mut self.open else {
            return;
        };
        let due = open.part_start_ts.is_some_and(|part_start| {
            let elapsed = u64::from(frame.timestamp.wrapping_sub(part_start));
            (frame.kind == MediaKind::Video && frame.is_keyframe())
                || (elapsed >= self.settings.part_duration_ms && elapsed < 1 << 31)
                || open.part_bytes >= self.settings.max_part_bytes
        });
        let ok = match &mut open.muxer {
            // fMP4 holds each track's latest sample until the next gives its duration: the
            // frame goes in first, and the part then ends just before it.
            Muxer::Fmp4(m) => {
                let ok = m.push(frame).is_ok();
                if due {
                    let mut buf = BytesMut::new();
                    if m.fragment(&mut buf).is_some() {
                        self.out.push_back(RecordOutput::Append(buf.freeze()));
                    }
                }
                ok
            }
            Muxer::Ts { muxer, pending } => {
                if due && !pending.is_empty() {
                    self.out
                        .push_back(RecordOutput::Append(pending.split().freeze()));
                }
                muxer.write_frame(frame, pending).is_ok()
            }
        };
        if due {
            open.part_start_ts = None;
            open.part_bytes = 0;
        }
        if !ok {
            self.unsupported_frames += 1;
            return;
        }
        open.part_start_ts.get_or_insert(frame.timestamp);
        open.last_ts = frame.timestamp;
        open.part_bytes += frame.payload.len() as u64;
    }

    /// The stream ended: the last part and the segment's end follow.
    pub fn finish(&mut self) {
        self.end_segment();
    }

    /// The file system failed: drop what was not polled yet and the open segment (its file
    /// holds whole parts up to the failure); the next segment starts at the next keyframe.
    pub fn restart(&mut self) {
        self.out.clear();
        self.open = None;
    }

    fn begin_segment(&mut self, ts: u32, now_us: u64) {
        let (anchor_ts, anchor_us) = *self.anchor.get_or_insert((ts, now_us));
        let since_ms = ts.wrapping_sub(anchor_ts);
        // A timestamp that went backwards (a new timeline) re-anchors.
        let start_us = if since_ms < 1 << 31 {
            anchor_us + u64::from(since_ms) * 1000
        } else {
            self.anchor = Some((ts, now_us));
            now_us
        };
        self.out.push_back(RecordOutput::Begin { start_us });
        let headers = [&self.metadata, &self.video_header, &self.audio_header];
        let muxer = match self.settings.format {
            RecordFormat::Fmp4 => {
                let mut m = Fmp4Muxer::new();
                for f in headers.into_iter().flatten() {
                    let _ = m.push(f);
                }
                if let Some(init) = m.init_segment() {
                    self.out.push_back(RecordOutput::Append(init));
                }
                Muxer::Fmp4(Box::new(m))
            }
            RecordFormat::Mpegts => {
                let mut muxer = TsMuxer::new();
                let mut pending = BytesMut::new();
                for f in headers.into_iter().flatten() {
                    let _ = muxer.write_frame(f, &mut pending);
                }
                muxer.start_segment();
                Muxer::Ts { muxer, pending }
            }
        };
        self.open = Some(Open {
            muxer,
            start_ts: ts,
            part_start_ts: None,
            last_ts: ts,
            part_bytes: 0,
        });
    }

    fn end_segment(&mut self) {
        let Some(mut open) = self.open.take() else {
            return;
        };
        let duration_ms = u64::from(open.last_ts.wrapping_sub(open.start_ts));
        if let Muxer::Fmp4(m) = &mut open.muxer {
            // The last samples' durations are unknown: each gets its predecessor's.
            m.flush(33);
        }
        if let Some(part) = take_part(&mut open.muxer) {
            self.out.push_back(RecordOutput::Append(part));
        }
        self.out.push_back(RecordOutput::End { duration_ms });
    }
}

/// The bytes of the part muxed so far, if any.
fn take_part(muxer: &mut Muxer) -> Option<Bytes> {
    match muxer {
        Muxer::Fmp4(m) => {
            let mut buf = BytesMut::new();
            m.fragment(&mut buf).map(|_| buf.freeze())
        }
        Muxer::Ts { pending, .. } => (!pending.is_empty()).then(|| pending.split().freeze()),
    }
}

#[cfg(test)]
mod tests;
