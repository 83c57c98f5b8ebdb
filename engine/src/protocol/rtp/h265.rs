//! H.265 over RTP (RFC 7798, without DONL: single NAL units, aggregation packets, fragmentation
//! units) to enhanced-RTMP `hvc1` video frames: a `SequenceStart` with an
//! HEVCDecoderConfigurationRecord (VPS/SPS/PPS from `sprop-vps`/`sprop-sps`/`sprop-pps` or in
//! band) before the first keyframe and whenever they change, then `CodedFramesX` frames with
//! length-prefixed NAL units. Loss and keyframe rules are H.264's ([`super::h264`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::units::{AccessUnits, NalCodec};
use super::Timeline;
use crate::media::{Frame, MediaKind};
use crate::protocol::flv::{
    hevc_sequence_start, length_prefixed, EX_CODED_FRAMES_X, EX_INTER_FRAME, EX_KEYFRAME,
};
use crate::protocol::rtsp::Track;

const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
const NAL_AUD: u8 = 35;
const AP: u8 = 48;
const FU: u8 = 49;

fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// One H.265 track's depacketizer; the same invariants as [`super::h264::H264`].
#[derive(Debug)]
pub struct H265 {
    units: AccessUnits,
    vps: Option<Bytes>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    config_changed: bool,
}

impl H265 {
    pub fn new(track: &Track, origin: Option<u32>) -> H265 {
        let mut d = H265 {
            units: AccessUnits::new(Timeline::new(track.clock_rate, origin)),
            vps: None,
            sps: None,
            pps: None,
            config_changed: true,
        };
        d.sprop_parameter_sets(track, &["sprop-vps", "sprop-sps", "sprop-pps"]);
        d
    }

    /// Access units dropped for loss, while waiting for a keyframe, or without VPS/SPS/PPS.
    pub fn dropped(&self) -> u64 {
        self.units.dropped
    }
}

impl NalCodec for H265 {
    fn units(&mut self) -> &mut AccessUnits {
        &mut self.units
    }

    fn payload(&mut self, ts: u32, data: &Bytes) {
        if data.len() < 3 {
            return;
        }
        match nal_type(data) {
            Some(AP) => self.aggregated(ts, data, 2, 2),
            Some(FU) => {
                let header = data[2];
                let nal_header = [(data[0] & 0x81) | ((header & 0x3f) << 1), data[1]];
                if let Some(nal) = self.units.fragment(header, &nal_header, &data[3..]) {
                    self.nal(ts, nal);
                }
            }
            // PACI (50) and reserved types carry nothing we relay.
            Some(t) if t < 48 => self.nal(ts, data.clone()),
            _ => {}
        }
    }

    fn nal(&mut self, ts: u32, nal: Bytes) {
        match nal_type(&nal) {
            Some(NAL_VPS | NAL_SPS | NAL_PPS) => self.parameter_set(nal),
            Some(NAL_AUD) | None => {}
            Some(_) => self.units.push_nal(ts, nal),
        }
    }

    fn parameter_set(&mut self, nal: Bytes) {
        let slot = match nal_type(&nal) {
            Some(NAL_VPS) => &mut self.vps,
            Some(NAL_SPS) if profile_tier_level(&nal).is_some() => &mut self.sps,
            Some(NAL_PPS) => &mut self.pps,
            _ => return,
        };
        if slot.as_ref() != Some(&nal) {
            *slot = Some(nal);
            self.config_changed = true;
        }
    }

    fn flush(&mut self, out: &mut Vec<Frame>) {
        // IRAP pictures (BLA, IDR, CRA) are where a decoder can start.
        let is_key = |n: &[u8]| nal_type(n).is_some_and(|t| (16..=21).contains(&t));
        let ready = self.vps.is_some() && self.sps.is_some() && self.pps.is_some();
        let Some((ms, keyframe, nals)) = self.units.take(is_key, ready) else {
            return;
        };
        let (Some(vps), Some(sps), Some(pps)) = (&self.vps, &self.sps, &self.pps) else {
            return;
        };
        if keyframe && self.config_changed {
            if let Some(record) = decoder_configuration(vps, sps, pps) {
                out.push(Frame::new(
                    MediaKind::Video,
                    ms,
                    hevc_sequence_start(&record),
                ));
                self.config_changed = false;
            }
        }
        let tag = if keyframe {
            EX_KEYFRAME
        } else {
            EX_INTER_FRAME
        } | EX_CODED_FRAMES_X;
        let body = length_prefixed([tag, b'h', b'v', b'c', b'1'], &nals);
        out.push(Frame::new(MediaKind::Video, ms, body));
    }
}

