//! Media types shared by every protocol: frames and stream state.

mod frame;
mod gop;
mod stream_state;

pub use frame::{AudioCodec, Frame, MediaKind, VideoCodec};
pub use gop::{GopCache, GopLimits};
pub use stream_state::{MediaHistory, StreamState};
