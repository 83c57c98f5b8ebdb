//! The client side of an RTMP connection (publish or play), on the same codecs as the server:
//! for the bench harness, tests and relay pulls/pushes.
#![forbid(unsafe_code)]

use std::collections::VecDeque;

use bytes::BytesMut;

use super::amf0::Amf0Value;
use super::chunk::{csid, ChunkLimits, RawMessage, OUT_CHUNK_SIZE};
use super::connection::{self, ChunkConnection, Role};
use super::handshake::ClientHandshake;
use super::message::{self, Command, Message, UserControl};
use super::session::{SessionError, DEFAULT_WINDOW_ACK_SIZE};
use crate::media::{Frame, MediaKind};

/// Whether the client publishes or plays its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    Publish,
    Play,
}

/// Settings of a [`ClientSession`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The `app` of `connect` (may carry a `?query`, as some services want).
    pub app: String,
    /// The `tcUrl` of `connect`, e.g. `rtmp://host:1935/live`.
    pub tc_url: String,
    /// Stream name for `publish`/`play`, with its `?query` if any.
    pub stream: String,
    pub mode: ClientMode,
    /// `flashVer` of `connect`.
    pub flash_ver: String,
    /// Chunk size announced right after the handshake and used for what we send.
    pub chunk_size_out: usize,
    /// Window Acknowledgement Size announced to the server.
    pub window_ack_size: u32,
    /// Buffer length announced with SetBufferLength when playing.
    pub buffer_ms: u32,
    /// Limits on what the server may send.
    pub limits: ChunkLimits,
    /// Seed of the handshake's random bytes (should differ between connections).
    pub handshake_seed: u64,
}

impl ClientConfig {
    pub fn new(
        app: impl Into<String>,
        tc_url: impl Into<String>,
        stream: impl Into<String>,
        mode: ClientMode,
    ) -> Self {
        Self {
            app: app.into(),
            tc_url: tc_url.into(),
            stream: stream.into(),
            mode,
            flash_ver: match mode {
                ClientMode::Publish => "FMLE/3.0 (compatible; corestream)".to_owned(),
                ClientMode::Play => "LNX 9,0,124,2".to_owned(),
            },
            chunk_size_out: OUT_CHUNK_SIZE,
            window_ack_size: DEFAULT_WINDOW_ACK_SIZE,
            buffer_ms: 3000,
            limits: ChunkLimits::default(),
            handshake_seed: 0,
        }
    }
}

/// What the client session reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `NetStream.Publish.Start`: `send_media` may start.
    PublishStarted { stream_id: u32 },
    /// `NetStream.Play.Start`: media follows.
    PlayStarted { stream_id: u32 },
    /// A played frame. Script frames carry `onMetaData` without `@setDataFrame`.
    Media(Frame),
    /// Every `onStatus`, and the info of an `_error` (e.g. `NetStream.Publish.BadName`).
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// The server sent StreamEOF: the played stream ended.
    StreamEof,
}

#[derive(Debug)]
enum Phase {
    Handshake,
    /// `connect` sent with this transaction id.
    ExpectConnectResult(f64),
    /// `createStream` sent with this transaction id.
    ExpectCreateStreamResult(f64),
    /// `publish` or `play` sent on this stream.
    ExpectStart {
        stream_id: u32,
    },
    Publishing {
        stream_id: u32,
    },
    Playing {
        stream_id: u32,
    },
    Closed,
}

/// The client side of one RTMP connection. Same contract as
/// [`ServerSession`](super::session::ServerSession): create it when the TCP connection is up
/// and drain [`poll_transmit`](Self::poll_transmit) at once (C0+C1 are waiting), feed received
/// bytes to [`handle_input`](Self::handle_input), then drain `poll_transmit` and
/// [`poll_event`](Self::poll_event). After `PublishStarted`, frames go out with
/// [`send_media`](Self::send_media); [`goodbye`](Self::goodbye) ends the stream politely.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    conn: ChunkConnection<ClientHandshake>,
    events: VecDeque<ClientEvent>,
    next_tid: f64,
}