/// The SPS's first byte after the NAL header (sub-layer count, nesting flag) and its 12-byte
/// general profile_tier_level, emulation prevention bytes removed.
fn profile_tier_level(sps: &[u8]) -> Option<(u8, [u8; 12])> {
    let mut rbsp = Vec::with_capacity(16);
    let mut zeros = 0;
    for &b in sps.get(2..)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
        if rbsp.len() == 13 {
            let ptl: [u8; 12] = rbsp[1..13].try_into().ok()?;
            return Some((rbsp[0], ptl));
        }
    }
    None
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15) with one VPS, SPS and PPS. Profile, tier
/// and level come from the SPS; chroma format and bit depths are written as 4:2:0 8-bit (what
/// cameras send; decoders read the real values from the SPS itself).
fn decoder_configuration(vps: &[u8], sps: &[u8], pps: &[u8]) -> Option<Bytes> {
    let (first, ptl) = profile_tier_level(sps)?;
    let sub_layers = ((first >> 1) & 0x07) + 1;
    let nested = first & 0x01;
    let mut b = BytesMut::with_capacity(64 + vps.len() + sps.len() + pps.len());
    b.put_u8(1);
    b.put_slice(&ptl);
    b.put_slice(&[0xf0, 0x00, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0]);
    b.put_u8((sub_layers << 3) | (nested << 2) | 0x03);
    b.put_u8(3);
    for (t, nal) in [(NAL_VPS, vps), (NAL_SPS, sps), (NAL_PPS, pps)] {
        b.put_u8(0x80 | t);
        b.put_u16(1);
        b.put_u16(nal.len() as u16);
        b.put_slice(nal);
    }
    Some(b.freeze())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::super::tests::{rtp, run};
    use super::super::Depacketizer;
    use super::*;
    use crate::protocol::rtsp::Sdp;

    const VPS: &[u8] = &[0x40, 0x01, 0x0c, 0x01];
    /// An SPS: one sub-layer, nesting flag; Main profile, level 3.1, with an emulation
    /// prevention byte among the constraint flags' zeros.
    const SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x5d, 0xa0,
    ];
    const PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72];
    const IDR: &[u8] = &[0x26, 0x01, 0xaf, 0x11];
    const TRAIL: &[u8] = &[0x02, 0x01, 0xd0, 0x22];

    fn track() -> Track {
        let b64 = |n: &[u8]| base64::engine::general_purpose::STANDARD.encode(n);
        let sdp = format!(
            "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n\
             a=fmtp:96 sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
            b64(VPS),
            b64(SPS),
            b64(PPS)
        );
        Sdp::parse(sdp.as_bytes()).unwrap().tracks.remove(0)
    }

    #[test]
    fn decoder_configuration_from_the_sps() {
        let rec = decoder_configuration(VPS, SPS, PPS).unwrap();
        assert_eq!(
            &rec[..23],
            &[
                1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8,
                0, 0, 0x0f, 3
            ]
        );
        assert_eq!(&rec[23..28], &[0xa0, 0, 1, 0, 4]);
        assert_eq!(&rec[28..32], VPS);
    }

    #[test]
    fn the_engines_ts_muxer_takes_the_frames() {
        use crate::protocol::ts::{MuxOutcome, TsMuxer};
        let mut d = Depacketizer::for_track(&track(), None).unwrap();
        let out = run(
            &mut d,
            &[rtp(96, 1, 0, true, IDR), rtp(96, 2, 3000, true, TRAIL)],
        );
        let mut ts = TsMuxer::new();
        let mut buf = BytesMut::new();
        let outcomes: Vec<MuxOutcome> = out
            .iter()
            .map(|f| ts.write_frame(f, &mut buf).unwrap())
            .collect();
        assert_eq!(
            outcomes,
            [
                MuxOutcome::ConfigStored,
                MuxOutcome::Written,
                MuxOutcome::Written
            ]
        );
        // Annex B with the parameter sets before the IDR.
        let annex_b = |nal: &[u8]| [&[0, 0, 0, 1][..], nal].concat();
        let has = |needle: &[u8]| buf.windows(needle.len()).any(|w| w == needle);
        assert!(has(&annex_b(SPS)) && has(&annex_b(IDR)));
    }

    #[test]
    fn single_aggregated_and_fragmented_with_loss() {
        let mut d = Depacketizer::for_track(&track(), None).unwrap();
        let mut ap = vec![AP << 1, 1];
        for n in [IDR, &[0x26, 0x01, 0x05][..]] {
            ap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            ap.extend_from_slice(n);
        }
        let fu = |se: u8, data: &[u8]| {
            let mut v = vec![FU << 1, 1, se | 1];
            v.extend_from_slice(data);
            v
        };
        let out = run(
            &mut d,
            &[
                rtp(96, 1, 0, true, TRAIL),
                rtp(96, 2, 3000, true, &ap),
                rtp(96, 3, 6000, false, &fu(0x80, &[0xd0])),
                rtp(96, 4, 6000, true, &fu(0x40, &[0x33])),
                // Loss: seq 6 is missing; the damaged frame and the next inter frame are dropped.
                rtp(96, 5, 9000, false, &fu(0x80, &[1])),
                rtp(96, 7, 9000, true, &fu(0x40, &[2])),
                rtp(96, 8, 12000, true, TRAIL),
                rtp(96, 9, 15000, true, IDR),
            ],
        );
        let firsts: Vec<(u32, u8)> = out.iter().map(|f| (f.timestamp, f.payload[0])).collect();
        // Without an RTP-Info origin the timeline starts at the first frame that goes out.
        assert_eq!(firsts, [(0, 0x90), (0, 0x93), (33, 0xa3), (133, 0x93)]);
        assert!(out[0].is_sequence_header() && out[1].is_keyframe());
        assert_eq!(&out[2].payload[5..], &[0, 0, 0, 4, 0x02, 0x01, 0xd0, 0x33]);
        let mut expected = b"hvc1".to_vec();
        for n in [IDR, &[0x26, 0x01, 0x05][..]] {
            expected.extend_from_slice(&(n.len() as u32).to_be_bytes());
            expected.extend_from_slice(n);
        }
        assert_eq!(&out[1].payload[1..], &expected[..]);
    }
}
