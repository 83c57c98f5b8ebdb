//! What publishers send: a built-in synthetic H.264/AAC stream, or an FLV file played in a loop.
//!
//! Both give frames in decode order with their timestamps; the publisher sends each one when its
//! timestamp comes due (real-time pacing) and stamps its video frames as it sends them (see
//! [`crate::stamp`]). The synthetic stream is well-formed at the container and NAL levels (AVC
//! sequence header with a real SPS/PPS, IDR and non-IDR slices with real slice headers, an AAC
//! AudioSpecificConfig and raw AAC frames); its slice and audio data are filler, so it does not
//! decode to a picture or a sound, which no relay needs.
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use corestream::media::{Frame, MediaKind};
use corestream::protocol::flv::{FlvError, FlvReader};
use corestream::protocol::rtmp::{amf0, Amf0Value};

use crate::stamp::{self, avc_length_size, Stamper};

/// Settings of the synthetic stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticSpec {
    /// Audio plus video payload, bits per second.
    pub bitrate: u64,
    /// Keyframe interval.
    pub gop: Duration,
    pub fps: u32,
    pub width: u32,
    pub height: u32,
}

impl SyntheticSpec {
    pub fn new(bitrate: u64, gop: Duration) -> Self {
        Self {
            bitrate,
            gop,
            fps: 25,
            width: 1280,
            height: 720,
        }
    }

    /// Audio share of the bitrate: 64 kbit/s, or 32 kbit/s for small streams.
    fn audio_bitrate(&self) -> u64 {
        if self.bitrate >= 600_000 {
            64_000
        } else {
            32_000
        }
    }
}

/// AAC-LC at 44.1 kHz (the rate FLV's audio tag header can announce): samples per frame and the
/// sample rate.
const AAC_FRAME_SAMPLES: u64 = 1024;
const AAC_RATE: u64 = 44_100;
/// A keyframe is this many times as large as an inter frame.
const KEYFRAME_WEIGHT: u64 = 4;
/// Payload bytes that are not slice data: tag header, NAL length prefixes, stamp SEI, slice header.
const VIDEO_OVERHEAD: usize = 5 + 4 + 40 + 4 + 8;

/// A looping synthetic H.264/AAC stream.
#[derive(Debug)]
pub struct Synthetic {
    spec: SyntheticSpec,
    sps: Bytes,
    pps: Bytes,
    /// Frames per GOP.
    gop_frames: u64,
    key_size: usize,
    inter_size: usize,
    audio_size: usize,
    /// Filler for slice and audio data: pseudo-random bytes with no zero byte, so no start code
    /// or emulation-prevention sequence can appear in it.
    filler: Bytes,
    /// Headers (metadata, AVC and AAC sequence headers) still to send, in order.
    headers: Vec<Frame>,
    video_index: u64,
    audio_index: u64,
}

impl Synthetic {
    pub fn new(spec: SyntheticSpec) -> Self {
        let fps = u64::from(spec.fps.max(1));
        let gop_frames = ((spec.gop.as_millis() as u64 * fps) / 1000).max(1);
        let audio_bps = spec.audio_bitrate();
        let video_bps = spec.bitrate.saturating_sub(audio_bps).max(8_000);
        let gop_bytes = video_bps / 8 * gop_frames / fps;
        let inter = gop_bytes / (gop_frames - 1 + KEYFRAME_WEIGHT);
        let inter_size = (inter as usize).max(VIDEO_OVERHEAD + 16);
        let key_size = (inter * KEYFRAME_WEIGHT) as usize;
        let audio_size = ((audio_bps / 8 * AAC_FRAME_SAMPLES / AAC_RATE) as usize).max(8);
        let filler_len = key_size.max(inter_size).max(audio_size);
        let sps = sps(spec.width, spec.height);
        let pps = pps();
        let mut s = Self {
            spec,
            gop_frames,
            key_size,
            inter_size,
            audio_size,
            filler: filler(filler_len),
            headers: Vec::new(),
            video_index: 0,
            audio_index: 0,
            sps,
            pps,
        };
        s.headers = vec![
            s.metadata(),
            Frame::new(MediaKind::Video, 0, s.avc_sequence_header()),
            Frame::new(MediaKind::Audio, 0, aac_sequence_header()),
        ];
        s.headers.reverse();
        s
    }

    /// Frames per GOP (a keyframe starts each).
    pub fn gop_frames(&self) -> u64 {
        self.gop_frames
    }

    fn video_ts(&self) -> u32 {
        (self.video_index * 1000 / u64::from(self.spec.fps.max(1))) as u32
    }

