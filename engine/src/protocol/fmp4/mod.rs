//! Fragmented MP4 (ISO/IEC 14496-12, CMAF-style) from FLV-framed frames: an init segment
//! (`ftyp` + `moov` with `avcC`/`hvcC`/`esds`) and media fragments (`moof` + `mdat`).
//!
//! [`Fmp4Muxer`] is fed [`Frame`]s in stream order and asked for a fragment whenever its user
//! wants one cut (an HLS part, a recording's fragment): each fragment holds every sample whose
//! duration is known, that is every sample but the last of each track, whose duration is the
//! distance to the next. No I/O, no clock: durations come from frame timestamps.
#![forbid(unsafe_code)]

mod boxes;
pub mod demux;
pub(crate) mod read;
mod sps;

/// The box writers, for the other writers of ISO BMFF (the playback server's MP4 answers).
pub(crate) use boxes::{write_box, write_full_box};

use bytes::{Bytes, BytesMut};

use crate::media::{AudioCodec, Frame, MediaKind, VideoCodec};
use boxes::{SampleEntry, SampleInfo, TrackInit, TrackRun, NON_SYNC_SAMPLE, SYNC_SAMPLE};

/// Track ids: video first, as players list it.
const VIDEO_TRACK: u32 = 1;
const AUDIO_TRACK: u32 = 2;
const VIDEO_TIMESCALE: u32 = 90_000;

/// Ways a frame can be unusable for fMP4. Each concerns one frame: it is dropped, the muxer
/// stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Fmp4Error {
    #[error("video codec {codec:?} is not supported in fmp4 (h264 and h265 are)")]
    UnsupportedVideoCodec { codec: VideoCodec },
    #[error("audio codec {codec:?} is not supported in fmp4 (aac is)")]
    UnsupportedAudioCodec { codec: AudioCodec },
    #[error("video tag of {len} bytes is truncated")]
    TruncatedVideoTag { len: usize },
    #[error("audio tag of {len} bytes is truncated")]
    TruncatedAudioTag { len: usize },
    #[error("aac audio specific config is malformed")]
    BadAudioSpecificConfig,
    #[error("media frame before its sequence header (kind {kind:?})")]
    MissingConfig { kind: MediaKind },
}

/// What [`Fmp4Muxer::push`] did with a frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fmp4Push {
    /// A codec configuration: the init segment changed.
    ConfigChanged,
    /// The same configuration again.
    ConfigUnchanged,
    /// Queued for the next fragment (once the next sample of its track gives its duration).
    Queued,
    /// Nothing to mux (script data, end of sequence, command frames).
    Ignored,
}

/// What a fragment holds, for playlists and cut decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Decode time of its first sample, in milliseconds on the muxer's timeline.
    pub start_ms: u64,
    /// Its duration in milliseconds: of the video samples if it has any, else of the audio.
    pub duration_ms: u64,
    /// Starts with a video keyframe (or is audio-only): a player can start decoding at it.
    pub independent: bool,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Decode time in the track's timescale.
    dts: u64,
    composition_offset: i32,
    sync: bool,
    data: Bytes,
}

#[derive(Debug)]
struct Track {
    init: Option<TrackInit>,
    timescale: u32,
    /// Samples with known durations, waiting for the next fragment.
    ready: Vec<(Sample, u32)>,
    /// The latest sample, waiting for the next to know its duration.
    last: Option<Sample>,
}

impl Track {
    fn new(timescale: u32) -> Self {
        Track {
            init: None,
            timescale,
            ready: Vec::new(),
            last: None,
        }
    }

    fn queue(&mut self, sample: Sample) {
        if let Some(prev) = self.last.take() {
            // A step back (jitter) gives a zero duration rather than a huge one.
            let duration = u32::try_from(sample.dts.saturating_sub(prev.dts)).unwrap_or(u32::MAX);
            self.ready.push((prev, duration));
        }
        self.last = Some(sample);
    }

    fn to_ms(&self, t: u64) -> u64 {
        t * 1000 / u64::from(self.timescale)
    }
}

/// A fragmented-MP4 muxer for one stream.
///
/// Call order: [`push`](Self::push) every frame in stream order (sequence headers first); once
/// [`init_segment`](Self::init_segment) is `Some`, call [`fragment`](Self::fragment) whenever a
/// fragment should end (it holds the frames pushed so far but the last of each track);
/// [`flush`](Self::flush) at the end of the stream to close the last samples with a guessed
/// duration. When `push` reports [`Fmp4Push::ConfigChanged`] the init segment changed and later
/// fragments need the new one.
#[derive(Debug)]
pub struct Fmp4Muxer {
    video: Track,
    audio: Track,
    /// Width and height from `onMetaData`, for codecs whose parameter sets are not parsed here.
    metadata_size: Option<(u16, u16)>,
    /// The first frame's timestamp: time zero of every track.
    epoch: Option<u32>,
    /// Last raw timestamp and its unwrapped value in ms, per track (video, audio).
    clocks: [Option<(u32, i64)>; 2],
    /// Added to every time after a restart, so decode times keep growing across publishers.
    offset_ms: i64,
    /// `mfhd` sequence number of the last fragment.
    sequence: u32,
}

