//! H.264 over RTP (RFC 6184, packetization modes 0 and 1: single NAL units, STAP-A, FU-A) to
//! FLV AVC video frames: an AVC sequence header (AVCDecoderConfigurationRecord from SPS/PPS, from
//! `sprop-parameter-sets` or in-band) before the first keyframe and whenever they change, then
//! one frame per access unit with AVCC length-prefixed NAL units.

use bytes::Bytes;

use super::units::{AccessUnits, NalCodec};
use super::Timeline;
use crate::media::{Frame, MediaKind};
use crate::protocol::flv::{avc_sequence_header, length_prefixed};
use crate::protocol::rtsp::Track;

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One H.264 track's depacketizer.
///
/// Invariant: frames go out only from a keyframe on (at start, and after any loss), and only once
/// SPS and PPS are known, so every frame a player gets can be decoded.
#[derive(Debug)]
pub struct H264 {
    units: AccessUnits,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// SPS/PPS changed since the last sequence header went out (or none went out yet).
    config_changed: bool,
}

impl H264 {
    pub fn new(track: &Track, origin: Option<u32>) -> H264 {
        let mut d = H264 {
            units: AccessUnits::new(Timeline::new(track.clock_rate, origin)),
            sps: None,
            pps: None,
            config_changed: true,
        };
        d.sprop_parameter_sets(track, &["sprop-parameter-sets"]);
        d
    }

    /// Access units dropped for loss, while waiting for a keyframe, or without SPS/PPS.
    pub fn dropped(&self) -> u64 {
        self.units.dropped
    }
}

impl NalCodec for H264 {
    fn units(&mut self) -> &mut AccessUnits {
        &mut self.units
    }

    fn payload(&mut self, ts: u32, data: &Bytes) {
        let Some(&first) = data.first() else {
            return;
        };
        match first & 0x1f {
            1..=23 => self.nal(ts, data.clone()),
            STAP_A => self.aggregated(ts, data, 1, 1),
            FU_A => {
                let Some(&header) = data.get(1) else {
                    self.units.damaged = true;
                    return;
                };
                let nal_header = (first & 0xe0) | (header & 0x1f);
                if let Some(nal) = self.units.fragment(header, &[nal_header], &data[2..]) {
                    self.nal(ts, nal);
                }
            }
            // STAP-B, MTAP, FU-B belong to the interleaved mode, which is not negotiated.
            _ => {}
        }
    }

    fn nal(&mut self, ts: u32, nal: Bytes) {
        match nal.first().map(|b| b & 0x1f) {
            Some(NAL_SPS | NAL_PPS) => self.parameter_set(nal),
            Some(NAL_AUD) | None => {}
            Some(_) => self.units.push_nal(ts, nal),
        }
    }

    fn parameter_set(&mut self, nal: Bytes) {
        let slot = match nal.first().map(|b| b & 0x1f) {
            Some(NAL_SPS) if nal.len() >= 4 => &mut self.sps,
            Some(NAL_PPS) => &mut self.pps,
            _ => return,
        };
        if slot.as_ref() != Some(&nal) {
            *slot = Some(nal);
            self.config_changed = true;
        }
    }

    fn flush(&mut self, out: &mut Vec<Frame>) {
        let is_key = |n: &[u8]| n[0] & 0x1f == NAL_IDR;
        let ready = self.sps.is_some() && self.pps.is_some();
        let Some((ms, keyframe, nals)) = self.units.take(is_key, ready) else {
            return;
        };
        if keyframe && self.config_changed {
            if let (Some(sps), Some(pps)) = (&self.sps, &self.pps) {
                out.push(Frame::new(
                    MediaKind::Video,
                    ms,
                    avc_sequence_header(sps, pps),
                ));
                self.config_changed = false;
            }
        }
        let header = [if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        let body = length_prefixed(header, &nals);
        out.push(Frame::new(MediaKind::Video, ms, body));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rtp, run};
    use super::super::Depacketizer;
    use super::*;
    use crate::protocol::rtsp::Sdp;

    const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
    const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];

    fn track(sprop: bool) -> Track {
        let fmtp = if sprop {
            // base64 of SPS and PPS above
            "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QAH6w=,aO48gA==\r\n"
        } else {
            ""
        };
        let sdp = format!("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n{fmtp}");
        Sdp::parse(sdp.as_bytes()).unwrap().tracks.remove(0)
    }

    fn avcc(key: bool, nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    fn seq_header() -> Vec<u8> {
        let mut v = vec![0x17, 0, 0, 0, 0, 1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, 5];
        v.extend_from_slice(SPS);
        v.extend_from_slice(&[1, 0, 4]);
        v.extend_from_slice(PPS);
        v
    }

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x21];
    const P: &[u8] = &[0x41, 0x9a, 0x02];