    fn audio_ts(&self) -> u32 {
        (self.audio_index * AAC_FRAME_SAMPLES * 1000 / AAC_RATE) as u32
    }

    /// Timestamp of the next frame, in milliseconds.
    pub fn next_ts(&self) -> u32 {
        if !self.headers.is_empty() {
            return 0;
        }
        self.video_ts().min(self.audio_ts())
    }

    /// The next frame; video frames carry `stamper`'s next stamp at `now_us`.
    pub fn next_frame(&mut self, stamper: &mut Stamper, now_us: u64) -> Frame {
        if let Some(h) = self.headers.pop() {
            return h;
        }
        if self.video_ts() <= self.audio_ts() {
            let ts = self.video_ts();
            let key = self.video_index % self.gop_frames == 0;
            let frame_num = (self.video_index % self.gop_frames) as u32;
            self.video_index += 1;
            let stamp = stamper.next(now_us);
            Frame::new(
                MediaKind::Video,
                ts,
                self.video_frame(key, frame_num, &stamp),
            )
        } else {
            let ts = self.audio_ts();
            self.audio_index += 1;
            let mut p = BytesMut::with_capacity(2 + self.audio_size);
            p.put_slice(&[0xaf, 0x01]);
            p.put_slice(&self.filler[..self.audio_size]);
            Frame::new(MediaKind::Audio, ts, p.freeze())
        }
    }

    fn video_frame(&self, key: bool, frame_num: u32, stamp: &stamp::Stamp) -> Bytes {
        let size = if key { self.key_size } else { self.inter_size };
        let mut p = BytesMut::with_capacity(size + 64);
        // FLV VideoTagHeader: frame type (1 key, 2 inter) | codec 7 (AVC), NALU, composition time 0.
        p.put_slice(&[if key { 0x17 } else { 0x27 }, 0x01, 0, 0, 0]);
        let sei = stamp::sei_nal(stamp);
        p.put_u32(sei.len() as u32);
        p.put_slice(&sei);
        let mut slice = BytesMut::with_capacity(size);
        // IDR slice (nal_ref_idc 3, type 5) or non-IDR reference slice (nal_ref_idc 2, type 1).
        slice.put_u8(if key { 0x65 } else { 0x41 });
        let mut header = BitWriter::default();
        header.ue(0); // first_mb_in_slice
        header.ue(if key { 7 } else { 5 }); // slice_type: I or P (all slices of the picture alike)
        header.ue(0); // pic_parameter_set_id
        header.bits(frame_num & 0x0f, 4); // frame_num, log2_max_frame_num = 4
        if key {
            header.ue(0); // idr_pic_id
            header.bit(false); // no_output_of_prior_pics_flag
            header.bit(false); // long_term_reference_flag
        } else {
            header.bit(false); // num_ref_idx_active_override_flag
            header.bit(false); // ref_pic_list_modification_flag_l0
            header.bit(false); // adaptive_ref_pic_marking_mode_flag
        }
        header.se(0); // slice_qp_delta
        header.ue(1); // disable_deblocking_filter_idc
        header.bit(true); // filler data starts byte-aligned after a set bit
        stamp::escape_into(&mut slice, &header.finish());
        let data = size.saturating_sub(VIDEO_OVERHEAD).max(16);
        slice.put_slice(&self.filler[..data.min(self.filler.len())]);
        p.put_u32(slice.len() as u32);
        p.put_slice(&slice);
        p.freeze()
    }

    fn avc_sequence_header(&self) -> Bytes {
        let mut p = BytesMut::new();
        p.put_slice(&[0x17, 0x00, 0, 0, 0]);
        // AVCDecoderConfigurationRecord: version, profile, compatibility, level from the SPS,
        // 4-byte NAL lengths, one SPS, one PPS.
        p.put_slice(&[1, self.sps[1], self.sps[2], self.sps[3], 0xff, 0xe1]);
        p.put_u16(self.sps.len() as u16);
        p.put_slice(&self.sps);
        p.put_u8(1);
        p.put_u16(self.pps.len() as u16);
        p.put_slice(&self.pps);
        p.freeze()
    }

