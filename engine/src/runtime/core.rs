//! The state and behaviour of one data-plane core: its streams, its share of the directory, and
//! its side of the cross-core protocol.

pub(super) mod gather;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use tracing::{debug, info, warn};

use super::{
    scoped_id, CoreId, CoreMessage, CoreStats, HlsAnswer, HlsQuery, Limit, LocalSignal, Mesh,
    Reply, ReplyTo, SessionId, StreamId,
};
use crate::config::Snapshot;
use crate::delivery::{Flusher, Player};
use crate::media::{Frame, GopLimits, MediaKind};
use crate::registry::{
    home_core, ClaimOutcome, Directory, HlsMuxer, HlsReply, HlsResponder, HlsSettings, LocalStream,
    Publisher, StreamKey, Upstream,
};

/// How long a core waits for another core's answer before treating it as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The core's shared read buffer: a publisher's read takes up to this much at once.
const READ_BUFFER: usize = 64 * 1024;
/// How often a waiting player asks whether its stream went live.
const PLAY_WAIT_POLL: Duration = Duration::from_millis(100);

/// Why the core tells a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The stream it plays ended.
    StreamEnded,
    /// It stayed behind the live stream for longer than `slowPlayerTimeout`.
    TooSlow,
    /// A newer publisher of the same stream replaced it.
    Replaced,
    /// The engine is shutting down.
    Shutdown,
    /// The control API kicked it.
    Kicked,
    /// The configuration no longer has its path, or changed the path's source.
    PathRemoved,
}

/// What the core holds of a connection: a way to tell it to close.
#[derive(Debug, Default)]
pub struct SessionControl {
    notice: Cell<Option<Notice>>,
    signal: LocalSignal,
    /// What the control API shows of the connection.
    pub info: super::ConnInfo,
}

impl SessionControl {
    /// Tells the connection to close; the first notice wins.
    pub fn notify(&self, notice: Notice) {
        if self.notice.get().is_none() {
            self.notice.set(Some(notice));
        }
        self.signal.fire();
    }

    pub fn notice(&self) -> Option<Notice> {
        self.notice.get()
    }

    pub fn signal(&self) -> &LocalSignal {
        &self.signal
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefused {
    /// Someone else publishes the stream (and `overridePublisher` is off).
    AlreadyPublishing,
    /// The home core did not answer (shutting down or overloaded).
    Unavailable,
    /// This core has `maxStreamsPerCore` streams already.
    TooManyStreams { limit: usize },
}

/// Where a player's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The stream is published on this core.
    Local,
    /// Mirrored from the publisher's core.
    Remote(CoreId),
}

/// One data-plane core. Lives in an `Rc` on its executor; never crosses threads.
pub struct Core {
    pub id: CoreId,
    pub data_cores: usize,
    snapshot: RefCell<Arc<Snapshot>>,
    mesh: Mesh,
    shutdown: LocalSignal,
    streams: RefCell<HashMap<StreamKey, Rc<RefCell<LocalStream>>>>,
    stream_keys: RefCell<HashMap<StreamId, StreamKey>>,
    directory: RefCell<Directory>,
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
    sessions: RefCell<HashMap<SessionId, Rc<SessionControl>>>,
    /// HLS muxers of the stream keys whose home is this core.
    hls: RefCell<HashMap<StreamKey, Rc<RefCell<HlsMuxer>>>>,
    stats: RefCell<CoreStats>,
    next_id: Cell<u64>,
    /// Home-core count of every key's readers, for `maxReaders` (see `core/gather.rs`) and for
    /// closing on-demand sources.
    readers: RefCell<HashMap<StreamKey, std::collections::HashSet<SessionId>>>,
    /// Pulled sources and pushes running on this core, installed by the bootstrap.
    links: Rc<dyn super::StreamLinks>,
    /// Writes every connection's output (see `delivery/`).
    flusher: Rc<Flusher>,
    /// Every connection of this core reads through this one buffer, borrowed only for the
    /// duration of a `recv` and the parsing of what it brought.
    read_buffer: RefCell<Vec<u8>>,
    /// This core itself, for the tasks a message handler starts.
    me: Weak<Core>,
}

impl Core {
    pub fn new(
        id: CoreId,
        data_cores: usize,
        snapshot: Arc<Snapshot>,
        mesh: Mesh,
        links: Rc<dyn super::StreamLinks>,
    ) -> Rc<Core> {
        Rc::new_cyclic(|me| Core {
            me: me.clone(),
            links,
            flusher: Flusher::new(),
            read_buffer: RefCell::new(vec![0; READ_BUFFER]),
            id,
            data_cores,
            snapshot: RefCell::new(snapshot),
            mesh,
            shutdown: LocalSignal::new(),
            streams: RefCell::default(),
            stream_keys: RefCell::default(),
            directory: RefCell::default(),
            pending: RefCell::default(),
            sessions: RefCell::default(),
            hls: RefCell::default(),
            stats: RefCell::new(CoreStats {
                core: id.0,
                ..CoreStats::default()
            }),
            next_id: Cell::new(1),
            readers: RefCell::default(),
        })
    }