impl ClientSession {
    pub fn new(config: ClientConfig) -> Self {
        Self {
            conn: ChunkConnection::new(config.handshake_seed, config.limits),
            config,
            phase: Phase::Handshake,
            events: VecDeque::new(),
            next_tid: 1.0,
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

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn is_publishing(&self) -> bool {
        matches!(self.phase, Phase::Publishing { .. })
    }

    pub fn is_playing(&self) -> bool {
        matches!(self.phase, Phase::Playing { .. })
    }

    /// Sends one frame while publishing (script frames get the `@setDataFrame` wrapper).
    /// Frames offered before `PublishStarted` or after `goodbye` are dropped.
    pub fn send_media(&mut self, frame: &Frame) {
        let Phase::Publishing { stream_id } = self.phase else {
            tracing::debug!("rtmp client not publishing, frame dropped");
            return;
        };
        if frame.kind == MediaKind::Script {
            let payload = message::wrap_set_data_frame(&frame.payload);
            let wrapped = Frame::new(MediaKind::Script, frame.timestamp, payload);
            self.conn.send_media(&wrapped, stream_id);
        } else {
            self.conn.send_media(frame, stream_id);
        }
    }

    /// Announces and switches to a new outgoing chunk size (1..=0x7FFFFFFF).
    pub fn set_chunk_size(&mut self, size: u32) {
        if matches!(self.phase, Phase::Handshake) {
            // Announced with the first chunk bytes, right after the handshake.
            self.config.chunk_size_out = size as usize;
            return;
        }
        self.conn.set_chunk_size(size as usize);
    }

    /// Ends the stream as ffmpeg does: `FCUnpublish` and `deleteStream` when publishing,
    /// `deleteStream` when playing. Flush `poll_transmit`, then close.
    pub fn goodbye(&mut self) {
        let stream_id = match self.phase {
            Phase::Publishing { stream_id } => {
                let name = Amf0Value::string(self.config.stream.clone());
                self.send_call("FCUnpublish", vec![name]);
                Some(stream_id)
            }
            Phase::Playing { stream_id } | Phase::ExpectStart { stream_id } => Some(stream_id),
            _ => None,
        };
        if let Some(stream_id) = stream_id {
            self.send_call(
                "deleteStream",
                vec![Amf0Value::Number(f64::from(stream_id))],
            );
        }
        self.phase = Phase::Closed;
    }

    fn start_connect(&mut self) {
        // Still in the handshake phase here, where `set_chunk_size` would only record the size:
        // announce it now, before anything is chunked with it.
        self.conn.set_chunk_size(self.config.chunk_size_out);
        self.conn
            .send_control(&Message::WindowAckSize(self.config.window_ack_size));
        let c = &self.config;
        let mut props = vec![
            ("app", Amf0Value::string(c.app.clone())),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string(c.flash_ver.clone())),
            ("tcUrl", Amf0Value::string(c.tc_url.clone())),
        ];
        if c.mode == ClientMode::Play {
            props.extend([
                ("fpad", Amf0Value::Boolean(false)),
                ("capabilities", Amf0Value::Number(15.0)),
                ("audioCodecs", Amf0Value::Number(4071.0)),
                ("videoCodecs", Amf0Value::Number(252.0)),
                ("videoFunction", Amf0Value::Number(1.0)),
            ]);
        }
        let tid = self.tid();
        self.conn.send_command(
            csid::COMMAND,
            0,
            Command::new("connect", tid, Amf0Value::object(props), vec![]),
        );
        self.phase = Phase::ExpectConnectResult(tid);
    }

    fn receiving_media(&self) -> bool {
        self.config.mode == ClientMode::Play
            && matches!(
                self.phase,
                Phase::ExpectStart { .. } | Phase::Playing { .. }
            )
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd.name.as_str() {
            "_result" => self.on_result(&cmd),
            "_error" => {
                self.push_status(cmd.args.first());
                if matches!(self.phase, Phase::ExpectConnectResult(t) if t == cmd.transaction_id) {
                    self.phase = Phase::Closed;
                }
            }
            "onStatus" => {
                let info = cmd.args.first();
                let code = info
                    .and_then(|i| i.get("code"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                self.push_status(info);
                if let Phase::ExpectStart { stream_id } = self.phase {
                    match (self.config.mode, code.as_str()) {
                        (ClientMode::Publish, "NetStream.Publish.Start") => {
                            self.phase = Phase::Publishing { stream_id };
                            self.events
                                .push_back(ClientEvent::PublishStarted { stream_id });
                        }
                        (ClientMode::Play, "NetStream.Play.Start") => {
                            self.phase = Phase::Playing { stream_id };
                            self.events
                                .push_back(ClientEvent::PlayStarted { stream_id });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    fn on_result(&mut self, cmd: &Command) {
        match self.phase {
            Phase::ExpectConnectResult(tid) if tid == cmd.transaction_id => {
                self.events.push_back(ClientEvent::Connected);
                let name = Amf0Value::string(self.config.stream.clone());
                if self.config.mode == ClientMode::Publish {
                    self.send_call("releaseStream", vec![name.clone()]);
                    self.send_call("FCPublish", vec![name]);
                }
                let tid = self.send_call("createStream", vec![]);
                self.phase = Phase::ExpectCreateStreamResult(tid);
            }
            Phase::ExpectCreateStreamResult(tid) if tid == cmd.transaction_id => {
                let stream_id = cmd.arg_number(0).unwrap_or(1.0) as u32;
                let name = Amf0Value::string(self.config.stream.clone());
                let (call, args) = match self.config.mode {
                    ClientMode::Publish => ("publish", vec![name, Amf0Value::string("live")]),
                    ClientMode::Play => ("play", vec![name, Amf0Value::Number(-2.0)]),
                };
                let tid = self.tid();
                self.conn.send_command(
                    csid::DATA,
                    stream_id,
                    Command::new(call, tid, Amf0Value::Null, args),
                );
                if self.config.mode == ClientMode::Play {
                    self.conn
                        .send_control(&Message::UserControl(UserControl::SetBufferLength {
                            stream_id,
                            buffer_ms: self.config.buffer_ms,
                        }));
                }
                self.phase = Phase::ExpectStart { stream_id };
            }
            _ => {}
        }
    }

    fn push_status(&mut self, info: Option<&Amf0Value>) {
        let field = |k: &str| {
            info.and_then(|i| i.get(k))
                .and_then(Amf0Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        self.events.push_back(ClientEvent::Status {
            level: field("level"),
            code: field("code"),
            description: field("description"),
        });
    }

    fn tid(&mut self) -> f64 {
        let t = self.next_tid;
        self.next_tid += 1.0;
        t
    }

    /// Sends a connection-level call `name(tid, null, args...)`; returns its transaction id.
    fn send_call(&mut self, name: &str, args: Vec<Amf0Value>) -> f64 {
        let tid = self.tid();
        self.conn.send_command(
            csid::COMMAND,
            0,
            Command::new(name, tid, Amf0Value::Null, args),
        );
        tid
    }
}

impl Role for ClientSession {
    type Handshake = ClientHandshake;

    fn connection(&mut self) -> &mut ChunkConnection<ClientHandshake> {
        &mut self.conn
    }

    fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    fn close(&mut self) {
        self.phase = Phase::Closed;
    }

    fn on_handshake_done(&mut self) {
        self.start_connect();
    }

    fn on_message(&mut self, raw: &RawMessage, msg: Message) -> Result<(), SessionError> {
        match msg {
            Message::UserControl(UserControl::StreamEof { .. }) => {
                self.events.push_back(ClientEvent::StreamEof)
            }
            msg @ (Message::Audio(_)
            | Message::Video(_)
            | Message::Data(_)
            | Message::Aggregate(_)) => {
                message::media_frames(raw, msg, self.receiving_media(), |frame| {
                    self.events.push_back(ClientEvent::Media(frame))
                })?
            }
            Message::Command(cmd) => self.on_command(cmd),
            _ => {}
        }
        Ok(())
    }
}
