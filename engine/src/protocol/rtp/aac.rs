//! AAC over RTP, `mpeg4-generic` (RFC 3640, AAC-hbr and AAC-lbr): AU headers, one FLV AAC frame
//! per access unit, an AAC sequence header (the SDP's `config=` AudioSpecificConfig) first.
//! An access unit fragmented over several packets is reassembled; one with a lost fragment is
//! dropped.

use bytes::{BufMut, Bytes, BytesMut};

use super::{RtpPacket, SeqCheck, Sequence, Timeline, Unsupported};
use crate::media::{Frame, MediaKind};
use crate::protocol::rtsp::Track;

/// FLV audio tag header for AAC (the other bits are fixed for AAC).
const FLV_AAC: u8 = 0xaf;
/// Samples per AAC access unit.
const SAMPLES_PER_AU: u32 = 1024;

/// What both AAC payload formats (this one and [`super::latm`]) do around their own payload
/// parsing: the sequence check, the timeline, and FLV AAC frames behind one sequence header.
#[derive(Debug)]
pub(super) struct AacFrames {
    timeline: Timeline,
    seq: Sequence,
    /// The AudioSpecificConfig, sent as the sequence header before the first frame.
    config: Bytes,
    header_sent: bool,
    /// Access units dropped for loss or malformed payloads.
    pub(super) dropped: u64,
}

impl AacFrames {
    pub(super) fn new(track: &Track, origin: Option<u32>, config: Bytes) -> AacFrames {
        AacFrames {
            timeline: Timeline::new(track.clock_rate, origin),
            seq: Sequence::default(),
            config,
            header_sent: false,
            dropped: 0,
        }
    }

    /// Checks `p`'s sequence number: false for a late packet (drop it). A gap loses the access
    /// unit being reassembled, `pending`.
    pub(super) fn accept<T>(&mut self, p: &RtpPacket, pending: &mut Option<T>) -> bool {
        match self.seq.check(p.sequence) {
            SeqCheck::Late => return false,
            SeqCheck::Lost(_) => {
                if pending.take().is_some() {
                    self.dropped += 1;
                }
            }
            SeqCheck::InOrder => {}
        }
        true
    }

    /// Emits access unit `au` of RTP time `rtp_ts`, the sequence header first if none went out.
    pub(super) fn emit(&mut self, rtp_ts: u32, au: Bytes, out: &mut Vec<Frame>) {
        let ms = self.timeline.ms(rtp_ts);
        if !self.header_sent {
            let mut h = BytesMut::with_capacity(2 + self.config.len());
            h.put_slice(&[FLV_AAC, 0]);
            h.put_slice(&self.config);
            out.push(Frame::new(MediaKind::Audio, ms, h.freeze()));
            self.header_sent = true;
        }
        let mut b = BytesMut::with_capacity(2 + au.len());
        b.put_slice(&[FLV_AAC, 1]);
        b.put_slice(&au);
        out.push(Frame::new(MediaKind::Audio, ms, b.freeze()));
    }
}

/// One AAC track's depacketizer.
#[derive(Debug)]
pub struct Aac {
    frames: AacFrames,
    size_length: u32,
    index_length: u32,
    index_delta_length: u32,
    /// A fragmented access unit: bytes so far, its announced size, its RTP timestamp.
    fragment: Option<(BytesMut, usize, u32)>,
}

impl Aac {
    pub fn new(track: &Track, origin: Option<u32>) -> Result<Aac, Unsupported> {
        let bad = |reason| Unsupported::Params {
            encoding: track.encoding.clone(),
            reason,
        };
        let config = track
            .fmtp("config")
            .and_then(hex)
            .filter(|c| c.len() >= 2)
            .ok_or_else(|| bad("no AudioSpecificConfig (config=) in the sdp"))?;
        let num = |name: &str, default: Option<u32>| {
            track
                .fmtp(name)
                .and_then(|v| v.parse::<u32>().ok())
                .or(default)
        };
        let size_length = num("sizelength", None)
            .filter(|&n| (1..=16).contains(&n))
            .ok_or_else(|| bad("no sizelength in the sdp"))?;
        Ok(Aac {
            frames: AacFrames::new(track, origin, Bytes::from(config)),
            size_length,
            index_length: num("indexlength", Some(0)).unwrap_or(0).min(16),
            index_delta_length: num("indexdeltalength", Some(0)).unwrap_or(0).min(16),
            fragment: None,
        })
    }

    /// Access units dropped for loss or malformed headers.
    pub fn dropped(&self) -> u64 {
        self.frames.dropped
    }