    fn next(&self) -> u64 {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        scoped_id(self.id, n)
    }

    /// This core's relay links.
    pub fn links(&self) -> &Rc<dyn super::StreamLinks> {
        &self.links
    }

    /// Readers of `key` counted here (meaningful on the key's home core only).
    pub fn reader_count(&self, key: &StreamKey) -> usize {
        self.readers.borrow().get(key).map_or(0, |r| r.len())
    }

    /// Whether the stream `id` of `key` is published on this core.
    pub fn owns_stream(&self, key: &StreamKey, id: StreamId) -> bool {
        self.streams.borrow().get(key).is_some_and(|s| {
            let s = s.borrow();
            s.id == id && matches!(s.upstream, Upstream::Publisher(_))
        })
    }

    /// The streams published on this core, for pushes added to their path while they are live.
    pub fn published_streams(&self) -> Vec<(StreamKey, StreamId)> {
        let streams = self.streams.borrow();
        let published = streams.iter().filter_map(|(k, s)| {
            let s = s.borrow();
            matches!(s.upstream, Upstream::Publisher(_)).then(|| (k.clone(), s.id))
        });
        published.collect()
    }

    /// The configuration and auth rules new requests are judged by.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    pub fn shutdown_signal(&self) -> &LocalSignal {
        &self.shutdown
    }

    pub fn stats(&self) -> CoreStats {
        let mut s = *self.stats.borrow();
        let streams = self.streams.borrow();
        s.streams_owned = streams
            .values()
            .filter(|st| matches!(st.borrow().upstream, Upstream::Publisher(_)))
            .count() as u64;
        s.streams_mirrored = streams.len() as u64 - s.streams_owned;
        let flushed = self.flusher.counters();
        s.bytes_sent = flushed.bytes;
        s.socket_writes = flushed.writes;
        s.socket_blocked = flushed.blocked;
        s
    }

    /// The read buffer this core's connections share (see [`Conn::read_with`](crate::server)).
    pub fn read_buffer(&self) -> &RefCell<Vec<u8>> {
        &self.read_buffer
    }

    /// The flusher of this core's connections.
    pub fn flusher(&self) -> &Rc<Flusher> {
        &self.flusher
    }

    /// Counts a client running into `limit` (the caller logs it and closes or refuses).
    pub fn hit_limit(&self, limit: Limit) {
        self.stats.borrow_mut().limit_hits.add(limit);
    }

    /// Whether this core serves `maxConnectionsPerCore` connections already.
    pub fn at_connection_limit(&self) -> bool {
        self.sessions.borrow().len() >= self.snapshot().config.max_connections_per_core
    }

    fn gop_limits(&self) -> GopLimits {
        GopLimits {
            max_bytes: self.snapshot().config.gop_cache_max_bytes,
            max_duration_ms: u32::try_from(self.snapshot().config.gop_cache_max_duration.0)
                .unwrap_or(u32::MAX),
        }
    }

    // ---- Connections ------------------------------------------------------------------------

    /// Registers a new connection; the returned guard unregisters it when dropped.
    pub fn open_session(self: &Rc<Self>) -> SessionGuard {
        let id = SessionId(self.next());
        let control = Rc::new(SessionControl::default());
        if self.shutdown.is_fired() {
            control.notify(Notice::Shutdown);
        }
        self.sessions.borrow_mut().insert(id, control.clone());
        let mut stats = self.stats.borrow_mut();
        stats.connections_accepted += 1;
        stats.connections_open += 1;
        SessionGuard {
            core: self.clone(),
            id,
            control,
        }
    }

    pub(crate) fn notify_session(&self, session: SessionId, notice: Notice) {
        let control = self.sessions.borrow().get(&session).cloned();
        if let Some(c) = control {
            c.notify(notice);
        }
    }

    // ---- Publishing -------------------------------------------------------------------------