    fn metadata(&self) -> Frame {
        let s = &self.spec;
        let mut out = BytesMut::new();
        let meta = Amf0Value::EcmaArray(vec![
            ("width".into(), Amf0Value::Number(f64::from(s.width))),
            ("height".into(), Amf0Value::Number(f64::from(s.height))),
            ("framerate".into(), Amf0Value::Number(f64::from(s.fps))),
            ("videocodecid".into(), Amf0Value::Number(7.0)),
            (
                "videodatarate".into(),
                Amf0Value::Number((s.bitrate - s.audio_bitrate()) as f64 / 1000.0),
            ),
            ("audiocodecid".into(), Amf0Value::Number(10.0)),
            ("audiosamplerate".into(), Amf0Value::Number(AAC_RATE as f64)),
            ("audiochannels".into(), Amf0Value::Number(2.0)),
            (
                "audiodatarate".into(),
                Amf0Value::Number(s.audio_bitrate() as f64 / 1000.0),
            ),
            ("encoder".into(), Amf0Value::string("corestream-bench")),
        ]);
        // Encoding plain numbers and short strings cannot fail.
        let _ = amf0::encode_all(&mut out, &[Amf0Value::string("onMetaData"), meta]);
        Frame::new(MediaKind::Script, 0, out.freeze())
    }
}

/// FLV AAC sequence header: AAC, 44 kHz, 16-bit, stereo; AudioSpecificConfig AAC-LC (object
/// type 2), 44.1 kHz (frequency index 4), 2 channels.
fn aac_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10])
}

/// A Baseline-profile SPS (level 3.1) for `width` x `height` (rounded up to macroblocks).
fn sps(width: u32, height: u32) -> Bytes {
    let mut w = BitWriter::default();
    w.bits(66, 8); // profile_idc: Baseline
    w.bits(0xc0, 8); // constraint_set0/1 flags
    w.bits(31, 8); // level_idc 3.1
    w.ue(0); // seq_parameter_set_id
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(2); // pic_order_cnt_type: output order = decode order
    w.ue(1); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(width.div_ceil(16).max(1) - 1); // pic_width_in_mbs_minus1
    w.ue(height.div_ceil(16).max(1) - 1); // pic_height_in_map_units_minus1
    w.bit(true); // frame_mbs_only_flag
    w.bit(true); // direct_8x8_inference_flag
    w.bit(false); // frame_cropping_flag
    w.bit(false); // vui_parameters_present_flag
    w.bit(true); // rbsp_stop_one_bit
    let mut out = BytesMut::new();
    out.put_u8(0x67); // nal_ref_idc 3, type 7
    stamp::escape_into(&mut out, &w.finish());
    out.freeze()
}

fn pps() -> Bytes {
    let mut w = BitWriter::default();
    w.ue(0); // pic_parameter_set_id
    w.ue(0); // seq_parameter_set_id
    w.bit(false); // entropy_coding_mode_flag: CAVLC
    w.bit(false); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.bit(false); // weighted_pred_flag
    w.bits(0, 2); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    w.bit(true); // deblocking_filter_control_present_flag
    w.bit(false); // constrained_intra_pred_flag
    w.bit(false); // redundant_pic_cnt_present_flag
    w.bit(true); // rbsp_stop_one_bit
    let mut out = BytesMut::new();
    out.put_u8(0x68); // nal_ref_idc 3, type 8
    stamp::escape_into(&mut out, &w.finish());
    out.freeze()
}

/// `len` bytes from a xorshift generator, none of them zero.
fn filler(len: usize) -> Bytes {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as u8) | 0x01
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Big-endian bit writer with Exp-Golomb codes, for SPS/PPS/slice headers.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 = start a new one).
    used: u8,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.bytes.push(0);
        }
        if b {
            if let Some(last) = self.bytes.last_mut() {
                *last |= 0x80 >> self.used;
            }
        }
        self.used = (self.used + 1) % 8;
    }

    fn bits(&mut self, v: u32, n: u32) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self, v: u32) {
        let x = u64::from(v) + 1;
        let len = 64 - x.leading_zeros();
        for _ in 1..len {
            self.bit(false);
        }
        for i in (0..len).rev() {
            self.bit((x >> i) & 1 == 1);
        }
    }

    /// Signed Exp-Golomb.
    fn se(&mut self, v: i32) {
        let mapped = if v > 0 {
            (v as u32) * 2 - 1
        } else {
            v.unsigned_abs() * 2
        };
        self.ue(mapped);
    }

    /// The bytes, the last one padded with zero bits.
    fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// An FLV file loaded in memory, to publish in a loop.
#[derive(Debug)]
pub struct FlvFile {
    frames: Vec<Frame>,
    /// Timestamp span of one pass plus one frame interval, so loops do not overlap.
    period_ms: u32,
    /// NAL unit length size of the file's AVC stream (4 if it has none).
    nalu_len_size: usize,
}

/// Why an FLV file cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum FlvFileError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Flv { path: String, source: FlvError },
    #[error("{path}: no audio or video frame in the file")]
    Empty { path: String },
}

