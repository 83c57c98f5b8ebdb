//! What both ends of an RTMP connection do below the commands: the handshake, then the chunk
//! stream both ways and the acknowledgement window. [`ServerSession`](super::ServerSession) and
//! [`ClientSession`](super::ClientSession) each wrap a [`ChunkConnection`] and keep only the
//! commands of their role.
#![forbid(unsafe_code)]

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::chunk::{
    csid, encode_media, encode_message, AckWindow, ChunkDecoder, ChunkLimits, RawMessage,
    DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE,
};
use super::handshake::{ClientHandshake, HandshakeError, HandshakeProgress, ServerHandshake};
use super::message::{Command, Message, UserControl};
use super::session::SessionError;
use crate::media::Frame;

/// One side of the handshake, as a [`ChunkConnection`] drives it.
pub(crate) trait Handshake: Sized {
    /// A handshake whose random bytes come from `seed`. They protect nothing, but should
    /// differ between connections.
    fn from_seed(seed: u64) -> Self;

    /// What this side sends before it hears from the peer.
    fn opening(&self) -> Bytes;

    fn handle_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError>;
}

impl Handshake for ServerHandshake {
    fn from_seed(seed: u64) -> Self {
        Self::new(&mut StdRng::seed_from_u64(seed))
    }

    fn opening(&self) -> Bytes {
        Bytes::new()
    }

    fn handle_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        ServerHandshake::handle_input(self, input)
    }
}

impl Handshake for ClientHandshake {
    fn from_seed(seed: u64) -> Self {
        Self::new(&mut StdRng::seed_from_u64(seed))
    }

    fn opening(&self) -> Bytes {
        self.c0c1()
    }

    fn handle_input(&mut self, input: &[u8]) -> Result<HandshakeProgress, HandshakeError> {
        ClientHandshake::handle_input(self, input)
    }
}

/// What a session on a [`ChunkConnection`] does for its role; [`feed`] drives it.
pub(crate) trait Role {
    type Handshake: Handshake;

    fn connection(&mut self) -> &mut ChunkConnection<Self::Handshake>;

    /// Whether the session stopped reading: input is then ignored.
    fn is_closed(&self) -> bool;

    fn close(&mut self);

    /// The handshake just completed: the role's first messages may go out.
    fn on_handshake_done(&mut self);

    fn on_message(&mut self, raw: &RawMessage, msg: Message) -> Result<(), SessionError>;
}

/// Feeds bytes read from the socket to `session`: through the handshake, then every whole
/// message to its role. On an error the session is closed and ignores what follows.
pub(crate) fn feed(session: &mut impl Role, input: &[u8]) -> Result<(), SessionError> {
    if session.is_closed() {
        return Ok(());
    }
    let result = feed_open(session, input);
    if result.is_err() {
        session.close();
    }
    result
}

fn feed_open(session: &mut impl Role, input: &[u8]) -> Result<(), SessionError> {
    if session.connection().handle_input(input)? == Fed::HandshakeDone {
        session.on_handshake_done();
    }
    // A role that closes itself meanwhile still sees the rest of this input: a client told
    // `_error` for its `connect` reports what came with it.
    while let Some((raw, msg)) = session.connection().poll_message()? {
        session.on_message(&raw, msg)?;
    }
    Ok(())
}

/// Where the connection stands after [`ChunkConnection::handle_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Fed {
    /// The handshake needs more input.
    Handshake,
    /// This input completed the handshake: the session's first commands may go out now.
    HandshakeDone,
    /// The input joined the chunk stream.
    Chunks,
}

/// The handshake and chunk stream of one RTMP connection, either side.
///
/// Call order: [`new`](Self::new) (whatever the handshake sends first is queued at once), then
/// for each read [`handle_input`](Self::handle_input) followed by
/// [`poll_message`](Self::poll_message) until `None`; anything sent meanwhile goes out with
/// [`poll_transmit`](Self::poll_transmit). Every message is written whole, so media and control
/// never interleave inside a message.
#[derive(Debug)]
pub(crate) struct ChunkConnection<H> {
    /// `None` once the handshake is over; from then on input belongs to the chunk stream.
    handshake: Option<H>,
    /// Received bytes not yet decoded (at most one partial chunk).
    input: BytesMut,
    /// Holds the peer's chunk size.
    decoder: ChunkDecoder,
    ack: AckWindow,
    /// Bytes for the peer, drained by `poll_transmit`.
    out: BytesMut,
    /// Our chunk size: the default until a session announces another with `set_chunk_size`.
    out_chunk_size: usize,
}

