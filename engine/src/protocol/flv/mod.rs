//! FLV (Adobe Flash Video file format, version 10.1, annex E): the container of HTTP-FLV.
//!
//! Writing is two free functions, used to frame each [`Frame`](crate::media::Frame) once per core so
//! every HTTP-FLV viewer on that core shares the same bytes: [`encode_header`] once per viewer, then
//! [`encode_tag`] per frame. Reading is [`FlvReader`], a sans-IO parser fed bytes and polled for
//! frames (the bench harness reads FLV files with it, the HTTP-FLV client parses streams with it).
#![forbid(unsafe_code)]

mod reader;
mod tracks;
mod video;
mod writer;

pub use reader::{FlvHeader, FlvReader, DEFAULT_MAX_TAG_SIZE};
pub use tracks::{tracks_from_metadata, Tracks};
pub use video::{
    avc_sequence_header, hevc_sequence_start, length_prefixed, EX_CODED_FRAMES, EX_CODED_FRAMES_X,
    EX_INTER_FRAME, EX_KEYFRAME,
};
pub use writer::{encode_header, encode_tag, tag_len};

/// Size of the FLV file header (signature, version, flags, data offset).
pub const HEADER_LEN: usize = 9;
/// Size of an FLV tag header (type, data size, timestamp, extended timestamp, stream id).
pub const TAG_HEADER_LEN: usize = 11;
/// Size of the `PreviousTagSize` field after the header and after every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest tag body the 24-bit `DataSize` field can describe.
pub const MAX_DATA_SIZE: usize = 0x00ff_ffff;

/// Ways FLV input (or a frame handed to the writer) can be unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    #[error("not an flv stream: signature is {found:02x?}, expected \"FLV\"")]
    BadSignature { found: [u8; 3] },
    #[error("unsupported flv version {version}")]
    UnsupportedVersion { version: u8 },
    #[error("flv header data offset {offset} is smaller than the 9-byte header")]
    BadDataOffset { offset: u32 },
    #[error("first previous-tag-size is {size}, expected 0")]
    BadFirstPreviousTagSize { size: u32 },
    #[error("flv tag type {tag_type} is not audio (8), video (9) or script data (18)")]
    UnknownTagType { tag_type: u8 },
    #[error("flv tag is encrypted (filter bit set); encrypted streams are not supported")]
    EncryptedTag,
    #[error("flv tag of {size} bytes exceeds the limit of {limit} bytes")]
    TagTooLarge { size: usize, limit: usize },
    #[error("previous-tag-size is {found}, expected {expected}")]
    PreviousTagSizeMismatch { expected: u32, found: u32 },
    #[error("flv stream ends inside a {what} ({missing} more bytes needed)")]
    Truncated { what: &'static str, missing: usize },
}
