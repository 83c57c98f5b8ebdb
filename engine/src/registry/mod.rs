//! Per-core stream registry: the home-core directory of publishers, and the streams a core serves
//! (its own publishers' streams and mirrors of streams published on other cores).

mod directory;
mod hls;
mod key;
mod streams;

pub use directory::{ClaimOutcome, Directory, Publisher};
pub use hls::{parse_media_name, HlsMuxer, HlsName, HlsReply, HlsResponder, HlsSettings};
pub use key::{home_core, StreamKey, DEFAULT_VHOST};
pub use streams::{LocalStream, RemoteSubscriber, Upstream};
