//! The cluster thread: the one place that talks to Redis.
//!
//! It owns one blocking connection (made again, through Sentinel when configured, after any
//! error), answers the cores' requests in order, and every `ttl / 3` renews this node's entries
//! and publishes its load record. Redis being unreachable is a state, logged once when it
//! begins and once when it ends; a connection is not tried again more often than
//! [`RECONNECT_EVERY`], so requests meanwhile are answered at once rather than each waiting for
//! a connect timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Connection, RedisConnectionInfo, Value};
use tracing::{info, warn};

use super::directory::{
    ClaimState, Claims, Keys, RenewChange, CLAIM_SCRIPT, RELEASE_SCRIPT, RENEW_SCRIPT,
};
use super::{ClaimAnswer, ClusterStatus, Command, Load, Lookup, LostLog, NodeRecord, Settings};
use crate::config::RedisTarget;
use crate::registry::StreamKey;

/// Longest wait for a connection, and for an answer on it.
const IO_TIMEOUT: Duration = Duration::from_millis(1_000);
/// After a failed connection, the next is not tried sooner than this.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);
/// How long a node's advertise URL is taken from the cache rather than asked again.
const ADVERTISE_CACHE: Duration = Duration::from_secs(10);
/// Most entries `/v3/cluster/streams` lists.
const MAX_LISTED: usize = 100_000;

/// The scripts, loaded on each new connection (`SCRIPT LOAD`) and called by hash.
struct Scripts {
    claim: String,
    renew: String,
    release: String,
}

pub(super) struct Worker {
    settings: Arc<Settings>,
    status: Arc<Mutex<ClusterStatus>>,
    keys: Keys,
    claims: Claims,
    conn: Option<Connection>,
    sentinel: Option<SentinelClient>,
    scripts: Option<Scripts>,
    last_attempt: Option<Instant>,
    /// Whether Redis answered the last command (a change is logged once).
    reachable: Option<bool>,
    load: Load,
    advertise: HashMap<String, (String, Instant)>,
    /// The stream of each claimed Redis key, to tell the cores which one was lost.
    names: HashMap<String, StreamKey>,
    lost: Arc<Mutex<LostLog>>,
}

impl Worker {
    pub(super) fn new(
        settings: Arc<Settings>,
        status: Arc<Mutex<ClusterStatus>>,
        lost: Arc<Mutex<LostLog>>,
    ) -> Worker {
        let keys = Keys::new(&settings.key_prefix);
        Worker {
            settings,
            status,
            keys,
            claims: Claims::default(),
            conn: None,
            sentinel: None,
            scripts: None,
            last_attempt: None,
            reachable: None,
            load: Load::default(),
            advertise: HashMap::new(),
            names: HashMap::new(),
            lost,
        }
    }

    pub(super) fn run(mut self, rx: flume::Receiver<Command>) {
        let period = self.settings.ttl / 3;
        info!(
            node = %self.settings.node,
            advertise = %self.settings.advertise,
            redis = %self.settings.target.shown(),
            ttl_ms = self.settings.ttl.as_millis() as u64,
            "cluster: joining"
        );
        self.tick();
        let mut next_tick = Instant::now() + period;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(flume::RecvTimeoutError::Disconnected) => break,
                Ok(cmd) => self.handle(cmd),
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + period;
            }
        }
        self.leave();
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Claim {
                key,
                replace,
                reply,
            } => {
                let answer = self.claim(&key, replace);
                let _ = reply.send(answer);
            }
            Command::Release { key } => self.release(&key),
            Command::Lookup { key, reply } => {
                let answer = self.lookup(&key);
                let _ = reply.send(answer);
            }
            Command::Load(load) => self.load = load,
            Command::Nodes { reply } => {
                let answer = self.nodes();
                let _ = reply.send(answer);
            }
            Command::Streams { reply } => {
                let answer = self.streams();
                let _ = reply.send(answer);
            }
            Command::Shutdown => {}
        }
    }

    // ---- Connection and state ----------------------------------------------------------------

    /// The connection, made (and its scripts loaded) if there is none and the last attempt is
    /// not too recent.
    fn connection(&mut self) -> Option<&mut Connection> {
        if self.conn.is_none() {
            let due = self
                .last_attempt
                .is_none_or(|t| t.elapsed() >= RECONNECT_EVERY);
            if !due {
                return None;
            }
            self.last_attempt = Some(Instant::now());
            match self.connect() {
                Ok((conn, scripts)) => {
                    self.conn = Some(conn);
                    self.scripts = Some(scripts);
                }
                Err(e) => {
                    self.failed(&e);
                    return None;
                }
            }
        }
        self.conn.as_mut()
    }

    fn connect(&mut self) -> redis::RedisResult<(Connection, Scripts)> {
        let mut conn = open(&self.settings.target, &mut self.sentinel)?;
        let mut load = |text: &str| -> redis::RedisResult<String> {
            redis::cmd("SCRIPT").arg("LOAD").arg(text).query(&mut conn)
        };
        let scripts = Scripts {
            claim: load(CLAIM_SCRIPT)?,
            renew: load(RENEW_SCRIPT)?,
            release: load(RELEASE_SCRIPT)?,
        };
        self.count(4, 0);
        Ok((conn, scripts))
    }
}

