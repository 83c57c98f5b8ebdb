//! RTSP/1.0 messages on the wire: requests written by the client, responses (and the odd request
//! a server sends) parsed from the stream, and `$`-framed interleaved RTP/RTCP packets demuxed
//! from the same stream.

use bytes::{Buf, Bytes, BytesMut};

/// The longest message head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// The longest message body accepted (an SDP).
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    #[error("message head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("message body of {0} bytes is too long")]
    BodyTooLong(usize),
    #[error("malformed status line '{0}'")]
    StatusLine(String),
    #[error("malformed header line '{0}'")]
    HeaderLine(String),
    #[error("invalid Content-Length '{0}'")]
    ContentLength(String),
    #[error("the message head is not utf-8")]
    NotUtf8,
}

/// A response from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    /// Every header named `name` (case-insensitive), in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `CSeq` the response answers.
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq").and_then(|v| v.trim().parse().ok())
    }
}

/// What the stream carried next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Response(Response),
    /// A request from the server (`ANNOUNCE`, `GET_PARAMETER`, …): its method and CSeq.
    Request {
        method: String,
        cseq: Option<u32>,
    },
    /// An interleaved packet on `channel`.
    Interleaved {
        channel: u8,
        payload: Bytes,
    },
}

/// Splits the byte stream from an RTSP server into messages and interleaved packets.
///
/// Call order: [`Decoder::feed`] with what the socket gave, then [`Decoder::decode`] until it
/// returns `Ok(None)`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn feed(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// The next complete item, `None` if more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Decoded>, MessageError> {
        loop {
            match self.buf.first() {
                None => return Ok(None),
                Some(b'$') => {
                    if self.buf.len() < 4 {
                        return Ok(None);
                    }
                    let channel = self.buf[1];
                    let len = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                    if self.buf.len() < 4 + len {
                        return Ok(None);
                    }
                    self.buf.advance(4);
                    let payload = self.buf.split_to(len).freeze();
                    return Ok(Some(Decoded::Interleaved { channel, payload }));
                }
                // Stray line ends between messages are skipped.
                Some(b'\r' | b'\n') => self.buf.advance(1),
                Some(_) => return self.decode_message(),
            }
        }
    }

    fn decode_message(&mut self) -> Result<Option<Decoded>, MessageError> {
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_HEAD {
                return Err(MessageError::HeadTooLong);
            }
            return Ok(None);
        };
        if end > MAX_HEAD {
            return Err(MessageError::HeadTooLong);
        }
        let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| MessageError::NotUtf8)?;
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| MessageError::HeaderLine(line.to_owned()))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length = match headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        {
            Some((_, v)) => v
                .parse::<usize>()
                .map_err(|_| MessageError::ContentLength(v.clone()))?,
            None => 0,
        };
        if length > MAX_BODY {
            return Err(MessageError::BodyTooLong(length));
        }
        if self.buf.len() < end + 4 + length {
            return Ok(None);
        }
        self.buf.advance(end + 4);
        let body = self.buf.split_to(length).freeze();
        let cseq = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("CSeq"))
            .and_then(|(_, v)| v.parse().ok());
        if let Some(rest) = first.strip_prefix("RTSP/") {
            let mut parts = rest.splitn(3, ' ');
            let _version = parts.next();
            let status = parts
                .next()
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| MessageError::StatusLine(first.clone()))?;
            let reason = parts.next().unwrap_or_default().to_owned();
            return Ok(Some(Decoded::Response(Response {
                status,
                reason,
                headers,
                body,
            })));
        }
        match first.split(' ').collect::<Vec<_>>()[..] {
            [method, _, version] if version.starts_with("RTSP/") => Ok(Some(Decoded::Request {
                method: method.to_owned(),
                cseq,
            })),
            _ => Err(MessageError::StatusLine(first)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes a request: request line, `CSeq`, the given headers, and an empty line.
pub fn encode_request(
    out: &mut BytesMut,
    method: &str,
    uri: &str,
    cseq: u32,
    headers: &[(&str, &str)],
) {
    use std::fmt::Write as _;
    let mut s = format!("{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n");
    for (n, v) in headers {
        let _ = write!(s, "{n}: {v}\r\n");
    }
    s.push_str("\r\n");
    out.extend_from_slice(s.as_bytes());
}

/// Writes the empty `200 OK` the client answers a server's request with.
pub fn encode_ok(out: &mut BytesMut, cseq: u32) {
    out.extend_from_slice(format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes() {
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            "DESCRIBE",
            "rtsp://cam/s",
            2,
            &[("Accept", "application/sdp")],
        );
        assert_eq!(
            &out[..],
            b"DESCRIBE rtsp://cam/s RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n"
        );
    }

    #[test]
    fn responses_and_interleaved_packets_in_one_stream() {
        let mut d = Decoder::new();
        let mut wire = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nv=0\n".to_vec();
        wire.extend_from_slice(&[b'$', 0, 0, 3, 1, 2, 3, b'$', 1, 0, 1, 9]);
        wire.extend_from_slice(b"GET_PARAMETER rtsp://x RTSP/1.0\r\nCSeq: 7\r\n\r\n");
        // Byte by byte: nothing comes out early.
        let mut got = Vec::new();
        for b in &wire {
            d.feed(&[*b]);
            while let Some(x) = d.decode().unwrap() {
                got.push(x);
            }
        }
        assert_eq!(got.len(), 4);
        let Decoded::Response(r) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            (r.status, r.reason.as_str(), r.cseq()),
            (200, "OK", Some(3))
        );
        assert_eq!(&r.body[..], b"v=0\n");
        assert_eq!(
            got[1],
            Decoded::Interleaved {
                channel: 0,
                payload: Bytes::from_static(&[1, 2, 3])
            }
        );
        assert_eq!(
            got[2],
            Decoded::Interleaved {
                channel: 1,
                payload: Bytes::from_static(&[9])
            }
        );
        assert_eq!(
            got[3],
            Decoded::Request {
                method: "GET_PARAMETER".into(),
                cseq: Some(7)
            }
        );
    }

    #[test]
    fn malformed_messages() {
        let mut d = Decoder::new();
        d.feed(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(matches!(d.decode(), Err(MessageError::StatusLine(_))));
        let mut d = Decoder::new();
        d.feed(b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n");
        assert_eq!(d.decode(), Err(MessageError::ContentLength("x".into())));
        let mut d = Decoder::new();
        d.feed(&vec![b'a'; MAX_HEAD + 1]);
        assert_eq!(d.decode(), Err(MessageError::HeadTooLong));
    }
}
