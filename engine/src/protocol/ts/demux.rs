//! MPEG-2 transport stream demuxer (ISO 13818-1) for pulled HLS: the first H.264 stream and the
//! first AAC (ADTS) stream of the first program, as FLV frames.
//!
//! [`TsDemuxer`] is fed bytes ([`feed`](TsDemuxer::feed): whole segments or any slices of them, in
//! order) and told where an input ends ([`end_of_input`](TsDemuxer::end_of_input): an HLS segment
//! holds whole PES packets, so the last one is complete there); frames are then taken with
//! [`poll_frame`](TsDemuxer::poll_frame). Video comes out as an AVC sequence header whenever the
//! SPS or PPS change (before the keyframe that carries them) and one frame per access unit with
//! AVCC length-prefixed NAL units; audio as an AAC sequence header (from the first ADTS header,
//! and again when it changes) and one frame per ADTS frame. Times are milliseconds from the first
//! DTS seen, unwrapped across the 33-bit 90 kHz clock, so one demuxer fed segment after segment
//! gives one continuous timeline. No I/O, no clock.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::{PACKET_SIZE, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264, SYNC_BYTE};
use crate::media::{Frame, MediaKind};
use crate::protocol::flv::{avc_sequence_header, length_prefixed};

/// The PES clock wraps at 2^33 ticks of 90 kHz.
const TS_WRAP: u64 = 1 << 33;

/// A PES larger than this is refused (a 4K keyframe is well below it).
const MAX_PES_BYTES: usize = 16 << 20;

/// What makes a transport stream unusable here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsDemuxError {
    #[error("lost mpeg-ts sync: byte {byte:#04x} where a packet should start")]
    LostSync { byte: u8 },
    #[error("a pes packet of more than {MAX_PES_BYTES} bytes")]
    PesTooLarge,
    #[error("the program has no h264 video and no aac audio (stream types {types:?})")]
    NoUsableStream { types: Vec<u8> },
}

/// One elementary stream being assembled.
#[derive(Debug, Default)]
struct Pes {
    pid: u16,
    data: BytesMut,
    /// A PES start was seen: `data` holds a packet from its header on.
    started: bool,
}

/// The transport stream demuxer of one pulled stream. See the module documentation for the call
/// order.
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// Bytes of an incomplete packet.
    partial: Vec<u8>,
    pmt_pid: Option<u16>,
    video: Option<Pes>,
    audio: Option<Pes>,
    /// Stream types of the PMT, for the error when none is usable.
    types: Vec<u8>,
    clock: Clock,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// The parameter sets changed since the last sequence header.
    avc_config_due: bool,
    /// The AudioSpecificConfig of the last AAC sequence header sent.
    asc: Option<[u8; 2]>,
    frames: VecDeque<Frame>,
}

/// The 90 kHz clock unwrapped, as milliseconds from the first time seen.
#[derive(Debug, Default)]
struct Clock {
    origin: Option<u64>,
    last: u64,
}

impl Clock {
    /// `ts` (33 bits) on the unwrapped timeline, near the last one seen.
    fn unwrap(&mut self, ts: u64) -> u64 {
        const WRAP: u64 = TS_WRAP;
        let Some(_) = self.origin else {
            // Start well away from 0 so that a PTS a little before the first DTS stays positive.
            self.origin = Some(ts + WRAP);
            self.last = ts + WRAP;
            return self.last;
        };
        let base = self.last - self.last % WRAP;
        let candidates = [
            base + ts,
            (base + ts).saturating_sub(WRAP),
            base + ts + WRAP,
        ];
        let best = candidates
            .into_iter()
            .min_by_key(|c| c.abs_diff(self.last))
            .unwrap_or(base + ts);
        self.last = best;
        best
    }

    fn ms(&mut self, ts: u64) -> u32 {
        let t = self.unwrap(ts);
        let origin = self.origin.unwrap_or(t);
        (t.saturating_sub(origin) / 90) as u32
    }
}

