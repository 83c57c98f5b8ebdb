//! Media types shared by every protocol: frames, stream state, player sinks.

mod frame;

pub use frame::{AudioCodec, Frame, MediaKind, VideoCodec};
