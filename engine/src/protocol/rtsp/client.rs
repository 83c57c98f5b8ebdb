//! The RTSP client session: `OPTIONS`, `DESCRIBE`, `SETUP` of the tracks the caller picks (RTP
//! interleaved over the RTSP connection, or over UDP to ports the caller bound), `PLAY`, keep-alives within the session timeout, and
//! `TEARDOWN`; Basic/Digest authentication and redirects on the way.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::auth::Challenge;
use super::message::{encode_ok, encode_request, Decoded, Decoder, MessageError, Response};
use super::sdp::{resolve_control, Sdp, SdpError};
use super::url::{RtspUrl, RtspUrlError};

/// The session timeout assumed when the server states none (RFC 2326 §12.37).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtspError {
    #[error("rtsp: {0}")]
    Message(#[from] MessageError),
    #[error("{method}: rtsp status {status} {reason}")]
    Status {
        method: &'static str,
        status: u16,
        reason: String,
    },
    #[error("sdp: {0}")]
    Sdp(#[from] SdpError),
    #[error("the sdp has no track we can play")]
    NoTracks,
    #[error("the server answered SETUP without an interleaved TCP transport: '{0}'")]
    Transport(String),
    #[error("the server answered SETUP over UDP with a TCP transport: '{0}'")]
    UdpTransport(String),
    #[error("the server answered SETUP without a session")]
    NoSession,
    #[error("a {status} redirect without a valid Location: {reason}")]
    BadRedirect { status: u16, reason: String },
    #[error("redirect url: {0}")]
    RedirectUrl(#[from] RtspUrlError),
    #[error("a response with CSeq {got:?} while waiting for {expected}")]
    UnexpectedCseq { expected: u32, got: Option<u32> },
    #[error("the server lost the session (454)")]
    SessionLost,
}

/// What the session tells its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ClientEvent {
    /// The server described the stream: pick the tracks with [`Client::setup`].
    Described(Sdp),
    /// `PLAY` succeeded; RTP flows. `rtp_info` holds, per set-up track, the RTP timestamp and
    /// sequence number of the play position when the server said them.
    Playing { rtp_info: Vec<RtpInfo> },
    /// An RTP packet of the SDP's track `track`.
    Rtp { track: usize, packet: Bytes },
    /// An RTCP packet of track `track`.
    Rtcp { track: usize, packet: Bytes },
    /// The server moved the stream: connect to `url` with a new session.
    Redirect(RtspUrl),
}

/// How RTP and RTCP reach the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpTransport {
    /// Interleaved on the RTSP connection (`RTP/AVP/TCP;interleaved=`).
    Tcp,
    /// Over UDP (`RTP/AVP;unicast;client_port=N-N+1`): the caller's RTP port for each track it
    /// sets up, in the same order; RTCP is on the port above. The caller owns the sockets.
    Udp(Vec<u16>),
}

/// What a `Transport` header says (a SETUP answer's, mostly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportSpec {
    /// `RTP/AVP/TCP`: interleaved on the RTSP connection.
    pub tcp: bool,
    /// The RTP channel of `interleaved=a-b`.
    pub interleaved: Option<u8>,
    /// `client_port=a-b` (RTP, RTCP).
    pub client_port: Option<(u16, u16)>,
    /// `server_port=a-b` (RTP, RTCP): where the server sends from and reads RTCP.
    pub server_port: Option<(u16, u16)>,
}

impl TransportSpec {
    /// Parses the first transport of a `Transport` header; unknown parameters are ignored.
    pub fn parse(value: &str) -> TransportSpec {
        let first = value.split(',').next().unwrap_or_default();
        let mut parts = first.split(';');
        let protocol = parts.next().unwrap_or_default().trim().to_ascii_uppercase();
        let mut spec = TransportSpec {
            tcp: protocol.ends_with("/TCP"),
            ..TransportSpec::default()
        };
        for p in parts {
            let (k, v) = p.trim().split_once('=').unwrap_or((p.trim(), ""));
            match k.to_ascii_lowercase().as_str() {
                "interleaved" => {
                    spec.interleaved = v.split('-').next().and_then(|c| c.trim().parse().ok())
                }
                "client_port" => spec.client_port = port_pair(v),
                "server_port" => spec.server_port = port_pair(v),
                _ => {}
            }
        }
        spec
    }

