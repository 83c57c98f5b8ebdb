//! AAC over RTP as `MP4A-LATM` (RFC 3016 / RFC 6416) with the configuration out of band
//! (`cpresent=0`, StreamMuxConfig in the SDP's `config=`): one FLV AAC frame per AudioMuxElement,
//! the AudioSpecificConfig taken from the StreamMuxConfig. Elements fragmented over several
//! packets are reassembled up to the marker bit; one with a lost packet is dropped. In-band
//! configuration (`cpresent=1`), several programs, layers or subframes are refused.

use bytes::{Bytes, BytesMut};

use super::aac::{hex, AacFrames, Bits};
use super::{RtpPacket, Unsupported};
use crate::media::Frame;
use crate::protocol::rtsp::Track;

/// One MP4A-LATM track's depacketizer.
#[derive(Debug)]
pub struct Latm {
    frames: AacFrames,
    /// Payload bytes of the element being reassembled, and its RTP timestamp.
    pending: Option<(BytesMut, u32)>,
}

impl Latm {
    pub fn new(track: &Track, origin: Option<u32>) -> Result<Latm, Unsupported> {
        let bad = |reason| Unsupported::Params {
            encoding: track.encoding.clone(),
            reason,
        };
        if track.fmtp("cpresent").is_some_and(|c| c != "0") {
            return Err(bad("in-band configuration (cpresent=1) is not supported"));
        }
        let mux = track
            .fmtp("config")
            .and_then(hex)
            .ok_or_else(|| bad("no StreamMuxConfig (config=) in the sdp"))?;
        let config = audio_specific_config(&mux)
            .ok_or_else(|| bad("StreamMuxConfig not supported (one AAC program and layer are)"))?;
        Ok(Latm {
            frames: AacFrames::new(track, origin, config),
            pending: None,
        })
    }

    /// Elements dropped for loss or malformed lengths.
    pub fn dropped(&self) -> u64 {
        self.frames.dropped
    }

    pub(super) fn push(&mut self, p: &RtpPacket, out: &mut Vec<Frame>) {
        if !self.frames.accept(p, &mut self.pending) {
            return;
        }
        let mut buf = match self.pending.take() {
            Some((mut buf, ts)) if ts == p.timestamp => {
                buf.extend_from_slice(&p.payload);
                buf
            }
            Some(_) => {
                self.frames.dropped += 1;
                BytesMut::from(&p.payload[..])
            }
            None => BytesMut::from(&p.payload[..]),
        };
        if !p.marker {
            self.pending = Some((buf, p.timestamp));
            return;
        }
        // The whole payload: one or more PayloadLengthInfo + PayloadMux.
        let data = buf.split().freeze();
        let mut at = 0;
        while at < data.len() {
            let mut len = 0usize;
            loop {
                let Some(&b) = data.get(at) else {
                    self.frames.dropped += 1;
                    return;
                };
                at += 1;
                len += usize::from(b);
                if b != 0xff {
                    break;
                }
            }
            if at + len > data.len() {
                self.frames.dropped += 1;
                return;
            }
            self.frames.emit(p.timestamp, data.slice(at..at + len), out);
            at += len;
        }
    }
}

/// The AudioSpecificConfig inside a StreamMuxConfig (ISO/IEC 14496-3 1.7.3) of version 0 with
/// one program, one layer and no subframes, for the AAC object types whose GASpecificConfig is
/// three flags (Main, LC, SSR, LTP without a core coder).
fn audio_specific_config(mux: &[u8]) -> Option<Bytes> {
    let mut r = Bits { data: mux, pos: 0 };
    let version = r.read(1)?;
    let same_time_framing = r.read(1)?;
    let sub_frames = r.read(6)?;
    let programs = r.read(4)?;
    let layers = r.read(3)?;
    if version != 0 || same_time_framing != 1 || sub_frames != 0 || programs != 0 || layers != 0 {
        return None;
    }
    let object_type = r.read(5)?;
    if !(1..=4).contains(&object_type) {
        return None;
    }
    let frequency_index = r.read(4)?;
    let frequency = if frequency_index == 15 {
        Some(r.read(24)?)
    } else {
        None
    };
    let channels = r.read(4)?;
    let frame_length_flag = r.read(1)?;
    if r.read(1)? != 0 {
        // dependsOnCoreCoder
        return None;
    }
    let extension_flag = r.read(1)?;
    let mut w = BitWriter::default();
    w.put(object_type, 5);
    w.put(frequency_index, 4);
    if let Some(f) = frequency {
        w.put(f, 24);
    }
    w.put(channels, 4);
    w.put(frame_length_flag, 1);
    w.put(0, 1);
    w.put(extension_flag, 1);
    Some(w.finish())
}

#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, n: u32) {
        for i in (0..n).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = ((value >> i) & 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= bit << (7 - self.bits % 8);
            }
            self.bits += 1;
        }
    }

    fn finish(self) -> Bytes {
        Bytes::from(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rtp, run};
    use super::super::Depacketizer;
    use super::*;
    use crate::protocol::rtsp::Sdp;

    fn track(fmtp: &str) -> Track {
        let sdp = format!(
            "v=0\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/1\r\na=fmtp:96 {fmtp}\r\n"
        );
        Sdp::parse(sdp.as_bytes()).unwrap().tracks.remove(0)
    }

    #[test]
    fn stream_mux_config_to_audio_specific_config() {
        // AAC LC, 44.1 kHz, mono: the classic 40002410.
        assert_eq!(
            &audio_specific_config(&[0x40, 0x00, 0x24, 0x10]).unwrap()[..],
            &[0x12, 0x08]
        );
        // Two programs: refused.
        assert_eq!(audio_specific_config(&[0x40, 0x10, 0x24, 0x10]), None);
    }

    #[test]
    fn elements_whole_fragmented_and_lost() {
        let mut d = Depacketizer::for_track(
            &track("profile-level-id=1;cpresent=0;config=40002410"),
            Some(0),
        )
        .unwrap();
        let big = vec![7u8; 300];
        let mut long = vec![0xff, 45];
        long.extend_from_slice(&big);
        let out = run(
            &mut d,
            &[
                rtp(96, 1, 0, true, &[2, 1, 2]),
                // 300 bytes in two packets: 255 + 45 as the length.
                rtp(96, 2, 1024, false, &long[..100]),
                rtp(96, 3, 1024, true, &long[100..]),
                // A fragmented element whose second packet is lost.
                rtp(96, 4, 2048, false, &[3, 9]),
                rtp(96, 6, 3072, true, &[1, 5]),
            ],
        );
        let bodies: Vec<(u32, usize)> =
            out.iter().map(|f| (f.timestamp, f.payload.len())).collect();
        assert_eq!(bodies, [(0, 4), (0, 4), (23, 302), (69, 3)]);
        assert_eq!(&out[0].payload[..], &[0xaf, 0, 0x12, 0x08]);
        assert_eq!(&out[1].payload[..], &[0xaf, 1, 1, 2]);
        let e = Depacketizer::for_track(&track("cpresent=1"), None).unwrap_err();
        assert!(e.to_string().contains("cpresent=1"), "{e}");
    }
}