/// A connection to the master: the server itself, or the one Sentinel names (`sentinel` keeps
/// the Sentinel client between connections). A master demoted to replica by a failover still
/// accepts connections: it is refused, so that Sentinel is asked again.
pub(super) fn open(
    target: &RedisTarget,
    sentinel: &mut Option<SentinelClient>,
) -> redis::RedisResult<Connection> {
    let client = match target {
        RedisTarget::Direct { url } => redis::Client::open(url.as_str())?,
        RedisTarget::Sentinel(set) => {
            let client = match sentinel {
                Some(s) => s,
                None => {
                    let mut info = RedisConnectionInfo::default().set_db(set.db);
                    if let Some(u) = &set.user {
                        info = info.set_username(u);
                    }
                    if let Some(p) = &set.password {
                        info = info.set_password(p);
                    }
                    let node =
                        SentinelNodeConnectionInfo::default().set_redis_connection_info(info);
                    let addrs: Vec<String> =
                        set.addresses().map(|a| format!("redis://{a}")).collect();
                    sentinel.insert(SentinelClient::build(
                        addrs,
                        set.master.clone(),
                        Some(node),
                        SentinelServerType::Master,
                    )?)
                }
            };
            client.get_client()?
        }
    };
    let mut conn = client.get_connection_with_timeout(IO_TIMEOUT)?;
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let role: Vec<Value> = redis::cmd("ROLE").query(&mut conn)?;
    if let Some(Value::BulkString(r)) = role.first() {
        if r.as_slice() != b"master" {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                "the server is a replica",
            )));
        }
    }
    Ok(conn)
}

impl Worker {
    /// A command failed: the connection is dropped, and the state change logged once.
    fn failed(&mut self, e: &redis::RedisError) {
        self.conn = None;
        self.scripts = None;
        self.count(0, 1);
        let text = e.to_string();
        if self.reachable != Some(false) {
            warn!(redis = %self.settings.target.shown(), "cluster: redis unreachable: {text}; local streams go on");
            let mut s = self.lock();
            if self.reachable == Some(true) {
                s.redis_outages += 1;
            }
        }
        self.reachable = Some(false);
        let mut s = self.lock();
        s.redis_reachable = false;
        s.last_error = Some(text);
    }

    /// A command succeeded: logged when Redis was unreachable before.
    fn answered(&mut self) {
        if self.reachable != Some(true) {
            info!(redis = %self.settings.target.shown(), "cluster: redis reachable");
        }
        self.reachable = Some(true);
        let mut s = self.lock();
        s.redis_reachable = true;
        s.last_error = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClusterStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, commands: u64, errors: u64) {
        let mut s = self.lock();
        s.redis_commands += commands;
        s.redis_errors += errors;
    }

    fn publish_counts(&self) {
        let claimed = self.claims.len() as u64;
        let registered = self.claims.count(|s| *s == ClaimState::Registered) as u64;
        let mut s = self.lock();
        s.claimed_streams = claimed;
        s.registered_streams = registered;
    }

