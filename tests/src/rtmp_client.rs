//! A blocking RTMP test client: the engine's own sans-IO [`ClientSession`] over a
//! `std::net::TcpStream`, plus raw-socket helpers for sending what no real client would.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corestream::protocol::rtmp::handshake::ClientHandshake;
use corestream::protocol::rtmp::{
    ClientConfig, ClientEvent, ClientMode, ClientSession, HandshakeProgress, SessionError,
};
use socket2::{Domain, Protocol, Socket, Type};

/// Why [`RtmpClient::next_event`] returned no event.
#[derive(Debug)]
pub enum ClientError {
    /// Nothing arrived before the deadline.
    Timeout,
    /// The server closed the connection (EOF or reset).
    Closed,
    Io(io::Error),
    /// The server sent something our session could not parse.
    Protocol(SessionError),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Closed => f.write_str("closed by the server"),
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// Connects a TCP socket to `addr`, with `SO_RCVBUF` set first when `rcvbuf` is given (it must
/// be set before connecting to bound the TCP window the server sees).
pub fn tcp_connect(addr: SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

/// One RTMP connection driven by a [`ClientSession`], read and written synchronously.
pub struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
    out: BytesMut,
    buf: Vec<u8>,
    events: VecDeque<ClientEvent>,
}

impl RtmpClient {
    /// Connects to `rtmp://127.0.0.1:port/app/stream` to publish or play; the RTMP handshake and
    /// `connect` start at once, and their progress arrives as events.
    pub fn connect(port: u16, app: &str, stream: &str, mode: ClientMode) -> io::Result<Self> {
        Self::connect_with(port, app, stream, mode, None)
    }

    /// Like [`RtmpClient::connect`], with a small `SO_RCVBUF` when `rcvbuf` is given.
    pub fn connect_with(
        port: u16,
        app: &str,
        stream: &str,
        mode: ClientMode,
        rcvbuf: Option<usize>,
    ) -> io::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = tcp_connect(addr, rcvbuf)?;
        let mut config =
            ClientConfig::new(app, format!("rtmp://127.0.0.1:{port}/{app}"), stream, mode);
        config.handshake_seed = rand_seed();
        let mut client = RtmpClient {
            stream: tcp,
            session: ClientSession::new(config),
            out: BytesMut::new(),
            buf: vec![0; 64 * 1024],
            events: VecDeque::new(),
        };
        client.flush()?;
        Ok(client)
    }

