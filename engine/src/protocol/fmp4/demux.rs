//! Fragmented MP4 demuxer for pulled HLS (ISO/IEC 14496-12 fragments, as MediaMTX, Corestream
//! and most LL-HLS origins write them): H.264, H.265 and AAC tracks, as FLV frames.
//!
//! [`Fmp4Demuxer`] is given the playlist's init segment ([`init`](Fmp4Demuxer::init): `moov`
//! with the tracks' sample entries and `trex` defaults), then whole media segments in order
//! ([`feed_segment`](Fmp4Demuxer::feed_segment): `moof` + `mdat` pairs); frames are then taken
//! with [`poll_frame`](Fmp4Demuxer::poll_frame), every track's in decode order. Each track's
//! sequence header (the `avcC`/`hvcC` record, the AAC AudioSpecificConfig from `esds`) comes
//! before its first frame and again after an init segment that changes it. H.264 comes out as
//! FLV AVC frames, H.265 as enhanced-RTMP `hvc1` frames (both with their composition offset and
//! the samples' length-prefixed NAL units as they are), AAC as raw frames. Times are
//! milliseconds from the first decode time seen. No I/O, no clock.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::read::{
    child, children, decode_time, u16_at, u32_at, u64_at, BoxAt, SampleDefaults, Trun, TrunSample,
    SAMPLE_IS_NON_SYNC,
};
use crate::media::{Frame, MediaKind};
use crate::protocol::flv::{hevc_sequence_start, EX_CODED_FRAMES, EX_INTER_FRAME, EX_KEYFRAME};

/// A sample larger than this is refused (a 4K keyframe is well below it).
const MAX_SAMPLE_BYTES: u32 = 16 << 20;