    /// Claims `key` for a publisher on this core, asking the key's home core.
    pub async fn claim_publish(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
    ) -> Result<PublishHandle, PublishRefused> {
        let home = home_core(key, self.data_cores);
        let publisher = Publisher {
            core: self.id,
            session,
        };
        let config = &self.snapshot().config;
        let owned = self
            .streams
            .borrow()
            .values()
            .filter(|st| matches!(st.borrow().upstream, Upstream::Publisher(_)))
            .count();
        if owned >= config.max_streams_per_core {
            self.hit_limit(Limit::StreamsPerCore);
            return Err(PublishRefused::TooManyStreams {
                limit: config.max_streams_per_core,
            });
        }
        let replace = config
            .path_conf(&key.path())
            .map_or(config.override_publisher, |p| p.override_publisher);
        let reply = self
            .request(home, |reply| CoreMessage::ClaimPublish {
                key: key.clone(),
                publisher,
                replace,
                reply,
            })
            .await;
        match reply {
            Some(Reply::Claim(ClaimOutcome::Granted | ClaimOutcome::Replaced { .. })) => {}
            Some(Reply::Claim(ClaimOutcome::Conflict { .. })) => {
                return Err(PublishRefused::AlreadyPublishing)
            }
            _ => return Err(PublishRefused::Unavailable),
        }
        // A mirror of the previous publisher's stream may still be here: end it first.
        if let Some(old) = self.streams.borrow_mut().remove(key) {
            self.end_local_stream(&mut old.borrow_mut());
        }
        let id = StreamId(self.next());
        let stream = Rc::new(RefCell::new(LocalStream::origin(
            id,
            key.clone(),
            session,
            self.gop_limits(),
        )));
        self.streams
            .borrow_mut()
            .insert(key.clone(), stream.clone());
        self.stream_keys.borrow_mut().insert(id, key.clone());
        self.stats.borrow_mut().publishers += 1;
        self.links.published(self, key, id);
        Ok(PublishHandle {
            core: self.clone(),
            key: key.clone(),
            session,
            stream,
            targets: RefCell::new(Vec::new()),
        })
    }

    /// Tells a stream's local players and (for an origin) its subscribed cores that it ended.
    fn end_local_stream(&self, stream: &mut LocalStream) {
        self.stream_keys.borrow_mut().remove(&stream.id);
        if let Some(hls) = stream.take_hls() {
            hls.borrow_mut().detach();
        }
        for p in stream.players() {
            self.notify_session(p.session, Notice::StreamEnded);
        }
        match stream.upstream {
            Upstream::Publisher(_) => {
                for core in stream.subscribers() {
                    self.send(core, CoreMessage::StreamEnd { stream: stream.id });
                }
            }
            Upstream::Core(owner) => self.send(
                owner,
                CoreMessage::Unsubscribe {
                    key: stream.key.clone(),
                    subscriber: self.id,
                },
            ),
        }
    }

    fn kick_too_slow(&self, sessions: Vec<SessionId>) {
        if sessions.is_empty() {
            return;
        }
        {
            let mut stats = self.stats.borrow_mut();
            stats.players_too_slow += sessions.len() as u64;
            for _ in &sessions {
                stats.limit_hits.add(Limit::PlayerQueueBytes);
            }
        }
        for s in sessions {
            warn!(core = %self.id, conn = %s, "player too slow for too long: disconnecting");
            self.notify_session(s, Notice::TooSlow);
        }
    }

    // ---- Playing ----------------------------------------------------------------------------

