//! The client side, for the HTTP-FLV client and the bench players: request heads out, response
//! heads and chunked bodies in.

use std::fmt::Write;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::request::{content_length, convert_headers, find_header, head_len, keep_alive};
use super::response::check_headers;
use super::{BodyFraming, EncodeError, Header, HttpError, Limits, Parsed, Version};

const HEADER_ARRAY: usize = 128;
/// Longest chunk size line or trailer line accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Appends `<method> <target> HTTP/1.1`, `Host`, the given headers and the blank line. On error
/// nothing is written.
pub fn encode_request_head(
    out: &mut BytesMut,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Result<(), EncodeError> {
    check_headers([(method, ""), ("Host", host)])?;
    if target.is_empty() || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(EncodeError::InvalidHeaderValue {
            name: "request-target".to_owned(),
        });
    }
    check_headers(headers.iter().copied())?;
    let mut head = String::with_capacity(64 + target.len());
    // Writing to a String cannot fail.
    let _ = write!(head, "{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    out.put_slice(head.as_bytes());
    Ok(())
}

/// A response head, as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub version: Version,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    /// How the body is delimited (for a response to GET; a HEAD response has no body whatever
    /// this says).
    pub framing: BodyFraming,
    /// Whether the connection can carry another request after this body.
    pub keep_alive: bool,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Parses a response head from the front of `buf`; `consumed` is where the body starts.
pub fn parse_response_head(buf: &[u8], limits: &Limits) -> Result<Parsed<Response>, HttpError> {
    let mut storage = [httparse::EMPTY_HEADER; HEADER_ARRAY];
    let mut resp = httparse::Response::new(&mut storage[..limits.max_headers.min(HEADER_ARRAY)]);
    let Some(consumed) = head_len(resp.parse(buf), buf, limits)? else {
        return Ok(Parsed::NeedMore);
    };
    let (Some(minor), Some(status)) = (resp.version, resp.code) else {
        return Err(HttpError::InvalidStatus);
    };
    let version = Version::from_minor(minor);
    let headers = convert_headers(resp.headers)?;
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyFraming::None
    } else if let Some(te) = find_header(&headers, "transfer-encoding") {
        // Chunked only if it is the final coding; otherwise the body runs to close.
        let last = te.rsplit(',').next().unwrap_or("").trim();
        if last.eq_ignore_ascii_case("chunked") {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        }
    } else if let Some(n) = content_length(&headers)? {
        BodyFraming::Length(n)
    } else {
        BodyFraming::UntilClose
    };
    let keep_alive = keep_alive(version, &headers) && framing != BodyFraming::UntilClose;
    Ok(Parsed::Complete {
        message: Response {
            version,
            status,
            reason: resp.reason.unwrap_or("").to_owned(),
            headers,
            framing,
            keep_alive,
        },
        consumed,
    })
}

/// What [`ChunkedDecoder::decode`] found.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkedEvent {
    /// Body bytes (part of a chunk, or all of it).
    Data(Bytes),
    /// The buffer holds no further complete piece.
    NeedMore,
    /// The last chunk and trailers are consumed; what follows in the buffer is not body.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
    Done,
}

