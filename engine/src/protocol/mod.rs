//! Sans-IO protocol codecs: state machines fed bytes, returning events and bytes. Nothing here touches
//! a socket, a runtime or a clock.

pub mod flv;
pub mod fmp4;
pub mod hls;
pub mod http;
pub mod rtmp;
pub mod rtp;
pub mod rtsp;
pub mod ts;