    /// The `Transport` a SETUP asks for: interleaved channels `channel`-`channel+1`.
    pub fn request_tcp(channel: u8) -> String {
        format!(
            "RTP/AVP/TCP;unicast;interleaved={}-{}",
            channel,
            channel.saturating_add(1)
        )
    }

    /// The `Transport` a SETUP asks for: RTP to UDP port `rtp_port`, RTCP to the one above.
    pub fn request_udp(rtp_port: u16) -> String {
        format!(
            "RTP/AVP;unicast;client_port={}-{}",
            rtp_port,
            rtp_port.saturating_add(1)
        )
    }
}

/// `a-b`, or a lone `a` (RTCP then on `a+1`).
fn port_pair(v: &str) -> Option<(u16, u16)> {
    let mut it = v.split('-');
    let rtp: u16 = it.next()?.trim().parse().ok()?;
    let rtcp = match it.next() {
        Some(r) => r.trim().parse().ok()?,
        None => rtp.checked_add(1)?,
    };
    Some((rtp, rtcp))
}

/// One track's entry of `RTP-Info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    pub track: usize,
    pub seq: Option<u16>,
    pub rtptime: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectOptions,
    ExpectDescribe,
    /// Described; waits for [`Client::setup`].
    ExpectTrackChoice,
    ExpectSetup,
    ExpectPlay,
    Playing,
    Closed,
}

/// A request on the wire, kept to resend it with credentials.
#[derive(Debug, Clone)]
struct Sent {
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, String)>,
    cseq: u32,
    authorized: bool,
    /// Already resent once for a stale nonce.
    stale_retried: bool,
}

/// An RTSP client session over one TCP connection.
///
/// Contract (as quinn-proto's `Connection`): after creating it, and after each
/// [`Client::handle_input`], [`Client::handle_timeout`], [`Client::setup`] or
/// [`Client::teardown`], drain [`Client::poll_transmit`] (bytes to write) and
/// [`Client::poll_event`], then wait for input or [`Client::poll_timeout`]. Errors end the
/// session. The session never reads a clock: `now` comes from the caller.
#[derive(Debug)]
pub struct Client {
    url: RtspUrl,
    user_agent: String,
    /// The client nonce for Digest `qop=auth`, from the caller (the session has no randomness).
    cnonce: String,
    decoder: Decoder,
    out: BytesMut,
    events: VecDeque<ClientEvent>,
    state: State,
    cseq: u32,
    sent: Option<Sent>,
    challenge: Option<Challenge>,
    nonce_count: u32,
    /// Methods the server listed in `Public`.
    public: String,
    base: String,
    sdp: Option<Sdp>,
    /// Tracks still to set up, then those set up with their interleaved channels.
    to_setup: VecDeque<usize>,
    channels: Vec<(u8, usize)>,
    /// RTP over UDP: the caller's RTP port per track still to set up.
    udp: Option<VecDeque<u16>>,
    /// RTP over UDP: each set-up track's server ports, as its SETUP answer said them.
    server_ports: Vec<(usize, Option<(u16, u16)>)>,
    session: Option<String>,
    session_timeout: Duration,
    next_keepalive: Option<Instant>,
    /// CSeqs of keep-alives awaiting their answer.
    keepalives: Vec<u32>,
}

impl Client {
    /// Starts a session for `url`: `OPTIONS` is queued at once.
    pub fn new(url: RtspUrl, user_agent: &str, cnonce: &str) -> Client {
        let base = url.request_uri();
        let mut c = Client {
            url,
            user_agent: user_agent.to_owned(),
            cnonce: cnonce.to_owned(),
            decoder: Decoder::new(),
            out: BytesMut::new(),
            events: VecDeque::new(),
            state: State::ExpectOptions,
            cseq: 0,
            sent: None,
            challenge: None,
            nonce_count: 0,
            public: String::new(),
            base,
            sdp: None,
            to_setup: VecDeque::new(),
            channels: Vec::new(),
            udp: None,
            server_ports: Vec::new(),
            session: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            next_keepalive: None,
            keepalives: Vec::new(),
        };
        let uri = c.url.request_uri();
        c.request("OPTIONS", uri, Vec::new());
        c
    }

