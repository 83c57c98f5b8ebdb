use bytes::{BufMut, BytesMut};

use super::aac::AacConfig;
use super::crc::crc32_mpeg2;
use super::video::VideoConfig;
use super::TsError;
use crate::media::{AudioCodec, Frame, MediaKind, VideoCodec};

/// Every transport stream packet is this long.
pub const PACKET_SIZE: usize = 188;
/// First byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the video elementary stream; also the PCR PID when there is video.
pub const VIDEO_PID: u16 = 0x100;
/// PID of the audio elementary stream; the PCR PID of audio-only streams.
pub const AUDIO_PID: u16 = 0x101;
/// The single program of the stream.
pub const PROGRAM_NUMBER: u16 = 1;
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_H265: u8 = 0x24;
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// PTS/DTS run this far (0.7 s) ahead of the PCR, the frame's timestamp in 90 kHz units, so a
/// decoder has each access unit before it is due and a negative composition offset stays positive.
pub const TIMESTAMP_OFFSET_90KHZ: u64 = 63_000;

const PAT_PID: u16 = 0;
const TRANSPORT_STREAM_ID: u16 = 1;
const HEADER_LEN: usize = 4;
const PAYLOAD_LEN: usize = PACKET_SIZE - HEADER_LEN;
/// PTS, DTS and PCR are 33-bit counters.
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
/// PES header with PTS and DTS: start code, stream id, length, two flag bytes, header length, 10.
const PES_HEADER_MAX: usize = 19;
const STREAM_ID_VIDEO: u8 = 0xe0;
const STREAM_ID_AUDIO: u8 = 0xc0;
/// Adaptation field flags.
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;
const PCR_LEN: usize = 6;

/// What [`TsMuxer::write_frame`] did with a frame.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxOutcome {
    /// Packets were appended (PAT and PMT first when due, then the frame's PES).
    Written,
    /// A sequence header was stored; nothing was written.
    ConfigStored,
    /// Nothing to carry: script data, end-of-sequence, metadata or command frames, empty frames.
    Ignored,
}

/// Which streams the PMT describes: the video stream type, and whether there is audio.
type Layout = (Option<u8>, bool);

/// MPEG-TS muxer for one stream.
///
/// Feed every frame of the stream, sequence headers included, in order to
/// [`write_frame`](Self::write_frame); it appends whole 188-byte packets to the caller's buffer.
/// Call [`start_segment`](Self::start_segment) before the first frame of each HLS segment so the
/// segment begins with PAT and PMT. An error concerns only the frame given; the muxer state is
/// unchanged by it. Continuity counters run on across segments, as one continuous stream.
#[derive(Debug)]
pub struct TsMuxer {
    video: Option<VideoConfig>,
    audio: Option<AacConfig>,
    /// PAT and PMT go out before the next PES.
    tables_due: bool,
    /// The streams the last PMT described; a change bumps `pmt_version` and resends the tables.
    written_layout: Option<Layout>,
    pmt_version: u8,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// Reused for each PES: room for the PES header, then the elementary stream data.
    scratch: Vec<u8>,
}

impl Default for TsMuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl TsMuxer {
    pub fn new() -> Self {
        Self {
            video: None,
            audio: None,
            tables_due: true,
            written_layout: None,
            pmt_version: 0,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            scratch: Vec::new(),
        }
    }

    /// The next PES is preceded by PAT and PMT.
    pub fn start_segment(&mut self) {
        self.tables_due = true;
    }

    /// Whether a video sequence header has been seen.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Whether an AAC sequence header has been seen.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Muxes one frame, appending packets to `out`.
    pub fn write_frame(
        &mut self,
        frame: &Frame,
        out: &mut BytesMut,
    ) -> Result<MuxOutcome, TsError> {
        match frame.kind {
            MediaKind::Video => self.write_video(frame, out),
            MediaKind::Audio => self.write_audio(frame, out),
            MediaKind::Script => Ok(MuxOutcome::Ignored),
        }
    }

    fn layout(&self) -> Layout {
        let video = self.video.as_ref().map(|v| match v.codec {
            VideoCodec::H265 => STREAM_TYPE_H265,
            _ => STREAM_TYPE_H264,
        });
        (video, self.audio.is_some())
    }

