//! Relaying: pulling streams from other servers into paths, and pushing live streams onward.
//!
//! - A path whose `source` is a URL (`rtmp://…`, `http(s)://…/x.flv`, `rtsp://…`) has a pulled
//!   source, run on the stream key's home core and feeding the stream exactly like a publisher on
//!   that core (claim the key, push frames). Static sources start with the configuration and
//!   follow its changes; `sourceOnDemand` ones start when a reader asks the home core for a
//!   publisher the key does not have, and stop `sourceOnDemandCloseAfter` after the home core
//!   counts no readers.
//! - A path with `origins` is an edge: an unknown stream is pulled on demand from the first origin
//!   that has it (the next one on any failure), one connection per stream per engine since only
//!   the home core pulls.
//! - A path with `forward` has each live stream pushed to every target by a task on the stream's
//!   owner core, attached to the stream as a player.
//!
//! Every link keeps its state and last error ([`status`]) for the control API. The codecs are the
//! engine's sans-IO RTMP and RTSP clients, RTP depacketizers and FLV/HTTP parsers; the sockets
//! go through the server's own connection plumbing. Everything here lives on one core: `Rc`/`RefCell`, no locks.

pub mod backoff;
mod cluster;
mod dial;
pub mod error;
mod hls_pull;
mod link;
mod pull;
mod push;
mod source;
pub mod status;
pub mod tls;
mod transport;
pub mod url;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use tracing::info;

pub use error::RelayError;
pub use source::SourceSpec;
pub use status::{ForwardView, LinkState, SourceView};

use crate::config::Config;
use crate::registry::{home_core, StreamKey, DEFAULT_VHOST};
use crate::runtime::{Core, StreamId, StreamLinks};
use push::Forward;
use source::Source;

/// How long a "published nowhere" answer of the cluster's directory stands for a key.
const CLUSTER_MISS_KEPT: Duration = Duration::from_millis(500);

/// This core's relay links: the sources of the keys whose home it is, the pushes of the streams
/// it owns. The bootstrap gives one to each data core ([`StreamLinks`]).
#[derive(Debug)]
pub struct Relays {
    sources: RefCell<HashMap<StreamKey, Rc<Source>>>,
    forwards: RefCell<Vec<Rc<Forward>>>,
    /// The cluster's directory: a reader of a stream live on another node starts a pull.
    cluster: Option<crate::cluster::Cluster>,
    /// When the directory last said a key is published nowhere: a waiting reader asks again
    /// every 100 ms, the directory is asked at most every [`CLUSTER_MISS_KEPT`].
    cluster_misses: RefCell<HashMap<StreamKey, Instant>>,
    /// Itself, for the tasks it starts.
    me: Weak<Relays>,
}

impl StreamLinks for Relays {
    fn published(&self, core: &Rc<Core>, key: &StreamKey, stream: StreamId) {
        self.start_forwards(core, key, stream);
    }

    fn demanded(&self, core: &Rc<Core>, key: &StreamKey, cluster: bool) {
        self.demand(core, key, cluster);
    }

    fn reconfigured(&self, core: &Rc<Core>) {
        self.reconcile(core);
    }

    fn start_timeout(&self, config: &Config, key: &StreamKey) -> Option<Duration> {
        start_timeout(config, key)
    }

    fn has_source(&self, key: &StreamKey) -> bool {
        self.sources.borrow().contains_key(key)
    }

    fn stop_all(&self, core: &Core) {
        for s in self.sources.borrow().values() {
            s.link.stop(core);
        }
        for f in self.forwards.borrow().iter() {
            f.link.stop(core);
        }
    }

    fn views(&self) -> (Vec<SourceView>, Vec<ForwardView>) {
        let sources = self.sources.borrow().values().map(|s| s.view()).collect();
        let forwards = self.forwards.borrow().iter().map(|f| f.view()).collect();
        (sources, forwards)
    }
}

/// The source `key`'s path asks for under `config`.
fn spec(config: &Config, key: &StreamKey) -> Option<SourceSpec> {
    let conf = config.path_conf(&key.path())?;
    SourceSpec::for_path(&conf, key)
}

/// The key of a path name (`app/stream`, or `app` alone).
fn key_of(path: &str) -> StreamKey {
    let (app, stream) = path.split_once('/').unwrap_or((path, ""));
    StreamKey::new(DEFAULT_VHOST, app, stream)
}

impl Relays {
    pub fn new(cluster: Option<crate::cluster::Cluster>) -> Rc<Relays> {
        Rc::new_cyclic(|me| Relays {
            sources: RefCell::default(),
            forwards: RefCell::default(),
            cluster,
            cluster_misses: RefCell::default(),
            me: me.clone(),
        })
    }

    /// The directory said `key` is published nowhere (see `cluster_misses`).
    fn cluster_missed(&self, key: &StreamKey) {
        let mut misses = self.cluster_misses.borrow_mut();
        let now = Instant::now();
        misses.retain(|_, at| now.duration_since(*at) < CLUSTER_MISS_KEPT);
        misses.insert(key.clone(), now);
    }

    /// A source that ended by itself (a cluster pull) leaves the table, unless another took
    /// its key meanwhile.
    fn forget(&self, key: &StreamKey, source: &Rc<Source>) {
        let mut sources = self.sources.borrow_mut();
        if sources.get(key).is_some_and(|s| Rc::ptr_eq(s, source)) {
            sources.remove(key);
        }
    }

    fn remove_forward(&self, fwd: &Rc<Forward>) {
        self.forwards.borrow_mut().retain(|f| !Rc::ptr_eq(f, fwd));
    }

