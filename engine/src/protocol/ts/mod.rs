//! MPEG-2 transport stream muxer (ISO 13818-1) for HLS: H.264, H.265 and AAC from FLV frames.
//!
//! [`TsMuxer`] turns [`Frame`](crate::media::Frame)s into 188-byte packets: PAT and PMT (written
//! before the first PES and again after [`TsMuxer::start_segment`] or a change of streams), one PES
//! per video access unit (Annex B, AUD first, parameter sets before keyframes, PTS/DTS, PCR) and
//! one PES per AAC frame (ADTS). Frames of codecs MPEG-TS/HLS cannot carry here are refused with an
//! error naming the codec; the muxer stays usable.
//!
//! [`TsDemuxer`] reads such a stream back (H.264 and AAC) into FLV frames, for pulled HLS.
#![forbid(unsafe_code)]

mod aac;
mod crc;
mod demux;
mod muxer;
mod video;

pub use demux::{TsDemuxError, TsDemuxer};

pub use muxer::{
    MuxOutcome, TsMuxer, AUDIO_PID, PACKET_SIZE, PMT_PID, PROGRAM_NUMBER, STREAM_TYPE_AAC_ADTS,
    STREAM_TYPE_H264, STREAM_TYPE_H265, SYNC_BYTE, TIMESTAMP_OFFSET_90KHZ, VIDEO_PID,
};

use crate::media::{AudioCodec, VideoCodec};

/// Ways a frame can be unfit for the transport stream. Each concerns one frame: the muxer skips it
/// and stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TsError {
    #[error("video codec {codec:?} is not supported in mpeg-ts (h264 and h265 are)")]
    UnsupportedVideoCodec { codec: VideoCodec },
    #[error("audio codec {codec:?} is not supported in mpeg-ts (aac is)")]
    UnsupportedAudioCodec { codec: AudioCodec },
    #[error("video packet type {packet_type} is not supported")]
    UnsupportedVideoPacketType { packet_type: u8 },
    #[error("video tag of {len} bytes is too short for its header")]
    TruncatedVideoTag { len: usize },
    #[error("audio tag of {len} bytes is too short for its header")]
    TruncatedAudioTag { len: usize },
    #[error("{codec:?} frame before its sequence header")]
    MissingVideoConfig { codec: VideoCodec },
    #[error("aac frame before its audio specific config")]
    MissingAudioConfig,
    #[error("{codec:?} decoder configuration record is truncated")]
    TruncatedDecoderConfig { codec: VideoCodec },
    #[error("{codec:?} decoder configuration record version {version} is not 1")]
    UnsupportedConfigVersion { codec: VideoCodec, version: u8 },
    #[error("{codec:?} nal unit length size {size} is not 1, 2 or 4")]
    BadNaluLengthSize { codec: VideoCodec, size: u8 },
    #[error("nal unit length field truncated: {available} bytes left")]
    TruncatedNaluLength { available: usize },
    #[error("nal unit length {declared} overruns the {available} bytes left in the frame")]
    NaluOverrun { declared: usize, available: usize },
    #[error("aac audio specific config is truncated")]
    TruncatedAudioSpecificConfig,
    #[error("aac audio object type {object_type} cannot be carried in adts")]
    UnsupportedAudioObjectType { object_type: u32 },
    #[error("aac sample rate {rate} is given explicitly; adts needs a sampling frequency index")]
    ExplicitSampleRate { rate: u32 },
    #[error("aac sampling frequency index {index} is reserved")]
    ReservedSampleRateIndex { index: u8 },
    #[error("aac channel configuration {channels} cannot be carried in adts")]
    UnsupportedChannelConfiguration { channels: u8 },
    #[error("aac frame of {len} bytes is too large for adts")]
    AacFrameTooLarge { len: usize },
}
