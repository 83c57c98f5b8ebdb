//! The HTTP-FLV player, sans-IO: a GET request out, a response head, then an FLV stream as the
//! body (chunked, sized or until close), parsed into frames with the engine's codecs.
#![forbid(unsafe_code)]

use bytes::BytesMut;
use corestream::media::Frame;
use corestream::protocol::flv::{FlvError, FlvReader};
use corestream::protocol::http::{
    encode_request_head, parse_response_head, BodyFraming, ChunkedDecoder, ChunkedEvent, HttpError,
    Limits, Parsed,
};

/// Ways an HTTP-FLV response can be unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpFlvError {
    #[error("bad http response: {0}")]
    Http(#[from] HttpError),
    #[error("server answered {status} {reason}")]
    Status { status: u16, reason: String },
    #[error("bad flv body: {0}")]
    Flv(#[from] FlvError),
    #[error("cannot encode the request: {0}")]
    Request(String),
}

/// What the player reports.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpFlvEvent {
    /// A 200 response head: media follows.
    Started,
    Media(Frame),
    /// The body ended (chunked end or its length reached).
    End,
}

#[derive(Debug)]
enum State {
    ExpectHead,
    Body {
        chunked: Option<ChunkedDecoder>,
        /// Bytes of a sized body still expected.
        remaining: Option<u64>,
    },
    Done,
}

/// An HTTP-FLV player. Call order: [`request`](Self::request) for the bytes to send when the
/// connection is up, then [`handle_input`](Self::handle_input) with what the socket gives, and
/// [`poll_event`](Self::poll_event) until `None`. Errors are final.
#[derive(Debug)]
pub struct HttpFlvClient {
    state: State,
    buf: BytesMut,
    flv: FlvReader,
    limits: Limits,
    started: bool,
    ended: bool,
}

impl Default for HttpFlvClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpFlvClient {
    pub fn new() -> Self {
        Self {
            state: State::ExpectHead,
            buf: BytesMut::new(),
            flv: FlvReader::new(),
            limits: Limits::default(),
            started: false,
            ended: false,
        }
    }

