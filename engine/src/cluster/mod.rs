//! Clusters: which node publishes which stream, kept in Redis, so that any node can serve any
//! stream (issue 17).
//!
//! - A publish on this node claims `stream → node` with an atomic set-if-absent with expiry
//!   (`cluster.ttl`), renewed every `ttl / 3` while live and deleted on unpublish only if still
//!   ours ([`directory`]). A publish of a stream another node holds is refused like a local
//!   duplicate (`overridePublisher` takes it over).
//! - A reader of a stream not live here asks [`Cluster::lookup`]; the relay then pulls it over
//!   RTMP from the owner's `advertise` URL (`relay/`), with a hop parameter that stops loops.
//! - Every Redis command runs on one thread of its own ([`worker`]), with the blocking `redis`
//!   client; the cores send it requests over a channel and await the answers without blocking.
//!   A data core never waits on Redis for media: only a publish's admission and a reader's
//!   first lookup wait, and both have a deadline.
//! - Redis unreachable: local streams go on, publishes are accepted (`failOpen`) and registered
//!   as soon as Redis answers again; every change of state is logged once, counted in
//!   [`ClusterStatus`] and shown by the API and the metrics.

pub mod directory;
mod worker;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::config::{ClusterConf, RedisTarget};
use crate::registry::StreamKey;

pub use directory::{is_hop, pull_url, HOP_PARAM};

/// How long a core waits for the cluster thread's answer before treating Redis as unreachable.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster settings the worker runs with, resolved from `cluster:`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: RedisTarget,
    pub node: String,
    pub advertise: String,
    pub ttl: Duration,
    pub key_prefix: String,
    pub fail_open: bool,
}

impl Settings {
    /// `conf` resolved: the node name defaults to the host name.
    pub fn from_conf(conf: &ClusterConf) -> Result<Settings, String> {
        let target = RedisTarget::parse(&conf.redis).map_err(|e| e.to_string())?;
        let node = match &conf.node_name {
            Some(n) => n.clone(),
            None => host_name().ok_or("cluster.nodeName is not set and the host has no name")?,
        };
        Ok(Settings {
            target,
            node,
            advertise: conf.advertise.trim_end_matches('/').to_owned(),
            ttl: conf.ttl(),
            key_prefix: conf.key_prefix.clone(),
            fail_open: conf.fail_open,
        })
    }
}

/// The host name, for a node without a `nodeName` (read at start, before any core runs).
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `corestream doctor`: whether the directory's Redis answers (through Sentinel when
/// configured) as a writable master; `Ok` says which server answered, without credentials.
pub fn probe(target: &RedisTarget) -> Result<String, String> {
    let mut sentinel = None;
    let mut conn = worker::open(target, &mut sentinel).map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING")
        .query(&mut conn)
        .map_err(|e| e.to_string())?;
    let addr = conn_addr(&mut conn).unwrap_or_else(|| target.shown());
    Ok(format!("{pong} from the master at {addr}"))
}

/// The address of the server a connection reached (`CLIENT INFO` is not needed: the server
/// reports its own port in `INFO server`).
fn conn_addr(conn: &mut redis::Connection) -> Option<String> {
    let info: String = redis::cmd("INFO").arg("server").query(conn).ok()?;
    let port = info
        .lines()
        .find_map(|l| l.strip_prefix("tcp_port:"))?
        .trim()
        .to_owned();
    Some(format!("port {port}"))
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimAnswer {
    /// Registered for this node (or taken over from `previous`).
    Granted { previous: Option<String> },
    /// Another node publishes it.
    Conflict { owner: String },
    /// Redis could not be asked; the caller applies `failOpen`.
    Unreachable,
}

/// Where a stream is published, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// On `node`, reachable at its `advertise` URL.
    Owner { node: String, advertise: String },
    /// Nowhere (or on this node itself).
    NotFound,
    /// Redis could not be asked.
    Unreachable(String),
}

/// One node's load record, as nodes publish it every `ttl / 3` (expiring after `ttl`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    pub advertise: String,
    pub streams: u64,
    pub players: u64,
    /// Bits per second sent to players, over the last load period.
    pub outbound_bitrate: u64,
    /// Unix time of the record, in milliseconds.
    pub last_heartbeat_ms: u64,
}