    pub(super) fn push(&mut self, p: &RtpPacket, out: &mut Vec<Frame>) {
        if !self.frames.accept(p, &mut self.fragment) {
            return;
        }
        let Some((sizes, data)) = self.au_headers(&p.payload) else {
            self.frames.dropped += 1;
            self.fragment = None;
            return;
        };
        if let Some((mut buf, size, ts)) = self.fragment.take() {
            // A continuation: same timestamp, one AU header, the rest of the bytes.
            if ts != p.timestamp || sizes.len() != 1 {
                self.frames.dropped += 1;
            } else {
                buf.extend_from_slice(&data);
                if buf.len() >= size {
                    self.frames
                        .emit(p.timestamp, buf.freeze().slice(..size), out);
                } else if p.marker {
                    self.frames.dropped += 1;
                } else {
                    self.fragment = Some((buf, size, ts));
                }
                return;
            }
        }
        if sizes.len() == 1 && sizes[0] > data.len() {
            if p.marker {
                self.frames.dropped += 1;
            } else {
                self.fragment = Some((BytesMut::from(&data[..]), sizes[0], p.timestamp));
            }
            return;
        }
        let mut at = 0;
        for (i, size) in sizes.iter().enumerate() {
            if at + size > data.len() {
                self.frames.dropped += (sizes.len() - i) as u64;
                return;
            }
            let ts = p.timestamp.wrapping_add(i as u32 * SAMPLES_PER_AU);
            self.frames.emit(ts, data.slice(at..at + size), out);
            at += size;
        }
    }

    /// The AU sizes and the data after the AU header section.
    fn au_headers(&self, payload: &Bytes) -> Option<(Vec<usize>, Bytes)> {
        let bits = usize::from(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        let header_bytes = bits.div_ceil(8);
        let headers = payload.get(2..2 + header_bytes)?;
        let mut reader = Bits {
            data: headers,
            pos: 0,
        };
        let mut sizes = Vec::new();
        let mut first = true;
        while reader.pos + self.size_length as usize <= bits {
            sizes.push(reader.read(self.size_length)? as usize);
            let index = if first {
                self.index_length
            } else {
                self.index_delta_length
            };
            reader.read(index)?;
            first = false;
            if self.size_length + index == 0 {
                break;
            }
        }
        if sizes.is_empty() {
            return None;
        }
        Some((sizes, payload.slice(2 + header_bytes..)))
    }
}

pub(super) struct Bits<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl Bits<'_> {
    pub(super) fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

pub(super) fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{rtp, run};
    use super::super::Depacketizer;
    use super::*;
    use crate::protocol::rtsp::Sdp;

    fn track() -> Track {
        let sdp = "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
            a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n";
        Sdp::parse(sdp.as_bytes()).unwrap().tracks.remove(0)
    }

    /// AAC-hbr payload: AU-headers-length, 16-bit headers (13-bit size, 3-bit index), data.
    fn payload(aus: &[&[u8]], sizes: Option<&[usize]>) -> Vec<u8> {
        let mut v = ((aus.len() * 16) as u16).to_be_bytes().to_vec();
        for (i, au) in aus.iter().enumerate() {
            let size = sizes.map_or(au.len(), |s| s[i]);
            v.extend_from_slice(&((size as u16) << 3).to_be_bytes());
        }
        for au in aus {
            v.extend_from_slice(au);
        }
        v
    }

    #[test]
    fn aggregated_access_units() {
        let mut d = Depacketizer::for_track(&track(), Some(0)).unwrap();
        let out = run(
            &mut d,
            &[rtp(97, 1, 0, true, &payload(&[&[1, 2], &[3]], None))],
        );
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0].payload[..], &[0xaf, 0, 0x12, 0x10]);
        assert!(out[0].is_sequence_header());
        assert_eq!(
            (out[1].timestamp, &out[1].payload[..]),
            (0, &[0xaf, 1, 1, 2][..])
        );
        // The second AU is 1024 samples later: 23 ms at 44.1 kHz.
        assert_eq!(
            (out[2].timestamp, &out[2].payload[..]),
            (23, &[0xaf, 1, 3][..])
        );
    }

    #[test]
    fn fragmented_access_unit_and_loss() {
        let mut d = Depacketizer::for_track(&track(), None).unwrap();
        let out = run(
            &mut d,
            &[
                rtp(97, 1, 0, false, &payload(&[&[1, 2]], Some(&[4]))),
                rtp(97, 2, 0, true, &payload(&[&[3, 4]], Some(&[4]))),
                // A fragmented AU whose second half (seq 4) is lost: dropped.
                rtp(97, 3, 1024, false, &payload(&[&[5, 6]], Some(&[4]))),
                rtp(97, 5, 2048, true, &payload(&[&[9]], None)),
                // Late (reordered) packet: dropped.
                rtp(97, 4, 1024, true, &payload(&[&[7, 8]], Some(&[4]))),
            ],
        );
        let bodies: Vec<&[u8]> = out.iter().skip(1).map(|f| &f.payload[..]).collect();
        assert_eq!(bodies, [&[0xaf, 1, 1, 2, 3, 4][..], &[0xaf, 1, 9][..]]);
        assert_eq!(out[2].timestamp, 46);
        let Depacketizer::Aac(a) = &d else { panic!() };
        assert_eq!(a.dropped(), 1);
    }

    #[test]
    fn missing_parameters_are_refused() {
        let sdp = "v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
            a=fmtp:97 sizelength=13\r\n";
        let t = Sdp::parse(sdp.as_bytes()).unwrap().tracks.remove(0);
        let e = Depacketizer::for_track(&t, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "MPEG4-GENERIC: no AudioSpecificConfig (config=) in the sdp"
        );
    }
}
