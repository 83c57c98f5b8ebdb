//! Reading recorded fMP4 segments back, without I/O: the init segment's tracks, each part's
//! timing and samples, and the plan of an answer to the playback server's `/get`: which parts
//! of which segments, their decode times moved onto one timeline, as fragmented MP4 (the parts
//! as they are on disk, `tfdt` and `mfhd` rewritten) or as a plain MP4 (a `moov` with every
//! sample's table, then the media as one `mdat`).
//!
//! Every part the recorder writes starts where the previous ended, and a video keyframe always
//! opens a part, so cutting at part boundaries cuts at keyframes.
#![forbid(unsafe_code)]

use std::ops::Deref;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::fmp4::read::{
    child, children, decode_time, u32_at, u64_at, BoxAt, SampleDefaults, Trun, SAMPLE_IS_NON_SYNC,
};
use crate::protocol::fmp4::{write_box, write_full_box};

/// One track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub id: u32,
    pub timescale: u32,
    /// The whole `trak` box, to rebuild a plain MP4's.
    trak: Bytes,
}

/// A segment's init segment (`ftyp` + `moov`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    pub bytes: Bytes,
    pub tracks: Vec<Track>,
    /// `mvhd`'s duration in ms (the recorder writes it when the segment completes; 0 before).
    pub duration_ms: u64,
}

impl Init {
    /// Whether segments with these inits can be played as one (the same tracks and codecs).
    pub fn same_tracks(&self, other: &Init) -> bool {
        self.tracks == other.tracks
    }
}

/// Parses `ftyp` + `moov` at the head of a segment; `None` until both are whole.
pub fn parse_init(head: &[u8]) -> Option<Init> {
    let top = children(head, 0, head.len());
    let ftyp = top.first().filter(|b| &b.kind == b"ftyp")?;
    let moov = top.get(1).filter(|b| &b.kind == b"moov")?;
    let mut tracks = Vec::new();
    let mut duration_ms = 0;
    for b in children(head, moov.body, moov.end) {
        match &b.kind {
            b"mvhd" => {
                let (timescale, duration) = if head[b.body] == 1 {
                    (u32_at(head, b.body + 20)?, u64_at(head, b.body + 24)?)
                } else {
                    (
                        u32_at(head, b.body + 12)?,
                        u64::from(u32_at(head, b.body + 16)?),
                    )
                };
                duration_ms = duration * 1000 / u64::from(timescale.max(1));
            }
            b"trak" => {
                let tkhd = child(head, &b, b"tkhd")?;
                let id = if head[tkhd.body] == 1 {
                    u32_at(head, tkhd.body + 20)?
                } else {
                    u32_at(head, tkhd.body + 12)?
                };
                let mdia = child(head, &b, b"mdia")?;
                let mdhd = child(head, &mdia, b"mdhd")?;
                let timescale = if head[mdhd.body] == 1 {
                    u32_at(head, mdhd.body + 20)?
                } else {
                    u32_at(head, mdhd.body + 12)?
                };
                tracks.push(Track {
                    id,
                    timescale: timescale.max(1),
                    trak: Bytes::copy_from_slice(&head[b.start..b.end]),
                });
            }
            _ => {}
        }
    }
    if tracks.is_empty() {
        return None;
    }
    Some(Init {
        bytes: Bytes::copy_from_slice(&head[ftyp.start..moov.end]),
        tracks,
        duration_ms,
    })
}

/// Where `mvhd`'s 32-bit duration sits in an init segment the recorder wrote.
pub fn mvhd_duration_offset(init: &[u8]) -> Option<usize> {
    let top = children(init, 0, init.len());
    let moov = top.iter().find(|b| &b.kind == b"moov")?;
    let mvhd = child(init, moov, b"mvhd")?;
    (init[mvhd.body] == 0).then_some(mvhd.body + 16)
}

/// One sample of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    pub composition_offset: i32,
}

