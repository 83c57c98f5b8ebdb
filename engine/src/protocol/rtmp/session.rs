//! The server side of an RTMP connection: handshake, chunk stream, commands and media, as one
//! sans-IO state machine.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::BytesMut;
use thiserror::Error;

use super::amf0::{Amf0Error, Amf0Value};
use super::chunk::{csid, ChunkError, ChunkLimits, RawMessage, OUT_CHUNK_SIZE};
use super::connection::{self, ChunkConnection, Role};
use super::handshake::{HandshakeError, ServerHandshake};
use super::message::{
    self, status_object, BandwidthLimit, Command, Message, MessageError, UserControl,
};
use crate::media::Frame;

/// Ways a peer can break an RTMP session. Any of them ends it: the caller sends what
/// `poll_transmit` still has, if it likes, and closes the connection.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    #[error("command {command:?} before connect")]
    CommandBeforeConnect { command: String },
    #[error("second connect on one connection")]
    DuplicateConnect,
    #[error("connect without an app")]
    ConnectWithoutApp,
    #[error("{command} without a stream name")]
    MissingStreamName { command: &'static str },
    #[error("{command} while a stream is already active")]
    StreamBusy { command: &'static str },
}

impl From<Amf0Error> for SessionError {
    fn from(e: Amf0Error) -> Self {
        Self::Message(MessageError::Amf0(e))
    }
}

/// Window Acknowledgement Size and peer bandwidth our RTMP client announces (what ffmpeg and SRS
/// use).
pub const DEFAULT_WINDOW_ACK_SIZE: u32 = 2_500_000;

/// Window Acknowledgement Size and peer bandwidth the server announces. The engine does not pace
/// its sending on acknowledgements (TCP does that), so a player's acknowledgement only costs the
/// core a wake-up. librtmp (rtmpdump, OBS and every player built on it) acknowledges every tenth
/// of the peer bandwidth, ffmpeg every half of the window: at 2.5 Mbit/s, 2.5 MB woke the core
/// once a second per player, nginx-rtmp's 5 MB every two seconds, and 50 MB every sixteen. With
/// 300 rtmpdump players at the default merge window, 50 MB took `io_uring_enter` from ~2,700 to
/// ~1,720 a second and the CPU per delivered Gbit down by about an eighth (README, "Benchmarks").
/// A larger window only loosens a limit on the peer.
pub const SERVER_WINDOW_ACK_SIZE: u32 = 50_000_000;

/// Settings of a [`ServerSession`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Longest message accepted from the peer (default 16 MiB).
    pub max_message_len: usize,
    /// Most chunk streams the peer may use (default 64).
    pub max_chunk_streams: usize,
    /// Most bytes held in partial messages (default 32 MiB).
    pub max_partial_bytes: usize,
    /// Window Acknowledgement Size announced to the peer after `connect`.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth announced after `connect` (dynamic limit).
    pub peer_bandwidth: u32,
    /// Chunk size announced after `connect` and used for everything we send afterwards. Keep
    /// it at [`OUT_CHUNK_SIZE`] so media encoded once per core fits every player.
    pub chunk_size_out: usize,
    /// Seed of the handshake's random bytes. They protect nothing, but should differ between
    /// connections: the driver passes e.g. `rand::random()`.
    pub handshake_seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let limits = ChunkLimits::default();
        Self {
            max_message_len: limits.max_message_len,
            max_chunk_streams: limits.max_chunk_streams,
            max_partial_bytes: limits.max_partial_bytes,
            window_ack_size: SERVER_WINDOW_ACK_SIZE,
            peer_bandwidth: SERVER_WINDOW_ACK_SIZE,
            chunk_size_out: OUT_CHUNK_SIZE,
            handshake_seed: 0,
        }
    }
}

impl SessionConfig {
    pub(crate) fn limits(&self) -> ChunkLimits {
        ChunkLimits {
            max_message_len: self.max_message_len,
            max_chunk_streams: self.max_chunk_streams,
            max_partial_bytes: self.max_partial_bytes,
        }
    }
}