    /// Waits up to `wait` for `key` to go live; says where its media would come from.
    ///
    /// Separate from [`Core::attach_player`] so the caller can answer the client (play accepted)
    /// before the first media is queued behind that answer.
    ///
    /// `gone` is asked between polls: a client that disconnects while waiting stops the wait (and
    /// frees its connection) at once rather than at the end of `wait`.
    pub async fn find_stream(
        &self,
        key: &StreamKey,
        wait: Duration,
        gone: &dyn Fn() -> bool,
    ) -> Option<Via> {
        // A key with an on-demand source waits for it as long as its path says.
        let wait = self
            .links
            .start_timeout(&self.snapshot().config, key)
            .unwrap_or(wait);
        let deadline = Instant::now() + wait;
        let home = home_core(key, self.data_cores);
        loop {
            if let Some(stream) = self.streams.borrow().get(key) {
                return Some(match stream.borrow().upstream {
                    Upstream::Publisher(_) => Via::Local,
                    Upstream::Core(owner) => Via::Remote(owner),
                });
            }
            let found = self
                .request(home, |reply| CoreMessage::FindPublisher {
                    key: key.clone(),
                    reply,
                })
                .await;
            match found {
                Some(Reply::Publisher(Some(p))) if p.core != self.id => {
                    return Some(Via::Remote(p.core))
                }
                // Claimed on this core but not yet set up, or not live: ask again shortly.
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline || self.shutdown.is_fired() || gone() {
                return None;
            }
            glommio::timer::sleep(PLAY_WAIT_POLL.min(deadline - now)).await;
        }
    }

    /// Attaches a player to `key` as found by [`Core::find_stream`]: to the local stream or
    /// mirror if there is one, else to a new mirror subscribed to the owner core. `None` if the
    /// stream ended in between.
    pub fn attach_player(
        self: &Rc<Self>,
        key: &StreamKey,
        player: Player,
        via: Via,
    ) -> Option<PlayHandle> {
        let session = player.session;
        let config = &self.snapshot().config;
        let window = config
            .path_conf(&key.path())
            .and_then(|p| p.write_merge_latency)
            .unwrap_or(config.write_merge_latency);
        player.queue.borrow().set_merge_window(window.duration());
        let existing = self.streams.borrow().get(key).cloned();
        let via = match (existing, via) {
            (Some(stream), _) => {
                let mut s = stream.borrow_mut();
                let ok = s.add_player(player, Instant::now());
                let via = match s.upstream {
                    Upstream::Publisher(_) => Via::Local,
                    Upstream::Core(owner) => Via::Remote(owner),
                };
                drop(s);
                if !ok {
                    self.kick_too_slow(vec![session]);
                }
                via
            }
            (None, Via::Remote(owner)) => {
                let mut mirror =
                    LocalStream::mirror(StreamId(0), key.clone(), owner, self.gop_limits());
                mirror.add_player(player, Instant::now());
                self.streams
                    .borrow_mut()
                    .insert(key.clone(), Rc::new(RefCell::new(mirror)));
                self.send(
                    owner,
                    CoreMessage::Subscribe {
                        key: key.clone(),
                        subscriber: self.id,
                    },
                );
                Via::Remote(owner)
            }
            (None, Via::Local) => return None,
        };
        Some(self.play_handle(key, session, via))
    }

    fn play_handle(self: &Rc<Self>, key: &StreamKey, session: SessionId, via: Via) -> PlayHandle {
        let mut stats = self.stats.borrow_mut();
        match via {
            Via::Local => stats.players_local += 1,
            Via::Remote(_) => stats.players_remote += 1,
        }
        PlayHandle {
            core: self.clone(),
            key: key.clone(),
            session,
            via,
        }
    }

    fn detach_player(&self, key: &StreamKey, session: SessionId) {
        let Some(stream) = self.streams.borrow().get(key).cloned() else {
            return;
        };
        let mut s = stream.borrow_mut();
        s.remove_player(session);
        self.drop_mirror_if_unused(key, &s);
    }

    /// A mirror nobody reads any more (no player, no HLS muxer) is removed, and its owner stops
    /// sending us frames.
    fn drop_mirror_if_unused(&self, key: &StreamKey, s: &LocalStream) {
        if let (Upstream::Core(owner), true) = (s.upstream, s.is_unused()) {
            self.streams.borrow_mut().remove(key);
            self.stream_keys.borrow_mut().remove(&s.id);
            self.send(
                owner,
                CoreMessage::Unsubscribe {
                    key: key.clone(),
                    subscriber: self.id,
                },
            );
        }
    }

    // ---- The cross-core protocol ------------------------------------------------------------

    fn send(&self, to: CoreId, msg: CoreMessage) {
        if to == self.id {
            self.handle(self.id, msg);
        } else {
            self.mesh.send_reliable(to, msg);
        }
    }

    fn reply(&self, to: ReplyTo, reply: Reply) {
        self.send(
            to.core,
            CoreMessage::Reply {
                request: to.request,
                reply,
            },
        );
    }

    async fn request(
        &self,
        to: CoreId,
        build: impl FnOnce(ReplyTo) -> CoreMessage,
    ) -> Option<Reply> {
        let request = self.next();
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(request, tx);
        self.send(
            to,
            build(ReplyTo {
                core: self.id,
                request,
            }),
        );
        let answer = glommio::timer::timeout(REPLY_TIMEOUT, async { Ok(rx.recv().await) }).await;
        self.pending.borrow_mut().remove(&request);
        answer.ok().flatten()
    }

    /// Handles one message from core `from` (or from this core itself).
    pub fn handle(&self, from: CoreId, msg: CoreMessage) {
        match msg {
            CoreMessage::ClaimPublish {
                key,
                publisher,
                replace,
                reply,
            } => {
                let outcome = self.directory.borrow_mut().claim(&key, publisher, replace);
                if let ClaimOutcome::Replaced { previous } = outcome {
                    info!(core = %self.id, stream = %key, "publisher replaced by a newer one");
                    self.send(
                        previous.core,
                        CoreMessage::KickPublisher {
                            session: previous.session,
                        },
                    );
                }
                self.reply(reply, Reply::Claim(outcome));
                if self.snapshot().config.hls_always_remux
                    && !matches!(outcome, ClaimOutcome::Conflict { .. })
                {
                    self.hls_muxer(&key);
                }
            }
            CoreMessage::ReleasePublish { key, session } => {
                self.directory.borrow_mut().release(&key, session);
            }
            CoreMessage::FindPublisher { key, reply } => {
                let found = self.directory.borrow().find(&key);
                self.reply(reply, Reply::Publisher(found));
                if let (None, Some(me)) = (found, self.me.upgrade()) {
                    self.links.demanded(&me, &key);
                }
            }
            CoreMessage::Subscribe { key, subscriber } => {
                let stream = self.streams.borrow().get(&key).cloned();
                let start = stream.and_then(|s| {
                    let mut s = s.borrow_mut();
                    matches!(s.upstream, Upstream::Publisher(_)).then(|| {
                        s.add_subscriber(subscriber);
                        (s.id, s.startup_frames(), s.media_history())
                    })
                });
                match start {
                    Some((stream, startup, history)) => self.send(
                        subscriber,
                        CoreMessage::StreamStart {
                            key,
                            stream,
                            startup,
                            history,
                        },
                    ),
                    None => self.send(subscriber, CoreMessage::StreamGone { key }),
                }
            }
            CoreMessage::Unsubscribe { key, subscriber } => {
                if let Some(s) = self.streams.borrow().get(&key) {
                    s.borrow_mut().remove_subscriber(subscriber);
                }
            }
            CoreMessage::KickPublisher { session } => {
                self.notify_session(session, Notice::Replaced);
            }
            CoreMessage::StreamStart {
                key,
                stream: id,
                startup,
                history,
            } => {
                let mirror = self.streams.borrow().get(&key).cloned();
                let waiting = mirror.filter(|m| {
                    let m = m.borrow();
                    m.upstream == Upstream::Core(from) && !m.is_ready()
                });
                match waiting {
                    Some(m) => {
                        let too_slow = {
                            let mut m = m.borrow_mut();
                            m.id = id;
                            m.start_mirror(&startup, history, Instant::now())
                        };
                        self.stream_keys.borrow_mut().insert(id, key);
                        self.kick_too_slow(too_slow);
                    }
                    None => self.send(
                        from,
                        CoreMessage::Unsubscribe {
                            key,
                            subscriber: self.id,
                        },
                    ),
                }
            }
            CoreMessage::Media { stream, frame } => {
                self.stats.borrow_mut().frames_from_remote += 1;
                let key = self.stream_keys.borrow().get(&stream).cloned();
                let target = key.and_then(|k| self.streams.borrow().get(&k).cloned());
                if let Some(s) = target {
                    let too_slow = s.borrow_mut().deliver(&frame, Instant::now());
                    self.kick_too_slow(too_slow);
                }
            }
            CoreMessage::StreamEnd { stream } => {
                let key = self.stream_keys.borrow_mut().remove(&stream);
                if let Some(key) = key {
                    let removed = {
                        let mut streams = self.streams.borrow_mut();
                        let same = streams.get(&key).is_some_and(|s| s.borrow().id == stream);
                        if same {
                            streams.remove(&key)
                        } else {
                            None
                        }
                    };
                    if let Some(s) = removed {
                        self.ended_upstream(&mut s.borrow_mut());
                    }
                }
            }
            CoreMessage::StreamGone { key } => {
                let removed = {
                    let mut streams = self.streams.borrow_mut();
                    let waiting = streams.get(&key).is_some_and(|s| {
                        s.borrow().upstream == Upstream::Core(from) && !s.borrow().is_ready()
                    });
                    if waiting {
                        streams.remove(&key)
                    } else {
                        None
                    }
                };
                if let Some(s) = removed {
                    self.ended_upstream(&mut s.borrow_mut());
                }
            }
            CoreMessage::Reply { request, reply } => {
                if let Some(tx) = self.pending.borrow_mut().remove(&request) {
                    // The requester may have timed out and gone; nothing to do then.
                    let _ = tx.try_send(reply);
                }
            }
            CoreMessage::HlsGet { key, query, reply } => {
                // A parked request (blocking reload, preload hint) is answered by its muxer.
                if let Some(answer) = self.hls_answer(&key, query, reply) {
                    self.reply(reply, Reply::Hls(answer));
                }
            }
            CoreMessage::GatherStats { reply } => self.reply(reply, Reply::Stats(self.stats())),
            CoreMessage::ConfigUpdate(snapshot) => {
                info!(core = %self.id, "configuration updated");
                let old = std::mem::replace(&mut *self.snapshot.borrow_mut(), snapshot.clone());
                self.close_unconfigured(&old, &snapshot);
                if let Some(me) = self.me.upgrade() {
                    self.links.reconfigured(&me);
                }
            }
            CoreMessage::Shutdown => self.begin_shutdown(),
            CoreMessage::GatherView { reply } => {
                self.reply(reply, Reply::View(Box::new(self.gather_view())))
            }
            CoreMessage::KickConn { id, reply } => {
                let kicked = self.kick_conn(id);
                self.reply(reply, Reply::Kicked(kicked));
            }
            CoreMessage::ClaimReader {
                key,
                session,
                max,
                reply,
            } => {
                let admitted = self.admit_reader(key, session, max);
                self.reply(reply, Reply::ReaderClaim(admitted));
            }
            CoreMessage::ReleaseReader { key, session } => self.release_reader(&key, session),
            CoreMessage::ListStreams { reply } => {
                let keys = self.directory.borrow().keys().cloned().collect();
                self.reply(reply, Reply::Streams(keys));
            }
        }
    }

    /// A mirror whose upstream ended: its players are told, its HLS muxer detached.
    fn ended_upstream(&self, stream: &mut LocalStream) {
        for p in stream.players() {
            self.notify_session(p.session, Notice::StreamEnded);
        }
        if let Some(hls) = stream.take_hls() {
            hls.borrow_mut().detach();
        }
    }

    // ---- HLS (on the stream key's home core) ---------------------------------------------

    /// The live stream keys, from every data core's directory, sorted.
    pub async fn live_streams(&self) -> Vec<StreamKey> {
        let mut keys = Vec::new();
        for core in 0..self.data_cores {
            let to = CoreId(core as u16);
            if let Some(Reply::Streams(k)) = self
                .request(to, |reply| CoreMessage::ListStreams { reply })
                .await
            {
                keys.extend(k);
            }
        }
        keys.sort_by_key(|k| k.path());
        keys
    }

    /// Asks the key's home core for a playlist or segment.
    pub async fn hls_get(&self, key: &StreamKey, query: HlsQuery) -> Option<HlsAnswer> {
        let home = home_core(key, self.data_cores);
        match self
            .request(home, |reply| CoreMessage::HlsGet {
                key: key.clone(),
                query,
                reply,
            })
            .await
        {
            Some(Reply::Hls(answer)) => Some(answer),
            _ => None,
        }
    }

    /// The key's muxer, created (and attached if the stream is live) on first use.
    fn hls_muxer(&self, key: &StreamKey) -> Rc<RefCell<HlsMuxer>> {
        let existing = self.hls.borrow().get(key).cloned();
        let muxer = existing.unwrap_or_else(|| {
            let config = &self.snapshot().config;
            let settings = HlsSettings {
                variant: config.hls_variant,
                segment_duration: config.hls_segment_duration.duration(),
                part_duration: config.hls_part_duration.duration(),
                window: config.hls_segment_count,
            };
            let me = self.me.clone();
            let responder: HlsResponder = Rc::new(move |to, body| {
                if let Some(core) = me.upgrade() {
                    let answer = HlsAnswer {
                        live: true,
                        starting: false,
                        body,
                        too_far: false,
                    };
                    core.reply(to, Reply::Hls(answer));
                }
            });
            let muxer = Rc::new(RefCell::new(HlsMuxer::new(
                &key.stream,
                (self.next() & 0xffff_ffff) as u32,
                settings,
                responder,
                Instant::now(),
            )));
            info!(core = %self.id, stream = %key, variant = ?settings.variant, "hls muxer started");
            self.hls.borrow_mut().insert(key.clone(), muxer.clone());
            muxer
        });
        if !muxer.borrow().is_attached() {
            self.hls_attach(key, &muxer);
        }
        muxer
    }

    /// The answer to an HLS request, or `None` when the muxer parked it to answer later.
    fn hls_answer(&self, key: &StreamKey, query: HlsQuery, reply: ReplyTo) -> Option<HlsAnswer> {
        let live = self.directory.borrow().find(key).is_some();
        let is_playlist = matches!(query, HlsQuery::Playlist { .. });
        // A playlist request is a reader: it starts the key's on-demand source like a player does.
        if let (true, false, Some(me)) = (is_playlist, live, self.me.upgrade()) {
            self.links.demanded(&me, key);
        }
        let starting = !live && self.links.has_source(key);
        let now = Instant::now();
        let muxer = if is_playlist && live {
            Some(self.hls_muxer(key))
        } else {
            self.hls.borrow().get(key).cloned()
        };
        let mut answer = HlsAnswer {
            live,
            starting,
            body: None,
            too_far: false,
        };
        let Some(muxer) = muxer else {
            return Some(answer);
        };
        let mut m = muxer.borrow_mut();
        m.touch(now);
        let outcome = match query {
            HlsQuery::Playlist { block: None } => HlsReply::Now(m.playlist().map(Bytes::from)),
            HlsQuery::Playlist {
                block: Some((msn, part)),
            } => m.request_playlist(msn, part, reply, now),
            HlsQuery::Media { instance, name } if instance == m.instance() => {
                m.request_media(name, reply, now)
            }
            HlsQuery::Media { .. } => HlsReply::Now(None),
        };
        match outcome {
            HlsReply::Now(body) => answer.body = body,
            HlsReply::TooFar => answer.too_far = true,
            HlsReply::Parked => return None,
        }
        if let Some(b) = &answer.body {
            m.record_sent(b.len());
        }
        Some(answer)
    }

    /// Feeds the muxer from the key's stream: the local stream or mirror if there is one, else a
    /// new mirror subscribed to the publisher's core. Does nothing while the key is not live.
    fn hls_attach(&self, key: &StreamKey, muxer: &Rc<RefCell<HlsMuxer>>) {
        let now = Instant::now();
        if let Some(stream) = self.streams.borrow().get(key) {
            let mut s = stream.borrow_mut();
            if !s.has_hls() {
                s.set_hls(muxer.clone(), now);
            }
            return;
        }
        let Some(publisher) = self.directory.borrow().find(key) else {
            return;
        };
        if publisher.core == self.id {
            // Claimed here but the stream is not set up yet: the next tick attaches.
            return;
        }
        let mut mirror =
            LocalStream::mirror(StreamId(0), key.clone(), publisher.core, self.gop_limits());
        mirror.set_hls(muxer.clone(), now);
        self.streams
            .borrow_mut()
            .insert(key.clone(), Rc::new(RefCell::new(mirror)));
        self.send(
            publisher.core,
            CoreMessage::Subscribe {
                key: key.clone(),
                subscriber: self.id,
            },
        );
    }

    /// Whether `key`'s HLS muxer (on this, its home core) was asked for something within `within`:
    /// HLS viewers hold no connection, so this is how they count as readers.
    pub fn hls_requested_within(&self, key: &StreamKey, now: Instant, within: Duration) -> bool {
        self.hls
            .borrow()
            .get(key)
            .is_some_and(|m| m.borrow().idle_for(now) < within)
    }

    /// Periodic HLS upkeep: attaches muxers whose stream went live, stops idle ones.
    pub fn hls_tick(&self) {
        let now = Instant::now();
        let close_after = self.snapshot().config.hls_muxer_close_after.duration();
        let always = self.snapshot().config.hls_always_remux;
        let muxers: Vec<_> = self
            .hls
            .borrow()
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (key, muxer) in muxers {
            // Parked requests past their deadline get their answer.
            muxer.borrow_mut().wake(now);
            let live = self.directory.borrow().find(&key).is_some();
            let idle = muxer.borrow().idle_for(now) >= close_after;
            if idle && !(always && live) {
                self.hls_stop(&key);
            } else if !muxer.borrow().is_attached() {
                self.hls_attach(&key, &muxer);
            }
        }
    }

    fn hls_stop(&self, key: &StreamKey) {
        self.hls.borrow_mut().remove(key);
        info!(core = %self.id, stream = %key, "hls muxer stopped: no requests");
        let Some(stream) = self.streams.borrow().get(key).cloned() else {
            return;
        };
        let mut s = stream.borrow_mut();
        s.take_hls();
        self.drop_mirror_if_unused(key, &s);
    }

    fn begin_shutdown(&self) {
        if self.shutdown.is_fired() {
            return;
        }
        info!(core = %self.id, "shutting down: closing listeners and telling clients");
        self.shutdown.fire();
        self.links.stop_all(self);
        let sessions: Vec<_> = self.sessions.borrow().values().cloned().collect();
        for s in sessions {
            s.notify(Notice::Shutdown);
        }
    }

    pub fn open_sessions(&self) -> usize {
        self.sessions.borrow().len()
    }
}

/// A registered connection; unregisters it when dropped.
pub struct SessionGuard {
    core: Rc<Core>,
    pub id: SessionId,
    pub control: Rc<SessionControl>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.core.sessions.borrow_mut().remove(&self.id);
        self.core.stats.borrow_mut().connections_open -= 1;
    }
}