/// One track's run in a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub track: u32,
    pub timescale: u32,
    /// Decode time of its first sample, in the track's timescale.
    pub base_time: u64,
    /// Where the `tfdt` time is in the `moof` (8 bytes when `tfdt_wide`).
    tfdt_at: usize,
    tfdt_wide: bool,
    /// Where its samples start, from the `moof`'s first byte.
    pub data_offset: u64,
    pub samples: Vec<Sample>,
}

/// One part (`moof` + `mdat`) of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where its `moof` starts in the file.
    pub offset: u64,
    pub moof_len: u64,
    /// The whole `mdat`, header included.
    pub mdat_len: u64,
    pub mdat_head: u64,
    /// Start and duration in µs on the segment's timeline (the first track's).
    pub start_us: u64,
    pub duration_us: u64,
    /// Opens with a video keyframe (or has no video): playable from here.
    pub independent: bool,
    pub runs: Vec<Run>,
    /// Where `mfhd`'s sequence number is in the `moof`.
    sequence_at: Option<usize>,
}

/// Parses a `moof` (`moof` holds the whole box) followed by an `mdat` of `mdat_len` bytes
/// (`mdat_head` of them its header).
pub fn parse_part(
    moof: &[u8],
    init: &Init,
    offset: u64,
    mdat_len: u64,
    mdat_head: u64,
) -> Option<Part> {
    let top = children(moof, 0, moof.len());
    let m = top.first().filter(|b| &b.kind == b"moof")?;
    let mut runs = Vec::new();
    let mut sequence_at = None;
    for b in children(moof, m.body, m.end) {
        if &b.kind == b"mfhd" {
            sequence_at = Some(b.body + 4);
        }
        if &b.kind != b"traf" {
            continue;
        }
        let tfhd = child(moof, &b, b"tfhd")?;
        let track = u32_at(moof, tfhd.body + 4)?;
        let timescale = init.tracks.iter().find(|t| t.id == track)?.timescale;
        let tfdt = child(moof, &b, b"tfdt")?;
        let (base_time, tfdt_wide) = decode_time(moof, &tfdt)?;
        let trun = child(moof, &b, b"trun")?;
        let run = Trun::read(moof, &trun, SampleDefaults::default()).ok()?;
        let data_offset = u64::from(run.data_offset.unwrap_or(0));
        let samples = run
            .map(|s| Sample {
                duration: s.duration,
                size: s.size,
                sync: s.flags & SAMPLE_IS_NON_SYNC == 0,
                composition_offset: s.composition_offset,
            })
            .collect();
        runs.push(Run {
            track,
            timescale,
            base_time,
            tfdt_at: tfdt.body + 4,
            tfdt_wide,
            data_offset,
            samples,
        });
    }
    let first = runs.first()?;
    let to_us = |t: u64, scale: u32| t * 1_000_000 / u64::from(scale);
    let ticks: u64 = first.samples.iter().map(|s| u64::from(s.duration)).sum();
    // With several tracks the first is the video (the recorder writes it first): a part opens
    // on a keyframe only if its video run does; a part without video cannot start playback.
    let independent = if init.tracks.len() == 1 {
        first.samples.first().is_none_or(|s| s.sync)
    } else {
        let video = init.tracks[0].id;
        runs.iter()
            .find(|r| r.track == video)
            .and_then(|r| r.samples.first())
            .is_some_and(|s| s.sync)
    };
    Some(Part {
        offset,
        moof_len: moof.len() as u64,
        mdat_len,
        mdat_head,
        start_us: to_us(first.base_time, first.timescale),
        duration_us: to_us(first.base_time + ticks, first.timescale)
            - to_us(first.base_time, first.timescale),
        independent,
        runs,
        sequence_at,
    })
}

/// A segment's parts, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Unix µs, from its name.
    pub start_us: u64,
    pub init: Init,
    pub parts: Vec<Part>,
}