impl Default for Fmp4Muxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Fmp4Muxer {
    pub fn new() -> Self {
        Fmp4Muxer {
            video: Track::new(VIDEO_TIMESCALE),
            audio: Track::new(1),
            metadata_size: None,
            epoch: None,
            clocks: [None, None],
            offset_ms: 0,
            sequence: 0,
        }
    }

    pub fn has_video(&self) -> bool {
        self.video.init.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.init.is_some()
    }

    pub fn push(&mut self, frame: &Frame) -> Result<Fmp4Push, Fmp4Error> {
        match frame.kind {
            MediaKind::Script => {
                if let Some(size) = metadata_size(&frame.payload) {
                    self.metadata_size = Some(size);
                }
                Ok(Fmp4Push::Ignored)
            }
            MediaKind::Video => self.push_video(frame),
            MediaKind::Audio => self.push_audio(frame),
        }
    }

    /// The init segment for the tracks configured so far; `None` before any.
    pub fn init_segment(&self) -> Option<Bytes> {
        let tracks: Vec<TrackInit> = [&self.video, &self.audio]
            .into_iter()
            .filter_map(|t| t.init.clone())
            .collect();
        if tracks.is_empty() {
            return None;
        }
        let mut out = BytesMut::with_capacity(1024);
        boxes::write_init(&mut out, &tracks);
        Some(out.freeze())
    }