/// A node's load as the control core measures it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub streams: u64,
    pub players: u64,
    pub outbound_bitrate: u64,
}

/// Where the cluster stands, for `/v3/cluster/status` and the metrics. Written by the worker.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub node: String,
    pub advertise: String,
    /// The Redis target without its password.
    pub redis: String,
    pub redis_reachable: bool,
    /// The last Redis error, if Redis is unreachable now.
    pub last_error: Option<String>,
    pub fail_open: bool,
    pub ttl_ms: u64,
    /// Streams this node publishes, and how many of them Redis holds for it now.
    pub claimed_streams: u64,
    pub registered_streams: u64,
    /// Times Redis went from reachable to unreachable.
    pub redis_outages: u64,
    /// Redis commands sent (for commands per second per stream), and those that failed.
    pub redis_commands: u64,
    pub redis_errors: u64,
    /// Entries registered again after they vanished from Redis.
    pub reregistered: u64,
    /// Entries another node took over.
    pub lost: u64,
    pub lookups: u64,
    pub claims_refused: u64,
}

/// Requests to the cluster thread.
#[derive(Debug)]
enum Command {
    Claim {
        key: StreamKey,
        replace: bool,
        reply: flume::Sender<ClaimAnswer>,
    },
    Release {
        key: StreamKey,
    },
    Lookup {
        key: StreamKey,
        reply: flume::Sender<Lookup>,
    },
    Load(Load),
    Nodes {
        reply: flume::Sender<Result<Vec<NodeRecord>, String>>,
    },
    Streams {
        reply: flume::Sender<Result<Vec<(String, String)>, String>>,
    },
    Shutdown,
}

/// The handle every core holds: requests to the cluster thread, and its status. Cheap to clone,
/// and the one cluster type that crosses threads.
#[derive(Debug, Clone)]
pub struct Cluster {
    tx: flume::Sender<Command>,
    status: Arc<Mutex<ClusterStatus>>,
    lost: Arc<Mutex<LostLog>>,
    pub settings: Arc<Settings>,
}

/// Streams whose entry another node took over (`overridePublisher` there), newest last, each
/// with a sequence number: every core reads what came after its cursor and stops its publisher
/// of those streams.
#[derive(Debug, Default)]
pub struct LostLog {
    next: u64,
    items: std::collections::VecDeque<(u64, StreamKey)>,
}

/// Entries the log keeps (a core reads it four times a second).
const LOST_KEPT: usize = 1024;

impl LostLog {
    pub fn push(&mut self, key: StreamKey) {
        self.next += 1;
        self.items.push_back((self.next, key));
        while self.items.len() > LOST_KEPT {
            self.items.pop_front();
        }
    }

    /// The streams lost after `cursor`, and the new cursor.
    pub fn since(&self, cursor: u64) -> (Vec<StreamKey>, u64) {
        let keys = self
            .items
            .iter()
            .filter(|(n, _)| *n > cursor)
            .map(|(_, k)| k.clone())
            .collect();
        (keys, self.next)
    }
}

/// The cluster thread, to stop at shutdown.
#[derive(Debug)]
pub struct ClusterThread {
    handle: Option<JoinHandle<()>>,
    tx: flume::Sender<Command>,
}

impl ClusterThread {
    /// Releases this node's entries and stops the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Starts the cluster thread.
pub fn start(settings: Settings) -> std::io::Result<(Cluster, ClusterThread)> {
    let (tx, rx) = flume::unbounded();
    let status = Arc::new(Mutex::new(ClusterStatus {
        node: settings.node.clone(),
        advertise: settings.advertise.clone(),
        redis: settings.target.shown(),
        fail_open: settings.fail_open,
        ttl_ms: settings.ttl.as_millis() as u64,
        ..ClusterStatus::default()
    }));
    let settings = Arc::new(settings);
    let lost = Arc::new(Mutex::new(LostLog::default()));
    let worker = worker::Worker::new(settings.clone(), status.clone(), lost.clone());
    let handle = std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || worker.run(rx))?;
    Ok((
        Cluster {
            tx: tx.clone(),
            status,
            lost,
            settings,
        },
        ClusterThread {
            handle: Some(handle),
            tx,
        },
    ))
}

