//! One pull attempt: connect to a source URL, play it over RTMP or HTTP-FLV (plain or TLS) or
//! RTSP with the engine's own sans-IO codecs, and publish what arrives on this core like a
//! publisher would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::future;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::UdpSocket;
use glommio::Task;
use tracing::{debug, info, warn};

use super::dial::dial;
use super::error::RelayError;
use super::link::{self, Link, READ_BUFFER};
use super::transport::{RtmpLink, Transport};
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
use crate::protocol::rtsp::{
    Client as RtspClient, ClientEvent as RtspEvent, RtpTransport, RtspError, RtspUrl, Sdp,
};
use crate::registry::StreamKey;
use crate::runtime::{ConnState, Core, PublishHandle, PublishRefused};
use crate::server::conn::Conn;
use crate::server::net::NetReader;

/// How many RTSP redirects one attempt follows.
const MAX_REDIRECTS: usize = 5;

/// With `rtspTransport: automatic`, how long UDP may stay silent after `PLAY` before the pull
/// starts over with TCP (MediaMTX waits as long).
const UDP_FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(3);

/// The ephemeral port range the RTP/RTCP port pairs are drawn from, and how many draws a track
/// gets before the pull fails.
const UDP_PORTS: std::ops::RangeInclusive<u16> = 49152..=65534;
const UDP_BIND_TRIES: usize = 64;

/// How an `rtsp://` source carries RTP (`rtspTransport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RtspTransport {
    /// UDP first; TCP when the server refuses UDP (461) or no RTP arrives in a few seconds.
    Automatic,
    Tcp,
    Udp,
}

impl RtspTransport {
    /// The configuration's word (checked when the configuration loaded): `automatic` otherwise.
    pub(super) fn from_conf(word: &str) -> RtspTransport {
        match word {
            "tcp" => RtspTransport::Tcp,
            "udp" => RtspTransport::Udp,
            _ => RtspTransport::Automatic,
        }
    }
}

