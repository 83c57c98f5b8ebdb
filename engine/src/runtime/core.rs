//! The state and behaviour of one data-plane core: its streams, its share of the directory, and
//! its side of the cross-core protocol.

pub(super) mod gather;
mod hls;
mod record;
mod rpc;
mod sessions;
mod streams;

use self::rpc::Rpc;
use self::sessions::Sessions;
use self::streams::StreamTable;
pub use self::sessions::{Notice, SessionControl};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{
    scoped_id, CoreId, CoreMessage, CoreStats, Limit, LocalSignal, Mesh, Reply, ReplyTo, SessionId,
    StreamId,
};
use crate::cluster::{ClaimAnswer, Cluster};
use crate::config::Snapshot;
use crate::delivery::{Flusher, Player};
use crate::media::{Frame, GopLimits, MediaKind};
use crate::registry::{
    home_core, ClaimOutcome, Directory, HlsMuxer, LocalStream, Publisher, StreamKey, Upstream,
};

/// How long a core waits for another core's answer before treating it as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The core's shared read buffer: a publisher's read takes up to this much at once.
const READ_BUFFER: usize = 64 * 1024;
/// How often a waiting player asks whether its stream went live.
const PLAY_WAIT_POLL: Duration = Duration::from_millis(100);

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefused {
    /// Someone else publishes the stream (and `overridePublisher` is off).
    AlreadyPublishing,
    /// The home core did not answer (shutting down or overloaded).
    Unavailable,
    /// This core has `maxStreamsPerCore` streams already.
    TooManyStreams { limit: usize },
    /// The cluster's directory cannot be asked and `cluster.failOpen` is off.
    ClusterUnavailable,
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
    /// The streams published here and the mirrors of other cores' streams.
    streams: StreamTable,
    directory: RefCell<Directory>,
    /// Requests to other cores waiting for their answer.
    rpc: Rpc,
    /// The connections of this core.
    sessions: Sessions,
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
    /// The cluster's directory (`cluster:`), or `None` for a node that runs alone.
    cluster: Option<Cluster>,
    /// This core itself, for the tasks a message handler starts.
    me: Weak<Core>,
    /// Recording counters per path name (see `core/record.rs`).
    record_stats:
        RefCell<std::collections::BTreeMap<String, Rc<RefCell<crate::record::RecordStats>>>>,
}

impl Core {
    pub fn new(
        id: CoreId,
        data_cores: usize,
        snapshot: Arc<Snapshot>,
        mesh: Mesh,
        links: Rc<dyn super::StreamLinks>,
        cluster: Option<Cluster>,
    ) -> Rc<Core> {
        Rc::new_cyclic(|me| Core {
            me: me.clone(),
            cluster,
            links,
            flusher: Flusher::new(),
            read_buffer: RefCell::new(vec![0; READ_BUFFER]),
            id,
            data_cores,
            snapshot: RefCell::new(snapshot),
            mesh,
            shutdown: LocalSignal::new(),
            streams: StreamTable::default(),
            directory: RefCell::default(),
            rpc: Rpc::default(),
            sessions: Sessions::default(),
            hls: RefCell::default(),
            stats: RefCell::new(CoreStats {
                core: id.0,
                ..CoreStats::default()
            }),
            next_id: Cell::new(1),
            readers: RefCell::default(),
            record_stats: RefCell::default(),
        })
    }

    fn next(&self) -> u64 {
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        scoped_id(self.id, n)
    }