/// Names one publish or play request, for [`ServerSession::accept_publish`] and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// Why a publish or play request is refused. Each maps to the `onStatus` code clients know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The stream is already published: `NetStream.Publish.BadName` (play: `NetStream.Play.Failed`).
    BadName,
    /// Authentication failed: `NetStream.Publish.BadName` / `NetStream.Play.Failed`.
    Unauthorized,
    /// No such stream: `NetStream.Play.StreamNotFound` (publish: `NetStream.Publish.Rejected`).
    NotFound,
}

impl Reject {
    /// The `onStatus` code and description that refuse a request of `kind`.
    fn status(self, kind: RequestKind) -> (&'static str, &'static str) {
        match (kind, self) {
            (RequestKind::Publish, Self::BadName) => {
                ("NetStream.Publish.BadName", "Stream already publishing.")
            }
            // What nginx-rtmp and the CDNs our signatures follow send for a refused publish.
            (RequestKind::Publish, Self::Unauthorized) => {
                ("NetStream.Publish.BadName", "Publish rejected.")
            }
            (RequestKind::Publish, Self::NotFound) => {
                ("NetStream.Publish.Rejected", "Stream not found.")
            }
            (RequestKind::Play, Self::BadName) => ("NetStream.Play.Failed", "Bad stream name."),
            (RequestKind::Play, Self::Unauthorized) => ("NetStream.Play.Failed", "Play rejected."),
            (RequestKind::Play, Self::NotFound) => {
                ("NetStream.Play.StreamNotFound", "Stream not found.")
            }
        }
    }
}

/// What a pending request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Publish,
    Play,
}

/// What the server session reports to its driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `connect` was answered. `app` has any `?query` and trailing `/` removed; `query` is the
    /// query found on the app (or, failing that, on the tcUrl), without the `?`.
    Connected {
        app: String,
        tc_url: Option<String>,
        query: String,
        flash_ver: Option<String>,
        object_encoding: f64,
    },
    /// The client wants to publish; answer with `accept_publish` or `reject_publish`.
    /// `query` joins the connect query and the stream name's query with `&`.
    PublishRequested {
        request: RequestId,
        app: String,
        stream: String,
        query: String,
        /// `live`, `record` or `append`, as the client said (default `live`).
        publish_type: String,
        stream_id: u32,
    },
    /// The client wants to play; answer with `accept_play` or `reject_play`. `start` is the
    /// `play` start argument (-2: live or recorded, -1: live only, >= 0: recorded from there).
    PlayRequested {
        request: RequestId,
        app: String,
        stream: String,
        query: String,
        start: f64,
        stream_id: u32,
    },
    /// A frame from the publisher. Script frames carry `onMetaData` without `@setDataFrame`.
    Media(Frame),
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream).
    PublishStopped,
    /// The player stopped (closeStream or deleteStream).
    PlayStopped,
}

#[derive(Debug)]
enum Phase {
    Handshake,
    ExpectConnect,
    Connected,
    /// After `goodbye`/`close_with_status` or an error: input is ignored.
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
enum StreamState {
    Idle,
    /// A publish or play waits for the driver's `accept_*` or `reject_*`.
    ExpectAnswer {
        kind: RequestKind,
        request: RequestId,
        stream_id: u32,
        stream: String,
    },
    Publishing {
        stream_id: u32,
        stream: String,
    },
    Playing {
        stream_id: u32,
    },
}

/// The server side of one RTMP connection.
///
/// Contract and call order (as quinn-proto's `Connection`):
/// 1. [`ServerSession::new`] when the TCP connection is accepted.
/// 2. Each time bytes arrive, [`handle_input`](Self::handle_input) with all of them (the
///    handshake included; nothing needs to be split by the caller).
/// 3. Then drain [`poll_transmit`](Self::poll_transmit) into the socket and
///    [`poll_event`](Self::poll_event) until `None`, acting on events: `PublishRequested` and
///    `PlayRequested` wait for [`accept_publish`](Self::accept_publish) /
///    [`reject_publish`](Self::reject_publish) / [`accept_play`](Self::accept_play) /
///    [`reject_play`](Self::reject_play), which may come later (after an auth check); drain
///    `poll_transmit` again after calling them.
/// 4. A player's media is written by the driver itself, encoded once per core with
///    [`encode_media`](super::encode_media) at [`OUT_CHUNK_SIZE`] on [`play_stream_id`](Self::play_stream_id).
///    Drain `poll_transmit` only between whole media messages: every message this session
///    writes is complete, so interleaving at message boundaries is safe.
/// 5. On an `Err` from `handle_input`, close the connection (flushing `poll_transmit` first is
///    optional). To end a session ourselves: [`stream_eof`](Self::stream_eof) when a played
///    stream ends, [`goodbye`](Self::goodbye) or [`close_with_status`](Self::close_with_status)
///    at shutdown, then flush and close.
///
/// No clock is needed: RTMP has no protocol timers; idle timeouts belong to the driver.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    phase: Phase,
    stream: StreamState,
    /// Our chunk size stays the default until we announce `config.chunk_size_out` after
    /// connect.
    conn: ChunkConnection<ServerHandshake>,
    events: VecDeque<ServerEvent>,
    app: String,
    connect_query: String,
    next_request: u64,
    /// The last stream id handed out by `createStream`.
    last_stream_id: u32,
    /// What the player asked with SetBufferLength, in milliseconds.
    buffer_ms: Option<u32>,
    /// Media that arrived between `publish` and our answer: clients that do not wait for
    /// `NetStream.Publish.Start` send metadata and sequence headers there, and a stream is
    /// useless without them. Emitted on accept, dropped on reject; capped at
    /// `max_partial_bytes`.
    early_media: Vec<Frame>,
    early_media_bytes: usize,
}