impl SegmentScan {
    /// Its media duration in µs: to the end of its last part.
    pub fn duration_us(&self) -> u64 {
        let first = self.parts.first().map_or(0, |p| p.start_us);
        self.parts
            .last()
            .map_or(0, |p| p.start_us + p.duration_us - first)
    }
}

/// One piece of an answer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// These bytes.
    Bytes(Bytes),
    /// Part `part` of segment `segment`'s `moof`, read from its file and patched with
    /// [`patch_moof`].
    Moof {
        segment: usize,
        part: usize,
        sequence: u32,
    },
    /// `len` bytes of segment `segment`'s file from `offset`.
    File {
        segment: usize,
        offset: u64,
        len: u64,
    },
}

/// Which parts of `segments` (sorted by start) cover `[start_us, start_us + duration_us)`:
/// from the last part opening on a keyframe at or before `start_us` (the first such part when
/// the range starts earlier), while parts start before the end, across segments that carry the
/// same tracks and follow each other within a second. `(segment, part)` indexes.
pub fn select<S: Deref<Target = SegmentScan>>(
    segments: &[S],
    start_us: u64,
    duration_us: u64,
) -> Vec<(usize, usize)> {
    let end = start_us.saturating_add(duration_us);
    let mut out = Vec::new();
    let abs =
        |s: &SegmentScan, p: &Part| s.start_us + p.start_us.saturating_sub(s.parts[0].start_us);
    // The first segment: the last that starts at or before `start`, else the first.
    let first = segments
        .iter()
        .rposition(|s| s.start_us <= start_us && !s.parts.is_empty())
        .or_else(|| segments.iter().position(|s| !s.parts.is_empty()));
    let Some(mut first) = first else {
        return out;
    };
    // `start` in the gap after a segment (or after the last): the next segment, if any.
    let ends_before = |s: &SegmentScan| s.start_us + s.duration_us() <= start_us;
    if ends_before(&segments[first]) {
        match segments
            .iter()
            .enumerate()
            .skip(first + 1)
            .find(|(_, s)| !s.parts.is_empty())
        {
            Some((next, s)) if s.start_us < end => first = next,
            _ => return out,
        }
    }
    let seg = &segments[first];
    let Some(opening) = seg
        .parts
        .iter()
        .rposition(|p| p.independent && abs(seg, p) <= start_us)
        .or_else(|| seg.parts.iter().position(|p| p.independent))
    else {
        return out;
    };
    let mut prev_end = 0;
    for (si, s) in segments.iter().enumerate().skip(first) {
        if si > first {
            let joins = s.init.same_tracks(&segments[si - 1].init)
                && s.start_us.abs_diff(prev_end) <= 1_000_000;
            if !joins || s.start_us >= end {
                break;
            }
        }
        let from = if si == first { opening } else { 0 };
        for (pi, p) in s.parts.iter().enumerate().skip(from) {
            if abs(s, p) >= end && !out.is_empty() {
                return out;
            }
            out.push((si, pi));
        }
        prev_end = s.start_us + s.duration_us();
    }
    out
}

/// The answer as fragmented MP4: the first segment's init, then each selected part, its `moof`
/// patched by [`patch_moof`] (decode times on the answer's timeline, sequence numbers from 1).
pub fn plan_fmp4<S: Deref<Target = SegmentScan>>(
    segments: &[S],
    selected: &[(usize, usize)],
) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(1 + 2 * selected.len());
    let Some(&(s0, _)) = selected.first() else {
        return pieces;
    };
    pieces.push(Piece::Bytes(segments[s0].init.bytes.clone()));
    for (n, &(segment, part)) in selected.iter().enumerate() {
        let p = &segments[segment].parts[part];
        pieces.push(Piece::Moof {
            segment,
            part,
            sequence: n as u32 + 1,
        });
        pieces.push(Piece::File {
            segment,
            offset: p.offset + p.moof_len,
            len: p.mdat_len,
        });
    }
    pieces
}