/// Sans-IO decoder of a chunked body (RFC 9112 7.1).
///
/// Call [`decode`](Self::decode) on the connection's buffer after the response head until it
/// returns `NeedMore` (read more) or `End`; it consumes what it decodes from the buffer. Chunk
/// extensions and trailers are skipped.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes one line (without its CRLF or LF) off the front of `buf`.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, HttpError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(i) if i > MAX_CHUNK_LINE => Err(HttpError::InvalidChunkSize),
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_CHUNK_LINE => Err(HttpError::InvalidChunkSize),
        None => Ok(None),
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: ChunkState::Size,
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<ChunkedEvent, HttpError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(ChunkedEvent::End),
                ChunkState::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(ChunkedEvent::NeedMore);
                    };
                    let digits_end = line
                        .iter()
                        .position(|&b| !b.is_ascii_hexdigit())
                        .unwrap_or(line.len());
                    let rest = &line[digits_end..];
                    let ext_ok = rest.is_empty() || matches!(rest[0], b';' | b' ' | b'\t');
                    if digits_end == 0 || digits_end > 16 || !ext_ok {
                        return Err(HttpError::InvalidChunkSize);
                    }
                    let size = line[..digits_end].iter().fold(0u64, |acc, &b| {
                        // Checked above: at most 16 hex digits, so no overflow.
                        (acc << 4) | u64::from((b as char).to_digit(16).unwrap_or(0))
                    });
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data { remaining: size }
                    };
                }
                ChunkState::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(ChunkedEvent::NeedMore);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { remaining }
                    };
                    return Ok(ChunkedEvent::Data(data));
                }
                ChunkState::DataEnd => match buf.first() {
                    None => return Ok(ChunkedEvent::NeedMore),
                    Some(b'\n') => {
                        buf.advance(1);
                        self.state = ChunkState::Size;
                    }
                    Some(b'\r') if buf.len() < 2 => return Ok(ChunkedEvent::NeedMore),
                    Some(b'\r') if buf[1] == b'\n' => {
                        buf.advance(2);
                        self.state = ChunkState::Size;
                    }
                    Some(_) => return Err(HttpError::MissingChunkEnd),
                },
                ChunkState::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(ChunkedEvent::NeedMore);
                    };
                    if line.is_empty() {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head() {
        let mut out = BytesMut::new();
        encode_request_head(
            &mut out,
            "GET",
            "/live/a.flv?t=1",
            "origin:8080",
            &[("User-Agent", "corestream")],
        )
        .unwrap();
        assert_eq!(
            &out[..],
            b"GET /live/a.flv?t=1 HTTP/1.1\r\nHost: origin:8080\r\nUser-Agent: corestream\r\n\r\n"
        );
        out.clear();
        assert!(encode_request_head(&mut out, "GET", "/a b", "h", &[]).is_err());
        assert!(encode_request_head(&mut out, "GET", "/", "h\r\nX: y", &[]).is_err());
        assert!(out.is_empty());
    }

    fn head(raw: &[u8]) -> (Response, usize) {
        match parse_response_head(raw, &Limits::default()).unwrap() {
            Parsed::Complete { message, consumed } => (message, consumed),
            Parsed::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn response_heads() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        let (r, n) = head(raw);
        assert_eq!(
            (r.status, r.reason.as_str(), r.framing, r.keep_alive),
            (200, "OK", BodyFraming::Chunked, true)
        );
        assert_eq!(&raw[n..], b"FLV");
        assert_eq!(r.header("content-type"), Some("video/x-flv"));

        let (r, _) = head(b"HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (BodyFraming::UntilClose, false));
        let (r, _) = head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (BodyFraming::Length(9), true));
        let (r, _) = head(b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
        assert_eq!((r.framing, r.keep_alive), (BodyFraming::None, false));

        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA:", &Limits::default()),
            Ok(Parsed::NeedMore)
        );
        assert_eq!(
            parse_response_head(b"HTTP/1.1 2x0 OK\r\n\r\n", &Limits::default()),
            Err(HttpError::InvalidStatus)
        );
    }

    /// A response head is held to `max_head_bytes` as a request head is: partial and already
    /// over it, or complete and over it.
    #[test]
    fn too_large_response_head() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let mut raw = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        raw.extend_from_slice(&[b'a'; 100]);
        assert_eq!(
            parse_response_head(&raw, &limits),
            Err(HttpError::HeadTooLarge { limit: 64 })
        );
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_response_head(&raw, &limits),
            Err(HttpError::HeadTooLarge { limit: 64 })
        );
        let fits = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_response_head(fits, &limits),
            Ok(Parsed::Complete { consumed, .. }) if consumed == fits.len()
        ));
    }

    #[test]
    fn chunked_body() {
        let mut dec = ChunkedDecoder::new();
        let raw: &[u8] =
            b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1";
        // Byte by byte, collecting data.
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut ended = false;
        for b in raw {
            buf.put_u8(*b);
            loop {
                match dec.decode(&mut buf).unwrap() {
                    ChunkedEvent::Data(d) => body.extend_from_slice(&d),
                    ChunkedEvent::NeedMore => break,
                    ChunkedEvent::End => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                break;
            }
        }
        assert!(ended);
        assert_eq!(body, b"hello0123456789abcdef");
        assert!(buf.is_empty());

        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Err(HttpError::InvalidChunkSize));
        let mut dec = ChunkedDecoder::new();
        let mut buf = BytesMut::from(&b"2\r\nabX"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(ChunkedEvent::Data(Bytes::from_static(b"ab")))
        );
        assert_eq!(dec.decode(&mut buf), Err(HttpError::MissingChunkEnd));
    }
}