impl TsDemuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes transport stream bytes; frames of the PES packets they complete become ready.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TsDemuxError> {
        if !self.partial.is_empty() {
            let need = PACKET_SIZE - self.partial.len();
            let take = need.min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() < PACKET_SIZE {
                return Ok(());
            }
            let packet = std::mem::take(&mut self.partial);
            self.packet(&packet)?;
        }
        while data.len() >= PACKET_SIZE {
            self.packet(&data[..PACKET_SIZE])?;
            data = &data[PACKET_SIZE..];
        }
        self.partial.extend_from_slice(data);
        Ok(())
    }

    /// The input ended (an HLS segment is whole): the PES packets in progress are complete.
    pub fn end_of_input(&mut self) -> Result<(), TsDemuxError> {
        for which in [true, false] {
            self.flush(which)?;
        }
        if self.pmt_pid.is_some() && self.video.is_none() && self.audio.is_none() {
            return Err(TsDemuxError::NoUsableStream {
                types: self.types.clone(),
            });
        }
        Ok(())
    }

    /// The next frame, in the order the stream carried them.
    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    fn packet(&mut self, p: &[u8]) -> Result<(), TsDemuxError> {
        if p[0] != SYNC_BYTE {
            return Err(TsDemuxError::LostSync { byte: p[0] });
        }
        let start = p[1] & 0x40 != 0;
        let pid = (u16::from(p[1] & 0x1f) << 8) | u16::from(p[2]);
        let adaptation = (p[3] >> 4) & 0x3;
        let mut at = 4;
        if adaptation & 0x2 != 0 {
            at += 1 + usize::from(p[4]);
        }
        if adaptation & 0x1 == 0 || at >= PACKET_SIZE {
            return Ok(());
        }
        let payload = &p[at..];
        if pid == 0 {
            if start {
                self.pat(payload);
            }
        } else if Some(pid) == self.pmt_pid {
            if start {
                self.pmt(payload);
            }
        } else if self.video.as_ref().is_some_and(|v| v.pid == pid) {
            self.pes_payload(true, start, payload)?;
        } else if self.audio.as_ref().is_some_and(|a| a.pid == pid) {
            self.pes_payload(false, start, payload)?;
        }
        Ok(())
    }

    /// The PAT: the first program's PMT PID.
    fn pat(&mut self, payload: &[u8]) {
        let Some(section) = section(payload) else {
            return;
        };
        // table id, length (2), transport stream id (2), version, section, last section: 8 bytes
        // before the program loop; 4 bytes of CRC after it.
        let end = section.len().saturating_sub(4);
        let mut i = 8;
        while i + 4 <= end {
            let program = u16::from_be_bytes([section[i], section[i + 1]]);
            let pid = (u16::from(section[i + 2] & 0x1f) << 8) | u16::from(section[i + 3]);
            if program != 0 {
                self.pmt_pid = Some(pid);
                return;
            }
            i += 4;
        }
    }

    /// The PMT: the first H.264 and the first AAC (ADTS) elementary streams.
    fn pmt(&mut self, payload: &[u8]) {
        let Some(section) = section(payload) else {
            return;
        };
        if section.len() < 12 {
            return;
        }
        let program_info = usize::from(u16::from_be_bytes([section[10], section[11]]) & 0x0fff);
        let end = section.len().saturating_sub(4);
        let mut i = 12 + program_info;
        self.types.clear();
        let (mut video, mut audio) = (None, None);
        while i + 5 <= end {
            let stream_type = section[i];
            let pid = (u16::from(section[i + 1] & 0x1f) << 8) | u16::from(section[i + 2]);
            let info = usize::from(u16::from_be_bytes([section[i + 3], section[i + 4]]) & 0x0fff);
            self.types.push(stream_type);
            match stream_type {
                STREAM_TYPE_H264 if video.is_none() => video = Some(pid),
                STREAM_TYPE_AAC_ADTS if audio.is_none() => audio = Some(pid),
                _ => {}
            }
            i += 5 + info;
        }
        let keep = |slot: &mut Option<Pes>, pid: Option<u16>| match pid {
            Some(pid) if slot.as_ref().is_some_and(|p| p.pid == pid) => {}
            Some(pid) => {
                *slot = Some(Pes {
                    pid,
                    ..Pes::default()
                })
            }
            None => *slot = None,
        };
        keep(&mut self.video, video);
        keep(&mut self.audio, audio);
    }

    /// The PES being assembled on the video (or audio) PID, if the program has that PID.
    fn pes(&mut self, video: bool) -> Option<&mut Pes> {
        if video {
            self.video.as_mut()
        } else {
            self.audio.as_mut()
        }
    }

    fn pes_payload(&mut self, video: bool, start: bool, data: &[u8]) -> Result<(), TsDemuxError> {
        if start {
            self.flush(video)?;
        }
        let Some(pes) = self.pes(video) else {
            return Ok(());
        };
        if start {
            pes.started = true;
        }
        if !pes.started {
            // The middle of a packet whose start came before we joined.
            return Ok(());
        }
        if pes.data.len() + data.len() > MAX_PES_BYTES {
            pes.data.clear();
            pes.started = false;
            return Err(TsDemuxError::PesTooLarge);
        }
        pes.data.extend_from_slice(data);
        Ok(())
    }

    /// Turns the PES being assembled on the video (or audio) PID into frames.
    fn flush(&mut self, video: bool) -> Result<(), TsDemuxError> {
        let Some(pes) = self.pes(video) else {
            return Ok(());
        };
        if !pes.started || pes.data.is_empty() {
            return Ok(());
        }
        let data = pes.data.split().freeze();
        pes.started = false;
        let Some((pts, dts, body)) = pes_header(&data) else {
            return Ok(());
        };
        if video {
            self.video_unit(pts, dts, body);
        } else {
            self.audio_frames(pts, body);
        }
        Ok(())
    }

    /// One access unit (Annex B) into a sequence header (when its parameter sets changed) and
    /// an AVCC frame.
    fn video_unit(&mut self, pts: u64, dts: Option<u64>, au: Bytes) {
        let dts = dts.unwrap_or(pts);
        let ms = self.clock.ms(dts);
        // PTS - DTS on the 33-bit clock, in milliseconds (negative only for a broken stream).
        let diff = pts.wrapping_sub(dts) & (TS_WRAP - 1);
        let diff = if diff > TS_WRAP / 2 {
            diff as i64 - TS_WRAP as i64
        } else {
            diff as i64
        };
        let cts = diff / 90;
        let mut nals = Vec::new();
        let mut keyframe = false;
        for nal in annex_b(&au) {
            match nal[0] & 0x1f {
                7 => self.parameter_set(true, nal),
                8 => self.parameter_set(false, nal),
                // Access unit delimiters and filler data are dropped, as FLV carries neither.
                9 | 12 => {}
                t => {
                    keyframe |= t == 5;
                    nals.push(nal);
                }
            }
        }
        if nals.is_empty() {
            return;
        }
        let (Some(sps), Some(pps)) = (&self.sps, &self.pps) else {
            // Nothing decodes before the parameter sets.
            return;
        };
        if keyframe && self.avc_config_due {
            self.frames.push_back(Frame::new(
                MediaKind::Video,
                ms,
                avc_sequence_header(sps, pps),
            ));
            self.avc_config_due = false;
        }
        let cts = (cts.clamp(-(1 << 23), (1 << 23) - 1) as i32).to_be_bytes();
        let header = [
            if keyframe { 0x17 } else { 0x27 },
            1,
            cts[1],
            cts[2],
            cts[3],
        ];
        self.frames.push_back(Frame::new(
            MediaKind::Video,
            ms,
            length_prefixed(header, &nals),
        ));
    }

    fn parameter_set(&mut self, sps: bool, nal: Bytes) {
        if sps && nal.len() < 4 {
            return;
        }
        let slot = if sps { &mut self.sps } else { &mut self.pps };
        if slot.as_ref() != Some(&nal) {
            *slot = Some(nal);
            self.avc_config_due = true;
        }
    }

    /// The ADTS frames of one PES: a sequence header when the configuration is new, then one
    /// frame each, 1024 samples apart.
    fn audio_frames(&mut self, pts: u64, mut data: Bytes) {
        let mut index = 0u64;
        while data.len() >= 7 {
            if data[0] != 0xff || data[1] & 0xf0 != 0xf0 {
                return;
            }
            let protection_absent = data[1] & 0x01 != 0;
            let profile = (data[2] >> 6) & 0x3;
            let rate_index = (data[2] >> 2) & 0xf;
            let channels = ((data[2] & 0x1) << 2) | (data[3] >> 6);
            let len = (usize::from(data[3] & 0x3) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            let header = if protection_absent { 7 } else { 9 };
            if len < header || len > data.len() {
                return;
            }
            let Some(rate) = SAMPLE_RATES.get(usize::from(rate_index)).copied() else {
                return;
            };
            let object_type = profile + 1;
            let asc = [
                (object_type << 3) | (rate_index >> 1),
                ((rate_index & 1) << 7) | (channels << 3),
            ];
            let at = (pts + index * 1024 * 90_000 / u64::from(rate)) & (TS_WRAP - 1);
            let ms = self.clock.ms(at);
            if self.asc != Some(asc) {
                self.asc = Some(asc);
                let header = Bytes::copy_from_slice(&[0xaf, 0, asc[0], asc[1]]);
                self.frames
                    .push_back(Frame::new(MediaKind::Audio, ms, header));
            }
            let mut body = BytesMut::with_capacity(2 + len - header);
            body.put_slice(&[0xaf, 1]);
            body.put_slice(&data[header..len]);
            self.frames
                .push_back(Frame::new(MediaKind::Audio, ms, body.freeze()));
            data = data.slice(len..);
            index += 1;
        }
    }
}