/// The number of bytes `pieces` make.
pub fn answer_len<S: Deref<Target = SegmentScan>>(segments: &[S], pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Moof { segment, part, .. } => segments[*segment].parts[*part].moof_len,
            Piece::File { len, .. } => *len,
        })
        .sum()
}

/// Microseconds to add to a segment's own decode times to put them on the answer's timeline,
/// per track: `segment start - answer start`, the answer starting at its first part.
fn timeline_base<S: Deref<Target = SegmentScan>>(segments: &[S], s0: usize, p0: usize) -> u64 {
    let seg = &segments[s0];
    seg.start_us + seg.parts[p0].start_us.saturating_sub(seg.parts[0].start_us)
}

/// Rewrites a part's `moof` (as read from its file) for the answer: its decode times shifted
/// onto the answer's timeline (which starts at `answer_start_us`, wall clock) and its sequence
/// number set to `sequence`.
pub fn patch_moof(
    moof: &mut [u8],
    seg: &SegmentScan,
    part: &Part,
    answer_start_us: u64,
    sequence: u32,
) {
    let seg_zero = seg.parts.first().map_or(0, |p| p.start_us);
    for run in &part.runs {
        // The run's time on the segment's timeline, moved to wall clock, then to the answer's.
        let run_us = run.base_time * 1_000_000 / u64::from(run.timescale);
        let wall = seg.start_us + run_us.saturating_sub(seg_zero);
        let t = wall.saturating_sub(answer_start_us) * u64::from(run.timescale) / 1_000_000;
        if run.tfdt_wide {
            if let Some(f) = moof.get_mut(run.tfdt_at..run.tfdt_at + 8) {
                f.copy_from_slice(&t.to_be_bytes());
            }
        } else if let Some(f) = moof.get_mut(run.tfdt_at..run.tfdt_at + 4) {
            f.copy_from_slice(&(t as u32).to_be_bytes());
        }
    }
    if let Some(at) = part.sequence_at {
        if let Some(f) = moof.get_mut(at..at + 4) {
            f.copy_from_slice(&sequence.to_be_bytes());
        }
    }
}

/// Where the answer starts, wall clock: its first part's start.
pub fn answer_start_us<S: Deref<Target = SegmentScan>>(
    segments: &[S],
    selected: &[(usize, usize)],
) -> u64 {
    selected
        .first()
        .map_or(0, |&(s, p)| timeline_base(segments, s, p))
}

/// The answer as a plain MP4: `ftyp`, a `moov` with every sample of every selected part, and
/// one `mdat` header; the driver then streams each part's media (its `mdat` body) in order.
/// Returns the head and, per selected part, the file range of its media.
pub fn plan_mp4<S: Deref<Target = SegmentScan>>(
    segments: &[S],
    selected: &[(usize, usize)],
) -> Option<(Bytes, Vec<Piece>)> {
    let &(s0, _) = selected.first()?;
    let init = &segments[s0].init;
    let media_len: u64 = selected
        .iter()
        .map(|&(s, p)| {
            let part = &segments[s].parts[p];
            part.mdat_len - part.mdat_head
        })
        .sum();
    let ftyp = {
        let mut b = BytesMut::new();
        write_box(&mut b, b"ftyp", |b| {
            b.put_slice(b"isom");
            b.put_u32(512);
            for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
                b.put_slice(brand);
            }
        });
        b
    };
    // The moov's size does not depend on the chunk offsets (co64: 8 bytes each), so build it
    // once with offsets relative to the mdat body, measure it, then rebuild with the real ones.
    let moov_len = build_moov(segments, selected, init, 0).len() as u64;
    let mdat_body = ftyp.len() as u64 + moov_len + 16;
    let moov = build_moov(segments, selected, init, mdat_body);
    let mut head = BytesMut::with_capacity(ftyp.len() + moov.len() + 16);
    head.extend_from_slice(&ftyp);
    head.extend_from_slice(&moov);
    // A 64-bit mdat: size 1, then the large size.
    head.put_u32(1);
    head.put_slice(b"mdat");
    head.put_u64(16 + media_len);
    let pieces = selected
        .iter()
        .map(|&(s, p)| {
            let part = &segments[s].parts[p];
            Piece::File {
                segment: s,
                offset: part.offset + part.moof_len + part.mdat_head,
                len: part.mdat_len - part.mdat_head,
            }
        })
        .collect();
    Some((head.freeze(), pieces))
}