/// What makes fMP4 input unusable here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fmp4DemuxError {
    #[error("the fmp4 init segment is malformed: {0}")]
    BadInit(&'static str),
    #[error("the fmp4 init segment has no h264, h265 or aac track (sample entries: {entries})")]
    NoUsableTrack { entries: String },
    #[error("an fmp4 media segment came before any init segment")]
    NoInit,
    #[error("an fmp4 media segment is malformed: {0}")]
    BadSegment(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Avc,
    Hevc,
    Aac,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Track {
    id: u32,
    timescale: u32,
    codec: Codec,
    /// The FLV sequence header body.
    header: Bytes,
    defaults: SampleDefaults,
}

#[derive(Debug, Clone)]
struct TrackState {
    track: Track,
    header_sent: bool,
    /// Where the next fragment starts when it has no `tfdt`, in the track's timescale.
    next_decode: u64,
}

/// The fMP4 demuxer of one pulled stream. See the module documentation for the call order.
#[derive(Debug, Default)]
pub struct Fmp4Demuxer {
    tracks: Vec<TrackState>,
    /// The first decode time seen, in ms: time 0 of the frames.
    origin_ms: Option<u64>,
    frames: VecDeque<Frame>,
}

impl Fmp4Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads an init segment (`ftyp` + `moov`). A track whose codec configuration changes
    /// announces its new sequence header before its next frame; the same init again changes
    /// nothing.
    pub fn init(&mut self, init: &[u8]) -> Result<(), Fmp4DemuxError> {
        let tracks = parse_init(init)?;
        let old = std::mem::take(&mut self.tracks);
        self.tracks = tracks
            .into_iter()
            .map(|track| {
                let before = old.iter().find(|s| s.track.id == track.id);
                TrackState {
                    header_sent: before.is_some_and(|s| s.header_sent && s.track == track),
                    next_decode: before.map_or(0, |s| s.next_decode),
                    track,
                }
            })
            .collect();
        Ok(())
    }

    /// Reads a media segment: every `moof` and the samples it points at. Nothing is taken from
    /// a segment that fails.
    pub fn feed_segment(&mut self, segment: &[u8]) -> Result<(), Fmp4DemuxError> {
        if self.tracks.is_empty() {
            return Err(Fmp4DemuxError::NoInit);
        }
        // (decode ms, order, frame): headers before samples of the same time.
        let mut out: Vec<(u64, usize, Frame)> = Vec::new();
        let mut next = self.tracks.clone();
        for moof in children(segment, 0, segment.len())
            .iter()
            .filter(|b| &b.kind == b"moof")
        {
            for traf in children(segment, moof.body, moof.end)
                .iter()
                .filter(|b| &b.kind == b"traf")
            {
                read_traf(segment, moof, traf, &mut next, &mut out)?;
            }
        }
        self.tracks = next;
        out.sort_by_key(|(ms, order, _)| (*ms, *order));
        let origin = *self
            .origin_ms
            .get_or_insert_with(|| out.first().map_or(0, |(ms, _, _)| *ms));
        for (ms, _, mut frame) in out {
            frame.timestamp = ms.saturating_sub(origin) as u32;
            self.frames.push_back(frame);
        }
        Ok(())
    }

    /// The next frame, in decode order.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }
}

/// The usable tracks of an init segment.
fn parse_init(data: &[u8]) -> Result<Vec<Track>, Fmp4DemuxError> {
    let bad = Fmp4DemuxError::BadInit;
    let top = children(data, 0, data.len());
    let moov = top
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or(bad("no moov box"))?;
    let mut trex: Vec<(u32, SampleDefaults)> = Vec::new();
    if let Some(mvex) = child(data, moov, b"mvex") {
        for t in children(data, mvex.body, mvex.end)
            .iter()
            .filter(|b| &b.kind == b"trex")
        {
            let field = |at| u32_at(data, t.body + at).ok_or(bad("short trex"));
            let defaults = SampleDefaults {
                duration: field(12)?,
                size: field(16)?,
                flags: field(20)?,
            };
            trex.push((field(4)?, defaults));
        }
    }
    let mut tracks = Vec::new();
    let mut entries = Vec::new();
    for trak in children(data, moov.body, moov.end)
        .iter()
        .filter(|b| &b.kind == b"trak")
    {
        let tkhd = child(data, trak, b"tkhd").ok_or(bad("trak without tkhd"))?;
        let wide = data.get(tkhd.body) == Some(&1);
        let id = u32_at(data, tkhd.body + if wide { 20 } else { 12 }).ok_or(bad("short tkhd"))?;
        let mdia = child(data, trak, b"mdia").ok_or(bad("trak without mdia"))?;
        let mdhd = child(data, &mdia, b"mdhd").ok_or(bad("mdia without mdhd"))?;
        let wide = data.get(mdhd.body) == Some(&1);
        let timescale =
            u32_at(data, mdhd.body + if wide { 20 } else { 12 }).ok_or(bad("short mdhd"))?;
        let stsd = child(data, &mdia, b"minf")
            .and_then(|minf| child(data, &minf, b"stbl"))
            .and_then(|stbl| child(data, &stbl, b"stsd"))
            .ok_or(bad("trak without stsd"))?;
        // Full box header and entry count, then the first sample entry.
        let Some(entry) = children(data, stsd.body + 8, stsd.end).into_iter().next() else {
            return Err(bad("stsd without a sample entry"));
        };
        entries.push(String::from_utf8_lossy(&entry.kind).into_owned());
        let Some((codec, header)) = sample_entry(data, &entry) else {
            continue;
        };
        let defaults = trex
            .iter()
            .find(|(t, _)| *t == id)
            .map_or_else(SampleDefaults::default, |(_, d)| *d);
        tracks.push(Track {
            id,
            timescale: timescale.max(1),
            codec,
            header,
            defaults,
        });
    }
    if tracks.is_empty() {
        return Err(Fmp4DemuxError::NoUsableTrack {
            entries: entries.join(", "),
        });
    }
    Ok(tracks)
}

/// A sample entry's codec and FLV sequence header; `None` for codecs not carried here.
fn sample_entry(data: &[u8], entry: &BoxAt) -> Option<(Codec, Bytes)> {
    match &entry.kind {
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" => {
            // VisualSampleEntry's fixed fields take 78 bytes.
            let boxes = children(data, entry.body + 78, entry.end);
            if let Some(avcc) = boxes.iter().find(|b| &b.kind == b"avcC") {
                let mut h = BytesMut::with_capacity(5 + avcc.end - avcc.body);
                h.put_slice(&[0x17, 0, 0, 0, 0]);
                h.put_slice(&data[avcc.body..avcc.end]);
                return Some((Codec::Avc, h.freeze()));
            }
            let hvcc = boxes.iter().find(|b| &b.kind == b"hvcC")?;
            Some((Codec::Hevc, hevc_sequence_start(&data[hvcc.body..hvcc.end])))
        }
        b"mp4a" => {
            // AudioSampleEntry: 28 bytes, 16 or 36 more in QuickTime's versions 1 and 2.
            let fixed = match u16_at(data, entry.body + 8)? {
                1 => 44,
                2 => 64,
                _ => 28,
            };
            let esds = children(data, entry.body + fixed, entry.end)
                .into_iter()
                .find(|b| &b.kind == b"esds")?;
            let asc = audio_specific_config(data.get(esds.body + 4..esds.end)?)?;
            let mut h = BytesMut::with_capacity(2 + asc.len());
            h.put_slice(&[0xaf, 0]);
            h.put_slice(asc);
            Some((Codec::Aac, h.freeze()))
        }
        _ => None,
    }
}

