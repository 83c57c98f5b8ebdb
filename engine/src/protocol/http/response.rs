use std::fmt::Write;

use bytes::{BufMut, BytesMut};

use super::Version;

/// Ends every chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk and the empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How the body after a response head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// `Content-Length` (also for HEAD responses, with the length a GET would have had).
    Length(u64),
    /// `Transfer-Encoding: chunked`; HTTP/1.0 peers get [`BodyFraming::UntilClose`] instead.
    Chunked,
    /// No length: the body ends when the connection closes (HTTP-FLV to simple players).
    UntilClose,
    /// No body and no length header: 1xx, 204 and 304 responses.
    None,
}

/// Local mistakes in a response head: caught before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("invalid header name {name:?}")]
    InvalidHeaderName { name: String },
    #[error("header {name} has a value with a control character")]
    InvalidHeaderValue { name: String },
    #[error("header {name} is set from the body framing, not by hand")]
    FramingHeader { name: String },
    #[error("status {status} is not a three-digit code")]
    InvalidStatus { status: u16 },
}

/// A response's status and headers other than the framing ones (`Content-Length`,
/// `Transfer-Encoding`, `Connection`), which [`encode`](Self::encode) derives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(super) fn check_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), EncodeError> {
    for (name, value) in headers {
        if !is_token(name) {
            return Err(EncodeError::InvalidHeaderName {
                name: name.to_owned(),
            });
        }
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(EncodeError::InvalidHeaderValue {
                name: name.to_owned(),
            });
        }
    }
    Ok(())
}

impl ResponseHead {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the head, framing headers included, to `out`: `HTTP/1.1 <status> <reason>`, the
    /// headers, `Content-Length` or `Transfer-Encoding: chunked` per `body`, and `Connection` as
    /// needed for the peer's `version`.
    ///
    /// `keep_alive` is what the request allowed ([`Request::keep_alive`](super::Request)) and the
    /// caller wants. Returns whether the connection stays open after the body: false when asked,
    /// and for [`BodyFraming::UntilClose`] (also chosen for chunked bodies to HTTP/1.0 peers).
    /// On error nothing is written.
    pub fn encode(
        &self,
        version: Version,
        body: BodyFraming,
        keep_alive: bool,
        out: &mut BytesMut,
    ) -> Result<bool, EncodeError> {
        if !(100..=999).contains(&self.status) {
            return Err(EncodeError::InvalidStatus {
                status: self.status,
            });
        }
        check_headers(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
        if let Some((name, _)) = self.headers.iter().find(|(n, _)| {
            ["content-length", "transfer-encoding", "connection"]
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f))
        }) {
            return Err(EncodeError::FramingHeader { name: name.clone() });
        }
        let body = match (body, version) {
            (BodyFraming::Chunked, Version::Http10) => BodyFraming::UntilClose,
            (b, _) => b,
        };
        let keep_alive = keep_alive && body != BodyFraming::UntilClose;

        let mut head = String::with_capacity(128);
        // Writing to a String cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        match body {
            BodyFraming::Length(n) => {
                let _ = write!(head, "Content-Length: {n}\r\n");
            }
            BodyFraming::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
            BodyFraming::UntilClose | BodyFraming::None => {}
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        } else if version == Version::Http10 {
            head.push_str("Connection: keep-alive\r\n");
        }
        head.push_str("\r\n");
        out.put_slice(head.as_bytes());
        Ok(keep_alive)
    }
}

/// Appends a chunk size line for `len` bytes of data; the data and [`CHUNK_END`] follow. With
/// [`encode_chunk`] the three can be built once and shared by every chunked viewer.
/// `len` 0 would end the body: use [`LAST_CHUNK`] for that; nothing is written for 0 here.
pub fn encode_chunk_header(out: &mut BytesMut, len: usize) {
    if len > 0 {
        let mut line = String::with_capacity(18);
        let _ = write!(line, "{len:X}\r\n");
        out.put_slice(line.as_bytes());
    }
}

/// Appends one whole chunk (size line, data, CRLF). Empty data writes nothing, since an empty
/// chunk would end the body.
pub fn encode_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.reserve(data.len() + 20);
    encode_chunk_header(out, data.len());
    out.put_slice(data);
    out.put_slice(CHUNK_END);
}

/// The standard reason phrase of a status, or `""` (an empty phrase is allowed).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(head: &ResponseHead, v: Version, body: BodyFraming, ka: bool) -> (String, bool) {
        let mut out = BytesMut::new();
        let keep = head.encode(v, body, ka, &mut out).unwrap();
        (String::from_utf8(out.to_vec()).unwrap(), keep)
    }

    #[test]
    fn content_length_keep_alive() {
        let head =
            ResponseHead::new(200).with_header("Content-Type", "application/vnd.apple.mpegurl");
        assert_eq!(
            encode(&head, Version::Http11, BodyFraming::Length(42), true),
            (
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\nContent-Length: 42\r\n\r\n".to_owned(),
                true
            )
        );
        assert_eq!(
            encode(&head, Version::Http10, BodyFraming::Length(42), true).0,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\nContent-Length: 42\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            encode(
                &ResponseHead::new(404),
                Version::Http11,
                BodyFraming::Length(0),
                false
            ),
            (
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned(),
                false
            )
        );
    }

    #[test]
    fn streaming_bodies() {
        let head = ResponseHead::new(200).with_header("Content-Type", "video/x-flv");
        assert_eq!(
            encode(&head, Version::Http11, BodyFraming::Chunked, true),
            ("HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned(), true)
        );
        // HTTP/1.0 cannot do chunked: the body runs until close.
        assert_eq!(
            encode(&head, Version::Http10, BodyFraming::Chunked, true),
            (
                "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\n"
                    .to_owned(),
                false
            )
        );
        assert_eq!(
            encode(
                &ResponseHead::new(204),
                Version::Http11,
                BodyFraming::None,
                true
            )
            .0,
            "HTTP/1.1 204 No Content\r\n\r\n"
        );
    }

    #[test]
    fn refuses_bad_heads() {
        let mut out = BytesMut::new();
        let bad = |h: ResponseHead, out: &mut BytesMut| {
            h.encode(Version::Http11, BodyFraming::None, true, out)
        };
        assert!(matches!(
            bad(
                ResponseHead::new(200).with_header("X", "a\r\nSet-Cookie: x"),
                &mut out
            ),
            Err(EncodeError::InvalidHeaderValue { .. })
        ));
        assert!(matches!(
            bad(ResponseHead::new(200).with_header("X Y", "a"), &mut out),
            Err(EncodeError::InvalidHeaderName { .. })
        ));
        assert!(matches!(
            bad(
                ResponseHead::new(200).with_header("content-length", "1"),
                &mut out
            ),
            Err(EncodeError::FramingHeader { .. })
        ));
        assert!(matches!(
            bad(ResponseHead::new(20), &mut out),
            Err(EncodeError::InvalidStatus { status: 20 })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn chunks() {
        let mut out = BytesMut::new();
        encode_chunk(&mut out, &[7u8; 300]);
        assert_eq!(&out[..5], b"12C\r\n");
        assert_eq!(&out[out.len() - 2..], b"\r\n");
        assert_eq!(out.len(), 5 + 300 + 2);
        out.clear();
        encode_chunk(&mut out, b"");
        encode_chunk_header(&mut out, 0);
        assert!(out.is_empty());
        encode_chunk_header(&mut out, 16);
        assert_eq!(&out[..], b"10\r\n");
    }
}
