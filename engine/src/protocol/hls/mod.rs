//! HLS (RFC 8216) live packaging: MPEG-TS segments cut at keyframes, kept in memory, and a live
//! media playlist over a sliding window of them.
#![forbid(unsafe_code)]

mod playlist;
mod segmenter;

pub use segmenter::{PushOutcome, Segment, Segmenter, SegmenterConfig};