    /// The cluster this node belongs to, if any.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
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
        self.streams.get(key).is_some_and(|s| {
            let s = s.borrow();
            s.id == id && matches!(s.upstream, Upstream::Publisher(_))
        })
    }

    /// The streams published on this core, for pushes added to their path while they are live.
    pub fn published_streams(&self) -> Vec<(StreamKey, StreamId)> {
        let streams = self.streams.entries();
        let published = streams.into_iter().filter_map(|(k, s)| {
            let id = s.borrow().id;
            matches!(s.borrow().upstream, Upstream::Publisher(_)).then_some((k, id))
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
        s.streams_owned = self.streams.published_count() as u64;
        s.streams_mirrored = self.streams.len() as u64 - s.streams_owned;
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
        self.sessions.len() >= self.snapshot().config.max_connections_per_core
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
        self.sessions.insert(id, control.clone());
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
        self.sessions.notify(session, notice);
    }

    // ---- Publishing -------------------------------------------------------------------------

    /// Claims `key` for a publisher on this core, asking the cluster's directory (when this
    /// node is in a cluster) and then the key's home core.
    pub async fn claim_publish(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
    ) -> Result<PublishHandle, PublishRefused> {
        self.claim(key, session, false).await
    }

    /// Claims `key` for a pull of another cluster node's stream: on this node only (the owner
    /// keeps the directory entry), and any publisher of the key here replaces it.
    pub async fn claim_cluster_mirror(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
    ) -> Result<PublishHandle, PublishRefused> {
        self.claim(key, session, true).await
    }

    async fn claim(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
        mirror: bool,
    ) -> Result<PublishHandle, PublishRefused> {
        let home = home_core(key, self.data_cores);
        let publisher = Publisher {
            core: self.id,
            session,
            mirror,
        };
        let config = &self.snapshot().config;
        let owned = self.streams.published_count();
        if owned >= config.max_streams_per_core {
            self.hit_limit(Limit::StreamsPerCore);
            return Err(PublishRefused::TooManyStreams {
                limit: config.max_streams_per_core,
            });
        }
        let replace = config
            .path_conf(&key.path())
            .map_or(config.override_publisher, |p| p.override_publisher);
        // The cluster first: a publish another node holds is refused before anything here
        // changes (a pull of it on this node keeps its viewers).
        if let (Some(cluster), false) = (&self.cluster, mirror) {
            match cluster.claim(key, replace).await {
                ClaimAnswer::Granted { .. } => {}
                ClaimAnswer::Conflict { owner } => {
                    info!(core = %self.id, stream = %key, owner = %owner, "publish refused: another cluster node publishes the stream");
                    return Err(PublishRefused::AlreadyPublishing);
                }
                ClaimAnswer::Unreachable if cluster.settings.fail_open => {
                    debug!(core = %self.id, stream = %key, "cluster directory unreachable: publish accepted (failOpen)");
                }
                ClaimAnswer::Unreachable => {
                    info!(core = %self.id, stream = %key, "publish refused: the cluster directory is unreachable (failOpen: false)");
                    return Err(PublishRefused::ClusterUnavailable);
                }
            }
        }
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
        if let Some(old) = self.streams.remove(key) {
            self.end_local_stream(&mut old.borrow_mut());
        }
        let id = StreamId(self.next());
        let stream = Rc::new(RefCell::new(LocalStream::origin(
            id,
            key.clone(),
            session,
            self.gop_limits(),
        )));
        stream.borrow_mut().cluster_mirror = mirror;
        self.apply_recording(&mut stream.borrow_mut());
        self.streams.insert(key, stream.clone());
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

    /// Stops this core's publishers of `keys` (another cluster node took them over).
    pub fn stop_publishers_of(&self, keys: &[StreamKey]) {
        let sessions: Vec<(StreamKey, SessionId)> = {
            keys.iter()
                .filter_map(|k| {
                    let s = self.streams.get(k)?;
                    let upstream = s.borrow().upstream;
                    match upstream {
                        Upstream::Publisher(session) => Some((k.clone(), session)),
                        Upstream::Core(_) => None,
                    }
                })
                .collect()
        };
        for (key, session) in sessions {
            info!(core = %self.id, stream = %key, conn = %session, "publisher replaced by one on another cluster node");
            self.notify_session(session, Notice::Replaced);
        }
    }

    /// Tells a stream's local players and (for an origin) its subscribed cores that it ended.
    fn end_local_stream(&self, stream: &mut LocalStream) {
        if let Some(hls) = stream.take_hls() {
            hls.borrow_mut().detach();
        }
        if let Some(recorder) = stream.take_recorder() {
            recorder.finish();
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
        self.find_stream_from(key, wait, gone, true).await
    }

    /// [`Core::find_stream`]; `cluster` false for a pull from another cluster node, which is
    /// served only what is live on this node (no lookup, so pulls never loop between nodes).
    pub async fn find_stream_from(
        &self,
        key: &StreamKey,
        wait: Duration,
        gone: &dyn Fn() -> bool,
        cluster: bool,
    ) -> Option<Via> {
        // A key with an on-demand source waits for it as long as its path says.
        let wait = self
            .links
            .start_timeout(&self.snapshot().config, key)
            .unwrap_or(wait);
        let deadline = Instant::now() + wait;
        let home = home_core(key, self.data_cores);
        loop {
            if let Some(stream) = self.streams.get(key) {
                return Some(match stream.borrow().upstream {
                    Upstream::Publisher(_) => Via::Local,
                    Upstream::Core(owner) => Via::Remote(owner),
                });
            }
            let found = self
                .request(home, |reply| CoreMessage::FindPublisher {
                    key: key.clone(),
                    cluster,
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
        let existing = self.streams.get(key);
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
                self.streams.insert(key, Rc::new(RefCell::new(mirror)));
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
        let Some(stream) = self.streams.get(key) else {
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
            self.streams.remove_borrowed(key, s.id);
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
        let rx = self.rpc.open(request);
        self.send(
            to,
            build(ReplyTo {
                core: self.id,
                request,
            }),
        );
        let answer = glommio::timer::timeout(REPLY_TIMEOUT, async { Ok(rx.recv().await) }).await;
        self.rpc.close(request);
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
                let holder = self.directory.borrow().find(&key);
                let released = self.directory.borrow_mut().release(&key, session);
                // The cluster entry goes with the node's last publisher of the key (a publisher
                // replaced by another of this node leaves it to its successor).
                if let (true, Some(cluster), Some(p)) = (released, &self.cluster, holder) {
                    if !p.mirror {
                        cluster.release(&key);
                    }
                }
            }
            CoreMessage::FindPublisher {
                key,
                cluster,
                reply,
            } => {
                let found = self.directory.borrow().find(&key);
                self.reply(reply, Reply::Publisher(found));
                if let (None, Some(me)) = (found, self.me.upgrade()) {
                    self.links.demanded(&me, &key, cluster);
                }
            }
            CoreMessage::Subscribe { key, subscriber } => {
                let stream = self.streams.get(&key);
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
                if let Some(s) = self.streams.get(&key) {
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
                let mirror = self.streams.get(&key);
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
                        self.streams.learn_id(&key, id);
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
                if let Some(s) = self.streams.by_id(stream) {
                    let too_slow = s.borrow_mut().deliver(&frame, Instant::now());
                    self.kick_too_slow(too_slow);
                }
            }
            CoreMessage::StreamEnd { stream } => {
                if let Some(s) = self.streams.remove_by_id(stream) {
                    self.ended_upstream(&mut s.borrow_mut());
                }
            }
            CoreMessage::StreamGone { key } => {
                let waiting = |s: &LocalStream| s.upstream == Upstream::Core(from) && !s.is_ready();
                if let Some(s) = self.streams.remove_if(&key, waiting) {
                    self.ended_upstream(&mut s.borrow_mut());
                }
            }
            CoreMessage::Reply { request, reply } => self.rpc.answer(request, reply),
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
                self.apply_recordings();
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

    // ---- HLS: see `core/hls.rs` ---------------------------------------------------------------

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

    fn begin_shutdown(&self) {
        if self.shutdown.is_fired() {
            return;
        }
        info!(core = %self.id, "shutting down: closing listeners and telling clients");
        self.shutdown.fire();
        self.links.stop_all(self);
        for (_, s) in self.sessions.all() {
            s.notify(Notice::Shutdown);
        }
    }

    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
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
        self.core.sessions.remove(self.id);
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
        if core.streams.remove_if(&self.key, |s| s.id == id).is_some() {
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
