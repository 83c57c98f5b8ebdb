//! RTP (RFC 3550) packets and depacketizers that turn an RTSP track's packets into the engine's
//! [`Frame`]s (FLV tag bodies): H.264 (RFC 6184), H.265 (RFC 7798, as enhanced-RTMP `hvc1`), AAC
//! `mpeg4-generic` (RFC 3640) and `MP4A-LATM` (RFC 3016), and G.711.
//!
//! Every depacketizer follows the same rules:
//! - RTP timestamps become a monotonic millisecond timeline starting at the play position (the
//!   `RTP-Info` `rtptime` when the server gave one, so audio and video share their origin; else
//!   the first packet), unwrapped across the 32-bit wrap;
//! - a gap in sequence numbers is a loss: the access unit it damaged is dropped, and video waits
//!   for the next keyframe rather than passing on a corrupt picture. A packet older than the
//!   expected one (reordered or duplicated) arrives after its slot was declared lost and is
//!   dropped: over interleaved TCP packets never reorder; over UDP they may, and a late one
//!   costs its access unit like a lost one (there is no jitter buffer yet).
//!
//! Sans-IO: fed packets, fills a caller-owned `Vec<Frame>`.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod aac;
pub mod h264;
pub mod h265;
pub mod latm;
pub mod rtcp;
mod units;

use bytes::Bytes;

use self::units::NalCodec as _;
use crate::media::{Frame, MediaKind};
use crate::protocol::rtsp::Track;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    #[error("rtp packet of {0} bytes is too short")]
    TooShort(usize),
    #[error("rtp version {0}")]
    Version(u8),
    #[error("rtp padding longer than the payload")]
    Padding,
}

/// Why a track cannot be depacketized; the track is then skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    #[error("codec {encoding} ({media}) is not supported")]
    Codec { media: String, encoding: String },
    #[error("{encoding}: {reason}")]
    Params {
        encoding: String,
        reason: &'static str,
    },
}

/// A parsed RTP packet; `payload` shares the input's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Bytes,
}

impl RtpPacket {
    pub fn parse(packet: &Bytes) -> Result<RtpPacket, RtpError> {
        let p = &packet[..];
        if p.len() < 12 {
            return Err(RtpError::TooShort(p.len()));
        }
        if p[0] >> 6 != 2 {
            return Err(RtpError::Version(p[0] >> 6));
        }
        let mut start = 12 + 4 * usize::from(p[0] & 0x0f);
        if p[0] & 0x10 != 0 {
            let ext = p
                .get(start + 2..start + 4)
                .ok_or(RtpError::TooShort(p.len()))?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let mut end = p.len();
        if p[0] & 0x20 != 0 {
            let pad = usize::from(p[end - 1]);
            end = end.checked_sub(pad).ok_or(RtpError::Padding)?;
        }
        if start > end {
            return Err(RtpError::TooShort(p.len()));
        }
        Ok(RtpPacket {
            marker: p[1] & 0x80 != 0,
            payload_type: p[1] & 0x7f,
            sequence: u16::from_be_bytes([p[2], p[3]]),
            timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
            payload: packet.slice(start..end),
        })
    }
}

/// Where a packet's sequence number stands against the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    InOrder,
    /// `n` packets are missing before this one.
    Lost(u16),
    /// Older than expected (reordered or duplicated): drop it.
    Late,
}

/// Follows a track's sequence numbers.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    expected: Option<u16>,
    /// Packets declared lost so far.
    pub lost: u64,
}

impl Sequence {
    pub fn check(&mut self, seq: u16) -> SeqCheck {
        let Some(expected) = self.expected else {
            self.expected = Some(seq.wrapping_add(1));
            return SeqCheck::InOrder;
        };
        let gap = seq.wrapping_sub(expected);
        if gap == 0 {
            self.expected = Some(seq.wrapping_add(1));
            SeqCheck::InOrder
        } else if gap < 0x8000 {
            self.expected = Some(seq.wrapping_add(1));
            self.lost += u64::from(gap);
            SeqCheck::Lost(gap)
        } else {
            SeqCheck::Late
        }
    }
}

/// RTP timestamps to milliseconds from the play position, monotonic.
#[derive(Debug, Clone)]
pub struct Timeline {
    clock_rate: u64,
    last: Option<u32>,
    /// Clock ticks since the origin, unwrapped.
    ticks: i64,
    /// The last millisecond value handed out: output never goes back.
    last_ms: u32,
}

impl Timeline {
    /// A timeline whose origin is `origin` (the `RTP-Info` rtptime) or the first timestamp.
    pub fn new(clock_rate: u32, origin: Option<u32>) -> Timeline {
        Timeline {
            clock_rate: u64::from(clock_rate.max(1)),
            last: origin,
            ticks: 0,
            last_ms: 0,
        }
    }

    pub fn ms(&mut self, ts: u32) -> u32 {
        if let Some(last) = self.last {
            self.ticks += i64::from(ts.wrapping_sub(last) as i32);
        }
        self.last = Some(ts);
        let ms = (self.ticks.max(0) as u64 * 1000 / self.clock_rate) as u32;
        self.last_ms = self.last_ms.max(ms);
        self.last_ms
    }
}

/// A track's depacketizer.
#[derive(Debug)]
pub enum Depacketizer {
    H264(h264::H264),
    H265(h265::H265),
    Aac(aac::Aac),
    Latm(latm::Latm),
    G711(G711),
}

