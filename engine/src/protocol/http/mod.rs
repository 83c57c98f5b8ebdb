//! HTTP/1.1 (RFC 9112) message heads, sans-IO, on top of `httparse`.
//!
//! Server side: [`parse_request`] over the connection's read buffer returns a complete
//! [`Request`] (head and any `Content-Length` body) with the bytes it consumed, or
//! [`Parsed::NeedMore`]; the caller advances its buffer, which makes pipelining plain. Errors map
//! to the status to answer with ([`HttpError::status`]). [`ResponseHead::encode`] writes a
//! response head with the framing headers set consistently; [`encode_chunk`] and friends frame a
//! chunked body.
//!
//! Client side (the HTTP-FLV client): [`encode_request_head`], [`parse_response_head`] and
//! [`ChunkedDecoder`] for chunked response bodies.
#![forbid(unsafe_code)]

mod client;
mod credentials;
mod query;
mod request;
mod response;

pub use client::{
    encode_request_head, parse_response_head, ChunkedDecoder, ChunkedEvent, Response,
};
pub use credentials::basic_credentials;
pub use query::{parse_query, percent_decode_path};
pub use request::{
    parse_head, parse_request, Head, Header, Limits, Method, Parsed, Request, Version,
};
pub use response::{
    encode_chunk, encode_chunk_header, reason_phrase, BodyFraming, EncodeError, ResponseHead,
    CHUNK_END, LAST_CHUNK,
};

/// Ways a peer's HTTP message can be unacceptable. [`status`](Self::status) is the response a
/// server sends for a bad request before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error("invalid token in request line or header name")]
    InvalidToken,
    #[error("invalid request target")]
    InvalidTarget,
    #[error("malformed http version")]
    InvalidVersion,
    #[error("http version not supported (only http/1.0 and http/1.1)")]
    UnsupportedVersion,
    #[error("invalid header name")]
    InvalidHeaderName,
    #[error("invalid header value")]
    InvalidHeaderValue,
    #[error("invalid line ending")]
    InvalidNewline,
    #[error("invalid status line")]
    InvalidStatus,
    #[error("more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("message head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("http/1.1 request without a host header")]
    MissingHost,
    #[error("invalid content-length")]
    InvalidContentLength,
    #[error("body of {length} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge { length: u64, limit: usize },
    #[error("transfer-encoding is not supported on requests")]
    UnsupportedTransferEncoding,
    #[error("invalid percent-encoding in request path")]
    InvalidPercentEncoding,
    #[error("invalid chunk size line")]
    InvalidChunkSize,
    #[error("missing line ending after chunk data")]
    MissingChunkEnd,
}

impl HttpError {
    /// The status code a server answers a request that failed this way with.
    pub fn status(&self) -> u16 {
        match self {
            Self::UnsupportedVersion => 505,
            Self::TooManyHeaders { .. } | Self::HeadTooLarge { .. } => 431,
            Self::BodyTooLarge { .. } => 413,
            Self::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }
}
