//! RTSP client, sans-IO: request/response codec ([`message`]), SDP ([`sdp`]), Basic and Digest
//! authentication ([`auth`]), RTSP URLs ([`url`]) and the client session ([`client`]) that walks
//! `OPTIONS`, `DESCRIBE`, `SETUP` (RTP interleaved over TCP, or over UDP), `PLAY`, keep-alives and `TEARDOWN`.
//!
//! Nothing here touches a socket or a clock: the caller feeds bytes and the time, and drains
//! output bytes and events. The RTP payloads it hands out are turned into frames by
//! [`crate::protocol::rtp`].
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod auth;
pub mod client;
pub mod message;
pub mod sdp;
pub mod url;

pub use client::{Client, ClientEvent, RtpTransport, RtspError, TransportSpec};
pub use message::{Decoded, Decoder, MessageError, Response};
pub use sdp::{Sdp, SdpError, Track};
pub use url::{RtspUrl, RtspUrlError};
