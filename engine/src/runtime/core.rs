//! The state and behaviour of one data-plane core: its streams, its share of the directory, and
//! its side of the cross-core protocol.

pub(super) mod gather;
mod hls;
mod messages;
mod play;
mod publish;
mod record;
mod rpc;
mod sessions;
mod streams;

pub use self::play::{PlayHandle, Via};
pub use self::publish::{PublishHandle, PublishRefused};
use self::rpc::Rpc;
use self::sessions::Sessions;
pub use self::sessions::{Notice, SessionControl};
use self::streams::StreamTable;

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
    /// The HLS viewers of those keys.
    hls_sessions: RefCell<super::hls_session::HlsSessions>,
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
            hls_sessions: RefCell::default(),
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
