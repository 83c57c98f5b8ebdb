//! One pull attempt: connect to a source URL, play it over RTMP or HTTP-FLV (plain or TLS) with
//! the engine's own sans-IO codecs, and publish what arrives on this core like a publisher would.

use std::rc::Rc;

use bytes::{Buf, BytesMut};
use tracing::{debug, info};

use super::dial::dial;
use super::error::RelayError;
use super::link::{self, Link, READ_BUFFER};
use super::tls::{TlsClient, TlsError, TlsInput};
use super::url::{self, HttpUrl, RelayUrl, RtmpUrl};
use crate::media::Frame;
use crate::protocol::flv::FlvReader;
use crate::protocol::http::{
    encode_request_head, parse_response_head, BodyFraming, ChunkedDecoder, ChunkedEvent, Limits,
    Parsed,
};
use crate::protocol::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use crate::registry::StreamKey;
use crate::runtime::{ConnState, Core, PublishHandle, PublishRefused};
use crate::server::conn::Conn;
use crate::server::net::NetReader;

/// Pulls `url` into `key` until something ends it; returns why. `fingerprint` pins the
/// certificate of an `https://` source.
pub(super) async fn pull(
    core: &Rc<Core>,
    key: &StreamKey,
    link: &Link,
    url: &str,
    fingerprint: Option<&str>,
) -> RelayError {
    let parsed = match url::parse(url) {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    let (conn, mut reader) = match dial(core, parsed.host(), parsed.port(), &link.stop).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    link::attach(link, &conn);
    let mut feed = Feed {
        core,
        key,
        link,
        conn: &conn,
        publish: None,
    };
    let ending = match &parsed {
        RelayUrl::Rtmp(u) => feed.rtmp(u, &mut reader).await,
        RelayUrl::HttpFlv(u) => {
            let transport = if u.tls {
                match TlsClient::new(&u.host, fingerprint) {
                    Ok(t) => Transport::Tls(Box::new(t)),
                    Err(e) => return e.into(),
                }
            } else {
                Transport::Plain
            };
            feed.http_flv(u, transport, &mut reader).await
        }
    };
    if let Some(p) = feed.publish.take() {
        info!(core = %core.id, stream = %key, url, "source stopped: {ending}");
        drop(p);
    }
    link.session.set(None);
    conn.close(false).await;
    ending
}

/// The stream a pull feeds: published on this core from the first frame on.
struct Feed<'a> {
    core: &'a Rc<Core>,
    key: &'a StreamKey,
    link: &'a Link,
    conn: &'a Conn,
    publish: Option<PublishHandle>,
}

