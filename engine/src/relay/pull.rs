//! One pull attempt: connect to a source URL, play it over RTMP or HTTP-FLV (plain or TLS) with
//! the engine's own sans-IO codecs, and publish what arrives on this core like a publisher would.

use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use tracing::{debug, info, warn};

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
use crate::protocol::rtp::rtcp::{self, Receiver};
use crate::protocol::rtp::Depacketizer;
use crate::protocol::rtsp::{Client as RtspClient, ClientEvent as RtspEvent, RtspUrl, Sdp};
use crate::registry::StreamKey;
use crate::runtime::{ConnState, Core, PublishHandle, PublishRefused};
use crate::server::conn::Conn;
use crate::server::net::NetReader;

/// How many RTSP redirects one attempt follows.
const MAX_REDIRECTS: usize = 5;

/// Pulls `url` into `key` until something ends it; returns why. `fingerprint` pins the
/// certificate of an `https://` source.
pub(super) async fn pull(
    core: &Rc<Core>,
    key: &StreamKey,
    link: &Link,
    url: &str,
    fingerprint: Option<&str>,
) -> RelayError {
    let mut parsed = match url::parse(url) {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    let mut redirects = 0;
    loop {
        let shown = parsed.to_string();
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
        let mut redirect = None;
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
            RelayUrl::Rtsp(u) => match feed.rtsp(u, &mut reader).await {
                RtspEnd::Error(e) => e,
                RtspEnd::Redirect(to) => {
                    redirect = Some(to);
                    RelayError::TooManyRedirects(shown.clone())
                }
            },
        };
        if let Some(p) = feed.publish.take() {
            info!(core = %core.id, stream = %key, url = shown, "source stopped: {ending}");
            drop(p);
        }
        link.session.set(None);
        conn.close(false).await;
        match redirect {
            Some(mut to) if redirects < MAX_REDIRECTS && !link.is_stopped(core) => {
                redirects += 1;
                if let RelayUrl::Rtsp(from) = &parsed {
                    // Credentials follow a redirect to the same server.
                    if to.user.is_none() && from.same_server(&to) {
                        to.user.clone_from(&from.user);
                        to.password.clone_from(&from.password);
                    }
                }
                info!(core = %core.id, stream = %key, from = shown, to = %to, "source redirected");
                link.status.connecting(&to.to_string());
                parsed = RelayUrl::Rtsp(to);
            }
            _ => return ending,
        }
    }
}

/// How an RTSP pull ended.
enum RtspEnd {
    Error(RelayError),
    /// The server sent the stream elsewhere.
    Redirect(RtspUrl),
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

    /// Plays an RTSP URL: the client session walks the handshake, the driver only moves bytes,
    /// picks the tracks (the first H.264 video, the first AAC/G.711 audio: FLV carries one of
    /// each) and feeds their RTP to the depacketizers; RTCP receiver reports go out every 5 s.
    /// Keep-alives and reports are checked after each read:
    /// a playing camera sends media far more often than its session timeout, and a silent one
    /// fails on `readTimeout` first.
    async fn rtsp(&mut self, u: &RtspUrl, reader: &mut NetReader) -> RtspEnd {
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let mut client = RtspClient::new(u.clone(), "corestream", &cnonce);
        let end = self.rtsp_session(&mut client, reader).await;
        // A polite goodbye; the connection closes right after, whatever the server answers.
        client.teardown();
        let mut out = BytesMut::new();
        client.poll_transmit(&mut out);
        link::send(self.conn, &mut out);
        end
    }