/// A live publish on this core. Frames pushed here reach every player on every core; dropping it
/// ends the stream everywhere and releases the key.
pub struct PublishHandle {
    core: Rc<Core>,
    pub key: StreamKey,
    session: SessionId,
    stream: Rc<RefCell<LocalStream>>,
    targets: RefCell<Vec<CoreId>>,
}

impl PublishHandle {
    pub fn stream_id(&self) -> StreamId {
        self.stream.borrow().id
    }

    /// Delivers one frame to local players and, once per core, to every subscribed core.
    pub fn push(&self, frame: Frame) {
        let core = &self.core;
        let mut targets = self.targets.borrow_mut();
        let (id, too_slow, gop_overflow) = {
            let mut s = self.stream.borrow_mut();
            let overflows = s.gop_byte_overflows();
            let too_slow = s.deliver(&frame, Instant::now());
            s.forward_targets(&frame, &mut targets);
            (s.id, too_slow, s.gop_byte_overflows() > overflows)
        };
        if gop_overflow {
            core.hit_limit(Limit::GopCacheBytes);
            info!(core = %core.id, stream = %self.key, "GOP outgrew gopCacheMaxBytes: dropped from the cache until the next keyframe");
        }
        core.kick_too_slow(too_slow);
        let mut stats = core.stats.borrow_mut();
        stats.frames_published += 1;
        // Metadata and sequence headers are few and every later frame needs them: they wait for
        // room rather than be lost. Media that finds no room is dropped, and that core resumes
        // at the next keyframe.
        let must_arrive = frame.is_sequence_header() || frame.kind == MediaKind::Script;
        for &to in targets.iter() {
            let msg = CoreMessage::Media {
                stream: id,
                frame: frame.clone(),
            };
            if must_arrive {
                core.mesh.send_reliable(to, msg);
                stats.frames_forwarded += 1;
            } else if core.mesh.try_send(to, msg).is_ok() {
                stats.frames_forwarded += 1;
            } else {
                stats.frames_lost_remote += 1;
                self.stream.borrow_mut().mark_lagging(to);
                debug!(core = %core.id, to = %to, "core channel full: remote players skip to the next keyframe");
            }
        }
    }
}

impl Drop for PublishHandle {
    fn drop(&mut self) {
        let core = &self.core;
        let id = self.stream.borrow().id;
        let removed = {
            let mut streams = core.streams.borrow_mut();
            let ours = streams.get(&self.key).is_some_and(|s| s.borrow().id == id);
            if ours {
                streams.remove(&self.key)
            } else {
                None
            }
        };
        if removed.is_some() {
            core.end_local_stream(&mut self.stream.borrow_mut());
        }
        core.stats.borrow_mut().publishers -= 1;
        core.send(
            home_core(&self.key, core.data_cores),
            CoreMessage::ReleasePublish {
                key: self.key.clone(),
                session: self.session,
            },
        );
    }
}

/// A player attached to a stream on this core; detaches when dropped.
pub struct PlayHandle {
    core: Rc<Core>,
    pub key: StreamKey,
    session: SessionId,
    pub via: Via,
}

impl Drop for PlayHandle {
    fn drop(&mut self) {
        self.core.detach_player(&self.key, self.session);
        let mut stats = self.core.stats.borrow_mut();
        match self.via {
            Via::Local => stats.players_local -= 1,
            Via::Remote(_) => stats.players_remote -= 1,
        }
    }
}
