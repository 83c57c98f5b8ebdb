//! glommio drivers: accept loops and per-connection tasks that feed the sans-IO codecs.

pub mod net;
mod rtmp;
mod writer;

pub use rtmp::serve_rtmp;