    /// Writes a fragment of every sample with a known duration to `out`; `None` (and nothing
    /// written) if there is none.
    pub fn fragment(&mut self, out: &mut BytesMut) -> Option<FragmentInfo> {
        if self.video.ready.is_empty() && self.audio.ready.is_empty() {
            return None;
        }
        self.sequence = self.sequence.wrapping_add(1);
        let mut infos: Vec<(u32, u64, Vec<SampleInfo>, bool)> = Vec::with_capacity(2);
        let mut mdat_len = 0;
        let mut info: Option<FragmentInfo> = None;
        for (id, track) in [(VIDEO_TRACK, &self.video), (AUDIO_TRACK, &self.audio)] {
            let Some((first, _)) = track.ready.first() else {
                continue;
            };
            let samples: Vec<SampleInfo> = track
                .ready
                .iter()
                .map(|(s, duration)| SampleInfo {
                    duration: *duration,
                    size: s.data.len() as u32,
                    flags: if s.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE },
                    composition_offset: s.composition_offset,
                })
                .collect();
            mdat_len += track.ready.iter().map(|(s, _)| s.data.len()).sum::<usize>();
            let total: u64 = samples.iter().map(|s| u64::from(s.duration)).sum();
            if info.is_none() {
                info = Some(FragmentInfo {
                    start_ms: track.to_ms(first.dts),
                    duration_ms: track.to_ms(first.dts + total) - track.to_ms(first.dts),
                    independent: first.sync,
                });
            }
            infos.push((id, first.dts, samples, id == VIDEO_TRACK));
        }
        let runs: Vec<TrackRun<'_>> = infos
            .iter()
            .map(|(id, base, samples, with_offsets)| TrackRun {
                id: *id,
                base_decode_time: *base,
                samples,
                with_offsets: *with_offsets,
            })
            .collect();
        out.reserve(mdat_len + 256);
        boxes::write_fragment_head(out, self.sequence, &runs, mdat_len);
        for track in [&mut self.video, &mut self.audio] {
            for (s, _) in track.ready.drain(..) {
                out.extend_from_slice(&s.data);
            }
        }
        info
    }

    /// The stream ended: the last sample of each track gets the duration of the one before it
    /// (or `default_ms`), so a final [`fragment`](Self::fragment) holds everything.
    pub fn flush(&mut self, default_ms: u32) {
        for track in [&mut self.video, &mut self.audio] {
            let Some(last) = track.last.take() else {
                continue;
            };
            let guess = track.ready.last().map_or_else(
                || {
                    u32::try_from(u64::from(default_ms) * u64::from(track.timescale) / 1000)
                        .unwrap_or(u32::MAX)
                },
                |(_, d)| *d,
            );
            track.ready.push((last, guess));
        }
    }

    /// A new timeline (a new publisher, a jump): its first frame comes `gap_ms` after the latest
    /// one so far, and decode times keep growing. Queued samples are dropped; call
    /// [`flush`](Self::flush) and [`fragment`](Self::fragment) first to keep them.
    pub fn restart_timeline(&mut self, gap_ms: u32) {
        let latest = self.clocks.iter().flatten().map(|(_, ms)| *ms).max();
        if let Some(latest) = latest {
            self.offset_ms += latest.max(0) + i64::from(gap_ms);
        }
        self.epoch = None;
        self.clocks = [None, None];
        for track in [&mut self.video, &mut self.audio] {
            track.ready.clear();
            track.last = None;
        }
    }

    /// The frame's decode time in ms since the epoch, on a timeline unwrapped per track.
    fn unwrap_ms(&mut self, track: usize, ts: u32) -> u64 {
        let epoch = *self.epoch.get_or_insert(ts);
        let ms = match self.clocks[track] {
            Some((raw, ms)) => ms + i64::from(ts.wrapping_sub(raw) as i32),
            None => i64::from(ts.wrapping_sub(epoch) as i32),
        };
        self.clocks[track] = Some((ts, ms));
        // A frame a little before the epoch (the other track's jitter) starts at the epoch.
        (ms.max(0) + self.offset_ms) as u64
    }

    fn push_video(&mut self, frame: &Frame) -> Result<Fmp4Push, Fmp4Error> {
        let p = &frame.payload;
        let len = p.len();
        let first = *p.first().ok_or(Fmp4Error::TruncatedVideoTag { len })?;
        // Frame type 5: a video info / command frame, no picture.
        if (first >> 4) & 0x07 == 5 {
            return Ok(Fmp4Push::Ignored);
        }
        let codec = frame.video_codec().unwrap_or(VideoCodec::Other(0));
        let (fourcc, config_fourcc) = match codec {
            VideoCodec::H264 => (*b"avc1", *b"avcC"),
            VideoCodec::H265 => (*b"hvc1", *b"hvcC"),
            codec => return Err(Fmp4Error::UnsupportedVideoCodec { codec }),
        };
        // (is a configuration, composition offset in ms, body)
        let (config, cts, body) = if first & 0x80 != 0 {
            // Enhanced RTMP: packet type in the low nibble, FourCC in bytes 1..5.
            if len < 5 {
                return Err(Fmp4Error::TruncatedVideoTag { len });
            }
            match first & 0x0f {
                0 => (true, 0, p.slice(5..)),
                1 if len < 8 => return Err(Fmp4Error::TruncatedVideoTag { len }),
                1 => (false, si24(&p[5..8]), p.slice(8..)),
                // CodedFramesX: no composition offset field.
                3 => (false, 0, p.slice(5..)),
                _ => return Ok(Fmp4Push::Ignored),
            }
        } else {
            if len < 5 {
                return Err(Fmp4Error::TruncatedVideoTag { len });
            }
            match p[1] {
                0 => (true, 0, p.slice(5..)),
                1 => (false, si24(&p[2..5]), p.slice(5..)),
                _ => return Ok(Fmp4Push::Ignored),
            }
        };
        if config {
            let (width, height) = match codec {
                VideoCodec::H264 => avc_first_sps(&body).and_then(sps::h264_dimensions),
                _ => None,
            }
            .or(self.metadata_size)
            .unwrap_or((0, 0));
            let init = TrackInit {
                id: VIDEO_TRACK,
                timescale: VIDEO_TIMESCALE,
                entry: SampleEntry::Video {
                    fourcc,
                    config_fourcc,
                    record: body.to_vec(),
                    width,
                    height,
                },
            };
            return Ok(replace_init(&mut self.video, init));
        }
        if self.video.init.is_none() {
            return Err(Fmp4Error::MissingConfig {
                kind: MediaKind::Video,
            });
        }
        let ms = self.unwrap_ms(0, frame.timestamp);
        self.video.queue(Sample {
            dts: ms * u64::from(VIDEO_TIMESCALE) / 1000,
            composition_offset: cts.saturating_mul(90),
            sync: frame.is_keyframe(),
            data: body,
        });
        Ok(Fmp4Push::Queued)
    }

    fn push_audio(&mut self, frame: &Frame) -> Result<Fmp4Push, Fmp4Error> {
        let codec = frame.audio_codec().unwrap_or(AudioCodec::Other(0));
        if codec != AudioCodec::Aac {
            return Err(Fmp4Error::UnsupportedAudioCodec { codec });
        }
        let p = &frame.payload;
        if p.len() < 2 {
            return Err(Fmp4Error::TruncatedAudioTag { len: p.len() });
        }
        let body = p.slice(2..);
        if p[1] == 0 {
            let (sample_rate, channels) =
                parse_asc(&body).ok_or(Fmp4Error::BadAudioSpecificConfig)?;
            self.audio.timescale = sample_rate;
            let init = TrackInit {
                id: AUDIO_TRACK,
                timescale: sample_rate,
                entry: SampleEntry::Aac {
                    asc: body.to_vec(),
                    channels,
                    sample_rate,
                },
            };
            return Ok(replace_init(&mut self.audio, init));
        }
        if self.audio.init.is_none() {
            return Err(Fmp4Error::MissingConfig {
                kind: MediaKind::Audio,
            });
        }
        let ms = self.unwrap_ms(1, frame.timestamp);
        self.audio.queue(Sample {
            dts: ms * u64::from(self.audio.timescale) / 1000,
            composition_offset: 0,
            sync: true,
            data: body,
        });
        Ok(Fmp4Push::Queued)
    }

    /// Bytes held for the next fragments.
    pub fn queued_bytes(&self) -> usize {
        [&self.video, &self.audio]
            .iter()
            .map(|t| {
                t.ready.iter().map(|(s, _)| s.data.len()).sum::<usize>()
                    + t.last.as_ref().map_or(0, |s| s.data.len())
            })
            .sum()
    }
}

