use bytes::{BufMut, BytesMut};

use super::{FlvError, HEADER_LEN, MAX_DATA_SIZE, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};
use crate::media::Frame;

/// `TypeFlagsAudio` in the header's flags byte.
const FLAG_AUDIO: u8 = 0x04;
/// `TypeFlagsVideo` in the header's flags byte.
const FLAG_VIDEO: u8 = 0x01;

/// Appends the 9-byte FLV header and `PreviousTagSize0` (13 bytes in all) to `out`.
pub fn encode_header(out: &mut BytesMut, has_audio: bool, has_video: bool) {
    let mut flags = 0;
    if has_audio {
        flags |= FLAG_AUDIO;
    }
    if has_video {
        flags |= FLAG_VIDEO;
    }
    out.reserve(HEADER_LEN + PREVIOUS_TAG_SIZE_LEN);
    out.put_slice(b"FLV");
    out.put_u8(1);
    out.put_u8(flags);
    out.put_u32(HEADER_LEN as u32);
    out.put_u32(0);
}

/// Bytes [`encode_tag`] appends for `frame`: tag header, body and `PreviousTagSize`.
pub fn tag_len(frame: &Frame) -> usize {
    TAG_HEADER_LEN + frame.payload.len() + PREVIOUS_TAG_SIZE_LEN
}

/// Appends one FLV tag for `frame` to `out`: the 11-byte tag header (type, 24-bit size, timestamp
/// as 24 low bits plus the extended high byte, stream id 0), the payload untouched, then
/// `PreviousTagSize` (11 + payload length).
///
/// To share one framing between many viewers, encode into a scratch buffer and
/// `out.split().freeze()` it into `Bytes`.
///
/// Fails only for a payload larger than the 24-bit `DataSize` field allows (16 MiB - 1), which no
/// RTMP message can carry; nothing is written then.
pub fn encode_tag(out: &mut BytesMut, frame: &Frame) -> Result<(), FlvError> {
    let size = frame.payload.len();
    if size > MAX_DATA_SIZE {
        return Err(FlvError::TagTooLarge {
            size,
            limit: MAX_DATA_SIZE,
        });
    }
    out.reserve(tag_len(frame));
    out.put_u8(frame.kind as u8);
    put_u24(out, size as u32);
    put_u24(out, frame.timestamp & 0x00ff_ffff);
    out.put_u8((frame.timestamp >> 24) as u8);
    put_u24(out, 0);
    out.put_slice(&frame.payload);
    out.put_u32((TAG_HEADER_LEN + size) as u32);
    Ok(())
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;
    use bytes::Bytes;

    #[test]
    fn header_bytes() {
        let mut out = BytesMut::new();
        encode_header(&mut out, true, true);
        assert_eq!(&out[..], b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        out.clear();
        encode_header(&mut out, false, true);
        assert_eq!(out[4], 0x01);
        out.clear();
        encode_header(&mut out, true, false);
        assert_eq!(out[4], 0x04);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let frame = Frame::new(
            MediaKind::Video,
            0x1234_5678,
            Bytes::from_static(&[0x17, 0x01, 0x00, 0x00, 0x00, 0xaa]),
        );
        let mut out = BytesMut::new();
        encode_tag(&mut out, &frame).unwrap();
        let expected: &[u8] = &[
            0x09, // video
            0x00, 0x00, 0x06, // data size
            0x34, 0x56, 0x78, // timestamp low 24 bits
            0x12, // timestamp extended
            0x00, 0x00, 0x00, // stream id
            0x17, 0x01, 0x00, 0x00, 0x00, 0xaa, // body
            0x00, 0x00, 0x00, 0x11, // previous tag size = 17
        ];
        assert_eq!(&out[..], expected);
        assert_eq!(out.len(), tag_len(&frame));
    }

    #[test]
    fn audio_and_script_tag_types() {
        let mut out = BytesMut::new();
        let audio = Frame::new(MediaKind::Audio, 40, Bytes::from_static(&[0xaf, 0x01]));
        encode_tag(&mut out, &audio).unwrap();
        assert_eq!(
            &out[..],
            &[8, 0, 0, 2, 0, 0, 40, 0, 0, 0, 0, 0xaf, 0x01, 0, 0, 0, 13]
        );
        out.clear();
        let script = Frame::new(MediaKind::Script, 0, Bytes::new());
        encode_tag(&mut out, &script).unwrap();
        assert_eq!(&out[..], &[18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11]);
    }

    #[test]
    fn oversized_payload_is_refused() {
        let frame = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from(vec![0u8; MAX_DATA_SIZE + 1]),
        );
        let mut out = BytesMut::new();
        assert_eq!(
            encode_tag(&mut out, &frame),
            Err(FlvError::TagTooLarge {
                size: MAX_DATA_SIZE + 1,
                limit: MAX_DATA_SIZE
            })
        );
        assert!(out.is_empty());
    }
}