/// Pulls `url` into `key` until something ends it; returns why. `fingerprint` pins the
/// certificate of an `https://` or `rtmps://` source.
pub(super) async fn pull(
    core: &Rc<Core>,
    key: &StreamKey,
    link: &Link,
    url: &str,
    fingerprint: Option<&str>,
    rtsp_transport: RtspTransport,
) -> RelayError {
    let mut parsed = match url::parse(url) {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    let mut redirects = 0;
    let mut udp = rtsp_transport != RtspTransport::Tcp;
    loop {
        let shown = parsed.to_string();
        // A cluster pull names the stream's domain in its URL (the tcUrl the owner derives the
        // vhost from) and connects to the owner's advertise address.
        let dial_to = link.held.as_ref().and_then(|h| h.dial_to.borrow().clone());
        let (host, port) = dial_to.unwrap_or_else(|| (parsed.host().to_owned(), parsed.port()));
        let (conn, mut reader) = match dial(core, &host, port, &link.stop).await {
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
            shift: 0,
        };
        let mut redirect = None;
        let mut fall_back = false;
        let ending = match &parsed {
            RelayUrl::Rtmp(u) => match Transport::new(u.tls, &u.host, fingerprint) {
                Ok(transport) => feed.rtmp(u, transport, &mut reader).await,
                Err(e) => return e,
            },
            RelayUrl::HttpFlv(u) => match Transport::new(u.tls, &u.host, fingerprint) {
                Ok(transport) => feed.http_flv(u, transport, &mut reader).await,
                Err(e) => return e,
            },
            RelayUrl::Rtsp(u) => match feed
                .rtsp(
                    u,
                    &mut reader,
                    udp,
                    rtsp_transport == RtspTransport::Automatic,
                )
                .await
            {
                RtspEnd::Error(e) => e,
                RtspEnd::UdpFailed(e) => {
                    fall_back = true;
                    e
                }
                RtspEnd::Redirect(to) => {
                    redirect = Some(to);
                    RelayError::TooManyRedirects(shown.clone())
                }
            },
        };
        if let Some(p) = feed.publish.take() {
            match &link.held {
                // A cluster pull keeps its stream for the next connection (dropped by its task).
                Some(held) if !link.is_stopped(core) => {
                    info!(core = %core.id, stream = %key, "upstream lost: players wait for the stream's next owner ({ending})");
                    held.stream.replace(Some(p));
                }
                _ => {
                    info!(core = %core.id, stream = %key, url = shown, "source stopped: {ending}");
                    drop(p);
                }
            }
        }
        link.session.set(None);
        conn.close(false).await;
        if fall_back && !link.is_stopped(core) {
            info!(core = %core.id, stream = %key, url = shown, "rtsp over udp failed ({ending}): trying tcp");
            udp = false;
            continue;
        }
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
    /// `rtspTransport: automatic` over UDP: the server refused UDP or sent nothing over it; the
    /// pull starts over with TCP.
    UdpFailed(RelayError),
}

/// A datagram from the server on one of a track's sockets.
struct Datagram {
    track: usize,
    rtcp: bool,
    data: Bytes,
}

/// RTP over UDP: each set-up track's RTP and RTCP sockets, bound on this core, read by one task
/// each into a channel (the tasks end when this is dropped).
struct UdpMedia {
    /// (SDP track, RTP socket, RTCP socket), in SETUP order.
    sockets: Vec<(usize, Rc<UdpSocket>, Rc<UdpSocket>)>,
    rx: LocalReceiver<Datagram>,
    _readers: Vec<Task<()>>,
}

impl UdpMedia {
    /// Binds an even/odd port pair per track in `tracks` (random ports of the ephemeral range,
    /// drawn again on a conflict) and reads them, keeping only what comes from `server`.
    fn bind(tracks: &[usize], server: IpAddr) -> Result<UdpMedia, RelayError> {
        let any = match server {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let (tx, rx) = local_channel::new_bounded(1024);
        let tx = Rc::new(tx);
        let mut sockets = Vec::new();
        let mut readers = Vec::new();
        for &track in tracks {
            let (rtp, rtcp) = bind_pair(any)?;
            let (rtp, rtcp) = (Rc::new(rtp), Rc::new(rtcp));
            readers.push(glommio::spawn_local(read_socket(
                Rc::clone(&rtp),
                server,
                track,
                false,
                Rc::clone(&tx),
            )));
            readers.push(glommio::spawn_local(read_socket(
                Rc::clone(&rtcp),
                server,
                track,
                true,
                Rc::clone(&tx),
            )));
            sockets.push((track, rtp, rtcp));
        }
        Ok(UdpMedia {
            sockets,
            rx,
            _readers: readers,
        })
    }

    /// The RTP port of each track, in SETUP order.
    fn ports(&self) -> Vec<u16> {
        self.sockets
            .iter()
            .filter_map(|(_, rtp, _)| rtp.local_addr().ok().map(|a| a.port()))
            .collect()
    }

    fn rtcp_socket(&self, track: usize) -> Option<&Rc<UdpSocket>> {
        self.sockets
            .iter()
            .find(|(t, _, _)| *t == track)
            .map(|(_, _, rtcp)| rtcp)
    }
}

/// An even RTP port and the odd RTCP port above it, both free.
fn bind_pair(any: IpAddr) -> Result<(UdpSocket, UdpSocket), RelayError> {
    let mut last = String::new();
    for _ in 0..UDP_BIND_TRIES {
        let span = UDP_PORTS.end() - UDP_PORTS.start();
        let port = (UDP_PORTS.start() + rand::random::<u16>() % span) & !1;
        let rtp = match UdpSocket::bind(SocketAddr::new(any, port)) {
            Ok(s) => s,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        match UdpSocket::bind(SocketAddr::new(any, port + 1)) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(RelayError::Read(format!(
        "bind an rtp/rtcp udp port pair: {last}"
    )))
}

/// Reads one socket until the pull drops its task; datagrams from anyone but the server are
/// dropped.
async fn read_socket(
    socket: Rc<UdpSocket>,
    server: IpAddr,
    track: usize,
    rtcp: bool,
    tx: Rc<LocalSender<Datagram>>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) if from.ip() == server => {
                let data = Bytes::copy_from_slice(&buf[..n]);
                if tx.send(Datagram { track, rtcp, data }).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            // An ICMP error reported on the socket: keep reading, without spinning.
            Err(_) => glommio::timer::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// What the RTSP driver got: bytes of the RTSP connection, a datagram, or nothing in time.
enum RtspInput {
    Tcp(usize),
    Udp(Datagram),
    Idle,
}

/// The stream a pull feeds: published on this core from the first frame on.
struct Feed<'a> {
    core: &'a Rc<Core>,
    key: &'a StreamKey,
    link: &'a Link,
    conn: &'a Conn,
    publish: Option<PublishHandle>,
    /// Added to every timestamp: a held stream's new upstream continues its timeline.
    shift: u32,
}

/// The gap a resumed stream's timeline shows between the last frame of the old upstream and
/// the first of the new one (one frame at 25 fps).
const RESUME_GAP_MS: u32 = 40;

impl Feed<'_> {
    async fn deliver(&mut self, mut frame: Frame) -> Result<(), RelayError> {
        if self.publish.is_none() {
            if let Some(held) = &self.link.held {
                let resumed = held.stream.borrow_mut().take();
                if let Some(handle) = resumed {
                    if let Some(last) = held.last_timestamp.get() {
                        self.shift = last
                            .wrapping_add(RESUME_GAP_MS)
                            .wrapping_sub(frame.timestamp);
                    }
                    info!(core = %self.core.id, stream = %self.key, url = %self.link.status.url(), "source resumed: players continue from the new upstream");
                    self.link.status.ready();
                    self.publish = Some(handle);
                }
            }
        }
        if let (Some(held), Some(_)) = (&self.link.held, &self.publish) {
            frame.timestamp = frame.timestamp.wrapping_add(self.shift);
            held.last_timestamp.set(Some(frame.timestamp));
        }
        if self.publish.is_none() {
            let claim = if self.link.held.is_some() {
                self.core
                    .claim_cluster_mirror(self.key, self.conn.guard.id)
                    .await
            } else {
                self.core.claim_publish(self.key, self.conn.guard.id).await
            };
            let handle = claim.map_err(|e| match e {
                PublishRefused::AlreadyPublishing => RelayError::AlreadyPublishing,
                PublishRefused::Unavailable | PublishRefused::ClusterUnavailable => {
                    RelayError::Unavailable
                }
                PublishRefused::TooManyStreams { limit } => RelayError::TooManyStreams { limit },
            })?;
            info!(core = %self.core.id, stream = %self.key, url = %self.link.status.url(), "source ready");
            self.link.status.ready();
            self.conn
                .guard
                .control
                .info
                .set_role(ConnState::Publish, self.key.path(), "");
            self.publish = Some(handle);
            if let Some(held) = &self.link.held {
                held.last_timestamp.set(Some(frame.timestamp));
            }
        }
        if let Some(p) = &self.publish {
            p.push(frame);
        }
        Ok(())
    }

    async fn rtmp(
        &mut self,
        u: &RtmpUrl,
        transport: Transport,
        reader: &mut NetReader,
    ) -> RelayError {
        if u.stream.is_empty() {
            return RelayError::NoStreamName;
        }
        let mut config = ClientConfig::new(&u.app, &u.tc_url, &u.stream, ClientMode::Play);
        config.handshake_seed = rand::random();
        let mut client = ClientSession::new(config);
        let mut rtmp = RtmpLink::new(transport);
        loop {
            if let Err(e) = rtmp
                .turn(&mut client, self.conn, reader, &self.link.status)
                .await
            {
                return e;
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
    ///
    /// Over UDP (`udp`), each chosen track gets an RTP/RTCP socket pair on this core; the RTSP
    /// connection then only carries requests, so the media's silence is what times out.
    /// With `automatic`, a `461` answer to SETUP or no RTP in [`UDP_FIRST_PACKET_TIMEOUT`]
    /// ends the attempt with [`RtspEnd::UdpFailed`].
    async fn rtsp(
        &mut self,
        u: &RtspUrl,
        reader: &mut NetReader,
        udp: bool,
        automatic: bool,
    ) -> RtspEnd {
        let cnonce = format!("{:016x}", rand::random::<u64>());
        let mut client = RtspClient::new(u.clone(), "corestream", &cnonce);
        let end = self.rtsp_session(&mut client, reader, udp, automatic).await;
        // A polite goodbye; the connection closes right after, whatever the server answers.
        client.teardown();
        let mut out = BytesMut::new();
        client.poll_transmit(&mut out);
        link::send(self.conn, &mut out);
        end
    }

    async fn rtsp_session(
        &mut self,
        client: &mut RtspClient,
        reader: &mut NetReader,
        udp: bool,
        automatic: bool,
    ) -> RtspEnd {
        let read_timeout = self.core.snapshot().config.read_timeout.duration();
        let server = self.conn.peer.map(|p| p.ip());
        let mut media: Option<UdpMedia> = None;
        // Over UDP, once playing: when media must have arrived by (the first packet, then
        // `readTimeout` after the last), and whether any RTP came yet.
        let mut media_deadline: Option<Instant> = None;
        let mut got_rtp = false;
        let mut last_tcp = Instant::now();
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
            let input = match &media {
                None => link::read(self.conn, reader, &mut buf, &self.link.status)
                    .await
                    .map(RtspInput::Tcp),
                Some(m) => {
                    let mut wake = next_report;
                    if let Some(t) = client.poll_timeout() {
                        wake = wake.min(t);
                    }
                    wake = wake.min(media_deadline.unwrap_or(last_tcp + read_timeout));
                    self.rtsp_read_udp(reader, &mut buf, m, wake).await
                }
            };
            let input = match input {
                Ok(i) => i,
                Err(e) => return RtspEnd::Error(e),
            };
            let now = Instant::now();
            match input {
                RtspInput::Tcp(n) => {
                    last_tcp = now;
                    if let Err(e) = client.handle_input(now, &buf[..n]) {
                        let refused = matches!(
                            e,
                            RtspError::Status {
                                method: "SETUP",
                                status: 461,
                                ..
                            }
                        );
                        if client.is_udp() && automatic && refused {
                            return RtspEnd::UdpFailed(e.into());
                        }
                        return RtspEnd::Error(e.into());
                    }
                }
                RtspInput::Udp(d) => {
                    if !d.rtcp {
                        got_rtp = true;
                        media_deadline = Some(now + read_timeout);
                    }
                    if let Some(Some(r)) = receivers.get_mut(d.track) {
                        if d.rtcp {
                            r.on_rtcp(now, &d.data);
                        } else {
                            r.on_rtp(now, &d.data);
                        }
                    }
                    if !d.rtcp {
                        if let Some(Some(dp)) = depacketizers.get_mut(d.track) {
                            if let Err(e) = dp.push(&d.data, &mut frames) {
                                debug!(stream = %self.key, track = d.track, "rtp packet skipped: {e}");
                            }
                            for frame in frames.drain(..) {
                                if let Err(e) = self.deliver(frame).await {
                                    return RtspEnd::Error(e);
                                }
                            }
                        }
                    }
                }
                RtspInput::Idle => {}
            }

            if let Some(deadline) = media_deadline {
                if now >= deadline {
                    if automatic && !got_rtp {
                        return RtspEnd::UdpFailed(RelayError::Timeout(
                            "no rtp over udp: the server or a firewall drops it",
                        ));
                    }
                    return RtspEnd::Error(RelayError::Timeout(if got_rtp {
                        "no rtp over udp for readTimeout"
                    } else {
                        "no rtp over udp"
                    }));
                }
            } else if media.is_some() && now >= last_tcp + read_timeout {
                // Still in the handshake: the server did not answer within readTimeout.
                return RtspEnd::Error(RelayError::Timeout("no data for readTimeout"));
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
                        let transport = match (udp, server) {
                            (true, Some(server)) => match UdpMedia::bind(&chosen, server) {
                                Ok(m) => {
                                    let ports = m.ports();
                                    media = Some(m);
                                    RtpTransport::Udp(ports)
                                }
                                // `automatic` carries on over TCP when no port pair binds.
                                Err(e) if automatic => {
                                    warn!(stream = %self.key, "rtsp over udp impossible ({e}): using tcp");
                                    RtpTransport::Tcp
                                }
                                Err(e) => return RtspEnd::Error(e),
                            },
                            _ => RtpTransport::Tcp,
                        };
                        if let Err(e) = client.setup_with(&chosen, transport) {
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
                        if media.is_some() {
                            let wait = if automatic {
                                UDP_FIRST_PACKET_TIMEOUT
                            } else {
                                read_timeout
                            };
                            media_deadline = Some(now + wait);
                        }
                        debug!(stream = %self.key, ?rtp_info, udp = media.is_some(), "rtsp source playing");
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
                        let to = client.server_ports(track).zip(server);
                        match (media.as_ref().and_then(|m| m.rtcp_socket(track)), to) {
                            (Some(socket), Some(((_, port), ip))) => {
                                // A lost report is only a report: errors are not the pull's.
                                let _ = socket.send_to(&report, SocketAddr::new(ip, port)).await;
                            }
                            (Some(_), None) => {}
                            (None, _) => client.send_rtcp(track, &report),
                        }
                        report.clear();
                    }
                }
            }
        }
    }
}

impl Feed<'_> {
    /// Over UDP: waits for bytes of the RTSP connection (no timeout of its own: the media's
    /// silence is watched instead) or a datagram, until `wake`.
    async fn rtsp_read_udp(
        &self,
        reader: &mut NetReader,
        buf: &mut [u8],
        media: &UdpMedia,
        wake: Instant,
    ) -> Result<RtspInput, RelayError> {
        let left = wake.saturating_duration_since(Instant::now());
        let tcp = async {
            link::read_within(self.conn, reader, buf, &self.link.status, None)
                .await
                .map(RtspInput::Tcp)
        };
        let datagram = async {
            match media.rx.recv().await {
                Some(d) => {
                    self.conn
                        .guard
                        .control
                        .info
                        .add_bytes_in(d.data.len() as u64);
                    self.link.status.add_bytes(d.data.len() as u64);
                    Ok(RtspInput::Udp(d))
                }
                // The readers live as long as `media`: not reached.
                None => Ok(RtspInput::Idle),
            }
        };
        match glommio::timer::timeout(left, async { Ok(future::or(tcp, datagram).await) }).await {
            Ok(r) => r,
            Err(_) => Ok(RtspInput::Idle),
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