    fn pcr_pid(&self) -> u16 {
        if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        }
    }

    fn write_video(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<MuxOutcome, TsError> {
        let p = &frame.payload[..];
        let len = p.len();
        let Some(&first) = p.first() else {
            return Err(TsError::TruncatedVideoTag { len });
        };
        let frame_type = (first >> 4) & 0x07;
        // Frame type 5 is a video info / command frame: no picture.
        if frame_type == 5 {
            return Ok(MuxOutcome::Ignored);
        }
        let codec = frame.video_codec().unwrap_or(VideoCodec::Other(0));
        if !matches!(codec, VideoCodec::H264 | VideoCodec::H265) {
            return Err(TsError::UnsupportedVideoCodec { codec });
        }
        let (config, cts, body) = if first & 0x80 != 0 {
            // Enhanced RTMP: packet type in the low nibble, FourCC in bytes 1..5.
            if len < 5 {
                return Err(TsError::TruncatedVideoTag { len });
            }
            match first & 0x0f {
                0 => (true, 0, &p[5..]),
                1 if len < 8 => return Err(TsError::TruncatedVideoTag { len }),
                1 => (false, si24(&p[5..8]), &p[8..]),
                // CodedFramesX: composition time offset zero, no field for it.
                3 => (false, 0, &p[5..]),
                // SequenceEnd, Metadata, MPEG2TSSequenceStart.
                2 | 4 | 5 => return Ok(MuxOutcome::Ignored),
                packet_type => return Err(TsError::UnsupportedVideoPacketType { packet_type }),
            }
        } else {
            if len < 5 {
                return Err(TsError::TruncatedVideoTag { len });
            }
            match p[1] {
                0 => (true, 0, &p[5..]),
                1 => (false, si24(&p[2..5]), &p[5..]),
                2 => return Ok(MuxOutcome::Ignored),
                packet_type => return Err(TsError::UnsupportedVideoPacketType { packet_type }),
            }
        };
        if config {
            self.video = Some(match codec {
                VideoCodec::H265 => VideoConfig::parse_hevc(body)?,
                _ => VideoConfig::parse_avc(body)?,
            });
            return Ok(MuxOutcome::ConfigStored);
        }
        let cfg = self
            .video
            .as_ref()
            .filter(|c| c.codec == codec)
            .ok_or(TsError::MissingVideoConfig { codec })?;
        if body.is_empty() {
            return Ok(MuxOutcome::Ignored);
        }
        let keyframe = frame_type == 1;
        self.scratch.clear();
        self.scratch.resize(PES_HEADER_MAX, 0);
        cfg.write_access_unit(&mut self.scratch, body, keyframe)?;

        let base = u64::from(frame.timestamp) * 90;
        let dts = (base + TIMESTAMP_OFFSET_90KHZ) & TIMESTAMP_MASK;
        let pts = (dts as i64 + i64::from(cts) * 90).rem_euclid(1 << 33) as u64;
        let pcr = (self.pcr_pid() == VIDEO_PID).then_some(base & TIMESTAMP_MASK);
        self.write_tables_if_due(out);
        let start = self.fill_pes_header(STREAM_ID_VIDEO, pts, (cts != 0).then_some(dts));
        write_pes_packets(
            out,
            VIDEO_PID,
            &mut self.cc_video,
            &self.scratch[start..],
            pcr,
            keyframe,
        );
        Ok(MuxOutcome::Written)
    }

    fn write_audio(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<MuxOutcome, TsError> {
        let p = &frame.payload[..];
        match frame.audio_codec() {
            Some(AudioCodec::Aac) => {}
            Some(codec) => return Err(TsError::UnsupportedAudioCodec { codec }),
            None => return Err(TsError::TruncatedAudioTag { len: 0 }),
        }
        if p.len() < 2 {
            return Err(TsError::TruncatedAudioTag { len: p.len() });
        }
        if p[1] == 0 {
            self.audio = Some(AacConfig::parse(&p[2..])?);
            return Ok(MuxOutcome::ConfigStored);
        }
        let cfg = self.audio.ok_or(TsError::MissingAudioConfig)?;
        let raw = &p[2..];
        if raw.is_empty() {
            return Ok(MuxOutcome::Ignored);
        }
        let adts = cfg.adts_header(raw.len())?;
        self.scratch.clear();
        self.scratch.resize(PES_HEADER_MAX, 0);
        self.scratch.extend_from_slice(&adts);
        self.scratch.extend_from_slice(raw);

        let base = u64::from(frame.timestamp) * 90;
        let pts = (base + TIMESTAMP_OFFSET_90KHZ) & TIMESTAMP_MASK;
        let audio_only = self.video.is_none();
        let pcr = audio_only.then_some(base & TIMESTAMP_MASK);
        self.write_tables_if_due(out);
        let start = self.fill_pes_header(STREAM_ID_AUDIO, pts, None);
        write_pes_packets(
            out,
            AUDIO_PID,
            &mut self.cc_audio,
            &self.scratch[start..],
            pcr,
            audio_only,
        );
        Ok(MuxOutcome::Written)
    }

    /// Writes the PES header into the room left at the front of `scratch`; returns where the PES
    /// starts.
    fn fill_pes_header(&mut self, stream_id: u8, pts: u64, dts: Option<u64>) -> usize {
        let es_len = self.scratch.len() - PES_HEADER_MAX;
        let header_data_len: u8 = if dts.is_some() { 10 } else { 5 };
        let pes_len = 3 + usize::from(header_data_len) + es_len;
        // 0 means "unbounded", allowed for video only; audio PES are far below the limit.
        let pes_len = u16::try_from(pes_len).unwrap_or(0);
        let start = PES_HEADER_MAX - 9 - usize::from(header_data_len);
        let h = &mut self.scratch[start..PES_HEADER_MAX];
        h[..4].copy_from_slice(&[0, 0, 1, stream_id]);
        h[4..6].copy_from_slice(&pes_len.to_be_bytes());
        // '10', not scrambled, data_alignment_indicator: each PES starts an access unit.
        h[6] = 0x84;
        match dts {
            Some(dts) => {
                h[7] = 0xc0;
                h[8] = header_data_len;
                h[9..14].copy_from_slice(&encode_timestamp(0b0011, pts));
                h[14..19].copy_from_slice(&encode_timestamp(0b0001, dts));
            }
            None => {
                h[7] = 0x80;
                h[8] = header_data_len;
                h[9..14].copy_from_slice(&encode_timestamp(0b0010, pts));
            }
        }
        start
    }

    fn write_tables_if_due(&mut self, out: &mut BytesMut) {
        let layout = self.layout();
        if !self.tables_due && self.written_layout == Some(layout) {
            return;
        }
        if self.written_layout.is_some_and(|l| l != layout) {
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
        }
        self.written_layout = Some(layout);
        self.tables_due = false;

        let mut pat = [0u8; 16];
        pat[..12].copy_from_slice(&[
            0x00, // table_id: program_association_section
            0xb0, // section_syntax_indicator, '0', reserved, length high bits
            13,   // section_length
            (TRANSPORT_STREAM_ID >> 8) as u8,
            TRANSPORT_STREAM_ID as u8,
            0xc1, // reserved, version 0, current_next_indicator
            0,    // section_number
            0,    // last_section_number
            (PROGRAM_NUMBER >> 8) as u8,
            PROGRAM_NUMBER as u8,
            0xe0 | (PMT_PID >> 8) as u8,
            PMT_PID as u8,
        ]);
        let crc = crc32_mpeg2(&pat[..12]);
        pat[12..].copy_from_slice(&crc.to_be_bytes());
        write_psi_packet(out, PAT_PID, &mut self.cc_pat, &pat);

        let mut pmt = [0u8; 36];
        let pcr_pid = self.pcr_pid();
        let mut n = 12;
        pmt[..n].copy_from_slice(&[
            0x02, // table_id: TS_program_map_section
            0xb0,
            0, // section_length, below
            (PROGRAM_NUMBER >> 8) as u8,
            PROGRAM_NUMBER as u8,
            0xc1 | (self.pmt_version << 1),
            0,
            0,
            0xe0 | (pcr_pid >> 8) as u8,
            pcr_pid as u8,
            0xf0, // reserved, program_info_length 0
            0x00,
        ]);
        let (video, audio) = layout;
        let streams = video
            .map(|ty| (ty, VIDEO_PID))
            .into_iter()
            .chain(audio.then_some((STREAM_TYPE_AAC_ADTS, AUDIO_PID)));
        for (stream_type, pid) in streams {
            pmt[n..n + 5].copy_from_slice(&[
                stream_type,
                0xe0 | (pid >> 8) as u8,
                pid as u8,
                0xf0,
                0,
            ]);
            n += 5;
        }
        // section_length counts what follows it, CRC included.
        pmt[2] = (n + 4 - 3) as u8;
        let crc = crc32_mpeg2(&pmt[..n]);
        pmt[n..n + 4].copy_from_slice(&crc.to_be_bytes());
        write_psi_packet(out, PMT_PID, &mut self.cc_pmt, &pmt[..n + 4]);
    }
}

/// Signed 24-bit big-endian (the FLV composition time offset).
fn si24(b: &[u8]) -> i32 {
    (i32::from_be_bytes([b[0], b[1], b[2], 0])) >> 8
}

/// A 33-bit PTS or DTS with its 4-bit prefix and marker bits (ISO 13818-1 2.4.3.7).
fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 30) & 0x07) as u8) << 1 | 1,
        (ts >> 22) as u8,
        (((ts >> 15) & 0x7f) as u8) << 1 | 1,
        (ts >> 7) as u8,
        ((ts & 0x7f) as u8) << 1 | 1,
    ]
}