    /// The request for `path` (e.g. `/live/s.flv`) on `host` (`Host` header).
    pub fn request(out: &mut BytesMut, path: &str, host: &str) -> Result<(), HttpFlvError> {
        encode_request_head(
            out,
            "GET",
            path,
            host,
            &[("User-Agent", "corestream-bench"), ("Accept", "*/*")],
        )
        .map_err(|e| HttpFlvError::Request(e.to_string()))
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), HttpFlvError> {
        self.buf.extend_from_slice(input);
        loop {
            match &mut self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(());
                }
                State::ExpectHead => match parse_response_head(&self.buf, &self.limits)? {
                    Parsed::NeedMore => return Ok(()),
                    Parsed::Complete { message, consumed } => {
                        if message.status != 200 {
                            self.state = State::Done;
                            return Err(HttpFlvError::Status {
                                status: message.status,
                                reason: message.reason,
                            });
                        }
                        let _ = self.buf.split_to(consumed);
                        self.started = true;
                        self.state = match message.framing {
                            BodyFraming::Chunked => State::Body {
                                chunked: Some(ChunkedDecoder::new()),
                                remaining: None,
                            },
                            BodyFraming::Length(n) => State::Body {
                                chunked: None,
                                remaining: Some(n),
                            },
                            _ => State::Body {
                                chunked: None,
                                remaining: None,
                            },
                        };
                    }
                },
                State::Body { chunked, remaining } => {
                    match chunked {
                        Some(dec) => loop {
                            match dec.decode(&mut self.buf)? {
                                ChunkedEvent::Data(d) => self.flv.feed(&d),
                                ChunkedEvent::NeedMore => break,
                                ChunkedEvent::End => {
                                    self.ended = true;
                                    self.state = State::Done;
                                    break;
                                }
                            }
                        },
                        None => {
                            let take = match remaining {
                                Some(r) => (*r).min(self.buf.len() as u64) as usize,
                                None => self.buf.len(),
                            };
                            let data = self.buf.split_to(take);
                            self.flv.feed(&data);
                            if let Some(r) = remaining {
                                *r -= take as u64;
                                if *r == 0 {
                                    self.ended = true;
                                    self.state = State::Done;
                                }
                            }
                        }
                    }
                    return Ok(());
                }
            }
        }
    }

    /// The next event. Media frames are parsed lazily from the buffered body here.
    pub fn poll_event(&mut self) -> Result<Option<HttpFlvEvent>, HttpFlvError> {
        if std::mem::take(&mut self.started) {
            return Ok(Some(HttpFlvEvent::Started));
        }
        if let Some(frame) = self.flv.poll_frame()? {
            return Ok(Some(HttpFlvEvent::Media(frame)));
        }
        if std::mem::take(&mut self.ended) {
            return Ok(Some(HttpFlvEvent::End));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use corestream::media::MediaKind;
    use corestream::protocol::flv::{encode_header, encode_tag};
    use corestream::protocol::http::encode_chunk;

    fn flv_body() -> (Vec<u8>, Vec<Frame>) {
        let frames = vec![
            Frame::new(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            ),
            Frame::new(MediaKind::Audio, 21, Bytes::from_static(&[0xaf, 1, 0x21])),
            Frame::new(
                MediaKind::Video,
                40,
                Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]),
            ),
        ];
        let mut body = BytesMut::new();
        encode_header(&mut body, true, true);
        for f in &frames {
            encode_tag(&mut body, f).unwrap();
        }
        (body.to_vec(), frames)
    }

    fn drain(c: &mut HttpFlvClient) -> Vec<HttpFlvEvent> {
        let mut v = Vec::new();
        while let Some(e) = c.poll_event().unwrap() {
            v.push(e);
        }
        v
    }

    #[test]
    fn request_head() {
        let mut out = BytesMut::new();
        HttpFlvClient::request(&mut out, "/live/s.flv", "127.0.0.1:8080").unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("GET /live/s.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn chunked_body_fed_byte_by_byte() {
        let (body, frames) = flv_body();
        let mut wire =
            b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        let mut chunks = BytesMut::new();
        for part in body.chunks(7) {
            encode_chunk(&mut chunks, part);
        }
        wire.extend_from_slice(&chunks);
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut c = HttpFlvClient::new();
        let mut events = Vec::new();
        for b in &wire {
            c.handle_input(std::slice::from_ref(b)).unwrap();
            events.extend(drain(&mut c));
        }
        let mut expected = vec![HttpFlvEvent::Started];
        expected.extend(frames.into_iter().map(HttpFlvEvent::Media));
        expected.push(HttpFlvEvent::End);
        assert_eq!(events, expected);
    }

    #[test]
    fn body_until_close() {
        let (body, frames) = flv_body();
        let mut wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        wire.extend_from_slice(&body);
        let mut c = HttpFlvClient::new();
        c.handle_input(&wire).unwrap();
        let events = drain(&mut c);
        assert_eq!(events.len(), 1 + frames.len());
        assert_eq!(events[0], HttpFlvEvent::Started);
    }

    #[test]
    fn refusal_and_garbage() {
        let mut c = HttpFlvClient::new();
        let err = c
            .handle_input(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .unwrap_err();
        assert_eq!(
            err,
            HttpFlvError::Status {
                status: 404,
                reason: "Not Found".into()
            }
        );
        let mut c = HttpFlvClient::new();
        c.handle_input(b"HTTP/1.1 200 OK\r\n\r\nRIFF....WAVEfmt ")
            .unwrap();
        assert_eq!(c.poll_event().unwrap(), Some(HttpFlvEvent::Started));
        assert!(c.poll_event().is_err());
    }
}