    /// Runs `f` on the connection; `None` (and the failure recorded) when Redis is unreachable.
    fn with_conn<T>(
        &mut self,
        commands: u64,
        f: impl FnOnce(&mut Connection, &Scripts) -> redis::RedisResult<T>,
    ) -> Option<T> {
        self.connection()?;
        let (conn, scripts) = match (self.conn.as_mut(), self.scripts.as_ref()) {
            (Some(c), Some(s)) => (c, s),
            _ => return None,
        };
        let result = f(conn, scripts);
        self.count(commands, 0);
        match result {
            Ok(v) => {
                self.answered();
                Some(v)
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.settings.ttl.as_millis() as u64
    }

    // ---- Requests -----------------------------------------------------------------------------

    fn claim(&mut self, key: &StreamKey, replace: bool) -> ClaimAnswer {
        let redis_key = self.keys.stream(key);
        let node = self.settings.node.clone();
        let ttl = self.ttl_ms();
        let answer = self.with_conn(1, |conn, scripts| {
            redis::cmd("EVALSHA")
                .arg(&scripts.claim)
                .arg(1)
                .arg(&redis_key)
                .arg(&node)
                .arg(ttl)
                .arg(if replace { "1" } else { "0" })
                .query::<(i64, String)>(conn)
        });
        let answer = match answer {
            Some((1, _)) => {
                self.names.insert(redis_key.clone(), key.clone());
                self.claims.granted(redis_key, true);
                ClaimAnswer::Granted { previous: None }
            }
            Some((2, previous)) => {
                info!(stream = %key, previous = %previous, "cluster: stream taken over from another node");
                self.names.insert(redis_key.clone(), key.clone());
                self.claims.granted(redis_key, true);
                ClaimAnswer::Granted {
                    previous: Some(previous),
                }
            }
            Some((_, owner)) => {
                self.lock().claims_refused += 1;
                ClaimAnswer::Conflict { owner }
            }
            None => {
                if self.settings.fail_open {
                    // Registered when Redis answers again (the renewal registers vanished keys).
                    self.names.insert(redis_key.clone(), key.clone());
                    self.claims.granted(redis_key, false);
                }
                ClaimAnswer::Unreachable
            }
        };
        self.publish_counts();
        answer
    }

    fn release(&mut self, key: &StreamKey) {
        let redis_key = self.keys.stream(key);
        self.names.remove(&redis_key);
        if self.claims.released(&redis_key).is_none() {
            return;
        }
        let node = self.settings.node.clone();
        self.with_conn(1, |conn, scripts| {
            redis::cmd("EVALSHA")
                .arg(&scripts.release)
                .arg(1)
                .arg(&redis_key)
                .arg(&node)
                .query::<i64>(conn)
        });
        self.publish_counts();
    }

    fn lookup(&mut self, key: &StreamKey) -> Lookup {
        self.lock().lookups += 1;
        let redis_key = self.keys.stream(key);
        let Some(owner) = self.with_conn(1, |conn, _| {
            redis::cmd("GET")
                .arg(&redis_key)
                .query::<Option<String>>(conn)
        }) else {
            return Lookup::Unreachable(self.lock().last_error.clone().unwrap_or_default());
        };
        let Some(node) = owner.filter(|n| *n != self.settings.node) else {
            return Lookup::NotFound;
        };
        if let Some((advertise, at)) = self.advertise.get(&node) {
            if at.elapsed() < ADVERTISE_CACHE {
                return Lookup::Owner {
                    node,
                    advertise: advertise.clone(),
                };
            }
        }
        let node_key = self.keys.node(&node);
        let record = self.with_conn(1, |conn, _| {
            redis::cmd("GET")
                .arg(&node_key)
                .query::<Option<String>>(conn)
        });
        let record = match record {
            None => return Lookup::Unreachable(self.lock().last_error.clone().unwrap_or_default()),
            Some(r) => r.and_then(|r| serde_json::from_str::<NodeRecord>(&r).ok()),
        };
        match record {
            Some(r) => {
                self.advertise
                    .insert(node.clone(), (r.advertise.clone(), Instant::now()));
                Lookup::Owner {
                    node,
                    advertise: r.advertise,
                }
            }
            // The owner's heartbeat expired: it is gone, and its entry will be soon.
            None => Lookup::NotFound,
        }
    }

    fn nodes(&mut self) -> Result<Vec<NodeRecord>, String> {
        let set = self.keys.nodes();
        let prefix = self.keys.node("");
        let unreachable = |w: &Self| w.lock().last_error.clone().unwrap_or_default();
        let Some(names) = self.with_conn(1, |conn, _| {
            redis::cmd("SMEMBERS").arg(&set).query::<Vec<String>>(conn)
        }) else {
            return Err(unreachable(self));
        };
        let mut records = Vec::new();
        let mut gone = Vec::new();
        for name in names {
            let node_key = format!("{prefix}{name}");
            let Some(r) = self.with_conn(1, |conn, _| {
                redis::cmd("GET")
                    .arg(&node_key)
                    .query::<Option<String>>(conn)
            }) else {
                return Err(unreachable(self));
            };
            match r.and_then(|r| serde_json::from_str::<NodeRecord>(&r).ok()) {
                Some(rec) => records.push(rec),
                None => gone.push(name),
            }
        }
        if !gone.is_empty() {
            self.with_conn(1, |conn, _| {
                redis::cmd("SREM").arg(&set).arg(&gone).query::<i64>(conn)
            });
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    fn streams(&mut self) -> Result<Vec<(String, String)>, String> {
        let pattern = self.keys.stream_pattern();
        let mut cursor: u64 = 0;
        let mut found: Vec<String> = Vec::new();
        loop {
            let Some((next, batch)) = self.with_conn(1, |conn, _| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query::<(u64, Vec<String>)>(conn)
            }) else {
                return Err(self.lock().last_error.clone().unwrap_or_default());
            };
            found.extend(batch);
            cursor = next;
            if cursor == 0 || found.len() >= MAX_LISTED {
                break;
            }
        }
        found.sort();
        found.dedup();
        let mut out = Vec::with_capacity(found.len());
        for chunk in found.chunks(1000) {
            let Some(owners) = self.with_conn(1, |conn, _| {
                redis::cmd("MGET")
                    .arg(chunk)
                    .query::<Vec<Option<String>>>(conn)
            }) else {
                return Err(self.lock().last_error.clone().unwrap_or_default());
            };
            for (k, owner) in chunk.iter().zip(owners) {
                if let (Some(name), Some(owner)) = (self.keys.stream_name(k), owner) {
                    out.push((name.to_owned(), owner));
                }
            }
        }
        Ok(out)
    }

    // ---- Periodic work ------------------------------------------------------------------------

    /// Renews (or registers again) every claim, in one pipeline, and publishes the load record.
    fn tick(&mut self) {
        let renew = self.claims.to_renew();
        let node = self.settings.node.clone();
        let ttl = self.ttl_ms();
        let record = NodeRecord {
            name: node.clone(),
            advertise: self.settings.advertise.clone(),
            streams: self.load.streams,
            players: self.load.players,
            outbound_bitrate: self.load.outbound_bitrate,
            last_heartbeat_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let record = serde_json::to_string(&record).unwrap_or_default();
        let node_key = self.keys.node(&node);
        let set = self.keys.nodes();
        let commands = renew.len() as u64 + 2;
        let answers = self.with_conn(commands, |conn, scripts| {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&node_key)
                .arg(&record)
                .arg("PX")
                .arg(ttl)
                .ignore();
            pipe.cmd("SADD").arg(&set).arg(&node).ignore();
            for k in &renew {
                pipe.cmd("EVALSHA")
                    .arg(&scripts.renew)
                    .arg(1)
                    .arg(k)
                    .arg(&node)
                    .arg(ttl);
            }
            pipe.query::<Vec<(i64, String)>>(conn)
        });
        match answers {
            Some(answers) => {
                for (k, (code, owner)) in renew.iter().zip(answers) {
                    match self.claims.renewed(k, code, &owner) {
                        RenewChange::None => {}
                        RenewChange::Reregistered => {
                            info!(entry = %k, "cluster: stream registered again");
                            self.lock().reregistered += 1;
                        }
                        RenewChange::Lost { owner } => {
                            warn!(entry = %k, owner = %owner, "cluster: stream taken over by another node: its publisher here stops");
                            self.lock().lost += 1;
                            if let Some(key) = self.names.get(k) {
                                let mut log = self.lost.lock().unwrap_or_else(|e| e.into_inner());
                                log.push(key.clone());
                            }
                        }
                    }
                }
            }
            None => self.claims.unreachable(),
        }
        self.publish_counts();
    }

    /// Shutdown: this node's entries and load record are deleted (if still ours).
    fn leave(&mut self) {
        let node = self.settings.node.clone();
        let keys = self.claims.keys();
        let node_key = self.keys.node(&node);
        let set = self.keys.nodes();
        let commands = keys.len() as u64 + 2;
        self.with_conn(commands, |conn, scripts| {
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("EVALSHA")
                    .arg(&scripts.release)
                    .arg(1)
                    .arg(k)
                    .arg(&node)
                    .ignore();
            }
            pipe.cmd("DEL").arg(&node_key).ignore();
            pipe.cmd("SREM").arg(&set).arg(&node).ignore();
            pipe.query::<()>(conn)
        });
        info!(node = %node, released = keys.len(), "cluster: left");
    }
}