/// PCR with a zero 27 MHz extension: 33-bit base, 6 reserved bits, 9-bit extension.
fn encode_pcr(base: u64) -> [u8; PCR_LEN] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7e,
        0,
    ]
}

fn packet_header(out: &mut BytesMut, pid: u16, unit_start: bool, adaptation: bool, cc: &mut u8) {
    out.put_u8(SYNC_BYTE);
    out.put_u8(if unit_start { 0x40 } else { 0 } | (pid >> 8) as u8 & 0x1f);
    out.put_u8(pid as u8);
    // '00' not scrambled; adaptation_field_control 01 payload only, 11 adaptation field + payload.
    out.put_u8(if adaptation { 0x30 } else { 0x10 } | *cc);
    *cc = (*cc + 1) & 0x0f;
}

/// One section in one packet: pointer_field 0, the section, 0xff filler.
fn write_psi_packet(out: &mut BytesMut, pid: u16, cc: &mut u8, section: &[u8]) {
    out.reserve(PACKET_SIZE);
    packet_header(out, pid, true, false, cc);
    out.put_u8(0);
    out.put_slice(section);
    out.put_bytes(0xff, PAYLOAD_LEN - 1 - section.len());
}

/// Splits a PES into packets. The first packet carries the random access indicator and the PCR
/// when asked; the last is padded with adaptation field stuffing.
fn write_pes_packets(
    out: &mut BytesMut,
    pid: u16,
    cc: &mut u8,
    mut pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) {
    out.reserve(pes.len().div_ceil(PAYLOAD_LEN - 8) * PACKET_SIZE);
    let mut first = true;
    while !pes.is_empty() {
        let flags = if first {
            (if random_access { AF_RANDOM_ACCESS } else { 0 })
                | (if pcr.is_some() { AF_PCR } else { 0 })
        } else {
            0
        };
        let pcr_here = if first { pcr } else { None };
        // Adaptation field bytes needed for its content: length byte, flags, PCR.
        let fixed = if flags != 0 {
            2 + if pcr_here.is_some() { PCR_LEN } else { 0 }
        } else {
            0
        };
        let room = PAYLOAD_LEN - fixed;
        let take = room.min(pes.len());
        let adaptation_len = fixed + (room - take);
        packet_header(out, pid, first, adaptation_len > 0, cc);
        if adaptation_len > 0 {
            // adaptation_field_length does not count itself; 0 is a lone byte of stuffing.
            out.put_u8((adaptation_len - 1) as u8);
            if adaptation_len > 1 {
                out.put_u8(flags);
                let mut used = 2;
                if let Some(base) = pcr_here {
                    out.put_slice(&encode_pcr(base));
                    used += PCR_LEN;
                }
                out.put_bytes(0xff, adaptation_len - used);
            }
        }
        out.put_slice(&pes[..take]);
        pes = &pes[take..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::super::video::tests::{avc_record, hevc_record, PPS, SPS};
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;

    fn packets(out: &[u8]) -> Vec<&[u8]> {
        assert_eq!(out.len() % PACKET_SIZE, 0);
        let p: Vec<&[u8]> = out.chunks(PACKET_SIZE).collect();
        assert!(p.iter().all(|p| p[0] == SYNC_BYTE));
        p
    }

    fn pid(p: &[u8]) -> u16 {
        u16::from_be_bytes([p[1] & 0x1f, p[2]])
    }

    fn payload(p: &[u8]) -> &[u8] {
        match p[3] & 0x30 {
            0x10 => &p[4..],
            0x30 => &p[5 + usize::from(p[4])..],
            _ => &[],
        }
    }

    /// Reassembles PES packets per PID and strips their headers: (pts, dts, data).
    /// A reassembled PES: PTS, DTS, elementary stream data.
    type Pes = (u64, Option<u64>, Vec<u8>);

    fn demux(out: &[u8]) -> HashMap<u16, Vec<Pes>> {
        let mut raw: HashMap<u16, Vec<Vec<u8>>> = HashMap::new();
        for p in packets(out) {
            let id = pid(p);
            if id == PAT_PID || id == PMT_PID {
                continue;
            }
            let list = raw.entry(id).or_default();
            if p[1] & 0x40 != 0 {
                list.push(Vec::new());
            }
            list.last_mut().unwrap().extend_from_slice(payload(p));
        }
        raw.into_iter()
            .map(|(id, pes_list)| {
                let parsed = pes_list
                    .into_iter()
                    .map(|pes| {
                        assert_eq!(&pes[..3], &[0, 0, 1]);
                        let declared = u16::from_be_bytes([pes[4], pes[5]]) as usize;
                        if declared != 0 {
                            assert_eq!(declared, pes.len() - 6);
                        }
                        let hlen = pes[8] as usize;
                        let pts = decode_timestamp(&pes[9..14]);
                        let dts = (pes[7] & 0x40 != 0).then(|| decode_timestamp(&pes[14..19]));
                        (pts, dts, pes[9 + hlen..].to_vec())
                    })
                    .collect();
                (id, parsed)
            })
            .collect()
    }

    fn decode_timestamp(b: &[u8]) -> u64 {
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1)
    }

    fn avc_seq() -> Frame {
        let mut p = vec![0x17, 0, 0, 0, 0];
        p.extend_from_slice(&avc_record());
        Frame::new(MediaKind::Video, 0, Bytes::from(p))
    }

    fn avc_frame(ts: u32, key: bool, cts: i32, nals: &[&[u8]]) -> Frame {
        let mut p = vec![if key { 0x17 } else { 0x27 }, 1];
        p.extend_from_slice(&cts.to_be_bytes()[1..]);
        for n in nals {
            p.extend_from_slice(&(n.len() as u32).to_be_bytes());
            p.extend_from_slice(n);
        }
        Frame::new(MediaKind::Video, ts, Bytes::from(p))
    }

    fn aac_seq() -> Frame {
        Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        )
    }

    fn aac_frame(ts: u32, raw: &[u8]) -> Frame {
        Frame::new(
            MediaKind::Audio,
            ts,
            Bytes::from([&[0xaf, 1][..], raw].concat()),
        )
    }

    #[test]
    fn pts_encoding() {
        // 90000 = 0b10_1011_1111_1001_0000
        assert_eq!(
            encode_timestamp(0b0010, 90_000),
            [0x21, 0x00, 0x05, 0xbf, 0x21]
        );
        assert_eq!(encode_timestamp(0b0011, 0), [0x31, 0x00, 0x01, 0x00, 0x01]);
        assert_eq!(
            encode_timestamp(0b0001, TIMESTAMP_MASK),
            [0x1f, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(si24(&[0xff, 0xff, 0xfe]), -2);
        assert_eq!(si24(&[0x00, 0x01, 0x00]), 256);
    }

    #[test]
    fn pat_and_pmt() {
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        assert_eq!(
            mux.write_frame(&avc_seq(), &mut out),
            Ok(MuxOutcome::ConfigStored)
        );
        assert_eq!(
            mux.write_frame(&aac_seq(), &mut out),
            Ok(MuxOutcome::ConfigStored)
        );
        assert!(out.is_empty());
        let f = avc_frame(0, true, 0, &[&[0x65, 1, 2, 3]]);
        assert_eq!(mux.write_frame(&f, &mut out), Ok(MuxOutcome::Written));
        let p = packets(&out);
        // The PAT ffmpeg writes for the same program and PMT PID, CRC included.
        assert_eq!(
            &p[0][..21],
            &[
                0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00,
                0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04, 0xb2
            ]
        );
        assert!(p[0][21..].iter().all(|&b| b == 0xff));
        assert_eq!(pid(p[1]), PMT_PID);
        let section_len = usize::from(u16::from_be_bytes([p[1][6], p[1][7]]) & 0x0fff);
        let section = &p[1][5..8 + section_len];
        assert_eq!(crc32_mpeg2(section), 0, "pmt crc");
        assert_eq!(
            &section[..section_len - 1],
            &[
                0x02, 0xb0, 0x17, 0x00, 0x01, 0xc1, 0x00, 0x00, 0xe1, 0x00, 0xf0, 0x00, //
                0x1b, 0xe1, 0x00, 0xf0, 0x00, //
                0x0f, 0xe1, 0x01, 0xf0, 0x00
            ]
        );
        assert_eq!(crc32_mpeg2(&p[0][5..21]), 0, "pat crc");

        // Not again within the segment; again after start_segment.
        out.clear();
        let _ = mux.write_frame(&avc_frame(40, false, 0, &[&[0x41, 1]]), &mut out);
        assert!(packets(&out).iter().all(|p| pid(p) == VIDEO_PID));
        out.clear();
        mux.start_segment();
        let _ = mux.write_frame(&avc_frame(80, false, 0, &[&[0x41, 1]]), &mut out);
        let p = packets(&out);
        assert_eq!(
            (pid(p[0]), pid(p[1]), pid(p[2])),
            (PAT_PID, PMT_PID, VIDEO_PID)
        );
        // Continuity counters advance per PID.
        assert_eq!((p[0][3] & 0x0f, p[1][3] & 0x0f, p[2][3] & 0x0f), (1, 1, 2));
    }

    #[test]
    fn keyframe_access_unit_round_trips_to_annex_b() {
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        let _ = mux.write_frame(&avc_seq(), &mut out);
        let idr = vec![0x65; 1000];
        let key = avc_frame(1000, true, 80, &[&idr]);
        assert_eq!(mux.write_frame(&key, &mut out), Ok(MuxOutcome::Written));
        let p = packets(&out);
        let first_video = p.iter().find(|p| pid(p) == VIDEO_PID).unwrap();
        // Adaptation field with random access indicator and PCR = 1000 ms.
        assert_eq!(first_video[3] & 0x30, 0x30);
        assert_eq!(first_video[5], AF_RANDOM_ACCESS | AF_PCR);
        assert_eq!(&first_video[6..12], &encode_pcr(90_000));
        let last = p.last().unwrap();
        assert_eq!(pid(last), VIDEO_PID);

        let streams = demux(&out);
        let (pts, dts, data) = &streams[&VIDEO_PID][0];
        assert_eq!(*dts, Some(90_000 + TIMESTAMP_OFFSET_90KHZ));
        assert_eq!(*pts, 90_000 + 80 * 90 + TIMESTAMP_OFFSET_90KHZ);
        let expected = [
            &[0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1][..],
            SPS,
            &[0, 0, 0, 1],
            PPS,
            &[0, 0, 0, 1],
            &idr,
        ]
        .concat();
        assert_eq!(data, &expected);
    }

    #[test]
    fn continuity_and_stuffing_over_many_packets() {
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        let _ = mux.write_frame(&avc_seq(), &mut out);
        for (i, size) in [1usize, 170, 171, 172, 183, 184, 5000].iter().enumerate() {
            let nal = vec![0x41; *size];
            let _ = mux.write_frame(&avc_frame(i as u32 * 40, false, 0, &[&nal]), &mut out);
        }
        let video: Vec<&[u8]> = packets(&out)
            .into_iter()
            .filter(|p| pid(p) == VIDEO_PID)
            .collect();
        for (i, p) in video.iter().enumerate() {
            assert_eq!(usize::from(p[3] & 0x0f), i % 16);
        }
        let frames = &demux(&out)[&VIDEO_PID];
        assert_eq!(frames.len(), 7);
        assert_eq!(frames[6].2.len(), 6 + 4 + 5000);
        // Cts 0: PTS only.
        assert_eq!(frames[1].1, None);
    }

    #[test]
    fn aac_gets_adts() {
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        let _ = mux.write_frame(&aac_seq(), &mut out);
        let raw = vec![0x21; 100];
        assert_eq!(
            mux.write_frame(&aac_frame(23, &raw), &mut out),
            Ok(MuxOutcome::Written)
        );
        let p = packets(&out);
        // Audio only: PCR on the audio PID.
        assert_eq!(&p[1][13..15], &[0xe1, 0x01]);
        let audio = &demux(&out)[&AUDIO_PID][0];
        assert_eq!(audio.0, 23 * 90 + TIMESTAMP_OFFSET_90KHZ);
        assert_eq!(&audio.2[..7], &[0xff, 0xf1, 0x50, 0x80, 0x0d, 0x7f, 0xfc]);
        assert_eq!(&audio.2[7..], &raw[..]);
    }

    #[test]
    fn hevc_legacy_and_enhanced() {
        for enhanced in [false, true] {
            let mut mux = TsMuxer::new();
            let mut out = BytesMut::new();
            let mut seq = if enhanced {
                vec![0x90, b'h', b'v', b'c', b'1']
            } else {
                vec![0x1c, 0, 0, 0, 0]
            };
            seq.extend_from_slice(&hevc_record());
            let seq = Frame::new(MediaKind::Video, 0, Bytes::from(seq));
            assert_eq!(
                mux.write_frame(&seq, &mut out),
                Ok(MuxOutcome::ConfigStored)
            );
            let mut key = if enhanced {
                vec![0x93, b'h', b'v', b'c', b'1']
            } else {
                vec![0x1c, 1, 0, 0, 0]
            };
            key.extend_from_slice(&[0, 0, 0, 3, 0x26, 0x01, 0xaf]);
            let key = Frame::new(MediaKind::Video, 0, Bytes::from(key));
            assert_eq!(mux.write_frame(&key, &mut out), Ok(MuxOutcome::Written));
            let p = packets(&out);
            assert_eq!(p[1][17], STREAM_TYPE_H265);
            let data = &demux(&out)[&VIDEO_PID][0].2;
            assert_eq!(&data[..7], &[0, 0, 0, 1, 0x46, 0x01, 0x50]);
            assert_eq!(&data[data.len() - 7..], &[0, 0, 0, 1, 0x26, 0x01, 0xaf]);
        }
    }

    #[test]
    fn unsupported_and_malformed_frames() {
        let mut mux = TsMuxer::new();
        let mut out = BytesMut::new();
        let av1 = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x90, b'a', b'v', b'0', b'1', 0]),
        );
        let err = mux.write_frame(&av1, &mut out).unwrap_err();
        assert_eq!(
            err,
            TsError::UnsupportedVideoCodec {
                codec: VideoCodec::Av1
            }
        );
        assert!(err.to_string().contains("Av1"));
        let mp3 = Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff]));
        assert_eq!(
            mux.write_frame(&mp3, &mut out),
            Err(TsError::UnsupportedAudioCodec {
                codec: AudioCodec::Mp3
            })
        );
        assert_eq!(
            mux.write_frame(&avc_frame(0, true, 0, &[&[0x65]]), &mut out),
            Err(TsError::MissingVideoConfig {
                codec: VideoCodec::H264
            })
        );
        assert_eq!(
            mux.write_frame(&aac_frame(0, &[1]), &mut out),
            Err(TsError::MissingAudioConfig)
        );
        let short = Frame::new(MediaKind::Video, 0, Bytes::from_static(&[0x17, 1]));
        assert_eq!(
            mux.write_frame(&short, &mut out),
            Err(TsError::TruncatedVideoTag { len: 2 })
        );
        let script = Frame::new(MediaKind::Script, 0, Bytes::new());
        assert_eq!(mux.write_frame(&script, &mut out), Ok(MuxOutcome::Ignored));
        assert!(out.is_empty());
    }
}
