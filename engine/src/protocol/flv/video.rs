//! FLV video tag bodies built from NAL units: what the depacketizers (RTP, MPEG-TS) hand on as
//! frames.

use bytes::{BufMut, Bytes, BytesMut};

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