impl FlvFile {
    pub fn load(path: &Path) -> Result<Arc<FlvFile>, FlvFileError> {
        let name = path.display().to_string();
        let data = std::fs::read(path).map_err(|source| FlvFileError::Io {
            path: name.clone(),
            source,
        })?;
        Self::parse(&data).map_err(|e| match e {
            Some(source) => FlvFileError::Flv { path: name, source },
            None => FlvFileError::Empty { path: name },
        })
    }

    /// Parses a whole FLV file; `Err(None)` if it holds no media.
    pub fn parse(data: &[u8]) -> Result<Arc<FlvFile>, Option<FlvError>> {
        let mut reader = FlvReader::new().with_previous_tag_size_check(false);
        reader.feed(data);
        let mut frames = Vec::new();
        while let Some(frame) = reader.poll_frame()? {
            // An AVC end-of-sequence tag ends the file, not the looped stream: a player would
            // reset its decoder at every pass.
            if !stamp::is_avc_end_of_sequence(&frame.payload) {
                frames.push(frame);
            }
        }
        if !frames.iter().any(|f| f.kind != MediaKind::Script) {
            return Err(None);
        }
        let first = frames.iter().map(|f| f.timestamp).min().unwrap_or(0);
        let last = frames.iter().map(|f| f.timestamp).max().unwrap_or(0);
        for f in &mut frames {
            f.timestamp -= first;
        }
        let nalu_len_size = frames
            .iter()
            .find_map(|f| avc_length_size(&f.payload))
            .unwrap_or(4);
        Ok(Arc::new(FlvFile {
            period_ms: last - first + 40,
            frames,
            nalu_len_size,
        }))
    }
}

/// Plays an [`FlvFile`] in a loop: headers and metadata once, then the media again and again with
/// timestamps continuing from one pass to the next.
#[derive(Debug)]
pub struct FlvLoop {
    file: Arc<FlvFile>,
    index: usize,
    pass: u32,
}

impl FlvLoop {
    pub fn new(file: Arc<FlvFile>) -> Self {
        Self {
            file,
            index: 0,
            pass: 0,
        }
    }

    /// Skips, after the first pass, what a player must only get once.
    fn skip_repeated(&mut self) {
        loop {
            if self.index >= self.file.frames.len() {
                self.index = 0;
                self.pass += 1;
            }
            let f = &self.file.frames[self.index];
            if self.pass > 0 && (f.kind == MediaKind::Script || f.is_sequence_header()) {
                self.index += 1;
            } else {
                return;
            }
        }
    }

    pub fn next_ts(&mut self) -> u32 {
        self.skip_repeated();
        self.file.frames[self.index].timestamp + self.pass * self.file.period_ms
    }

    pub fn next_frame(&mut self, stamper: &mut Stamper, now_us: u64) -> Frame {
        let timestamp = self.next_ts();
        let f = &self.file.frames[self.index];
        self.index += 1;
        let payload = if stamp::is_avc_nalu_tag(&f.payload) {
            let s = stamper.next(now_us);
            stamp::stamp_avc_tag(&f.payload, self.file.nalu_len_size, &s)
                .unwrap_or_else(|| f.payload.clone())
        } else {
            f.payload.clone()
        };
        Frame::new(f.kind, timestamp, payload)
    }
}

/// Either source.
#[derive(Debug)]
pub enum Source {
    Synthetic(Box<Synthetic>),
    File(FlvLoop),
}

impl Source {
    pub fn next_ts(&mut self) -> u32 {
        match self {
            Source::Synthetic(s) => s.next_ts(),
            Source::File(f) => f.next_ts(),
        }
    }

