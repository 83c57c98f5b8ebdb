//! HLS (RFC 8216) live packaging: MPEG-TS segments cut at keyframes, kept in memory, and a live
//! media playlist over a sliding window of them; or fMP4 segments made of parts, with Low-Latency
//! HLS (draft-pantos-hls-rfc8216bis) parts, preload hints and blocking reload. [`m3u8`] reads
//! another server's playlists, for pulling an HLS origin.
#![forbid(unsafe_code)]

pub mod m3u8;
mod parts;
mod playlist;
mod segmenter;

pub use parts::{Part, PartPush, PartSegmenter, PartsConfig};
pub use segmenter::{PushOutcome, Segment, Segmenter, SegmenterConfig};