impl Depacketizer {
    /// The depacketizer for `track`, whose play position is RTP time `origin` when known.
    pub fn for_track(track: &Track, origin: Option<u32>) -> Result<Depacketizer, Unsupported> {
        match track.encoding.as_str() {
            "H264" => Ok(Depacketizer::H264(h264::H264::new(track, origin))),
            // DONL fields (sprop-max-don-diff > 0) change every payload's layout: not supported.
            "H265" if track.fmtp("sprop-max-don-diff").is_none_or(|v| v == "0") => {
                Ok(Depacketizer::H265(h265::H265::new(track, origin)))
            }
            "MPEG4-GENERIC" => Ok(Depacketizer::Aac(aac::Aac::new(track, origin)?)),
            "MP4A-LATM" => Ok(Depacketizer::Latm(latm::Latm::new(track, origin)?)),
            "PCMA" | "PCMU" if track.clock_rate == 8000 && track.channels.unwrap_or(1) == 1 => {
                Ok(Depacketizer::G711(G711 {
                    flv_header: if track.encoding == "PCMA" { 0x72 } else { 0x82 },
                    timeline: Timeline::new(8000, origin),
                }))
            }
            _ => Err(Unsupported::Codec {
                media: track.media.clone(),
                encoding: if track.encoding.is_empty() {
                    format!("payload type {}", track.payload_type)
                } else {
                    track.encoding.clone()
                },
            }),
        }
    }

    /// Feeds one RTP packet; complete frames are appended to `out`.
    pub fn push(&mut self, packet: &Bytes, out: &mut Vec<Frame>) -> Result<(), RtpError> {
        let p = RtpPacket::parse(packet)?;
        match self {
            Depacketizer::H264(d) => d.push(&p, out),
            Depacketizer::H265(d) => d.push(&p, out),
            Depacketizer::Aac(d) => d.push(&p, out),
            Depacketizer::Latm(d) => d.push(&p, out),
            Depacketizer::G711(d) => d.push(&p, out),
        }
        Ok(())
    }
}

/// G.711 A-law/µ-law at 8 kHz mono: one FLV audio frame per packet.
#[derive(Debug)]
pub struct G711 {
    flv_header: u8,
    timeline: Timeline,
}

impl G711 {
    fn push(&mut self, p: &RtpPacket, out: &mut Vec<Frame>) {
        let mut body = Vec::with_capacity(1 + p.payload.len());
        body.push(self.flv_header);
        body.extend_from_slice(&p.payload);
        let ts = self.timeline.ms(p.timestamp);
        out.push(Frame::new(MediaKind::Audio, ts, body.into()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RTP packet: version 2, no padding/extension/CSRC.
    pub(crate) fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Bytes {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        Bytes::from(p)
    }

    /// Feeds `packets` to `d`; the frames that came out.
    pub(crate) fn run(d: &mut Depacketizer, packets: &[Bytes]) -> Vec<Frame> {
        let mut out = Vec::new();
        for p in packets {
            d.push(p, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn header_with_csrc_extension_and_padding() {
        let mut p = vec![0xb1, 0xe0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1];
        p.extend_from_slice(&[0, 0, 0, 2]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // a one-word extension
        p.extend_from_slice(&[0xaa, 0xbb, 0, 0, 3]); // payload + 3 bytes of padding
        let r = RtpPacket::parse(&Bytes::from(p)).unwrap();
        assert!(r.marker);
        assert_eq!((r.payload_type, r.sequence, r.timestamp), (96, 5, 9));
        assert_eq!(&r.payload[..], &[0xaa, 0xbb]);
        assert_eq!(
            RtpPacket::parse(&Bytes::from_static(&[0x80; 5])),
            Err(RtpError::TooShort(5))
        );
        assert_eq!(
            RtpPacket::parse(&Bytes::from_static(&[0x40; 12])),
            Err(RtpError::Version(1))
        );
    }

    #[test]
    fn sequence_gaps_wraps_and_late_packets() {
        let mut s = Sequence::default();
        assert_eq!(s.check(65534), SeqCheck::InOrder);
        assert_eq!(s.check(65535), SeqCheck::InOrder);
        assert_eq!(s.check(0), SeqCheck::InOrder);
        assert_eq!(s.check(3), SeqCheck::Lost(2));
        assert_eq!(s.check(2), SeqCheck::Late);
        assert_eq!(s.check(4), SeqCheck::InOrder);
        assert_eq!(s.lost, 2);
    }

    #[test]
    fn timeline_unwraps_and_stays_monotonic() {
        let mut t = Timeline::new(90_000, Some(u32::MAX - 8_999));
        assert_eq!(t.ms(u32::MAX - 8_999), 0);
        assert_eq!(t.ms(u32::MAX), 99);
        assert_eq!(t.ms(81_000), 1000); // across the wrap
        assert_eq!(t.ms(72_000), 1000); // a step back (B-frame) does not go back
        assert_eq!(t.ms(171_000), 2000);
        // Audio joining with its own origin shares the play position's zero.
        let mut a = Timeline::new(44_100, Some(1000));
        assert_eq!(a.ms(1000 + 44_100), 1000);
    }

    #[test]
    fn g711_and_unsupported_tracks() {
        let sdp = crate::protocol::rtsp::Sdp::parse(
            b"v=0\r\nm=audio 0 RTP/AVP 8\r\nm=video 0 RTP/AVP 98\r\na=rtpmap:98 VP8/90000\r\n",
        )
        .unwrap();
        let mut d = Depacketizer::for_track(&sdp.tracks[0], None).unwrap();
        let mut out = Vec::new();
        d.push(&rtp(8, 1, 0, false, &[1, 2]), &mut out).unwrap();
        d.push(&rtp(8, 2, 160, false, &[3]), &mut out).unwrap();
        assert_eq!(
            out[0],
            Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0x72, 1, 2]))
        );
        assert_eq!(out[1].timestamp, 20);
        let e = Depacketizer::for_track(&sdp.tracks[1], None).unwrap_err();
        assert_eq!(e.to_string(), "codec VP8 (video) is not supported");
    }
}