    pub fn url(&self) -> &RtspUrl {
        &self.url
    }

    /// The session timeout the server announced.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) -> Result<(), RtspError> {
        self.decoder.feed(input);
        while let Some(item) = self.decoder.decode()? {
            match item {
                Decoded::Interleaved { .. } if self.udp.is_some() => {}
                Decoded::Interleaved { channel, payload } => {
                    let Some(&(base, track)) =
                        self.channels.iter().find(|(c, _)| channel & !1 == *c)
                    else {
                        continue;
                    };
                    self.events.push_back(if channel == base {
                        ClientEvent::Rtp {
                            track,
                            packet: payload,
                        }
                    } else {
                        ClientEvent::Rtcp {
                            track,
                            packet: payload,
                        }
                    });
                }
                Decoded::Request { cseq, .. } => encode_ok(&mut self.out, cseq.unwrap_or(0)),
                Decoded::Response(r) => self.on_response(now, r)?,
            }
            if self.state == State::Closed {
                break;
            }
        }
        Ok(())
    }

    /// Sends a keep-alive when one is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != State::Playing {
            return;
        }
        if let Some(due) = self.next_keepalive {
            if now >= due {
                // GET_PARAMETER when the server lists it (it leaves the session alone), else OPTIONS.
                let method = if self.public.contains("GET_PARAMETER") {
                    "GET_PARAMETER"
                } else {
                    "OPTIONS"
                };
                let uri = self.aggregate_uri();
                let cseq = self.write(method, &uri, &[]);
                self.keepalives.push(cseq);
                self.next_keepalive = Some(now + self.keepalive_interval());
            }
        }
    }

    /// When [`Client::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_keepalive
    }

    /// Moves the bytes to write into `out`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.out);
        self.out.clear();
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Sets up the SDP's tracks `tracks` (in that order), RTP interleaved, and plays them.
    pub fn setup(&mut self, tracks: &[usize]) -> Result<(), RtspError> {
        self.setup_with(tracks, RtpTransport::Tcp)
    }

    /// Sets up the SDP's tracks `tracks` (in that order) with `transport` and plays them. Over UDP
    /// a server that refuses the transport answers `461 Unsupported Transport`: the session ends
    /// with that status, and the caller may start over with TCP.
    pub fn setup_with(
        &mut self,
        tracks: &[usize],
        transport: RtpTransport,
    ) -> Result<(), RtspError> {
        if tracks.is_empty() {
            return Err(RtspError::NoTracks);
        }
        self.udp = match transport {
            RtpTransport::Tcp => None,
            RtpTransport::Udp(ports) => {
                if ports.len() < tracks.len() {
                    return Err(RtspError::NoTracks);
                }
                Some(ports.into_iter().collect())
            }
        };
        self.to_setup = tracks.iter().copied().collect();
        self.state = State::ExpectSetup;
        self.setup_next();
        Ok(())
    }

    /// Whether RTP comes over UDP (the caller reads its sockets and sends RTCP itself).
    pub fn is_udp(&self) -> bool {
        self.udp.is_some()
    }

    /// RTP over UDP: the server's RTP and RTCP ports for the SDP's track `track`, when its SETUP
    /// answer said them.
    pub fn server_ports(&self, track: usize) -> Option<(u16, u16)> {
        self.server_ports
            .iter()
            .find(|(t, _)| *t == track)
            .and_then(|(_, p)| *p)
    }

    /// Queues an RTCP packet (a receiver report) for the SDP's track `track`, on its interleaved
    /// RTCP channel; nothing when the track is not set up, or over UDP (the caller sends it).
    pub fn send_rtcp(&mut self, track: usize, packet: &[u8]) {
        if self.udp.is_some() {
            return;
        }
        let Some(&(channel, _)) = self.channels.iter().find(|(_, t)| *t == track) else {
            return;
        };
        let Ok(len) = u16::try_from(packet.len()) else {
            return;
        };
        self.out.extend_from_slice(&[b'$', channel + 1]);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(packet);
    }

    /// Ends the session politely: `TEARDOWN` is queued; nothing more is expected.
    pub fn teardown(&mut self) {
        if self.session.is_some() && self.state != State::Closed {
            let uri = self.aggregate_uri();
            self.write("TEARDOWN", &uri, &[]);
        }
        self.state = State::Closed;
        self.next_keepalive = None;
    }

    fn keepalive_interval(&self) -> Duration {
        (self.session_timeout / 2).max(Duration::from_secs(1))
    }

    fn aggregate_uri(&self) -> String {
        let control = self.sdp.as_ref().and_then(|s| s.control.as_deref());
        resolve_control(&self.base, control)
    }

    fn setup_next(&mut self) {
        let Some(track) = self.to_setup.pop_front() else {
            let uri = self.aggregate_uri();
            self.state = State::ExpectPlay;
            self.request("PLAY", uri, vec![("Range", "npt=0.000-".to_owned())]);
            return;
        };
        let control = self
            .sdp
            .as_ref()
            .and_then(|s| s.tracks.get(track))
            .and_then(|t| t.control.clone());
        let uri = resolve_control(&self.base, control.as_deref());
        let channel = (self.channels.len() * 2) as u8;
        self.channels.push((channel, track));
        let transport = match self.udp.as_mut().and_then(|ports| ports.pop_front()) {
            Some(port) => TransportSpec::request_udp(port),
            None => TransportSpec::request_tcp(channel),
        };
        self.request("SETUP", uri, vec![("Transport", transport)]);
    }

    /// Writes a request and remembers it as the one awaiting an answer.
    fn request(&mut self, method: &'static str, uri: String, headers: Vec<(&'static str, String)>) {
        let refs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let cseq = self.write(method, &uri, &refs);
        self.sent = Some(Sent {
            method,
            uri,
            headers,
            cseq,
            authorized: self.challenge.is_some(),
            stale_retried: false,
        });
    }

    /// Writes one request with the common headers; returns its CSeq.
    fn write(&mut self, method: &str, uri: &str, extra: &[(&str, &str)]) -> u32 {
        self.cseq += 1;
        let mut headers: Vec<(&str, String)> = vec![("User-Agent", self.user_agent.clone())];
        if let (Some(ch), Some(user)) = (&self.challenge, &self.url.user) {
            self.nonce_count += 1;
            let password = self.url.password.as_deref().unwrap_or_default();
            let value =
                ch.authorization(user, password, method, uri, self.nonce_count, &self.cnonce);
            headers.push(("Authorization", value));
        }
        if method == "DESCRIBE" {
            headers.push(("Accept", "application/sdp".to_owned()));
        }
        if let Some(s) = &self.session {
            headers.push(("Session", s.clone()));
        }
        let mut all: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        all.extend_from_slice(extra);
        encode_request(&mut self.out, method, uri, self.cseq, &all);
        self.cseq
    }

    fn on_response(&mut self, now: Instant, r: Response) -> Result<(), RtspError> {
        if let Some(i) = self.keepalives.iter().position(|&c| Some(c) == r.cseq()) {
            self.keepalives.swap_remove(i);
            if r.status == 454 {
                return Err(RtspError::SessionLost);
            }
            // A server that refuses GET_PARAMETER (405, 501) still saw the session used.
            if !(200..300).contains(&r.status) {
                self.public.clear();
            }
            return Ok(());
        }
        let Some(sent) = self.sent.take() else {
            // Nothing asked (a late answer after TEARDOWN): ignored.
            return Ok(());
        };
        if r.cseq().is_some_and(|c| c != sent.cseq) {
            return Err(RtspError::UnexpectedCseq {
                expected: sent.cseq,
                got: r.cseq(),
            });
        }
        // A first refusal gets an answer with credentials; so does a Digest nonce that went stale
        // (`stale=true`: the credentials were right) once per request.
        let stale = r.headers_named("WWW-Authenticate").any(|v| {
            v.to_ascii_lowercase()
                .replace(' ', "")
                .contains("stale=true")
        });
        if r.status == 401
            && (!sent.authorized || (stale && !sent.stale_retried))
            && self.url.user.is_some()
        {
            if let Some(ch) = Challenge::pick(r.headers_named("WWW-Authenticate")) {
                self.challenge = Some(ch);
                self.nonce_count = 0;
                self.request(sent.method, sent.uri, sent.headers);
                if let Some(resent) = &mut self.sent {
                    resent.stale_retried = sent.authorized;
                }
                return Ok(());
            }
        }
        if (300..400).contains(&r.status) {
            let location = r.header("Location").ok_or_else(|| RtspError::BadRedirect {
                status: r.status,
                reason: r.reason.clone(),
            })?;
            let url = RtspUrl::parse(location)?;
            self.state = State::Closed;
            self.events.push_back(ClientEvent::Redirect(url));
            return Ok(());
        }
        if !(200..300).contains(&r.status) {
            return Err(RtspError::Status {
                method: sent.method,
                status: r.status,
                reason: r.reason,
            });
        }
        match self.state {
            State::ExpectOptions => {
                self.public = r.header("Public").unwrap_or_default().to_owned();
                self.state = State::ExpectDescribe;
                let uri = self.url.request_uri();
                self.request("DESCRIBE", uri, Vec::new());
            }
            State::ExpectDescribe => {
                let sdp = Sdp::parse(&r.body)?;
                if let Some(b) = r.header("Content-Base").or(r.header("Content-Location")) {
                    self.base = b.to_owned();
                }
                self.sdp = Some(sdp.clone());
                self.state = State::ExpectTrackChoice;
                self.events.push_back(ClientEvent::Described(sdp));
            }
            State::ExpectSetup => {
                let transport = r.header("Transport").unwrap_or_default();
                let spec = TransportSpec::parse(transport);
                if self.udp.is_some() {
                    if spec.tcp {
                        return Err(RtspError::UdpTransport(transport.to_owned()));
                    }
                    if let Some(&(_, track)) = self.channels.last() {
                        self.server_ports.push((track, spec.server_port));
                    }
                } else {
                    if !transport.contains("TCP") {
                        return Err(RtspError::Transport(transport.to_owned()));
                    }
                    // Some cameras leave `interleaved` out of their answer: the channels asked
                    // for hold.
                    if let (Some(channel), Some(last)) =
                        (spec.interleaved, self.channels.last_mut())
                    {
                        last.0 = channel;
                    }
                }
                if self.session.is_none() {
                    let value = r.header("Session").ok_or(RtspError::NoSession)?;
                    let mut parts = value.split(';');
                    self.session = parts.next().map(|s| s.trim().to_owned());
                    for p in parts {
                        if let Some(t) = p.trim().strip_prefix("timeout=") {
                            if let Ok(secs) = t.trim().parse::<u64>() {
                                self.session_timeout = Duration::from_secs(secs.max(2));
                            }
                        }
                    }
                }
                self.setup_next();
            }
            State::ExpectPlay => {
                let rtp_info = self.rtp_info(r.header("RTP-Info").unwrap_or_default());
                self.state = State::Playing;
                self.next_keepalive = Some(now + self.keepalive_interval());
                self.events.push_back(ClientEvent::Playing { rtp_info });
            }
            State::ExpectTrackChoice | State::Playing | State::Closed => {}
        }
        Ok(())
    }

    /// Matches each `RTP-Info` entry to a set-up track by its control URL.
    fn rtp_info(&self, header: &str) -> Vec<RtpInfo> {
        let Some(sdp) = &self.sdp else {
            return Vec::new();
        };
        let mut infos = Vec::new();
        for entry in header.split(',') {
            let mut url = "";
            let mut info = RtpInfo {
                track: usize::MAX,
                seq: None,
                rtptime: None,
            };
            for p in entry.split(';') {
                let (k, v) = p.trim().split_once('=').unwrap_or((p.trim(), ""));
                match k {
                    "url" => url = v,
                    "seq" => info.seq = v.parse().ok(),
                    "rtptime" => info.rtptime = v.parse().ok(),
                    _ => {}
                }
            }
            let found = self.channels.iter().map(|&(_, t)| t).find(|&t| {
                let control = sdp.tracks.get(t).and_then(|t| t.control.as_deref());
                let full = resolve_control(&self.base, control);
                url == full || control.is_some_and(|c| !c.is_empty() && url.ends_with(c))
            });
            if let Some(track) = found {
                info.track = track;
                infos.push(info);
            }
        }
        infos
    }
}

#[cfg(test)]
mod tests;