    pub fn next_frame(&mut self, stamper: &mut Stamper, now_us: u64) -> Frame {
        match self {
            Source::Synthetic(s) => s.next_frame(stamper, now_us),
            Source::File(f) => f.next_frame(stamper, now_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use corestream::protocol::flv::{encode_header, encode_tag};

    fn take(src: &mut Synthetic, n: usize) -> Vec<Frame> {
        let mut st = Stamper::new(0);
        (0..n).map(|i| src.next_frame(&mut st, i as u64)).collect()
    }

    #[test]
    fn synthetic_starts_with_headers_then_a_keyframe() {
        let mut s = Synthetic::new(SyntheticSpec::new(2_500_000, Duration::from_secs(2)));
        let f = take(&mut s, 5);
        assert_eq!(f[0].kind, MediaKind::Script);
        assert!(f[1].is_sequence_header() && f[1].kind == MediaKind::Video);
        assert!(f[2].is_sequence_header() && f[2].kind == MediaKind::Audio);
        assert!(f[3].is_keyframe() && !f[3].is_sequence_header());
        assert_eq!(avc_length_size(&f[1].payload), Some(4));
        // The AVC record carries our SPS and PPS.
        assert_eq!(f[1].payload[5..9], [1, 66, 0xc0, 31]);
    }

    #[test]
    fn synthetic_gop_and_bitrate() {
        let spec = SyntheticSpec::new(2_500_000, Duration::from_secs(2));
        let mut s = Synthetic::new(spec);
        assert_eq!(s.gop_frames(), 50);
        // Ten seconds of media.
        let mut st = Stamper::new(4);
        let mut frames = Vec::new();
        while s.next_ts() < 10_000 {
            frames.push(s.next_frame(&mut st, 0));
        }
        let video: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == MediaKind::Video && !f.is_sequence_header())
            .collect();
        assert_eq!(video.len(), 250);
        let keys: Vec<usize> = video
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_keyframe())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(keys, vec![0, 50, 100, 150, 200]);
        let bytes: usize = frames.iter().map(|f| f.payload.len()).sum();
        let bps = bytes as f64 * 8.0 / 10.0;
        assert!((bps / 2_500_000.0 - 1.0).abs() < 0.05, "{bps} bit/s");
        // Every video frame is stamped, in order, and timestamps never go back.
        for (i, f) in video.iter().enumerate() {
            let stamp = stamp::extract_avc_tag(&f.payload, 4).unwrap();
            assert_eq!((stamp.stream, stamp.seq), (4, i as u64));
        }
        assert!(frames.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let audio = frames.iter().filter(|f| f.kind == MediaKind::Audio).count();
        assert_eq!(audio, 1 + 431); // sequence header + 10 s of 1024-sample frames at 44.1 kHz
    }

    #[test]
    fn synthetic_nal_units_are_well_formed() {
        let mut s = Synthetic::new(SyntheticSpec::new(250_000, Duration::from_secs(1)));
        for f in take(&mut s, 200)
            .iter()
            .filter(|f| stamp::is_avc_nalu_tag(&f.payload))
        {
            // Length-prefixed NAL units cover the body exactly; no start code inside any.
            let mut data = &f.payload[5..];
            let mut types = Vec::new();
            while !data.is_empty() {
                let len = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
                let nal = &data[4..4 + len];
                assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
                types.push(nal[0] & 0x1f);
                data = &data[4 + len..];
            }
            let slice = if f.is_keyframe() { 5 } else { 1 };
            assert_eq!(types, vec![6, slice]);
        }
    }

    #[test]
    fn exp_golomb() {
        let mut w = BitWriter::default();
        w.ue(0); // 1
        w.ue(1); // 010
        w.ue(4); // 00101
        w.se(-1); // ue(2) = 011
        assert_eq!(w.finish(), vec![0b1010_0010, 0b1011_0000]);
    }

    #[test]
    fn flv_file_loops_with_headers_once() {
        let mut s = Synthetic::new(SyntheticSpec::new(500_000, Duration::from_secs(1)));
        let frames = take(&mut s, 30);
        let mut file = BytesMut::new();
        encode_header(&mut file, true, true);
        for f in &frames {
            encode_tag(&mut file, f).unwrap();
        }
        // ffmpeg ends its FLV files with an AVC end-of-sequence tag: dropped.
        let eos = Frame::new(
            MediaKind::Video,
            1200,
            Bytes::from_static(&[0x17, 2, 0, 0, 0]),
        );
        encode_tag(&mut file, &eos).unwrap();
        let loaded = FlvFile::parse(&file).unwrap();
        assert_eq!(loaded.frames.len(), 30);
        let period = loaded.period_ms;
        let mut lp = FlvLoop::new(loaded);
        let mut st = Stamper::new(1);
        let first: Vec<Frame> = (0..30).map(|_| lp.next_frame(&mut st, 5)).collect();
        let second: Vec<Frame> = (0..27).map(|_| lp.next_frame(&mut st, 5)).collect();
        assert_eq!(first[0].kind, MediaKind::Script);
        assert!(second
            .iter()
            .all(|f| f.kind != MediaKind::Script && !f.is_sequence_header()));
        assert_eq!(second[0].timestamp, period);
        // Restamped: the sequence continues across passes.
        let seqs: Vec<u64> = first
            .iter()
            .chain(&second)
            .filter_map(|f| stamp::extract_avc_tag(&f.payload, 4))
            .map(|s| s.seq)
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        assert!(FlvFile::parse(b"not flv").is_err());
    }
}
