//! RTMP, sans-IO: handshake, chunk stream, AMF0, messages, and the server and client sessions.
#![forbid(unsafe_code)]

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod message;
