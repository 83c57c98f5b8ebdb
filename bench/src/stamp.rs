//! End-to-end latency stamps carried inside H.264 video frames.
//!
//! A relay must pass the coded video through untouched, so the publisher stamps each video frame
//! with an H.264 SEI NAL unit of type `user_data_unregistered` (payload type 5): our 16-byte UUID,
//! then the stream index (u32), a per-stream sequence number (u64) and the send time in
//! microseconds since the Unix epoch (u64), all big-endian. The NAL unit is escaped
//! (emulation-prevention bytes) like any other, so a decoder that meets it simply ignores it.
//! Players find it again among the frame's first NAL units, which gives the latency (receive time
//! minus send time; publisher and players read the same wall clock, on one machine) and, from the
//! sequence number, every frame lost or reordered on the way.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// Identifies our SEI payload (`user_data_unregistered`'s `uuid_iso_iec_11578`).
pub const STAMP_UUID: [u8; 16] = [
    0xc0, 0x5e, 0x57, 0x4e, 0xa3, 0xb1, 0x4c, 0x6f, 0x9d, 0x2a, 0x7b, 0x1e, 0x5f, 0x30, 0x8c, 0x11,
];
/// SEI payload type `user_data_unregistered`.
const SEI_USER_DATA_UNREGISTERED: u8 = 5;
/// NAL unit types this module cares about.
const NAL_SEI: u8 = 6;
const NAL_AUD: u8 = 9;
/// UUID + stream + sequence + send time.
const STAMP_PAYLOAD_LEN: usize = 16 + 4 + 8 + 8;
/// FLV video tag header of an AVC NALU packet: frame type/codec, AVCPacketType, composition time.
pub const AVC_TAG_HEADER_LEN: usize = 5;
/// A stamp is looked for among this many leading NAL units of a frame.
const MAX_NALUS_SEARCHED: usize = 4;

/// What a publisher writes into one video frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the stream in the run (players check they get their own stream).
    pub stream: u32,
    /// Per-stream sequence number of stamped video frames, from 0, without gaps.
    pub seq: u64,
    /// Send time, microseconds since the Unix epoch.
    pub send_us: u64,
}

/// Microseconds since the Unix epoch, the clock stamps use.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Numbers the stamped frames of one stream.
#[derive(Debug)]
pub struct Stamper {
    pub stream: u32,
    next_seq: u64,
}

impl Stamper {
    pub fn new(stream: u32) -> Self {
        Self {
            stream,
            next_seq: 0,
        }
    }

    /// The next stamp, sent at `send_us`.
    pub fn next(&mut self, send_us: u64) -> Stamp {
        let seq = self.next_seq;
        self.next_seq += 1;
        Stamp {
            stream: self.stream,
            seq,
            send_us,
        }
    }

    /// Stamps handed out so far.
    pub fn count(&self) -> u64 {
        self.next_seq
    }
}

/// Appends the SEI NAL unit (header byte included, no length prefix) carrying `stamp`.
pub fn encode_sei_nal(out: &mut BytesMut, stamp: &Stamp) {
    let mut rbsp = [0u8; 2 + STAMP_PAYLOAD_LEN + 1];
    rbsp[0] = SEI_USER_DATA_UNREGISTERED;
    rbsp[1] = STAMP_PAYLOAD_LEN as u8;
    rbsp[2..18].copy_from_slice(&STAMP_UUID);
    rbsp[18..22].copy_from_slice(&stamp.stream.to_be_bytes());
    rbsp[22..30].copy_from_slice(&stamp.seq.to_be_bytes());
    rbsp[30..38].copy_from_slice(&stamp.send_us.to_be_bytes());
    // rbsp_trailing_bits: the stop bit, then alignment zeros.
    rbsp[38] = 0x80;
    out.put_u8(NAL_SEI);
    escape_into(out, &rbsp);
}

/// The SEI NAL unit carrying `stamp`, as its own buffer.
pub fn sei_nal(stamp: &Stamp) -> Bytes {
    let mut out = BytesMut::with_capacity(48);
    encode_sei_nal(&mut out, stamp);
    out.freeze()
}

/// Reads our stamp from one NAL unit (header byte first); `None` if it is not our SEI.
pub fn decode_sei_nal(nal: &[u8]) -> Option<Stamp> {
    if nal.first()? & 0x1f != NAL_SEI {
        return None;
    }
    let rbsp = unescape(&nal[1..]);
    let mut p = &rbsp[..];
    // sei_message()s until the trailing bits.
    while p.len() > 1 {
        let (payload_type, rest) = read_sei_number(p)?;
        let (size, rest) = read_sei_number(rest)?;
        if rest.len() < size {
            return None;
        }
        let (payload, rest) = rest.split_at(size);
        if payload_type == usize::from(SEI_USER_DATA_UNREGISTERED)
            && size >= STAMP_PAYLOAD_LEN
            && payload[..16] == STAMP_UUID
        {
            let u32_at =
                |i: usize| u32::from_be_bytes(payload[i..i + 4].try_into().unwrap_or([0; 4]));
            let u64_at =
                |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().unwrap_or([0; 8]));
            return Some(Stamp {
                stream: u32_at(16),
                seq: u64_at(20),
                send_us: u64_at(28),
            });
        }
        p = rest;
    }
    None
}