impl Feed<'_> {
    async fn deliver(&mut self, frame: Frame) -> Result<(), RelayError> {
        if self.publish.is_none() {
            let handle = self
                .core
                .claim_publish(self.key, self.conn.guard.id)
                .await
                .map_err(|e| match e {
                    PublishRefused::AlreadyPublishing => RelayError::AlreadyPublishing,
                    PublishRefused::Unavailable => RelayError::Unavailable,
                    PublishRefused::TooManyStreams { limit } => {
                        RelayError::TooManyStreams { limit }
                    }
                })?;
            info!(core = %self.core.id, stream = %self.key, url = %self.link.status.url(), "source ready");
            self.link.status.ready();
            self.conn
                .guard
                .control
                .info
                .set_role(ConnState::Publish, self.key.path(), "");
            self.publish = Some(handle);
        }
        if let Some(p) = &self.publish {
            p.push(frame);
        }
        Ok(())
    }

    async fn rtmp(&mut self, u: &RtmpUrl, reader: &mut NetReader) -> RelayError {
        if u.stream.is_empty() {
            return RelayError::NoStreamName;
        }
        let mut config = ClientConfig::new(&u.app, &u.tc_url, &u.stream, ClientMode::Play);
        config.handshake_seed = rand::random();
        let mut client = ClientSession::new(config);
        let mut out = BytesMut::new();
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            client.poll_transmit(&mut out);
            link::send(self.conn, &mut out);
            let n = match link::read(self.conn, reader, &mut buf, &self.link.status).await {
                Ok(n) => n,
                Err(e) => return e,
            };
            if let Err(e) = client.handle_input(&buf[..n]) {
                return e.into();
            }
            while let Some(event) = client.poll_event() {
                match event {
                    ClientEvent::Media(frame) => {
                        if let Err(e) = self.deliver(frame).await {
                            return e;
                        }
                    }
                    ClientEvent::Status {
                        level,
                        code,
                        description,
                    } => {
                        debug!(stream = %self.key, level, code, description, "source status");
                        if level == "error" {
                            return RelayError::Status { code, description };
                        }
                        if code.ends_with("UnpublishNotify") {
                            return RelayError::Ended;
                        }
                    }
                    ClientEvent::StreamEof => return RelayError::Ended,
                    _ => {}
                }
            }
        }
    }

    async fn http_flv(
        &mut self,
        u: &HttpUrl,
        mut transport: Transport,
        reader: &mut NetReader,
    ) -> RelayError {
        let mut out = BytesMut::new();
        let headers = [("User-Agent", "corestream"), ("Accept", "*/*")];
        if let Err(e) = encode_request_head(&mut out, "GET", &u.target, &u.authority, &headers) {
            return e.into();
        }
        if let Err(e) = transport.send(self.conn, &mut out) {
            return e;
        }
        let mut input = BytesMut::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let limits = Limits::default();
        let framing = loop {
            match parse_response_head(&input, &limits) {
                Ok(Parsed::Complete { message, consumed }) => {
                    if message.status != 200 {
                        return RelayError::HttpStatus {
                            status: message.status,
                            reason: message.reason,
                        };
                    }
                    input.advance(consumed);
                    break message.framing;
                }
                Ok(Parsed::NeedMore) => {}
                Err(e) => return e.into(),
            }
            if let Err(e) = transport
                .read(self.conn, reader, &mut buf, &self.link.status, &mut input)
                .await
            {
                return e;
            }
        };
        let mut chunked = (framing == BodyFraming::Chunked).then(ChunkedDecoder::new);
        let mut flv = FlvReader::new();
        loop {
            match &mut chunked {
                Some(decoder) => loop {
                    match decoder.decode(&mut input) {
                        Ok(ChunkedEvent::Data(b)) => flv.feed(&b),
                        Ok(ChunkedEvent::NeedMore) => break,
                        Ok(ChunkedEvent::End) => return RelayError::Ended,
                        Err(e) => return e.into(),
                    }
                },
                None => {
                    flv.feed(&input);
                    input.clear();
                }
            }
            loop {
                match flv.poll_frame() {
                    Ok(Some(frame)) => {
                        if let Err(e) = self.deliver(frame).await {
                            return e;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return e.into(),
                }
            }
            match transport
                .read(self.conn, reader, &mut buf, &self.link.status, &mut input)
                .await
            {
                Ok(()) => {}
                Err(RelayError::Closed) => return RelayError::Ended,
                Err(e) => return e,
            }
        }
    }
}

/// What an HTTP-FLV pull runs on: the connection itself, or TLS over it (`https://`).
enum Transport {
    Plain,
    Tls(Box<TlsClient>),
}

impl Transport {
    /// Sends (and empties) `out`.
    fn send(&mut self, conn: &Conn, out: &mut BytesMut) -> Result<(), RelayError> {
        match self {
            Transport::Plain => link::send(conn, out),
            Transport::Tls(tls) => {
                tls.write_plain(out)?;
                out.clear();
                let mut records = BytesMut::new();
                tls.poll_transmit(&mut records);
                link::send(conn, &mut records);
            }
        }
        Ok(())
    }

    /// Reads from the connection until some payload (decrypted for TLS) is appended to
    /// `input`; a TLS handshake runs on the way.
    async fn read(
        &mut self,
        conn: &Conn,
        reader: &mut NetReader,
        buf: &mut [u8],
        status: &super::status::LinkStatus,
        input: &mut BytesMut,
    ) -> Result<(), RelayError> {
        match self {
            Transport::Plain => {
                let n = link::read(conn, reader, buf, status).await?;
                input.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Transport::Tls(tls) => {
                let before = input.len();
                loop {
                    let n = match link::read(conn, reader, buf, status).await {
                        Ok(n) => n,
                        Err(RelayError::Closed) if tls.is_handshaking() => {
                            return Err(TlsError::ClosedInHandshake.into())
                        }
                        Err(e) => return Err(e),
                    };
                    let got = tls.handle_input(&buf[..n], input);
                    // Handshake replies, the request held until now, or an alert.
                    let mut records = BytesMut::new();
                    tls.poll_transmit(&mut records);
                    link::send(conn, &mut records);
                    let state = got?;
                    if input.len() > before {
                        return Ok(());
                    }
                    if state == TlsInput::PeerClosed {
                        return Err(RelayError::Closed);
                    }
                }
            }
        }
    }
}