/// Writes a replacement for a box (its type and whole bytes) and says so, or says it did not.
type Rewrite<'a> = dyn FnMut(&[u8; 4], &[u8], &mut BytesMut) -> bool + 'a;

/// Copies a box, through the containers of a `trak` down to its `stbl`; a box `rewrite`
/// replaces is not copied.
fn copy_box(src: &[u8], b: &BoxAt, out: &mut BytesMut, rewrite: &mut Rewrite<'_>) {
    if rewrite(&b.kind, &src[b.start..b.end], out) {
        return;
    }
    const CONTAINERS: [&[u8; 4]; 4] = [b"trak", b"mdia", b"minf", b"stbl"];
    if CONTAINERS.contains(&&b.kind) {
        write_box(out, &b.kind, |out| {
            for c in children(src, b.body, b.end) {
                copy_box(src, &c, out, rewrite);
            }
        });
    } else {
        out.extend_from_slice(&src[b.start..b.end]);
    }
}

/// The plain MP4's `moov`; `mdat_body` is where the media starts in the answer.
fn build_moov<S: Deref<Target = SegmentScan>>(
    segments: &[S],
    selected: &[(usize, usize)],
    init: &Init,
    mdat_body: u64,
) -> BytesMut {
    let mut moov = BytesMut::new();
    // Each part's media follows the previous part's in the answer.
    let mut part_media_at = Vec::with_capacity(selected.len());
    let mut at = mdat_body;
    for &(s, p) in selected {
        part_media_at.push(at);
        let part = &segments[s].parts[p];
        at += part.mdat_len - part.mdat_head;
    }
    let mut longest_ms = 0u64;
    let mut traks = BytesMut::new();
    for track in &init.tracks {
        // (duration, size, sync, cts) per sample; chunk offsets and sample counts per chunk.
        let mut samples: Vec<Sample> = Vec::new();
        let mut chunks: Vec<(u64, u32)> = Vec::new();
        for (n, &(s, p)) in selected.iter().enumerate() {
            let part = &segments[s].parts[p];
            for run in part.runs.iter().filter(|r| r.track == track.id) {
                let within = run
                    .data_offset
                    .saturating_sub(part.moof_len + part.mdat_head);
                chunks.push((part_media_at[n] + within, run.samples.len() as u32));
                samples.extend_from_slice(&run.samples);
            }
        }
        let total: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
        longest_ms = longest_ms.max(total * 1000 / u64::from(track.timescale));
        let src = &track.trak;
        let Some(trak) = children(src, 0, src.len()).into_iter().next() else {
            continue;
        };
        copy_box(src, &trak, &mut traks, &mut |kind, whole, out| match kind {
            b"mdhd" => {
                let mut b = BytesMut::from(whole);
                if b.len() >= 32 && b[8] == 0 {
                    let d = u32::try_from(total).unwrap_or(u32::MAX);
                    b[24..28].copy_from_slice(&d.to_be_bytes());
                }
                out.extend_from_slice(&b);
                true
            }
            b"stts" => {
                write_full_box(out, b"stts", 0, 0, |out| {
                    let mut runs: Vec<(u32, u32)> = Vec::new();
                    for s in &samples {
                        match runs.last_mut() {
                            Some((n, d)) if *d == s.duration => *n += 1,
                            _ => runs.push((1, s.duration)),
                        }
                    }
                    out.put_u32(runs.len() as u32);
                    for (n, d) in runs {
                        out.put_u32(n);
                        out.put_u32(d);
                    }
                });
                if samples.iter().any(|s| s.composition_offset != 0) {
                    write_full_box(out, b"ctts", 1, 0, |out| {
                        out.put_u32(samples.len() as u32);
                        for s in &samples {
                            out.put_u32(1);
                            out.put_i32(s.composition_offset);
                        }
                    });
                }
                if samples.iter().any(|s| !s.sync) {
                    write_full_box(out, b"stss", 0, 0, |out| {
                        let syncs: Vec<u32> = samples
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.sync)
                            .map(|(i, _)| i as u32 + 1)
                            .collect();
                        out.put_u32(syncs.len() as u32);
                        syncs.iter().for_each(|i| out.put_u32(*i));
                    });
                }
                true
            }
            b"stsc" => {
                write_full_box(out, b"stsc", 0, 0, |out| {
                    out.put_u32(chunks.len() as u32);
                    for (i, (_, n)) in chunks.iter().enumerate() {
                        out.put_u32(i as u32 + 1);
                        out.put_u32(*n);
                        out.put_u32(1);
                    }
                });
                true
            }
            b"stsz" => {
                write_full_box(out, b"stsz", 0, 0, |out| {
                    out.put_u32(0);
                    out.put_u32(samples.len() as u32);
                    samples.iter().for_each(|s| out.put_u32(s.size));
                });
                true
            }
            b"stco" => {
                write_full_box(out, b"co64", 0, 0, |out| {
                    out.put_u32(chunks.len() as u32);
                    chunks.iter().for_each(|(o, _)| out.put_u64(*o));
                });
                true
            }
            _ => false,
        });
    }
    write_box(&mut moov, b"moov", |out| {
        write_full_box(out, b"mvhd", 0, 0, |out| {
            out.put_u32(0);
            out.put_u32(0);
            out.put_u32(1000);
            out.put_u32(u32::try_from(longest_ms).unwrap_or(u32::MAX));
            out.put_u32(0x0001_0000);
            out.put_u16(0x0100);
            out.put_slice(&[0; 10]);
            for m in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
                out.put_u32(m);
            }
            out.put_slice(&[0; 24]);
            out.put_u32(init.tracks.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        });
        out.extend_from_slice(&traks);
    });
    moov
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::RecordFormat;
    use crate::media::{Frame, MediaKind};
    use crate::record::segmenter::{RecordOutput, Segmenter, SegmenterSettings};

    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40,
        0x00, 0x00, 0x0c, 0x83, 0xc5, 0x0a, 0xa8,
    ];

    /// A recorded segment of `seconds` (25 fps video, keyframe each second; AAC every 23 ms)
    /// as the writer would leave it on disk, scanned as the reader scans it.
    fn segment(start_us: u64, seconds: u32) -> std::rc::Rc<SegmentScan> {
        std::rc::Rc::new(segment_file(start_us, seconds).0)
    }

    fn segment_file(start_us: u64, seconds: u32) -> (SegmentScan, Vec<u8>) {
        let mut s = Segmenter::new(SegmenterSettings {
            format: RecordFormat::Fmp4,
            part_duration_ms: 500,
            max_part_bytes: 1 << 20,
            segment_duration_ms: 3_600_000,
        });
        let mut header = vec![
            0x17,
            0,
            0,
            0,
            0,
            1,
            0x42,
            0xc0,
            0x0d,
            0xff,
            0xe1,
            0,
            SPS.len() as u8,
        ];
        header.extend_from_slice(SPS);
        header.extend_from_slice(&[1, 0, 4, 0x68, 0xce, 0x3c, 0x80]);
        s.push(&Frame::new(MediaKind::Video, 0, Bytes::from(header)), 0);
        s.push(
            &Frame::new(
                MediaKind::Audio,
                0,
                Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
            ),
            0,
        );
        let mut next_audio = 0;
        for i in 0..seconds * 25 {
            let ts = i * 40;
            while next_audio < ts {
                let a = Frame::new(
                    MediaKind::Audio,
                    next_audio,
                    Bytes::from_static(&[0xaf, 1, 1, 2]),
                );
                s.push(&a, 0);
                next_audio += 23;
            }
            let key = i % 25 == 0;
            let v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
            s.push(&Frame::new(MediaKind::Video, ts, Bytes::from(v)), 0);
        }
        s.finish();
        let mut file = Vec::new();
        while let Some(o) = s.poll_output() {
            if let RecordOutput::Append(b) = o {
                file.extend_from_slice(&b);
            }
        }
        let init = parse_init(&file).expect("init");
        let mut parts = Vec::new();
        let boxes = children(&file, 0, file.len());
        for pair in boxes.windows(2) {
            if &pair[0].kind == b"moof" && &pair[1].kind == b"mdat" {
                let (moof, mdat) = (pair[0], pair[1]);
                let len = (mdat.end - mdat.start) as u64;
                parts.push(
                    parse_part(
                        &file[moof.start..moof.end],
                        &init,
                        moof.start as u64,
                        len,
                        8,
                    )
                    .expect("part"),
                );
            }
        }
        (
            SegmentScan {
                start_us,
                init,
                parts,
            },
            file,
        )
    }

    #[test]
    fn parts_open_on_keyframes_and_add_up() {
        let seg = segment(0, 4);
        assert_eq!(seg.init.tracks.len(), 2);
        assert!(seg.parts.len() >= 8, "{}", seg.parts.len());
        // Every keyframe opens a part; parts follow each other.
        let independent = seg.parts.iter().filter(|p| p.independent).count();
        assert_eq!(independent, 4);
        for pair in seg.parts.windows(2) {
            assert_eq!(pair[0].start_us + pair[0].duration_us, pair[1].start_us);
        }
        assert!((seg.duration_us() as i64 - 4_000_000).abs() <= 40_000);
    }

    #[test]
    fn select_starts_on_the_keyframe_at_or_before_start_and_crosses_segments() {
        let segments = [segment(10_000_000, 4), segment(14_000_000, 4)];
        // 2.5 s in: from the keyframe at 2 s, into the second segment, until 7 s.
        let picked = select(&segments, 12_500_000, 4_500_000);
        let first = picked[0];
        assert_eq!(first.0, 0);
        assert!(segments[0].parts[first.1].independent);
        assert_eq!(segments[0].parts[first.1].start_us, 2_000_000);
        let last = *picked.last().unwrap();
        assert_eq!(last.0, 1);
        let last_part = &segments[1].parts[last.1];
        assert!(14_000_000 + last_part.start_us < 17_000_000);
        assert_eq!(answer_start_us(&segments, &picked), 12_000_000);
        // Before everything: from the first keyframe. After everything: nothing.
        assert_eq!(select(&segments, 0, 11_000_000)[0], (0, 0));
        assert!(select(&segments, 30_000_000, 1_000_000).is_empty());
        // In a gap between segments: the next one.
        let gap = [segment(10_000_000, 2), segment(20_000_000, 2)];
        assert_eq!(select(&gap, 15_000_000, 10_000_000)[0], (1, 0));
    }

    #[test]
    fn fmp4_answers_rewrite_decode_times_from_zero() {
        let (one, file_one) = segment_file(10_000_000, 4);
        let (two, file_two) = segment_file(14_000_000, 4);
        let files = [file_one, file_two];
        let segments = [std::rc::Rc::new(one), std::rc::Rc::new(two)];
        let picked = select(&segments, 12_500_000, 4_500_000);
        let pieces = plan_fmp4(&segments, &picked);
        assert!(matches!(&pieces[0], Piece::Bytes(b) if *b == segments[0].init.bytes));
        let start = answer_start_us(&segments, &picked);
        // Each moof as read from its file, patched, then parsed again: the answer's timeline.
        let mut expected_sequence = 1;
        for piece in &pieces {
            let Piece::Moof {
                segment,
                part,
                sequence,
            } = piece
            else {
                continue;
            };
            assert_eq!(*sequence, expected_sequence);
            expected_sequence += 1;
            let seg = &segments[*segment];
            let p = &seg.parts[*part];
            let at = p.offset as usize;
            let mut moof = files[*segment][at..at + p.moof_len as usize].to_vec();
            patch_moof(&mut moof, seg, p, start, *sequence);
            let patched = parse_part(&moof, &seg.init, 0, p.mdat_len, p.mdat_head).unwrap();
            let video = &patched.runs[0];
            let wall = seg.start_us + p.start_us - seg.parts[0].start_us;
            assert_eq!(video.base_time, (wall - start) * 90_000 / 1_000_000);
        }
        assert!(expected_sequence > 10);
        // The answer as it is streamed, assembled from the files: `answer_len` is its length,
        // and it is whole boxes back to back.
        let mut answer = Vec::new();
        for piece in &pieces {
            match piece {
                Piece::Bytes(b) => answer.extend_from_slice(b),
                Piece::Moof {
                    segment,
                    part,
                    sequence,
                } => {
                    let (seg, p) = (&segments[*segment], &segments[*segment].parts[*part]);
                    let at = p.offset as usize;
                    let mut moof = files[*segment][at..at + p.moof_len as usize].to_vec();
                    patch_moof(&mut moof, seg, p, start, *sequence);
                    answer.extend_from_slice(&moof);
                }
                Piece::File {
                    segment,
                    offset,
                    len,
                } => answer.extend_from_slice(
                    &files[*segment][*offset as usize..(*offset + *len) as usize],
                ),
            }
        }
        assert_eq!(answer_len(&segments, &pieces), answer.len() as u64);
        let mut at = 0;
        while at < answer.len() {
            let size = u32::from_be_bytes(answer[at..at + 4].try_into().unwrap()) as usize;
            assert!(size >= 8, "a box of {size} bytes at {at}");
            at += size;
        }
        assert_eq!(at, answer.len());
    }

    #[test]
    fn mp4_answers_hold_every_sample() {
        let segments = [segment(10_000_000, 2), segment(12_000_000, 2)];
        let picked = select(&segments, 10_000_000, 4_000_000);
        let (head, media) = plan_mp4(&segments, &picked).expect("plan");
        let top = children(&head, 0, head.len());
        assert_eq!(&top[0].kind, b"ftyp");
        assert_eq!(&top[1].kind, b"moov");
        // The mdat header is 16 bytes (64-bit size), its size covering the media streamed after.
        let media_len: u64 = media
            .iter()
            .map(|p| match p {
                Piece::File { len, .. } => *len,
                _ => 0,
            })
            .sum();
        let mdat_at = top[1].end;
        assert_eq!(&head[mdat_at + 4..mdat_at + 8], b"mdat");
        assert_eq!(u64_at(&head, mdat_at + 8), Some(16 + media_len));
        // 100 video samples in the video track's stsz.
        let moov = top[1];
        let trak = children(&head, moov.body, moov.end)
            .into_iter()
            .find(|b| &b.kind == b"trak")
            .unwrap();
        let stbl = [b"mdia", b"minf", b"stbl"]
            .iter()
            .fold(trak, |b, k| child(&head, &b, k).unwrap());
        let stsz = child(&head, &stbl, b"stsz").unwrap();
        assert_eq!(u32_at(&head, stsz.body + 8), Some(100));
        assert!(child(&head, &stbl, b"stss").is_some());
        assert!(child(&head, &stbl, b"co64").is_some());
    }
}