impl<H: Handshake> ChunkConnection<H> {
    pub(crate) fn new(handshake_seed: u64, limits: ChunkLimits) -> Self {
        let handshake = H::from_seed(handshake_seed);
        let mut out = BytesMut::new();
        out.extend_from_slice(&handshake.opening());
        Self {
            handshake: Some(handshake),
            input: BytesMut::new(),
            decoder: ChunkDecoder::new(limits),
            ack: AckWindow::default(),
            out,
            out_chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Feeds bytes read from the socket: to the handshake while it runs, then (the handshake's
    /// leftover included) to the chunk stream. Decode them with `poll_message`.
    pub(crate) fn handle_input(&mut self, input: &[u8]) -> Result<Fed, HandshakeError> {
        let Some(handshake) = &mut self.handshake else {
            self.receive(input);
            return Ok(Fed::Chunks);
        };
        match handshake.handle_input(input)? {
            HandshakeProgress::InProgress { response } => {
                self.out.extend_from_slice(&response);
                Ok(Fed::Handshake)
            }
            HandshakeProgress::Completed {
                response,
                remaining,
            } => {
                self.out.extend_from_slice(&response);
                self.handshake = None;
                self.receive(&remaining);
                Ok(Fed::HandshakeDone)
            }
        }
    }

    /// Buffers chunk-stream bytes and acknowledges them when the peer's window is full. The
    /// handshake's own bytes are not counted.
    fn receive(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        if let Some(sequence) = self.ack.on_received(bytes.len()) {
            self.send_control(&Message::Acknowledgement { sequence });
        }
    }

    /// The next whole message from the peer that the session must act on. What concerns only
    /// the connection is handled here and not returned: the peer's acknowledgement window and
    /// its pings. Set Chunk Size and Abort are applied by the decoder and still returned.
    pub(crate) fn poll_message(&mut self) -> Result<Option<(RawMessage, Message)>, SessionError> {
        while let Some(raw) = self.decoder.decode(&mut self.input)? {
            match Message::decode(&raw)? {
                Message::WindowAckSize(size) => self.ack.set_window(size),
                Message::UserControl(UserControl::PingRequest { timestamp }) => {
                    self.send_control(&Message::UserControl(UserControl::PingResponse {
                        timestamp,
                    }))
                }
                message => return Ok(Some((raw, message))),
            }
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            // Everything received is decoded: a player, which sends next to nothing once
            // playing, keeps no input buffer.
            self.input = BytesMut::new();
        }
        Ok(None)
    }
}

impl<H> ChunkConnection<H> {
    /// Appends pending output to `out`; returns whether anything was written.
    pub(crate) fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        if self.out.is_empty() {
            return false;
        }
        // Handed over whole, not copied and cleared: an idle connection keeps no output buffer.
        if out.is_empty() {
            *out = std::mem::take(&mut self.out);
        } else {
            out.extend_from_slice(&self.out);
            self.out = BytesMut::new();
        }
        true
    }

    /// The chunk size of what we send now.
    pub(crate) fn out_chunk_size(&self) -> usize {
        self.out_chunk_size
    }

    /// Announces our chunk size (clamped to what Set Chunk Size can carry) and chunks what
    /// follows with it; the announcement itself still goes out at the old size.
    pub(crate) fn set_chunk_size(&mut self, size: usize) {
        let size = size.clamp(1, MAX_CHUNK_SIZE as usize);
        self.send_control(&Message::SetChunkSize(size as u32));
        self.out_chunk_size = size;
    }

    pub(crate) fn send(&mut self, csid: u32, stream_id: u32, msg: &Message) {
        match msg.to_raw(stream_id, 0) {
            Ok(raw) => encode_message(&mut self.out, csid, &raw, self.out_chunk_size),
            // Only values the sessions build are encoded here; they are always encodable.
            Err(e) => tracing::error!(error = %e, "could not encode rtmp message"),
        }
    }

    pub(crate) fn send_control(&mut self, msg: &Message) {
        self.send(csid::CONTROL, 0, msg);
    }

    pub(crate) fn send_command(&mut self, csid: u32, stream_id: u32, cmd: Command) {
        self.send(csid, stream_id, &Message::Command(cmd));
    }

    pub(crate) fn send_media(&mut self, frame: &Frame, stream_id: u32) {
        encode_media(&mut self.out, frame, stream_id, self.out_chunk_size);
    }
}