    /// The underlying socket (e.g. to stop reading from it, or to read it raw).
    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.session.poll_transmit(&mut self.out) {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next event, reading from the socket as needed until `deadline`.
    pub fn next_event(&mut self, deadline: Instant) -> Result<ClientEvent, ClientError> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .set_read_timeout(Some(wait))
                .map_err(ClientError::Io)?;
            let n = match self.stream.read(&mut self.buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ClientError::Closed)
                }
                Err(e) => return Err(ClientError::Io(e)),
            };
            self.session
                .handle_input(&self.buf[..n])
                .map_err(ClientError::Protocol)?;
            // Acknowledgements and ping responses go out as soon as they are due.
            self.flush().map_err(ClientError::Io)?;
            while let Some(e) = self.session.poll_event() {
                self.events.push_back(e);
            }
        }
    }

    /// Reads events until `want` picks one out, or `timeout` passes; returns the one picked and
    /// every event seen before it.
    pub fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&ClientEvent) -> Option<T>,
    ) -> Result<(T, Vec<ClientEvent>), (ClientError, Vec<ClientEvent>)> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.next_event(deadline) {
                Ok(e) => match want(&e) {
                    Some(t) => return Ok((t, seen)),
                    None => seen.push(e),
                },
                Err(err) => return Err((err, seen)),
            }
        }
    }

    /// Waits for `PlayStarted`.
    pub fn wait_play_started(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, |e| {
            matches!(e, ClientEvent::PlayStarted { .. }).then_some(())
        })
        .map(|_| ())
        .map_err(|(err, seen)| format!("no PlayStarted: {err}; events: {seen:?}"))
    }

    /// Waits for the next `Status` event and returns its code.
    pub fn wait_status(&mut self, timeout: Duration) -> Result<String, String> {
        self.wait_for(timeout, |e| match e {
            ClientEvent::Status { code, .. } => Some(code.clone()),
            _ => None,
        })
        .map(|(code, _)| code)
        .map_err(|(err, seen)| format!("no Status: {err}; events: {seen:?}"))
    }

    /// Reads until the stream ends (StreamEOF or the connection closes) or `timeout` passes;
    /// returns every event, and `true` if the stream ended rather than timed out.
    pub fn collect_until_end(&mut self, timeout: Duration) -> (Vec<ClientEvent>, bool) {
        let deadline = Instant::now() + timeout;
        let mut events = Vec::new();
        loop {
            match self.next_event(deadline) {
                Ok(ClientEvent::StreamEof) => {
                    events.push(ClientEvent::StreamEof);
                    return (events, true);
                }
                Ok(e) => events.push(e),
                Err(ClientError::Closed) => return (events, true),
                Err(_) => return (events, false),
            }
        }
    }

    /// Waits for `PublishStarted`.
    pub fn wait_publish_started(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_for(timeout, |e| {
            matches!(e, ClientEvent::PublishStarted { .. }).then_some(())
        })
        .map(|_| ())
        .map_err(|(err, seen)| format!("no PublishStarted: {err}; events: {seen:?}"))
    }

    /// Sends one frame (after `PublishStarted`).
    pub fn send_media(&mut self, frame: &corestream::media::Frame) -> io::Result<()> {
        self.session.send_media(frame);
        self.flush()
    }

    /// Ends the stream as ffmpeg does (`FCUnpublish`/`deleteStream`) and closes the connection.
    pub fn goodbye(mut self) -> io::Result<()> {
        self.session.goodbye();
        self.flush()?;
        self.stream.shutdown(std::net::Shutdown::Both)
    }
}

/// A handshake seed that differs between connections.
fn rand_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ N
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Opens a raw TCP connection to the engine and completes a valid RTMP handshake on it; what
/// is written next is the chunk stream, unchecked.
pub fn raw_after_handshake(port: u16) -> io::Result<TcpStream> {
    let mut tcp = tcp_connect(SocketAddr::from(([127, 0, 0, 1], port)), None)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut hs = ClientHandshake::new(
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(rand_seed()),
    );
    tcp.write_all(&hs.c0c1())?;
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let progress = hs
            .handle_input(&buf[..n])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match progress {
            HandshakeProgress::InProgress { response } => tcp.write_all(&response)?,
            HandshakeProgress::Completed {
                response,
                remaining,
            } => {
                tcp.write_all(&response)?;
                if !remaining.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "server sent chunks before we did",
                    ));
                }
                return Ok(tcp);
            }
        }
    }
}

/// Encodes one message as the chunk stream carries it at the default chunk size (128).
pub fn chunked(csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Bytes {
    use corestream::protocol::rtmp::{encode_message, RawMessage};
    let mut out = BytesMut::new();
    let raw = RawMessage::new(type_id, stream_id, 0, Bytes::copy_from_slice(payload));
    encode_message(&mut out, csid, &raw, 128);
    out.freeze()
}

/// Reads `tcp` until the server closes it or `timeout` passes; returns how long the close took,
/// or `None` if the connection was still open at the deadline. Whatever the server sends is
/// discarded.
pub fn wait_closed(tcp: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if tcp.set_read_timeout(Some(deadline - now)).is_err() {
            return Some(start.elapsed());
        }
        match tcp.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // Reset (or any other failure): the server is gone from this connection.
            Err(_) => return Some(start.elapsed()),
        }
    }
}