/// ADTS sampling frequency indexes.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The section a PSI packet's payload carries (after its pointer field), cut to its length.
fn section(payload: &[u8]) -> Option<&[u8]> {
    let pointer = usize::from(*payload.first()?);
    let s = payload.get(1 + pointer..)?;
    let len = usize::from(u16::from_be_bytes([*s.get(1)?, *s.get(2)?]) & 0x0fff);
    s.get(..3 + len)
}

/// A PES packet's PTS, DTS and payload; `None` without a PTS (nothing to time it by).
fn pes_header(p: &Bytes) -> Option<(u64, Option<u64>, Bytes)> {
    if p.len() < 9 || p[0] != 0 || p[1] != 0 || p[2] != 1 {
        return None;
    }
    let flags = p[7] >> 6;
    let header_len = usize::from(p[8]);
    let body = 9 + header_len;
    if p.len() < body || flags & 0x2 == 0 {
        return None;
    }
    let pts = timestamp(p.get(9..14)?);
    let dts = if flags == 0x3 {
        Some(timestamp(p.get(14..19)?))
    } else {
        None
    };
    Some((pts, dts, p.slice(body..)))
}

/// A 33-bit PES timestamp from its 5 bytes.
fn timestamp(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1 & 0x7) << 30)
        | (u64::from(b[1]) << 22)
        | (u64::from(b[2] >> 1) << 15)
        | (u64::from(b[3]) << 7)
        | u64::from(b[4] >> 1)
}

