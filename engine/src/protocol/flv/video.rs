//! FLV video tag bodies built from NAL units: what the depacketizers (RTP, MPEG-TS) hand on as
//! frames.

use bytes::{BufMut, Bytes, BytesMut};

/// Enhanced RTMP's video header byte: the ExHeader bit, the frame type in bits 4..=6 and the
/// packet type in the low nibble, followed by the codec's FourCC.
pub const EX_KEYFRAME: u8 = 0x80 | (1 << 4);
pub const EX_INTER_FRAME: u8 = 0x80 | (2 << 4);
/// Packet type: the decoder configuration record.
const EX_SEQUENCE_START: u8 = 0;
/// Packet type: coded frames behind a 24-bit composition time offset.
pub const EX_CODED_FRAMES: u8 = 1;
/// Packet type: coded frames with no offset (it is 0).
pub const EX_CODED_FRAMES_X: u8 = 3;

/// The enhanced-RTMP HEVC sequence header: a `SequenceStart` of `hvc1` carrying the
/// HEVCDecoderConfigurationRecord.
pub fn hevc_sequence_start(record: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + record.len());
    b.put_u8(EX_KEYFRAME | EX_SEQUENCE_START);
    b.put_slice(b"hvc1");
    b.put_slice(record);
    b.freeze()
}

/// The AVC sequence header: an AVCDecoderConfigurationRecord with one SPS and one PPS.
pub fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(16 + sps.len() + pps.len());
    b.put_slice(&[0x17, 0, 0, 0, 0]);
    b.put_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
    b.put_u16(sps.len() as u16);
    b.put_slice(sps);
    b.put_u8(1);
    b.put_u16(pps.len() as u16);
    b.put_slice(pps);
    b.freeze()
}

/// A video frame's body: the FLV (or enhanced-RTMP) video header, then each NAL unit behind its
/// 32-bit length.
pub fn length_prefixed(header: [u8; 5], nals: &[Bytes]) -> Bytes {
    let size: usize = nals.iter().map(|n| 4 + n.len()).sum();
    let mut body = BytesMut::with_capacity(header.len() + size);
    body.put_slice(&header);
    for n in nals {
        body.put_u32(n.len() as u32);
        body.put_slice(n);
    }
    body.freeze()
}