impl ServerSession {
    pub fn new(config: SessionConfig) -> Self {
        Self {
            conn: ChunkConnection::new(config.handshake_seed, config.limits()),
            config,
            phase: Phase::Handshake,
            stream: StreamState::Idle,
            events: VecDeque::new(),
            app: String::new(),
            connect_query: String::new(),
            next_request: 1,
            last_stream_id: 0,
            buffer_ms: None,
            early_media: Vec::new(),
            early_media_bytes: 0,
        }
    }

    /// Feeds bytes read from the socket. On error the session is over: close the connection.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(), SessionError> {
        connection::feed(self, input)
    }

    /// Appends pending output to `out`; returns whether anything was written.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        self.conn.poll_transmit(out)
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The message stream id a player's media must be sent on, once `accept_play` is done.
    pub fn play_stream_id(&self) -> Option<u32> {
        match self.stream {
            StreamState::Playing { stream_id } => Some(stream_id),
            _ => None,
        }
    }

    /// Whether the session stopped reading: after an error, `goodbye` or `close_with_status`.
    /// The driver flushes `poll_transmit` and closes the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether a publish was accepted and is still running.
    pub fn is_publishing(&self) -> bool {
        matches!(self.stream, StreamState::Publishing { .. })
    }

    /// The chunk size of what this session sends now.
    pub fn out_chunk_size(&self) -> usize {
        self.conn.out_chunk_size()
    }

    /// The buffer length the player asked for (SetBufferLength), in milliseconds.
    pub fn buffer_ms(&self) -> Option<u32> {
        self.buffer_ms
    }

    /// Accepts a publish request: StreamBegin, then `onStatus NetStream.Publish.Start`.
    /// Returns false (and sends nothing) if `request` is not the pending request, e.g. because
    /// the client gave up meanwhile.
    pub fn accept_publish(&mut self, request: RequestId) -> bool {
        let Some((stream_id, stream)) = self.begin_stream(request, RequestKind::Publish) else {
            return false;
        };
        self.send_on_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{stream} is now published."),
        );
        self.stream = StreamState::Publishing { stream_id, stream };
        self.early_media_bytes = 0;
        self.events.extend(
            std::mem::take(&mut self.early_media)
                .into_iter()
                .map(ServerEvent::Media),
        );
        true
    }

    /// Refuses a publish request with the `onStatus` error matching `reason`. The client
    /// usually disconnects; the driver may close after flushing. Returns false for a stale id.
    pub fn reject_publish(&mut self, request: RequestId, reason: Reject) -> bool {
        self.refuse(request, RequestKind::Publish, reason)
    }

    /// Accepts a play request: StreamBegin, `NetStream.Play.Reset`, `NetStream.Play.Start`,
    /// and `|RtmpSampleAccess`, as FMS and nginx-rtmp do. No `NetStream.Data.Start` data message
    /// (SRS sends one): ffmpeg's FLV demuxer turns any data message but `onMetaData` into a
    /// spurious data stream. Media
    /// may follow on [`play_stream_id`](Self::play_stream_id). Returns false for a stale id.
    pub fn accept_play(&mut self, request: RequestId) -> bool {
        let Some((stream_id, stream)) = self.begin_stream(request, RequestKind::Play) else {
            return false;
        };
        self.send_on_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            &format!("Playing and resetting {stream}."),
        );
        self.send_on_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {stream}."),
        );
        self.send_data(
            stream_id,
            &[
                Amf0Value::string("|RtmpSampleAccess"),
                Amf0Value::Boolean(true),
                Amf0Value::Boolean(true),
            ],
        );
        self.stream = StreamState::Playing { stream_id };
        true
    }

    /// Refuses a play request with the `onStatus` error matching `reason`. Returns false for a
    /// stale id.
    pub fn reject_play(&mut self, request: RequestId, reason: Reject) -> bool {
        self.refuse(request, RequestKind::Play, reason)
    }

    /// Refuses the pending request, publish or play, with the `onStatus` error matching
    /// `reason` for its kind. Returns false for a stale id.
    pub fn reject(&mut self, request: RequestId, reason: Reject) -> bool {
        match self.stream {
            StreamState::ExpectAnswer { kind, .. } => self.refuse(request, kind, reason),
            _ => false,
        }
    }

    /// Takes `request` out of waiting if it is the pending request of `kind`, leaving the
    /// stream idle for the answer to set; returns its stream id and name. `None` for a stale
    /// or mismatched request, which must not be answered.
    fn answer(&mut self, request: RequestId, kind: RequestKind) -> Option<(u32, String)> {
        match &mut self.stream {
            StreamState::ExpectAnswer {
                kind: pending_kind,
                request: pending,
                stream_id,
                stream,
            } if *pending_kind == kind && *pending == request => {
                let answered = (*stream_id, std::mem::take(stream));
                self.stream = StreamState::Idle;
                Some(answered)
            }
            _ => None,
        }
    }

    /// What accepting begins with: the request is answered and its stream begins.
    fn begin_stream(&mut self, request: RequestId, kind: RequestKind) -> Option<(u32, String)> {
        let (stream_id, stream) = self.answer(request, kind)?;
        self.conn
            .send_control(&Message::UserControl(UserControl::StreamBegin {
                stream_id,
            }));
        Some((stream_id, stream))
    }

    fn refuse(&mut self, request: RequestId, kind: RequestKind, reason: Reject) -> bool {
        let Some((stream_id, _)) = self.answer(request, kind) else {
            return false;
        };
        let (code, description) = reason.status(kind);
        self.send_on_status(stream_id, "error", code, description);
        // Only a pending publish gathers early media; for a play this is a no-op.
        self.drop_early_media();
        true
    }

    /// Sends one frame to a playing client (the session's own encoding; the shared-encoding
    /// path is [`encode_media`](super::encode_media)). Does nothing unless playing.
    pub fn send_media(&mut self, frame: &Frame) {
        if let Some(stream_id) = self.play_stream_id() {
            self.conn.send_media(frame, stream_id);
        }
    }

    /// The played stream ended (its publisher left): StreamEOF and
    /// `onStatus NetStream.Play.UnpublishNotify`. The session stays connected but no longer
    /// plays; the driver usually closes after flushing.
    pub fn stream_eof(&mut self) {
        if let StreamState::Playing { stream_id } = self.stream {
            self.conn
                .send_control(&Message::UserControl(UserControl::StreamEof { stream_id }));
            self.send_on_status(
                stream_id,
                "status",
                "NetStream.Play.UnpublishNotify",
                "Stream unpublished.",
            );
            self.stream = StreamState::Idle;
        }
    }

    /// Server shutdown: ends the active stream (`NetStream.Unpublish.Success` for a publisher,
    /// StreamEOF and `NetStream.Play.Stop` for a player), then
    /// `onStatus NetConnection.Connect.Closed`. Flush `poll_transmit`, then close.
    pub fn goodbye(&mut self) {
        match std::mem::replace(&mut self.stream, StreamState::Idle) {
            StreamState::Publishing { stream_id, stream } => self.send_on_status(
                stream_id,
                "status",
                "NetStream.Unpublish.Success",
                &format!("{stream} is now unpublished."),
            ),
            StreamState::Playing { stream_id } => {
                self.conn
                    .send_control(&Message::UserControl(UserControl::StreamEof { stream_id }));
                self.send_on_status(stream_id, "status", "NetStream.Play.Stop", "Stopped.");
            }
            _ => {}
        }
        self.close_with_status(
            "status",
            "NetConnection.Connect.Closed",
            "Connection closed.",
        );
    }

    /// Sends one `onStatus` with the given info on the connection (stream 0), and stops reading
    /// input. Flush `poll_transmit`, then close.
    pub fn close_with_status(&mut self, level: &str, code: &str, description: &str) {
        if matches!(self.phase, Phase::Connected) {
            self.conn.send_command(
                csid::COMMAND,
                0,
                Command::new(
                    "onStatus",
                    0.0,
                    Amf0Value::Null,
                    vec![status_object(level, code, description)],
                ),
            );
        }
        self.phase = Phase::Closed;
    }

    // ---- input ----

    fn on_media(&mut self, frame: Frame) {
        match self.stream {
            StreamState::Publishing { .. } => self.events.push_back(ServerEvent::Media(frame)),
            StreamState::ExpectAnswer {
                kind: RequestKind::Publish,
                ..
            } => {
                let len = frame.payload.len();
                if self.early_media_bytes + len <= self.config.max_partial_bytes {
                    self.early_media_bytes += len;
                    self.early_media.push(frame);
                } else {
                    tracing::warn!("media before the publish answer over the cap, dropped");
                }
            }
            _ => {}
        }
    }

    fn drop_early_media(&mut self) {
        self.early_media.clear();
        self.early_media_bytes = 0;
    }

    /// Whether media from the peer is wanted now (publishing, or waiting for our answer).
    fn takes_media(&self) -> bool {
        matches!(
            self.stream,
            StreamState::Publishing { .. }
                | StreamState::ExpectAnswer {
                    kind: RequestKind::Publish,
                    ..
                }
        )
    }

    fn on_command(&mut self, cmd: Command, msg_stream_id: u32) -> Result<(), SessionError> {
        match self.phase {
            Phase::ExpectConnect if cmd.name == "connect" => return self.on_connect(&cmd),
            Phase::ExpectConnect => {
                return Err(SessionError::CommandBeforeConnect { command: cmd.name })
            }
            Phase::Connected if cmd.name == "connect" => {
                return Err(SessionError::DuplicateConnect)
            }
            _ => {}
        }
        let tid = cmd.transaction_id;
        // Stream commands arrive on their message stream; some clients use stream 0.
        let stream_id = if msg_stream_id != 0 {
            msg_stream_id
        } else {
            self.last_stream_id.max(1)
        };
        match cmd.name.as_str() {
            "releaseStream" | "_checkbw" | "FCSubscribe" => {
                self.send_result(tid, Amf0Value::Undefined)
            }
            "FCPublish" => {
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    Command::new(
                        "onFCPublish",
                        0.0,
                        Amf0Value::Null,
                        vec![status_object("status", "NetStream.Publish.Start", &name)],
                    ),
                );
                self.send_result(tid, Amf0Value::Undefined);
            }
            "FCUnpublish" => {
                let name = cmd.arg_str(0).unwrap_or_default().to_owned();
                self.conn.send_command(
                    csid::COMMAND,
                    0,
                    Command::new(
                        "onFCUnpublish",
                        0.0,
                        Amf0Value::Null,
                        vec![status_object(
                            "status",
                            "NetStream.Unpublish.Success",
                            &name,
                        )],
                    ),
                );
                self.send_result(tid, Amf0Value::Undefined);
                self.stop_stream(None, true);
            }
            "createStream" => {
                self.last_stream_id += 1;
                self.send_result(tid, Amf0Value::Number(f64::from(self.last_stream_id)));
            }
            "publish" => self.on_publish(&cmd, stream_id)?,
            "play" => self.on_play(&cmd, stream_id)?,
            "deleteStream" => {
                let id = cmd.arg_number(0).map(|n| n as u32);
                self.stop_stream(id, false);
            }
            "closeStream" => self.stop_stream(Some(stream_id), false),
            "getStreamLength" => self.send_result(tid, Amf0Value::Number(0.0)),
            "receiveAudio" | "receiveVideo" | "pause" | "seek" => {}
            name if name.starts_with('_') || name.starts_with("on") => {}
            name => {
                tracing::debug!(name, "unknown rtmp command");
                if tid != 0.0 {
                    self.conn.send_command(
                        csid::COMMAND,
                        0,
                        Command::new(
                            "_error",
                            tid,
                            Amf0Value::Null,
                            vec![status_object(
                                "error",
                                "NetConnection.Call.Failed",
                                &format!("Method not found ({name})."),
                            )],
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, cmd: &Command) -> Result<(), SessionError> {
        let obj = &cmd.object;
        let raw_app = obj
            .get("app")
            .and_then(Amf0Value::as_str)
            .ok_or(SessionError::ConnectWithoutApp)?;
        let tc_url = obj
            .get("tcUrl")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let (app, mut query) = split_query(raw_app);
        if query.is_empty() {
            if let Some((_, q)) = tc_url.as_deref().and_then(|t| t.split_once('?')) {
                query = q;
            }
        }
        self.app = app.trim_end_matches('/').to_owned();
        self.connect_query = query.to_owned();
        let object_encoding = obj
            .get("objectEncoding")
            .and_then(Amf0Value::as_number)
            .unwrap_or(0.0);

        self.conn
            .send_control(&Message::WindowAckSize(self.config.window_ack_size));
        self.conn.send_control(&Message::SetPeerBandwidth {
            size: self.config.peer_bandwidth,
            limit: BandwidthLimit::Dynamic,
        });
        self.conn.set_chunk_size(self.config.chunk_size_out);
        self.conn.send_command(
            csid::COMMAND,
            0,
            Command::new(
                "_result",
                cmd.transaction_id,
                Amf0Value::object([
                    ("fmsVer", Amf0Value::string("FMS/3,0,1,123")),
                    ("capabilities", Amf0Value::Number(31.0)),
                ]),
                vec![Amf0Value::object([
                    ("level", Amf0Value::string("status")),
                    ("code", Amf0Value::string("NetConnection.Connect.Success")),
                    ("description", Amf0Value::string("Connection succeeded.")),
                    ("objectEncoding", Amf0Value::Number(object_encoding)),
                ])],
            ),
        );
        self.phase = Phase::Connected;
        self.events.push_back(ServerEvent::Connected {
            app: self.app.clone(),
            tc_url,
            query: self.connect_query.clone(),
            flash_ver: obj
                .get("flashVer")
                .and_then(Amf0Value::as_str)
                .map(str::to_owned),
            object_encoding,
        });
        Ok(())
    }

    /// What `publish` and `play` share: the stream must be idle and named; the request then
    /// waits for the driver's answer. The name's query is joined to the connect query. Returns
    /// the request id, the stream name and the query.
    fn stream_request(
        &mut self,
        cmd: &Command,
        kind: RequestKind,
        stream_id: u32,
    ) -> Result<(RequestId, String, String), SessionError> {
        let command = match kind {
            RequestKind::Publish => "publish",
            RequestKind::Play => "play",
        };
        if self.stream != StreamState::Idle {
            return Err(SessionError::StreamBusy { command });
        }
        let name = cmd
            .arg_str(0)
            .ok_or(SessionError::MissingStreamName { command })?;
        let (stream, query) = split_query(name);
        let query = join_query(&self.connect_query, query);
        let request = self.next_request();
        self.stream = StreamState::ExpectAnswer {
            kind,
            request,
            stream_id,
            stream: stream.to_owned(),
        };
        Ok((request, stream.to_owned(), query))
    }

    fn on_publish(&mut self, cmd: &Command, stream_id: u32) -> Result<(), SessionError> {
        let (request, stream, query) = self.stream_request(cmd, RequestKind::Publish, stream_id)?;
        self.events.push_back(ServerEvent::PublishRequested {
            request,
            app: self.app.clone(),
            stream,
            query,
            publish_type: cmd.arg_str(1).unwrap_or("live").to_owned(),
            stream_id,
        });
        Ok(())
    }

    fn on_play(&mut self, cmd: &Command, stream_id: u32) -> Result<(), SessionError> {
        let (request, stream, query) = self.stream_request(cmd, RequestKind::Play, stream_id)?;
        self.events.push_back(ServerEvent::PlayRequested {
            request,
            app: self.app.clone(),
            stream,
            query,
            start: cmd.arg_number(1).unwrap_or(-2.0),
            stream_id,
        });
        Ok(())
    }

    /// Ends the active stream (if `id` matches it, or for any id when `None`).
    fn stop_stream(&mut self, id: Option<u32>, unpublish_status: bool) {
        let active = match &self.stream {
            StreamState::Idle => return,
            StreamState::ExpectAnswer { stream_id, .. }
            | StreamState::Publishing { stream_id, .. }
            | StreamState::Playing { stream_id } => *stream_id,
        };
        if id.is_some_and(|id| id != active) {
            return;
        }
        match std::mem::replace(&mut self.stream, StreamState::Idle) {
            StreamState::Publishing { stream_id, stream } => {
                if unpublish_status {
                    self.send_on_status(
                        stream_id,
                        "status",
                        "NetStream.Unpublish.Success",
                        &format!("{stream} is now unpublished."),
                    );
                }
                self.events.push_back(ServerEvent::PublishStopped);
            }
            StreamState::Playing { .. } => self.events.push_back(ServerEvent::PlayStopped),
            // A pending request is dropped: the driver's late answer returns false.
            _ => self.drop_early_media(),
        }
    }

    fn next_request(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    // ---- output ----

    fn send_result(&mut self, tid: f64, value: Amf0Value) {
        self.conn.send_command(
            csid::COMMAND,
            0,
            Command::new("_result", tid, Amf0Value::Null, vec![value]),
        );
    }

    fn send_on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.conn.send_command(
            csid::DATA,
            stream_id,
            Command::new(
                "onStatus",
                0.0,
                Amf0Value::Null,
                vec![status_object(level, code, description)],
            ),
        );
    }

    fn send_data(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let mut payload = BytesMut::new();
        match super::amf0::encode_all(&mut payload, values) {
            Ok(()) => self
                .conn
                .send(csid::DATA, stream_id, &Message::Data(payload.freeze())),
            Err(e) => tracing::error!(error = %e, "could not encode rtmp data"),
        }
    }
}

impl Role for ServerSession {
    type Handshake = ServerHandshake;

    fn connection(&mut self) -> &mut ChunkConnection<ServerHandshake> {
        &mut self.conn
    }

    fn is_closed(&self) -> bool {
        ServerSession::is_closed(self)
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    fn on_handshake_done(&mut self) {
        self.phase = Phase::ExpectConnect;
    }

    fn on_message(&mut self, raw: &RawMessage, msg: Message) -> Result<(), SessionError> {
        match msg {
            // Set Chunk Size and Abort were applied by the decoder; acknowledgements of what we
            // send need no action (we never stop sending for lack of them). The window and
            // pings were handled by the connection.
            Message::SetChunkSize(_)
            | Message::Abort { .. }
            | Message::Acknowledgement { .. }
            | Message::SetPeerBandwidth { .. }
            | Message::WindowAckSize(_) => {}
            Message::UserControl(UserControl::SetBufferLength { buffer_ms, .. }) => {
                self.buffer_ms = Some(buffer_ms)
            }
            Message::UserControl(_) => {}
            msg @ (Message::Audio(_)
            | Message::Video(_)
            | Message::Data(_)
            | Message::Aggregate(_)) => {
                message::media_frames(raw, msg, self.takes_media(), |frame| self.on_media(frame))?
            }
            Message::Command(cmd) => self.on_command(cmd, raw.stream_id)?,
            Message::Other { type_id, .. } => {
                tracing::debug!(type_id, "ignoring rtmp message");
            }
        }
        Ok(())
    }
}

/// Splits `name?query` into the name and the query without `?` (empty if none).
pub fn split_query(s: &str) -> (&str, &str) {
    s.split_once('?').unwrap_or((s, ""))
}

/// Joins two URL queries with `&`, skipping empty ones.
fn join_query(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_owned(),
        (true, false) => b.to_owned(),
        (false, false) => format!("{a}&{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::MediaKind;

    #[test]
    fn query_splitting() {
        assert_eq!(split_query("cam1?token=x&e=1"), ("cam1", "token=x&e=1"));
        assert_eq!(split_query("cam1"), ("cam1", ""));
        assert_eq!(split_query("a?b?c"), ("a", "b?c"));
        assert_eq!(join_query("a=1", "b=2"), "a=1&b=2");
        assert_eq!(join_query("", "b=2"), "b=2");
        assert_eq!(join_query("a=1", ""), "a=1");
    }

    /// Feeds a capture of what a real client sent, accepting its request when asked.
    fn replay(capture: &[u8]) -> (Vec<ServerEvent>, Vec<Frame>) {
        let mut s = ServerSession::new(SessionConfig::default());
        let (mut events, mut media) = (Vec::new(), Vec::new());
        for piece in capture.chunks(1000) {
            s.handle_input(piece).unwrap();
            s.poll_transmit(&mut BytesMut::new());
            while let Some(e) = s.poll_event() {
                match e {
                    ServerEvent::Media(f) => media.push(f),
                    ServerEvent::PublishRequested { request, .. } => {
                        assert!(s.accept_publish(request));
                        events.push(e);
                    }
                    ServerEvent::PlayRequested { request, .. } => {
                        // ffmpeg's deleteStream may be in the same piece: the answer is moot.
                        let _ = s.accept_play(request);
                        events.push(e);
                    }
                    e => events.push(e),
                }
            }
        }
        (events, media)
    }

    /// ffmpeg 5.1 (Lavf59.27.100) publishing 2 s of lavfi testsrc 64x48 (libx264) and sine
    /// (aac) to `rtmp://127.0.0.1:PORT/live?token=x/cam?k=v`: every byte it sent, complex
    /// handshake included.
    #[test]
    fn replays_an_ffmpeg_publish() {
        let capture = include_bytes!("testdata/ffmpeg-publish.bin");
        let c1 = &capture[1..1 + super::super::handshake::HANDSHAKE_SIZE];
        assert!(super::super::handshake::find_digest(
            c1,
            &super::super::handshake::GENUINE_FP_KEY[..30]
        )
        .is_some());
        let (events, media) = replay(capture);
        let ServerEvent::Connected {
            app,
            tc_url,
            query,
            flash_ver,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!((app.as_str(), query.as_str()), ("live", "token=x"));
        assert!(tc_url.as_deref().unwrap().ends_with("/live?token=x"));
        assert!(flash_ver.as_deref().unwrap().starts_with("FMLE/3.0"));
        assert!(matches!(&events[1],
            ServerEvent::PublishRequested { app, stream, query, .. }
                if app == "live" && stream == "cam" && query == "token=x&k=v"));
        assert_eq!(events.last(), Some(&ServerEvent::PublishStopped));
        assert_eq!(media.len(), 142);
        assert_eq!(media[0].kind, MediaKind::Script);
        assert!(media[0].payload.starts_with(b"\x02\x00\x0aonMetaData"));
        assert!(media
            .iter()
            .any(|f| f.is_keyframe() && f.is_sequence_header()));
        assert!(media
            .iter()
            .any(|f| f.kind == MediaKind::Audio && f.is_sequence_header()));
    }

    /// ffmpeg 5.1 playing `rtmp://127.0.0.1:PORT/live/cam` (after our answers, which it checked:
    /// it verifies the S1 and S2 digests when playing).
    #[test]
    fn replays_an_ffmpeg_play() {
        let (events, _) = replay(include_bytes!("testdata/ffmpeg-play.bin"));
        assert!(matches!(&events[1],
            ServerEvent::PlayRequested { app, stream, start, .. }
                if app == "live" && stream == "cam" && *start == -2000.0));
    }

    #[test]
    fn garbage_handshake_is_an_error() {
        let mut s = ServerSession::new(SessionConfig::default());
        assert_eq!(
            s.handle_input(b"GET / HTTP/1.1\r\n\r\n"),
            Err(SessionError::Handshake(
                HandshakeError::UnsupportedVersion { version: b'G' }
            ))
        );
        // Closed afterwards: input is ignored, nothing is sent.
        assert!(s.is_closed());
        assert_eq!(s.handle_input(&[3; 2000]), Ok(()));
        assert!(!s.poll_transmit(&mut BytesMut::new()));
    }
}
