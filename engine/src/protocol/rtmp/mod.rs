//! RTMP, sans-IO: handshake, chunk stream, AMF0, messages, and the server and client sessions.
//!
//! The driver only needs [`ServerSession`] (or [`ClientSession`]) and, for players, the shared
//! media encoding [`encode_media`] at [`OUT_CHUNK_SIZE`].
#![forbid(unsafe_code)]

pub mod amf0;
pub mod chunk;
pub mod client;
mod connection;
pub mod handshake;
pub mod message;
pub mod session;

#[cfg(test)]
mod pair;

pub use amf0::{Amf0Error, Amf0Value};
pub use chunk::{
    encode_media, encode_message, ChunkDecoder, ChunkError, ChunkLimits, RawMessage, OUT_CHUNK_SIZE,
};
pub use client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
pub use handshake::{HandshakeError, HandshakeProgress};
pub use message::MessageError;
pub use session::{Reject, RequestId, ServerEvent, ServerSession, SessionConfig, SessionError};