/// `ff ff .. xx` coding of SEI payload type and size.
fn read_sei_number(mut p: &[u8]) -> Option<(usize, &[u8])> {
    let mut v = 0usize;
    loop {
        let (&b, rest) = p.split_first()?;
        v += usize::from(b);
        p = rest;
        if b != 0xff {
            return Some((v, p));
        }
    }
}

/// Appends `rbsp` with emulation-prevention bytes: a 0x03 after any two zero bytes that would
/// otherwise be followed by a byte <= 3.
pub fn escape_into(out: &mut BytesMut, rbsp: &[u8]) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.put_u8(3);
            zeros = 0;
        }
        out.put_u8(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation-prevention bytes.
pub fn unescape(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

/// True for a legacy FLV AVC video tag body that carries NAL units (AVCPacketType 1).
pub fn is_avc_nalu_tag(payload: &[u8]) -> bool {
    payload.len() >= AVC_TAG_HEADER_LEN
        && payload[0] & 0x80 == 0
        && payload[0] & 0x0f == 7
        && payload[1] == 1
}

/// True for a legacy FLV AVC end-of-sequence tag body (AVCPacketType 2), which carries no picture.
pub fn is_avc_end_of_sequence(payload: &[u8]) -> bool {
    payload.len() >= 2 && payload[0] & 0x80 == 0 && payload[0] & 0x0f == 7 && payload[1] == 2
}

/// The NAL unit length size (1..=4) announced by an AVC sequence header tag body
/// (`AVCDecoderConfigurationRecord.lengthSizeMinusOne`), or `None` if this is not one.
pub fn avc_length_size(payload: &[u8]) -> Option<usize> {
    let is_seq = payload.len() > AVC_TAG_HEADER_LEN + 4
        && payload[0] & 0x80 == 0
        && payload[0] & 0x0f == 7
        && payload[1] == 0;
    is_seq.then(|| usize::from(payload[AVC_TAG_HEADER_LEN + 4] & 0x03) + 1)
}

/// Iterates over the length-prefixed NAL units of an AVC tag body's data.
struct Nalus<'a> {
    data: &'a [u8],
    len_size: usize,
}

impl<'a> Iterator for Nalus<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.len() < self.len_size {
            return None;
        }
        let len = self.data[..self.len_size]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let end = self.len_size.checked_add(len)?;
        if end > self.data.len() {
            return None;
        }
        let nal = &self.data[self.len_size..end];
        self.data = &self.data[end..];
        Some(nal)
    }
}

/// Returns the tag body with a stamp SEI inserted before the first coded NAL unit (after an access
/// unit delimiter, if the frame starts with one). `None` if the body is not an AVC NALU tag or the
/// length size cannot hold the SEI.
pub fn stamp_avc_tag(payload: &[u8], len_size: usize, stamp: &Stamp) -> Option<Bytes> {
    if !is_avc_nalu_tag(payload) || !(1..=4).contains(&len_size) {
        return None;
    }
    let sei = sei_nal(stamp);
    if len_size < 4 && sei.len() >= 1 << (8 * len_size) {
        return None;
    }
    let data = &payload[AVC_TAG_HEADER_LEN..];
    // Keep a leading AUD first, as H.264 orders an access unit.
    let split = Nalus { data, len_size }
        .next()
        .filter(|nal| nal.first().map(|b| b & 0x1f) == Some(NAL_AUD))
        .map_or(0, |nal| len_size + nal.len());
    let mut out = BytesMut::with_capacity(payload.len() + len_size + sei.len());
    out.put_slice(&payload[..AVC_TAG_HEADER_LEN]);
    out.put_slice(&data[..split]);
    out.put_slice(&(sei.len() as u32).to_be_bytes()[4 - len_size..]);
    out.put_slice(&sei);
    out.put_slice(&data[split..]);
    Some(out.freeze())
}