    async fn rtsp_session(&mut self, client: &mut RtspClient, reader: &mut NetReader) -> RtspEnd {
        let mut out = BytesMut::new();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut sdp: Option<Sdp> = None;
        let mut chosen: Vec<usize> = Vec::new();
        // Per SDP track, once playing.
        let mut depacketizers: Vec<Option<Depacketizer>> = Vec::new();
        // Per SDP track, once playing: reception statistics for the RTCP receiver reports.
        let mut receivers: Vec<Option<Receiver>> = Vec::new();
        let mut next_report = Instant::now() + rtcp::REPORT_INTERVAL;
        let ssrc: u32 = rand::random();
        let mut report = BytesMut::new();
        let mut frames = Vec::new();
        loop {
            client.poll_transmit(&mut out);
            link::send(self.conn, &mut out);
            let n = match link::read(self.conn, reader, &mut buf, &self.link.status).await {
                Ok(n) => n,
                Err(e) => return RtspEnd::Error(e),
            };
            let now = Instant::now();
            if let Err(e) = client.handle_input(now, &buf[..n]) {
                return RtspEnd::Error(e.into());
            }
            client.handle_timeout(now);
            while let Some(event) = client.poll_event() {
                match event {
                    RtspEvent::Described(described) => {
                        chosen = choose_tracks(self.key, &described);
                        if chosen.is_empty() {
                            let codecs: Vec<&str> = described
                                .tracks
                                .iter()
                                .map(|t| t.encoding.as_str())
                                .collect();
                            return RtspEnd::Error(RelayError::NoTracks(codecs.join(", ")));
                        }
                        if let Err(e) = client.setup(&chosen) {
                            return RtspEnd::Error(e.into());
                        }
                        sdp = Some(described);
                    }
                    RtspEvent::Playing { rtp_info } => {
                        let Some(sdp) = &sdp else { continue };
                        depacketizers = sdp
                            .tracks
                            .iter()
                            .enumerate()
                            .map(|(i, t)| {
                                if !chosen.contains(&i) {
                                    return None;
                                }
                                let origin = rtp_info
                                    .iter()
                                    .find(|r| r.track == i)
                                    .and_then(|r| r.rtptime);
                                Depacketizer::for_track(t, origin).ok()
                            })
                            .collect();
                        receivers = sdp
                            .tracks
                            .iter()
                            .enumerate()
                            .map(|(i, t)| {
                                chosen
                                    .contains(&i)
                                    .then(|| Receiver::new(ssrc, "corestream", t.clock_rate))
                            })
                            .collect();
                        debug!(stream = %self.key, ?rtp_info, "rtsp source playing");
                    }
                    RtspEvent::Rtp { track, packet } => {
                        if let Some(Some(r)) = receivers.get_mut(track) {
                            r.on_rtp(now, &packet);
                        }
                        let Some(Some(d)) = depacketizers.get_mut(track) else {
                            continue;
                        };
                        if let Err(e) = d.push(&packet, &mut frames) {
                            debug!(stream = %self.key, track, "rtp packet skipped: {e}");
                        }
                        for frame in frames.drain(..) {
                            if let Err(e) = self.deliver(frame).await {
                                return RtspEnd::Error(e);
                            }
                        }
                    }
                    RtspEvent::Rtcp { track, packet } => {
                        if let Some(Some(r)) = receivers.get_mut(track) {
                            r.on_rtcp(now, &packet);
                        }
                    }
                    RtspEvent::Redirect(to) => return RtspEnd::Redirect(to),
                }
            }
            if now >= next_report {
                next_report = now + rtcp::REPORT_INTERVAL;
                for (track, r) in receivers.iter_mut().enumerate() {
                    if let Some(r) = r {
                        r.report(now, &mut report);
                        client.send_rtcp(track, &report);
                        report.clear();
                    }
                }
            }
        }
    }
}

/// The tracks an RTSP pull plays: the first video and the first audio track a depacketizer
/// exists for. The others are skipped with a log line naming their codec.
fn choose_tracks(key: &StreamKey, sdp: &Sdp) -> Vec<usize> {
    let mut video = None;
    let mut audio = None;
    for (i, t) in sdp.tracks.iter().enumerate() {
        let slot = match t.media.as_str() {
            "video" => &mut video,
            "audio" => &mut audio,
            _ => {
                warn!(stream = %key, media = t.media, codec = t.encoding, "rtsp track skipped: not audio or video");
                continue;
            }
        };
        match Depacketizer::for_track(t, None) {
            Ok(_) if slot.is_none() => *slot = Some(i),
            Ok(_) => {
                warn!(stream = %key, media = t.media, codec = t.encoding, "rtsp track skipped: flv carries one track of each kind")
            }
            Err(e) => warn!(stream = %key, media = t.media, "rtsp track skipped: {e}"),
        }
    }
    video.into_iter().chain(audio).collect()
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
