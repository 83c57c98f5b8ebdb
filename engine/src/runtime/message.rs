//! Every message that crosses cores. This file is the whole protocol between executors.

use crate::media::Frame;
use crate::registry::{ClaimOutcome, Publisher, StreamKey};

use super::hls_session::{HlsSessionCheck, HlsSessionOpening, HlsSessionRef};
use super::{ConnUuid, CoreId, CoreView, SessionId, StreamId};

/// Where the answer to a request goes: the asking core and its request number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub core: CoreId,
    pub request: u64,
}

#[derive(Debug)]
pub enum CoreMessage {
    // To a key's home core (its directory).
    /// A publisher on `publisher.core` wants the key; answered with [`Reply::Claim`].
    ClaimPublish {
        key: StreamKey,
        publisher: Publisher,
        replace: bool,
        reply: ReplyTo,
    },
    /// The publisher `session` stopped.
    ReleasePublish {
        key: StreamKey,
        session: SessionId,
    },
    /// Who publishes the key? Answered with [`Reply::Publisher`]. `cluster`: without one, the
    /// key may be looked up in the cluster's directory (not for a pull from another node).
    FindPublisher {
        key: StreamKey,
        cluster: bool,
        reply: ReplyTo,
    },

    // To the core that owns a stream (its publisher's core).
    /// `subscriber` has players of the key: send it the start-up frames, then every frame.
    Subscribe {
        key: StreamKey,
        subscriber: CoreId,
    },
    /// `subscriber` has no players of the stream left.
    /// Keyed rather than by stream id: a core may give up on a subscription before the owner's
    /// [`CoreMessage::StreamStart`] told it the id.
    Unsubscribe {
        key: StreamKey,
        subscriber: CoreId,
    },
    /// A newer publisher replaced `session`: disconnect it.
    KickPublisher {
        session: SessionId,
    },

    // To a subscribed core.
    /// The stream's current start-up frames; frames follow as [`CoreMessage::Media`].
    StreamStart {
        key: StreamKey,
        stream: StreamId,
        startup: Vec<Frame>,
        /// What the stream's media has shown so far, for the tracks the mirror announces.
        history: crate::media::MediaHistory,
    },
    Media {
        stream: StreamId,
        frame: Frame,
    },
    /// The publisher left.
    StreamEnd {
        stream: StreamId,
    },
    /// A subscription found no stream (the publisher left meanwhile).
    StreamGone {
        key: StreamKey,
    },

    // To a key's home core (its HLS muxer).
    /// A playlist or segment of the key; answered with [`Reply::Hls`].
    HlsGet {
        key: StreamKey,
        query: HlsQuery,
        reply: ReplyTo,
    },
    /// A viewer's first playlist request (or one naming a closed session, whose secret `reuse`
    /// is): open an HLS session of the key, admitted while fewer than `max_readers` (0: any
    /// number) read it. Answered with [`Reply::HlsSessionOpened`].
    HlsSessionOpen {
        key: StreamKey,
        opening: Box<HlsSessionOpening>,
        reuse: Option<ConnUuid>,
        max_readers: u32,
        reply: ReplyTo,
    },
    /// `bytes` of bodies were sent to the session with this secret.
    HlsSessionSent {
        secret: ConnUuid,
        bytes: u64,
    },

    // Control.
    Reply {
        request: u64,
        reply: Reply,
    },
    /// Gather this core's counters; answered with [`Reply::Stats`].
    GatherStats {
        reply: ReplyTo,
    },
    /// A new configuration for requests from now on.
    ConfigUpdate(std::sync::Arc<crate::config::Snapshot>),
    /// Stop accepting, tell every client, finish.
    Shutdown,

    // Control API queries (answered in `runtime/core/gather.rs`).
    /// Report counters and connections; answered with [`Reply::View`].
    GatherView {
        reply: ReplyTo,
    },
    /// Close the connection with this id if it is on this core; answered with [`Reply::Kicked`].
    KickConn {
        id: ConnUuid,
        reply: ReplyTo,
    },
    /// Close the HLS session with this id if its home is this core; answered with
    /// [`Reply::Kicked`].
    KickHlsSession {
        id: ConnUuid,
        reply: ReplyTo,
    },
    // To a key's home core: readers counted against the path's `maxReaders`.
    /// `session` wants to read the key; admitted while fewer than `max` (0: any number) read it.
    /// Answered with [`Reply::ReaderClaim`].
    ClaimReader {
        key: StreamKey,
        session: SessionId,
        max: u32,
        reply: ReplyTo,
    },
    /// `session` stopped reading the key.
    ReleaseReader {
        key: StreamKey,
        session: SessionId,
    },
    /// The live keys whose home is this core (for the stream list page); answered with
    /// [`Reply::Streams`].
    ListStreams {
        reply: ReplyTo,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Claim(ClaimOutcome),
    Publisher(Option<Publisher>),
    Stats(CoreStats),
    Hls(HlsAnswer),
    View(Box<CoreView>),
    /// Whether the connection was on this core (and is now told to close).
    Kicked(bool),
    /// Whether the reader was admitted.
    ReaderClaim(bool),
    Streams(Vec<StreamKey>),
    HlsSessionOpened(HlsSessionOpened),
}

/// The outcome of opening an HLS session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsSessionOpened {
    /// Opened; the viewer names it by this secret from now on.
    Opened { secret: ConnUuid },
    /// The key is not live and no source of it is starting.
    NoStream,
    /// The path has `maxReaders` readers.
    Full,
}

/// What an HLS request asks the home core for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsQuery {
    /// The playlist; with `block`, a blocking reload (`_HLS_msn`, `_HLS_part`): answered once
    /// the playlist holds that segment (and part).
    Playlist {
        block: Option<(u64, Option<u64>)>,
        session: Option<HlsSessionRef>,
    },
    /// A segment, part or init segment of muxer `instance` (a part may be waited for).
    Media {
        instance: u32,
        name: crate::registry::HlsName,
        session: Option<HlsSessionRef>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsAnswer {
    /// Whether the key has a publisher now.
    pub live: bool,
    /// Whether an on-demand source of the key is starting (a playlist request is worth waiting).
    pub starting: bool,
    /// The playlist (once it lists a segment) or the segment; `None` if there is none (yet).
    pub body: Option<bytes::Bytes>,
    /// A blocking reload asked for a segment too far ahead: the client gets 400.
    pub too_far: bool,
    /// How the session the request named stands.
    pub session: HlsSessionCheck,
}

/// Plain per-core counters: no atomics, gathered on demand over the mesh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub core: u16,
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub publishers: u64,
    /// Players attached to a stream published on this core.
    pub players_local: u64,
    /// Players attached to a mirror of a stream published on another core.
    pub players_remote: u64,
    pub streams_owned: u64,
    pub streams_mirrored: u64,
    pub frames_published: u64,
    pub frames_forwarded: u64,
    pub frames_from_remote: u64,
    /// Frames a remote core missed because its channel was full.
    pub frames_lost_remote: u64,
    pub players_too_slow: u64,
    pub bytes_sent: u64,
    /// Writes to players' sockets (one `sendmsg` per flushed connection, plus slow-path writes).
    pub socket_writes: u64,
    /// Times a player's socket was full and its output waited for room.
    pub socket_blocked: u64,
    /// How often clients of this core hit each configured limit.
    pub limit_hits: super::LimitHits,
}