    #[test]
    fn single_nal_units_with_sprop_parameter_sets() {
        let mut d = Depacketizer::for_track(&track(true), Some(1000)).unwrap();
        let out = run(
            &mut d,
            &[
                // A P frame before any keyframe is dropped.
                rtp(96, 9, 1000, true, P),
                rtp(96, 10, 1000 + 3000, true, IDR),
                rtp(96, 11, 1000 + 6000, true, P),
            ],
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].payload, seq_header());
        assert!(out[0].is_sequence_header());
        assert_eq!(
            (out[1].timestamp, &out[1].payload[..]),
            (33, &avcc(true, &[IDR])[..])
        );
        assert!(out[1].is_keyframe());
        assert_eq!(
            (out[2].timestamp, &out[2].payload[..]),
            (66, &avcc(false, &[P])[..])
        );
    }

    #[test]
    fn stap_a_in_band_parameter_sets_and_fu_a() {
        let mut d = Depacketizer::for_track(&track(false), None).unwrap();
        let mut stap = vec![STAP_A | 0x60];
        for n in [SPS, PPS] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        // An IDR in three FU-A fragments: start, middle, end; NRI 3 from the indicator.
        let fu = |se: u8, data: &[u8]| {
            let mut v = vec![0x60 | FU_A, se | NAL_IDR];
            v.extend_from_slice(data);
            v
        };
        let out = run(
            &mut d,
            &[
                rtp(96, 1, 0, false, &stap),
                rtp(96, 2, 0, false, &fu(0x80, &[0x88, 0x84])),
                rtp(96, 3, 0, false, &fu(0x00, &[0x21])),
                rtp(96, 4, 0, true, &fu(0x40, &[0x22])),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload, seq_header());
        assert_eq!(
            out[1].payload,
            avcc(true, &[&[0x65, 0x88, 0x84, 0x21, 0x22]])
        );
        // New parameter sets in band: a new sequence header before the next keyframe only.
        let sps2: &[u8] = &[0x67, 0x4d, 0x00, 0x28, 0x01];
        let out = run(
            &mut d,
            &[
                rtp(96, 5, 3000, true, sps2),
                rtp(96, 6, 3000, true, P),
                rtp(96, 7, 6000, true, IDR),
            ],
        );
        assert_eq!(out.len(), 3);
        assert!(!out[0].is_keyframe());
        assert!(out[1].is_sequence_header());
        assert_eq!(&out[1].payload[6..9], &[0x4d, 0x00, 0x28]);
        assert!(out[2].is_keyframe());
    }

    #[test]
    fn loss_drops_until_the_next_keyframe() {
        let mut d = Depacketizer::for_track(&track(true), None).unwrap();
        let fu = |se: u8, data: &[u8]| {
            let mut v = vec![0x40 | FU_A, se | 1];
            v.extend_from_slice(data);
            v
        };
        let out = run(
            &mut d,
            &[
                rtp(96, 1, 0, true, IDR),
                // A P frame whose middle fragment (seq 3) is lost.
                rtp(96, 2, 3000, false, &fu(0x80, &[1])),
                rtp(96, 4, 3000, true, &fu(0x40, &[3])),
                // The next P frame is whole but refers to the lost one: dropped too.
                rtp(96, 5, 6000, true, P),
                // Seq 3 arriving late (reordered) is dropped.
                rtp(96, 3, 3000, false, &fu(0x00, &[2])),
                rtp(96, 6, 9000, true, IDR),
                rtp(96, 7, 12000, true, P),
            ],
        );
        let kinds: Vec<(u32, bool)> = out
            .iter()
            .filter(|f| !f.is_sequence_header())
            .map(|f| (f.timestamp, f.is_keyframe()))
            .collect();
        assert_eq!(kinds, [(0, true), (100, true), (133, false)]);
        let Depacketizer::H264(h) = &d else { panic!() };
        assert_eq!(h.dropped(), 2);
    }

    #[test]
    fn access_unit_without_marker_ends_at_the_next_timestamp() {
        let mut d = Depacketizer::for_track(&track(true), None).unwrap();
        let slice2: &[u8] = &[0x65, 0xb8, 0x01];
        let out = run(
            &mut d,
            &[
                rtp(96, 1, 0, false, IDR),
                rtp(96, 2, 0, false, slice2),
                rtp(96, 3, 3000, false, P),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].payload, avcc(true, &[IDR, slice2]));
    }
}
