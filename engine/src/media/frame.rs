use bytes::Bytes;

/// What a frame carries. The numbering is the FLV tag type / RTMP message type of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MediaKind {
    Audio = 8,
    Video = 9,
    /// AMF0 script data (`onMetaData`), without the `@setDataFrame` wrapper RTMP publishers add.
    Script = 18,
}

/// Video codec as signalled in the first byte(s) of an FLV video tag body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    /// Legacy (codec id 12) or enhanced-RTMP `hvc1` HEVC.
    H265,
    /// Enhanced RTMP `av01`.
    Av1,
    /// Enhanced RTMP `vp09`.
    Vp9,
    /// Anything else: passed through untouched.
    Other(u32),
}

/// Audio codec as signalled in the first byte of an FLV audio tag body (the SoundFormat nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    Aac,
    Mp3,
    G711ALaw,
    G711MuLaw,
    Other(u8),
}

/// One media message of a stream, exactly as it travels in RTMP and FLV.
///
/// `payload` is the body of the FLV tag (equivalently, of the RTMP audio/video/data message),
/// including its codec header bytes, untouched. Frames are shared between every player of a stream:
/// cloning one clones a reference, never the media.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: MediaKind,
    /// Decode timestamp in milliseconds, on the publisher's 32-bit wrapping timeline.
    pub timestamp: u32,
    pub payload: Bytes,
}

/// Enhanced RTMP (v1/v2) marks a video tag body whose first byte has the high bit set.
const VIDEO_EX_HEADER: u8 = 0x80;

impl Frame {
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Self {
        Self {
            kind,
            timestamp,
            payload,
        }
    }

    /// True for a video frame a decoder can start on. Audio and script frames are never keyframes.
    pub fn is_keyframe(&self) -> bool {
        if self.kind != MediaKind::Video {
            return false;
        }
        match self.payload.first() {
            // Frame type lives in bits 4..=6 both in legacy FLV and in enhanced RTMP; 1 = key frame.
            Some(b) => (b >> 4) & 0x07 == 1,
            None => false,
        }
    }

    /// True for a codec configuration record (AVC/HEVC decoder configuration, AAC
    /// AudioSpecificConfig, enhanced-RTMP `SequenceStart`). Players need it before any media.
    pub fn is_sequence_header(&self) -> bool {
        let p = &self.payload;
        match self.kind {
            MediaKind::Video => match p.first() {
                Some(b) if b & VIDEO_EX_HEADER != 0 => b & 0x0f == 0,
                // Legacy AVC (7) and HEVC (12): AVCPacketType 0 is the sequence header.
                Some(b) if matches!(b & 0x0f, 7 | 12) => p.get(1) == Some(&0),
                _ => false,
            },
            // AAC (sound format 10): AACPacketType 0 is the AudioSpecificConfig.
            MediaKind::Audio => p.first().map(|b| b >> 4) == Some(10) && p.get(1) == Some(&0),
            MediaKind::Script => false,
        }
    }

    pub fn video_codec(&self) -> Option<VideoCodec> {
        if self.kind != MediaKind::Video {
            return None;
        }
        let first = *self.payload.first()?;
        if first & VIDEO_EX_HEADER != 0 {
            let fourcc: [u8; 4] = self.payload.get(1..5)?.try_into().ok()?;
            return Some(match &fourcc {
                b"hvc1" => VideoCodec::H265,
                b"av01" => VideoCodec::Av1,
                b"vp09" => VideoCodec::Vp9,
                b"avc1" => VideoCodec::H264,
                _ => VideoCodec::Other(u32::from_be_bytes(fourcc)),
            });
        }
        Some(match first & 0x0f {
            7 => VideoCodec::H264,
            12 => VideoCodec::H265,
            id => VideoCodec::Other(u32::from(id)),
        })
    }

    pub fn audio_codec(&self) -> Option<AudioCodec> {
        if self.kind != MediaKind::Audio {
            return None;
        }
        Some(match self.payload.first()? >> 4 {
            10 => AudioCodec::Aac,
            2 | 14 => AudioCodec::Mp3,
            7 => AudioCodec::G711ALaw,
            8 => AudioCodec::G711MuLaw,
            other => AudioCodec::Other(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &'static [u8]) -> Frame {
        Frame::new(MediaKind::Video, 0, Bytes::from_static(bytes))
    }

    #[test]
    fn legacy_avc_keyframe_and_sequence_header() {
        let seq = video(&[0x17, 0x00, 0, 0, 0, 1]);
        assert!(seq.is_keyframe() && seq.is_sequence_header());
        let key = video(&[0x17, 0x01, 0, 0, 0]);
        assert!(key.is_keyframe() && !key.is_sequence_header());
        let inter = video(&[0x27, 0x01, 0, 0, 0]);
        assert!(!inter.is_keyframe());
        assert_eq!(inter.video_codec(), Some(VideoCodec::H264));
    }

    #[test]
    fn enhanced_rtmp_hevc() {
        // isExHeader | keyframe (1 << 4) | SequenceStart (0), fourcc hvc1
        let seq = video(&[0x90, b'h', b'v', b'c', b'1', 1]);
        assert!(seq.is_keyframe() && seq.is_sequence_header());
        assert_eq!(seq.video_codec(), Some(VideoCodec::H265));
        let coded = video(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 0]);
        assert!(coded.is_keyframe() && !coded.is_sequence_header());
    }

    #[test]
    fn aac_sequence_header() {
        let asc = Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]),
        );
        assert!(asc.is_sequence_header());
        assert_eq!(asc.audio_codec(), Some(AudioCodec::Aac));
        let raw = Frame::new(MediaKind::Audio, 0, Bytes::from_static(&[0xaf, 0x01, 0x21]));
        assert!(!raw.is_sequence_header() && !raw.is_keyframe());
    }
}