/// Finds our stamp in an AVC NALU tag body (among its first few NAL units).
pub fn extract_avc_tag(payload: &[u8], len_size: usize) -> Option<Stamp> {
    if !is_avc_nalu_tag(payload) || !(1..=4).contains(&len_size) {
        return None;
    }
    Nalus {
        data: &payload[AVC_TAG_HEADER_LEN..],
        len_size,
    }
    .take(MAX_NALUS_SEARCHED)
    .find_map(decode_sei_nal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            stream: 7,
            seq: 0x0000_0100_0000_0003,
            send_us: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn sei_round_trip() {
        let s = stamp();
        let nal = sei_nal(&s);
        assert_eq!(nal[0], 0x06);
        assert_eq!(decode_sei_nal(&nal), Some(s));
        // The escaped NAL holds no start-code prefix anywhere.
        assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
    }

    #[test]
    fn zeros_are_escaped_and_restored() {
        for s in [
            Stamp {
                stream: 0,
                seq: 0,
                send_us: 0,
            },
            Stamp {
                stream: 1,
                seq: 3,
                send_us: 0x0000_0001_0000_0002,
            },
        ] {
            let nal = sei_nal(&s);
            assert!(!nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
            assert_eq!(decode_sei_nal(&nal), Some(s));
        }
        let mut out = BytesMut::new();
        escape_into(&mut out, &[0, 0, 0, 0, 1, 0, 0, 3, 0, 0]);
        assert_eq!(&out[..], &[0, 0, 3, 0, 0, 3, 1, 0, 0, 3, 3, 0, 0]);
        assert_eq!(unescape(&out), vec![0, 0, 0, 0, 1, 0, 0, 3, 0, 0]);
    }

    #[test]
    fn other_sei_and_nal_types_are_not_stamps() {
        assert_eq!(decode_sei_nal(&[0x65, 0x88, 0x84]), None);
        // A user_data_unregistered SEI with another UUID.
        let mut foreign = vec![0x06, 5, 17];
        foreign.extend_from_slice(&[0x11; 17]);
        foreign.push(0x80);
        assert_eq!(decode_sei_nal(&foreign), None);
        // Truncated.
        let nal = sei_nal(&stamp());
        assert_eq!(decode_sei_nal(&nal[..20]), None);
    }

    #[test]
    fn a_second_sei_message_after_another_is_found() {
        // A recovery-point SEI (type 6, 1 byte) before ours in the same NAL unit.
        let mut rbsp = vec![6u8, 1, 0x84];
        let ours = sei_nal(&stamp());
        rbsp.extend_from_slice(&unescape(&ours[1..]));
        let mut nal = BytesMut::new();
        nal.put_u8(0x06);
        escape_into(&mut nal, &rbsp);
        assert_eq!(decode_sei_nal(&nal), Some(stamp()));
    }

    fn avc_tag(nals: &[&[u8]], len_size: usize) -> Vec<u8> {
        let mut v = vec![0x27, 0x01, 0, 0, 0];
        for nal in nals {
            v.extend_from_slice(&(nal.len() as u32).to_be_bytes()[4 - len_size..]);
            v.extend_from_slice(nal);
        }
        v
    }

    #[test]
    fn stamp_embeds_and_extracts_from_a_frame() {
        let slice: &[u8] = &[0x41, 0x9a, 0x00, 0x00, 0x01, 0x02];
        for len_size in [1, 2, 4] {
            let tag = avc_tag(&[slice], len_size);
            let stamped = stamp_avc_tag(&tag, len_size, &stamp()).unwrap();
            assert_eq!(extract_avc_tag(&stamped, len_size), Some(stamp()));
            // The original NAL unit follows untouched, and the header is kept.
            assert_eq!(&stamped[..5], &tag[..5]);
            assert!(stamped.ends_with(&tag[5..]));
            // The result is still a well-formed sequence of NAL units.
            let n = Nalus {
                data: &stamped[5..],
                len_size,
            }
            .count();
            assert_eq!(n, 2);
        }
    }

    #[test]
    fn stamp_goes_after_an_access_unit_delimiter() {
        let aud: &[u8] = &[0x09, 0xf0];
        let slice: &[u8] = &[0x65, 0x88, 0x80];
        let tag = avc_tag(&[aud, slice], 4);
        let stamped = stamp_avc_tag(&tag, 4, &stamp()).unwrap();
        let nals: Vec<u8> = Nalus {
            data: &stamped[5..],
            len_size: 4,
        }
        .map(|n| n[0] & 0x1f)
        .collect();
        assert_eq!(nals, vec![9, 6, 5]);
        assert_eq!(extract_avc_tag(&stamped, 4), Some(stamp()));
    }

    #[test]
    fn non_avc_frames_are_left_alone() {
        // Sequence header, HEVC, enhanced RTMP, audio.
        for body in [
            &[0x17u8, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff][..],
            &[0x1c, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x26][..],
            &[0x91, b'h', b'v', b'c', b'1', 0, 0, 0][..],
            &[0xaf, 0x01, 0x21][..],
        ] {
            assert_eq!(stamp_avc_tag(body, 4, &stamp()), None);
            assert_eq!(extract_avc_tag(body, 4), None);
        }
        assert_eq!(
            avc_length_size(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff]),
            Some(4)
        );
        assert_eq!(
            avc_length_size(&[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41]),
            None
        );
    }

    #[test]
    fn stamper_numbers_without_gaps() {
        let mut s = Stamper::new(3);
        assert_eq!(s.next(10).seq, 0);
        let b = s.next(20);
        assert_eq!((b.stream, b.seq, b.send_us), (3, 1, 20));
        assert_eq!(s.count(), 2);
    }
}