/// The NAL units of an Annex B byte stream (3- or 4-byte start codes), without their start codes.
fn annex_b(data: &Bytes) -> Vec<Bytes> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        // A 4-byte start code's leading zero belongs to no NAL unit.
        while end > s && data[end - 1] == 0 && starts.get(n + 1).is_some() {
            end -= 1;
        }
        if end > s {
            nals.push(data.slice(s..end));
        }
    }
    nals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ts::TsMuxer;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn avc_frame(ts: u32, keyframe: bool, nal: &[u8]) -> Frame {
        let mut b = BytesMut::new();
        b.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 40]);
        b.put_u32(nal.len() as u32);
        b.put_slice(nal);
        Frame::new(MediaKind::Video, ts, b.freeze())
    }

    /// What our own muxer writes, our demuxer reads back: the same headers, the same frames,
    /// the same times (from the first DTS), the composition offset kept.
    #[test]
    fn round_trips_the_muxers_output() {
        let mut mux = TsMuxer::new();
        let mut ts = BytesMut::new();
        let input = vec![
            Frame::new(MediaKind::Video, 1000, avc_sequence_header(SPS, PPS)),
            Frame::new(
                MediaKind::Audio,
                1000,
                Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
            ),
            avc_frame(1000, true, &[0x65, 0x88, 0x84, 0x00, 0x33]),
            Frame::new(
                MediaKind::Audio,
                1000,
                Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]),
            ),
            avc_frame(1040, false, &[0x41, 0x9a, 0x02]),
            avc_frame(1080, false, &[0x41, 0x9a, 0x04]),
        ];
        for f in &input {
            let _ = mux.write_frame(f, &mut ts).unwrap();
        }
        let mut demux = TsDemuxer::new();
        // Fed in odd slices, as a socket gives them.
        for chunk in ts.chunks(100) {
            demux.feed(chunk).unwrap();
        }
        demux.end_of_input().unwrap();
        let out: Vec<Frame> = std::iter::from_fn(|| demux.poll_frame()).collect();
        let video: Vec<&Frame> = out.iter().filter(|f| f.kind == MediaKind::Video).collect();
        assert_eq!(video.len(), 4, "{out:?}");
        assert_eq!(video[0].payload, avc_sequence_header(SPS, PPS));
        assert_eq!(
            video.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
            [0, 0, 40, 80]
        );
        assert_eq!(video[1].payload, input[2].payload);
        assert_eq!(video[3].payload, input[5].payload);
        let audio: Vec<&Frame> = out.iter().filter(|f| f.kind == MediaKind::Audio).collect();
        assert_eq!(audio.len(), 2, "{out:?}");
        assert_eq!(&audio[0].payload[..], &[0xaf, 0, 0x12, 0x10]);
        assert_eq!(&audio[1].payload[..], &[0xaf, 1, 0x21, 0x10, 0x04]);
    }

    #[test]
    fn the_clock_unwraps_and_bad_input_is_refused() {
        let mut c = Clock::default();
        assert_eq!(c.ms((1 << 33) - 90), 0);
        assert_eq!(c.ms(90 * 9), 10);
        let mut d = TsDemuxer::new();
        assert_eq!(
            d.feed(&[0x48; PACKET_SIZE]),
            Err(TsDemuxError::LostSync { byte: 0x48 })
        );
        assert_eq!(
            annex_b(&Bytes::from_static(&[
                0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 1
            ])),
            [
                Bytes::from_static(&[9, 0xf0]),
                Bytes::from_static(&[0x65, 1])
            ]
        );
    }
}