    fn start(&self, core: &Rc<Core>, key: StreamKey, spec: SourceSpec) {
        // Credentials in a source URL never reach the log.
        let urls: Vec<String> = spec.urls.iter().map(|u| url::redact(u)).collect();
        info!(core = %core.id, stream = %key, urls = ?urls, on_demand = spec.on_demand, "source starting");
        let source = Rc::new(Source::new(key.clone(), spec));
        self.sources.borrow_mut().insert(key, source.clone());
        match (&self.cluster, source.spec.cluster) {
            (Some(c), true) => {
                let task = cluster::run(core.clone(), self.me.clone(), source, c.clone());
                glommio::spawn_local(task).detach();
            }
            _ => {
                glommio::spawn_local(source::run(core.clone(), source)).detach();
            }
        }
    }

    fn stop(&self, core: &Core, key: &StreamKey, why: &str) {
        let removed = self.sources.borrow_mut().remove(key);
        if let Some(s) = removed {
            info!(core = %core.id, stream = %key, "source closing: {why}");
            s.link.stop(core);
        }
    }

    /// Brings this core's sources in line with the configuration: stops those whose path no longer
    /// asks for them (or asks differently), starts the static ones of the exact path names whose
    /// home is this core. Called at start and on every configuration change.
    pub fn reconcile(&self, core: &Rc<Core>) {
        let config = &core.snapshot().config;
        let running: Vec<(StreamKey, SourceSpec)> = self
            .sources
            .borrow()
            .iter()
            .map(|(k, s)| (k.clone(), s.spec.clone()))
            .collect();
        for (key, old) in running {
            // A cluster pull follows the directory, not the configuration, unless the path
            // now names a source of its own.
            if old.cluster && spec(config, &key).is_none() {
                continue;
            }
            if spec(config, &key).as_ref() != Some(&old) {
                self.stop(core, &key, "its path configuration changed");
            }
        }
        let forwards: Vec<Rc<Forward>> = self.forwards.borrow().clone();
        for f in forwards {
            let place = config
                .path_conf(&f.key.path())
                .and_then(|c| c.forward.iter().position(|t| t.dest == f.dest));
            match place {
                Some(i) => f.pos.set(i + 1),
                None => f.link.stop(core),
            }
        }
        // A forward added to a live stream's path starts now, not at the next publish.
        for (key, id) in core.published_streams() {
            self.start_forwards(core, &key, id);
        }
        for (name, _) in config.paths.iter() {
            if name.starts_with('~') || name == "all_others" || name == "all" {
                continue;
            }
            let key = key_of(name);
            if home_core(&key, core.data_cores) != core.id {
                continue;
            }
            let Some(spec) = spec(config, &key) else {
                continue;
            };
            if !spec.on_demand && !self.sources.borrow().contains_key(&key) {
                self.start(core, key, spec);
            }
        }
    }

    /// A reader asked the home core for `key`'s publisher and there is none: starts the key's
    /// on-demand source if its path has one, else (`cluster`, in a cluster) a pull from the
    /// node that publishes it.
    pub fn demand(&self, core: &Rc<Core>, key: &StreamKey, cluster: bool) {
        if let Some(s) = self.sources.borrow().get(key) {
            s.idle_since.set(None);
            return;
        }
        let config = &core.snapshot().config;
        match spec(config, key) {
            Some(spec) if spec.on_demand => self.start(core, key.clone(), spec),
            Some(_) => {}
            None if cluster && self.cluster.is_some() => {
                let missed = self
                    .cluster_misses
                    .borrow()
                    .get(key)
                    .is_some_and(|at| at.elapsed() < CLUSTER_MISS_KEPT);
                if !missed {
                    self.start(core, key.clone(), cluster::spec(config, key));
                }
            }
            None => {}
        }
    }

    /// Periodic upkeep: stops the on-demand sources that have had no readers for their
    /// `sourceOnDemandCloseAfter`.
    pub fn tick(&self, core: &Core, now: Instant) {
        let idle: Vec<StreamKey> = self
            .sources
            .borrow()
            .values()
            .filter(|s| s.spec.on_demand)
            .filter_map(|s| {
                if core.reader_count(&s.key) > 0
                    || core.hls_requested_within(&s.key, now, s.spec.close_after)
                {
                    s.idle_since.set(None);
                    return None;
                }
                let since = *s.idle_since.get().get_or_insert(now);
                s.idle_since.set(Some(since));
                (now.duration_since(since) >= s.spec.close_after).then(|| s.key.clone())
            })
            .collect();
        for key in idle {
            self.stop(core, &key, "no readers for sourceOnDemandCloseAfter");
        }
    }

    /// A stream went live on this core, or its path's configuration changed: starts the pushes of
    /// its path that are not running yet.
    pub fn start_forwards(&self, core: &Rc<Core>, key: &StreamKey, stream: StreamId) {
        let Some(conf) = core.snapshot().config.path_conf(&key.path()) else {
            return;
        };
        for (i, target) in conf.forward.iter().enumerate() {
            let running = self.forwards.borrow().iter().any(|f| {
                f.key == *key
                    && f.stream == stream
                    && f.dest == target.dest
                    && !f.link.is_stopped(core)
            });
            if running {
                continue;
            }
            let fwd = Rc::new(Forward::new(
                key.clone(),
                i + 1,
                target.dest.clone(),
                target.fingerprint.clone(),
                stream,
            ));
            self.forwards.borrow_mut().push(fwd.clone());
            if let Some(me) = self.me.upgrade() {
                glommio::spawn_local(push::run(core.clone(), me, fwd)).detach();
            }
        }
    }
}

/// How long a reader of `key` waits for it to go live: its path's `sourceOnDemandStartTimeout`
/// when the key has an on-demand source.
pub fn start_timeout(config: &Config, key: &StreamKey) -> Option<Duration> {
    spec(config, key)
        .filter(|s| s.on_demand)
        .map(|s| s.start_timeout)
}