impl Cluster {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.settings.node
    }

    /// Claims `key` for this node; `replace` takes it from another node.
    pub async fn claim(&self, key: &StreamKey, replace: bool) -> ClaimAnswer {
        let (reply, answer) = flume::bounded(1);
        let sent = self.tx.send(Command::Claim {
            key: key.clone(),
            replace,
            reply,
        });
        if sent.is_err() {
            return ClaimAnswer::Unreachable;
        }
        within(answer.recv_async())
            .await
            .unwrap_or(ClaimAnswer::Unreachable)
    }

    /// The publisher of `key` on this node stopped.
    pub fn release(&self, key: &StreamKey) {
        let _ = self.tx.send(Command::Release { key: key.clone() });
    }

    /// Which node publishes `key`.
    pub async fn lookup(&self, key: &StreamKey) -> Lookup {
        let (reply, answer) = flume::bounded(1);
        if self
            .tx
            .send(Command::Lookup {
                key: key.clone(),
                reply,
            })
            .is_err()
        {
            return Lookup::Unreachable("the cluster thread stopped".into());
        }
        within(answer.recv_async())
            .await
            .unwrap_or_else(|| Lookup::Unreachable("redis did not answer in time".into()))
    }

    /// This node's load, published with its next heartbeat.
    pub fn report_load(&self, load: Load) {
        let _ = self.tx.send(Command::Load(load));
    }

    /// Every node's load record.
    pub async fn nodes(&self) -> Result<Vec<NodeRecord>, String> {
        let (reply, answer) = flume::bounded(1);
        self.tx
            .send(Command::Nodes { reply })
            .map_err(|_| "the cluster thread stopped".to_owned())?;
        within(answer.recv_async())
            .await
            .unwrap_or_else(|| Err("redis did not answer in time".into()))
    }

    /// Every `stream → node` entry (`vhost/app/stream`, node), sorted.
    pub async fn streams(&self) -> Result<Vec<(String, String)>, String> {
        let (reply, answer) = flume::bounded(1);
        self.tx
            .send(Command::Streams { reply })
            .map_err(|_| "the cluster thread stopped".to_owned())?;
        within(answer.recv_async())
            .await
            .unwrap_or_else(|| Err("redis did not answer in time".into()))
    }

    /// The streams another node took over since `cursor` (start at 0), and the next cursor.
    pub fn lost_since(&self, cursor: u64) -> (Vec<StreamKey>, u64) {
        match self.lost.lock() {
            Ok(log) => log.since(cursor),
            Err(e) => e.into_inner().since(cursor),
        }
    }

    /// A copy of the status.
    pub fn status(&self) -> ClusterStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

/// The answer of `recv`, or `None` past [`ANSWER_TIMEOUT`] or when the thread dropped the
/// request.
async fn within<T>(recv: flume::r#async::RecvFut<'_, T>) -> Option<T> {
    glommio::timer::timeout(ANSWER_TIMEOUT, async { Ok(recv.await.ok()) })
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DEFAULT_VHOST;

    #[test]
    fn lost_log_hands_each_core_what_came_after_its_cursor() {
        let key = |s: &str| StreamKey::new(DEFAULT_VHOST, "live", s);
        let mut log = LostLog::default();
        assert_eq!(log.since(0), (vec![], 0));
        log.push(key("a"));
        log.push(key("b"));
        let (lost, cursor) = log.since(0);
        assert_eq!((lost, cursor), (vec![key("a"), key("b")], 2));
        assert_eq!(log.since(cursor), (vec![], 2));
        log.push(key("c"));
        assert_eq!(log.since(cursor), (vec![key("c")], 3));
        for i in 0..2000 {
            log.push(key(&i.to_string()));
        }
        assert_eq!(log.items.len(), LOST_KEPT);
    }
}
