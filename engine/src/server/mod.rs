//! glommio drivers: accept loops and per-connection tasks that feed the sans-IO codecs.

mod accept;
pub(crate) mod auth_hook;
pub(crate) mod conn;
pub(crate) mod http;
pub mod net;
mod pages;
mod rtmp;
mod writer;

pub use http::serve_http;
pub use rtmp::serve_rtmp;
