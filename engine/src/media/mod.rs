//! Media types shared by every protocol: frames, stream state, player sinks.

mod frame;
mod gop;
mod player_queue;
mod stream_state;

pub use frame::{AudioCodec, Frame, MediaKind, VideoCodec};
pub use gop::{GopCache, GopLimits};
pub use player_queue::{wait_for_items, PlayerQueue, PushOutcome};
pub use stream_state::StreamState;