/// The DecoderSpecificInfo of an AAC ES_Descriptor (ISO/IEC 14496-1 7.2.6.5).
fn audio_specific_config(mut d: &[u8]) -> Option<&[u8]> {
    // A descriptor: tag, then its length in 7-bit groups.
    fn head(d: &[u8]) -> Option<(u8, usize, &[u8])> {
        let (&tag, mut rest) = d.split_first()?;
        let mut len = 0usize;
        for _ in 0..4 {
            let (&b, r) = rest.split_first()?;
            rest = r;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        Some((tag, len.min(rest.len()), rest))
    }
    let (tag, _, rest) = head(d)?;
    if tag != 0x03 {
        return None;
    }
    // ES_ID, then flags saying what optional fields follow.
    let flags = *rest.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*rest.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    d = rest.get(at..)?;
    let (tag, _, rest) = head(d)?;
    // objectTypeIndication 0x40: MPEG-4 audio (AAC).
    if tag != 0x04 || rest.first() != Some(&0x40) {
        return None;
    }
    let (tag, len, rest) = head(rest.get(13..)?)?;
    (tag == 0x05 && len > 0).then(|| &rest[..len])
}

/// Reads one `traf`: its samples as frames (after the track's sequence header, if not sent yet).
fn read_traf(
    data: &[u8],
    moof: &BoxAt,
    traf: &BoxAt,
    tracks: &mut [TrackState],
    out: &mut Vec<(u64, usize, Frame)>,
) -> Result<(), Fmp4DemuxError> {
    let bad = Fmp4DemuxError::BadSegment;
    let tfhd = child(data, traf, b"tfhd").ok_or(bad("traf without tfhd"))?;
    let field = |at: usize| u32_at(data, at).ok_or(bad("short tfhd"));
    let flags = field(tfhd.body)? & 0x00ff_ffff;
    let id = field(tfhd.body + 4)?;
    let Some(index) = tracks.iter().position(|t| t.track.id == id) else {
        // A track the init segment did not make usable (another codec): skipped.
        return Ok(());
    };
    let state = &mut tracks[index];
    let mut defaults = state.track.defaults;
    let mut at = tfhd.body + 8;
    // Data offsets count from the moof unless the fragment names a base.
    let mut base = moof.start as u64;
    if flags & 0x1 != 0 {
        base = u64_at(data, at).ok_or(bad("short tfhd"))?;
        at += 8;
    }
    if flags & 0x2 != 0 {
        at += 4;
    }
    for (bit, value) in [
        (0x8, &mut defaults.duration),
        (0x10, &mut defaults.size),
        (0x20, &mut defaults.flags),
    ] {
        if flags & bit != 0 {
            *value = field(at)?;
            at += 4;
        }
    }
    if let Some(tfdt) = child(data, traf, b"tfdt") {
        state.next_decode = decode_time(data, &tfdt).ok_or(bad("short tfdt"))?.0;
    }
    let track = &state.track;
    // Rounded to the nearest ms, so a time written from whole ms reads back as it was.
    let scale = u64::from(track.timescale);
    let to_ms = |t: u64| t.saturating_mul(1000).saturating_add(scale / 2) / scale;
    let mut position = base;
    for trun in children(data, traf.body, traf.end)
        .iter()
        .filter(|b| &b.kind == b"trun")
    {
        let run = Trun::read(data, trun, defaults).map_err(bad)?;
        if let Some(offset) = run.data_offset {
            position = base.saturating_add_signed(i64::from(offset as i32));
        }
        for TrunSample {
            duration,
            size,
            flags: sample_flags,
            composition_offset: composition,
        } in run
        {
            if size > MAX_SAMPLE_BYTES {
                return Err(bad("a sample of more than 16 MiB"));
            }
            let start = usize::try_from(position).map_err(|_| bad("sample data offset"))?;
            let sample = data
                .get(start..start.saturating_add(size as usize))
                .ok_or(bad("sample data outside the segment"))?;
            position += u64::from(size);
            let ms = to_ms(state.next_decode);
            state.next_decode += u64::from(duration);
            if !state.header_sent {
                state.header_sent = true;
                let kind = media_kind(track.codec);
                out.push((ms, 2 * index, Frame::new(kind, 0, track.header.clone())));
            }
            let cts_ms = i64::from(composition) * 1000 / i64::from(track.timescale);
            let key = sample_flags & SAMPLE_IS_NON_SYNC == 0;
            let frame = sample_frame(track.codec, key, cts_ms as i32, sample);
            out.push((ms, 2 * index + 1, frame));
        }
    }
    Ok(())
}

fn media_kind(codec: Codec) -> MediaKind {
    match codec {
        Codec::Avc | Codec::Hevc => MediaKind::Video,
        Codec::Aac => MediaKind::Audio,
    }
}

/// A sample as an FLV frame body (its time is set by the caller).
fn sample_frame(codec: Codec, key: bool, cts_ms: i32, sample: &[u8]) -> Frame {
    let cts = cts_ms.clamp(-(1 << 23), (1 << 23) - 1).to_be_bytes();
    let mut b = BytesMut::with_capacity(8 + sample.len());
    match codec {
        Codec::Avc => {
            b.put_u8(if key { 0x17 } else { 0x27 });
            b.put_u8(1);
            b.put_slice(&cts[1..]);
        }
        Codec::Hevc => {
            b.put_u8(if key { EX_KEYFRAME } else { EX_INTER_FRAME } | EX_CODED_FRAMES);
            b.put_slice(b"hvc1");
            b.put_slice(&cts[1..]);
        }
        Codec::Aac => b.put_slice(&[0xaf, 1]),
    }
    b.put_slice(sample);
    Frame::new(media_kind(codec), 0, b.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::fmp4::tests::{audio, audio_header, video, video_header};
    use crate::protocol::fmp4::Fmp4Muxer;

    /// Frames through our own muxer: its init segment and one fragment of every sample but the
    /// last of each track.
    fn muxed(frames: &[Frame]) -> (Bytes, Bytes) {
        let mut muxer = Fmp4Muxer::new();
        for f in frames {
            let _ = muxer.push(f);
        }
        let init = muxer.init_segment().expect("an init segment");
        let mut fragment = BytesMut::new();
        muxer.fragment(&mut fragment).expect("a fragment");
        (init, fragment.freeze())
    }

    #[test]
    fn our_muxers_fragments_come_back_as_the_frames_that_made_them() {
        let (video_header, audio_header) = (video_header(), audio_header());
        let frames = [
            video_header.clone(),
            audio_header.clone(),
            video(1000, true, 80, &[0, 0, 0, 2, 0x65, 0x88]),
            audio(1000, &[1, 2, 3]),
            audio(1023, &[4, 5, 6]),
            video(1040, false, 40, &[0, 0, 0, 2, 0x41, 0x9a]),
            audio(1046, &[7, 8, 9]),
            video(1080, false, 0, &[0, 0, 0, 2, 0x41, 0x9b]),
            audio(1069, &[10]),
        ];
        let (init, fragment) = muxed(&frames);
        let mut demux = Fmp4Demuxer::new();
        assert_eq!(demux.feed_segment(&fragment), Err(Fmp4DemuxError::NoInit));
        demux.init(&init).unwrap();
        demux.feed_segment(&fragment).unwrap();
        let got: Vec<Frame> = std::iter::from_fn(|| demux.poll_frame()).collect();
        // Every sample but each track's last, in decode order from time 0, each track's header
        // just before its first sample.
        let expected = [
            Frame::new(MediaKind::Video, 0, video_header.payload.clone()),
            video(0, true, 80, &[0, 0, 0, 2, 0x65, 0x88]),
            Frame::new(MediaKind::Audio, 0, audio_header.payload.clone()),
            audio(0, &[1, 2, 3]),
            audio(23, &[4, 5, 6]),
            video(40, false, 40, &[0, 0, 0, 2, 0x41, 0x9a]),
            audio(46, &[7, 8, 9]),
        ];
        assert_eq!(got, expected);
        // The same init again sends no header; frames go on from where they were.
        demux.init(&init).unwrap();
        demux.feed_segment(&fragment).unwrap();
        assert_eq!(
            demux.poll_frame().map(|f| f.payload),
            Some(expected[1].payload.clone())
        );
    }

    #[test]
    fn unusable_input_is_refused_with_its_reason() {
        let mut demux = Fmp4Demuxer::new();
        assert_eq!(
            demux.init(b"\0\0\0\x08free"),
            Err(Fmp4DemuxError::BadInit("no moov box"))
        );
        // An init whose only track is neither H.264, H.265 nor AAC.
        let (init, _) = muxed(&[audio_header(), audio(0, &[1]), audio(23, &[2])]);
        let mut other = init.to_vec();
        let at = other.windows(4).position(|w| w == b"mp4a").unwrap();
        other[at..at + 4].copy_from_slice(b"Opus");
        assert_eq!(
            demux.init(&other),
            Err(Fmp4DemuxError::NoUsableTrack {
                entries: "Opus".into()
            })
        );
        // A trun whose sample data lies past the end of the segment.
        let (init, fragment) = muxed(&[audio_header(), audio(0, &[1, 2, 3, 4]), audio(23, &[2])]);
        demux.init(&init).unwrap();
        let short = &fragment[..fragment.len() - 2];
        let mut cut = short.to_vec();
        let mdat = cut.windows(4).position(|w| w == b"mdat").unwrap() - 4;
        let len = (cut.len() - mdat) as u32;
        cut[mdat..mdat + 4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            demux.feed_segment(&cut),
            Err(Fmp4DemuxError::BadSegment(
                "sample data outside the segment"
            ))
        );
        assert_eq!(demux.poll_frame(), None);
    }
}