fn replace_init(track: &mut Track, init: TrackInit) -> Fmp4Push {
    if track.init.as_ref() == Some(&init) {
        return Fmp4Push::ConfigUnchanged;
    }
    track.init = Some(init);
    Fmp4Push::ConfigChanged
}

/// Signed 24-bit big-endian (the FLV composition time offset).
fn si24(b: &[u8]) -> i32 {
    let v = (i32::from(b[0]) << 16) | (i32::from(b[1]) << 8) | i32::from(b[2]);
    (v << 8) >> 8
}

/// What an AVCDecoderConfigurationRecord says of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvcProps {
    pub profile_idc: u8,
    pub level_idc: u8,
    /// Width and height from the first SPS, when it parses.
    pub size: Option<(u16, u16)>,
}

/// What an AVCDecoderConfigurationRecord says: its profile and level, and the size its first SPS
/// gives.
pub fn avc_record_props(record: &[u8]) -> Option<AvcProps> {
    Some(AvcProps {
        profile_idc: *record.get(1)?,
        level_idc: *record.get(3)?,
        size: avc_first_sps(record).and_then(sps::h264_dimensions),
    })
}

/// `general_profile_idc` and `general_level_idc` of an HEVCDecoderConfigurationRecord.
pub fn hevc_record_props(record: &[u8]) -> Option<(u8, u8)> {
    Some((*record.get(1)? & 0x1f, *record.get(12)?))
}

/// Sample rate and channel configuration of an AudioSpecificConfig.
pub fn aac_config_props(asc: &[u8]) -> Option<(u32, u16)> {
    parse_asc(asc)
}

/// The first SPS of an AVCDecoderConfigurationRecord.
fn avc_first_sps(record: &[u8]) -> Option<&[u8]> {
    if *record.get(5)? & 0x1f == 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*record.get(6)?, *record.get(7)?]));
    record.get(8..8 + len)
}

/// Sample rate and channel count of an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
fn parse_asc(asc: &[u8]) -> Option<(u32, u16)> {
    const RATES: [u32; 13] = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
    ];
    let mut bits: u64 = 0;
    for (i, b) in asc.iter().take(8).enumerate() {
        bits |= u64::from(*b) << (56 - 8 * i);
    }
    let available = asc.len().min(8) * 8;
    let mut pos = 0;
    let mut read = |n: usize| -> Option<u32> {
        if pos + n > available {
            return None;
        }
        let v = (bits << pos) >> (64 - n);
        pos += n;
        Some(v as u32)
    };
    let mut object_type = read(5)?;
    if object_type == 31 {
        object_type = 32 + read(6)?;
    }
    let _ = object_type;
    let index = read(4)?;
    let rate = if index == 15 {
        read(24)?
    } else {
        *RATES.get(index as usize)?
    };
    let channels = read(4)?;
    (rate > 0).then_some((rate, channels as u16))
}

/// `width` and `height` of an `onMetaData` script payload.
fn metadata_size(payload: &[u8]) -> Option<(u16, u16)> {
    use crate::protocol::rtmp::amf0;
    let values = amf0::decode_all(payload).ok()?;
    let props = values.get(1)?;
    let w = props.get("width")?.as_number()?;
    let h = props.get("height")?.as_number()?;
    Some((w as u16, h as u16))
}

#[cfg(test)]
pub(crate) mod tests;
