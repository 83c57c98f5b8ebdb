//! The RTMP driver: accepts connections and moves bytes between sockets and
//! [`ServerSession`]s, turning the session's events into publishes and plays on the core.

use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use super::accept::accept_loop;
use super::auth_hook;
use super::conn::{Conn, ReadOutcome};
use super::net::NetReader;
use super::shed::Handshake;
use crate::auth::query::Query;
use crate::auth::{Action, AuthRequest, Protocol};
use crate::delivery::{Player, SinkFormat};
use crate::protocol::rtmp::{
    ChunkError, Reject, RequestId, ServerEvent, ServerSession, SessionConfig, SessionError,
};
use crate::registry::{StreamKey, DEFAULT_VHOST};
use crate::runtime::{
    ConnProtocol, ConnState, Core, Limit, Notice, PlayHandle, PublishHandle, PublishRefused,
    ReaderSlot, Via,
};

/// Accepts RTMP connections on this core until shutdown.
pub async fn serve_rtmp(core: Rc<Core>, listener: TcpListener) {
    accept_loop(core, listener, "rtmp", serve_connection).await;
}

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    PeerClosed,
    IdleTimeout,
    /// The handshake and `connect` did not complete within `handshakeTimeout` of the accept.
    HandshakeTimeout,
    /// Answers the client did not read stayed over `playerMaxQueueBytes` for `slowPlayerTimeout`.
    OutputBacklog,
    Io(std::io::Error),
    Protocol(SessionError),
    Notice(Notice),
    /// Authentication refused the request; the refusal was sent.
    Refused,
}

/// What the connection is doing.
enum Role {
    Idle,
    Publishing(PublishHandle),
    Playing(PlayHandle),
}

/// One RTMP connection's task, from accept to close. Allocated whole for every connection as
/// long as it lives: `server::tests::connection_tasks_stay_small` keeps it small.
pub(super) async fn serve_connection(core: Rc<Core>, stream: TcpStream, handshake: Handshake) {
    let Some((conn, reader)) = Conn::open(&core, stream, ConnProtocol::Rtmp) else {
        return;
    };
    let span = tracing::info_span!("rtmp", core = %core.id, conn = %conn.guard.id);
    async move {
        debug!(peer = ?conn.peer, "connection accepted");
        conn.guard.control.info.set_remote(conn.peer);
        conn.guard.control.info.set_queue(conn.queue.clone());
        let mut rtmp = Connection {
            session: ServerSession::new(SessionConfig {
                max_message_len: core.snapshot().config.max_message_size as usize,
                // Room for two whole messages in flight (audio and video interleaved), so a
                // maxMessageSize above the default still fits.
                max_partial_bytes: (core.snapshot().config.max_message_size as usize)
                    .saturating_mul(2),
                handshake_seed: rand::random(),
                ..SessionConfig::default()
            }),
            conn,
            role: Role::Idle,
            out: BytesMut::new(),
            vhost: String::new(),
            refused: false,
            reader_slot: None,
            connected: false,
            handshake,
        };
        let ending = rtmp.run(reader).await;
        let farewell = rtmp.finish(&ending);
        rtmp.conn.close(farewell).await;
    }
    .instrument(span)
    .await
}

struct Connection {
    conn: Conn,
    session: ServerSession,
    role: Role,
    out: BytesMut,
    /// Host of the `connect` tcUrl: the vhost for domains and signatures.
    vhost: String,
    /// Set when a request was refused: flush the refusal, then close.
    refused: bool,
    /// While reading: this connection's place under the path's `maxReaders`.
    reader_slot: Option<ReaderSlot>,
    /// The handshake and `connect` are done: `handshakeTimeout` no longer applies.
    connected: bool,
    /// This connection's place among the unfinished handshakes shed first when descriptors run out.
    handshake: Handshake,
}

impl Connection {
    async fn run(&mut self, mut reader: NetReader) -> Ending {
        let config = &self.conn.core.snapshot().config;
        let read_timeout = config.read_timeout.duration();
        // Absolute, unlike readTimeout: a client trickling a byte at a time is still cut.
        let handshake_deadline = Instant::now() + config.handshake_timeout.duration();
        loop {
            if !self.conn.wait_for_room().await {
                break Ending::OutputBacklog;
            }
            // Players send next to nothing once playing, so silence only counts against the
            // others: a publisher or a client that has not started yet.
            let mut timeout = (!matches!(self.role, Role::Playing(_))).then_some(read_timeout);
            if !self.connected {
                let left = handshake_deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Ending::HandshakeTimeout;
                }
                timeout = timeout.map(|t| t.min(left));
            }
            // What a read brings is fed to the session at once, from the core's shared buffer.
            let session = &mut self.session;
            let fed = self
                .conn
                .read_with(&mut reader, usize::MAX, timeout, |data| {
                    (data.len(), session.handle_input(data))
                })
                .await;
            let (n, fed) = match fed {
                ReadOutcome::Data(read) => read,
                ReadOutcome::Closed => break Ending::PeerClosed,
                ReadOutcome::TimedOut
                    if !self.connected && Instant::now() >= handshake_deadline =>
                {
                    break Ending::HandshakeTimeout
                }
                ReadOutcome::TimedOut => break Ending::IdleTimeout,
                ReadOutcome::Failed(e) => break Ending::Io(e),
                ReadOutcome::Notice(n) => break Ending::Notice(n),
            };
            self.conn.guard.control.info.add_bytes_in(n as u64);
            if let Err(e) = fed {
                break Ending::Protocol(e);
            }
            while let Some(event) = self.session.poll_event() {
                // Boxed: events are rare next to reads, and their futures (auth, claims, the
                // wait for a stream) would otherwise size every connection's task.
                Box::pin(self.on_event(event, &reader)).await;
            }
            self.flush();
            if self.refused {
                break Ending::Refused;
            }
        }
    }

    /// Moves the session's pending output into the send queue.
    fn flush(&mut self) {
        if self.session.poll_transmit(&mut self.out) {
            // Taken whole: a split would keep the allocation alive in `out` for the connection's
            // life.
            let out = std::mem::take(&mut self.out).freeze();
            self.conn.queue.borrow_mut().push_control(out);
        }
    }

    async fn on_event(&mut self, event: ServerEvent, reader: &NetReader) {
        match event {
            ServerEvent::Connected {
                tc_url, flash_ver, ..
            } => {
                self.connected = true;
                if let Some(agent) = flash_ver {
                    self.conn.guard.control.info.set_user_agent(&agent);
                }
                self.handshake.done();
                self.vhost = tc_url
                    .as_deref()
                    .map(host_of)
                    .unwrap_or_default()
                    .to_owned();
            }
            ServerEvent::PublishRequested {
                request,
                app,
                stream,
                query,
                ..
            } => {
                let admitted = self.admit(request, Action::Publish, &app, &stream, &query);
                let Some(key) = admitted.await else {
                    return;
                };
                match self.conn.core.claim_publish(&key, self.conn.guard.id).await {
                    Ok(handle) => {
                        self.session.accept_publish(request);
                        info!(stream = %key, peer = ?self.conn.peer, stream_id = %handle.stream_id(), "publish started");
                        self.conn.guard.control.info.set_role(
                            ConnState::Publish,
                            key.path(),
                            &query,
                            &query_user(&query),
                        );
                        self.role = Role::Publishing(handle);
                    }
                    Err(PublishRefused::AlreadyPublishing) => {
                        info!(stream = %key, peer = ?self.conn.peer, "publish refused: stream is already being published");
                        self.session.reject_publish(request, Reject::BadName);
                    }
                    Err(PublishRefused::Unavailable) => {
                        warn!(stream = %key, "publish refused: the stream's home core did not answer");
                        self.session.reject_publish(request, Reject::BadName);
                    }
                    Err(PublishRefused::ClusterUnavailable) => {
                        warn!(stream = %key, "publish refused: the cluster directory is unreachable and cluster.failOpen is off");
                        self.session.reject_publish(request, Reject::BadName);
                    }
                    Err(PublishRefused::TooManyStreams { limit }) => {
                        info!(stream = %key, peer = ?self.conn.peer, limit, "publish refused: the core has maxStreamsPerCore streams");
                        self.session.reject_publish(request, Reject::BadName);
                        self.refused = true;
                    }
                }
            }
            ServerEvent::PlayRequested {
                request,
                app,
                stream,
                query,
                ..
            } => {
                let admitted = self.admit(request, Action::Read, &app, &stream, &query);
                let Some(key) = admitted.await else {
                    return;
                };
                debug!(stream = %key, "play requested");
                let max_readers = self
                    .conn
                    .core
                    .snapshot()
                    .config
                    .path_conf(&key.path())
                    .map_or(0, |p| p.max_readers);
                let Some(slot) = self
                    .conn
                    .core
                    .claim_reader(&key, self.conn.guard.id, max_readers)
                    .await
                else {
                    info!(stream = %key, peer = ?self.conn.peer, max_readers, "play refused: the path has maxReaders readers");
                    self.session.reject_play(request, Reject::NotFound);
                    self.refused = true;
                    return;
                };
                self.reader_slot = Some(slot);
                let wait = self
                    .conn
                    .core
                    .snapshot()
                    .config
                    .play_wait_timeout
                    .duration();
                // A pull from another cluster node is served what is live here, never looked
                // up further: pulls cannot loop between nodes.
                let lookup = !crate::cluster::is_hop(&query);
                let found = self
                    .conn
                    .core
                    .find_stream_from(&key, wait, &|| reader.peer_closed(), lookup)
                    .await;
                let Some(via) = found else {
                    info!(stream = %key, peer = ?self.conn.peer, "play refused: stream not found");
                    self.session.reject_play(request, Reject::NotFound);
                    self.reader_slot = None;
                    return;
                };
                self.session.accept_play(request);
                // The play answer must be queued before the first media.
                self.flush();
                let player = Player {
                    session: self.conn.guard.id,
                    queue: self.conn.queue.clone(),
                    format: SinkFormat::Rtmp {
                        message_stream: self.session.play_stream_id().unwrap_or(1),
                    },
                };
                match self.conn.core.attach_player(&key, player, via) {
                    Some(handle) => {
                        match handle.via {
                            Via::Local => {
                                info!(stream = %key, peer = ?self.conn.peer, via = "local", "player started")
                            }
                            Via::Remote(owner) => {
                                info!(stream = %key, peer = ?self.conn.peer, via = "remote", owner_core = %owner, "player started")
                            }
                        }
                        self.conn.guard.control.info.set_role(
                            ConnState::Read,
                            key.path(),
                            &query,
                            &query_user(&query),
                        );
                        self.role = Role::Playing(handle);
                    }
                    None => self.conn.guard.control.notify(Notice::StreamEnded),
                }
            }
            ServerEvent::Media(frame) => match &self.role {
                Role::Publishing(handle) => handle.push(frame),
                _ => debug!("media from a client that is not publishing: ignored"),
            },
            ServerEvent::PublishStopped => {
                if let Role::Publishing(h) = &self.role {
                    info!(stream = %h.key, "publish stopped");
                    self.role = Role::Idle;
                    self.conn.guard.control.info.set_idle();
                }
            }
            ServerEvent::PlayStopped => {
                if matches!(self.role, Role::Playing(_)) {
                    self.role = Role::Idle;
                    self.reader_slot = None;
                    self.conn.guard.control.info.set_idle();
                }
            }
        }
    }

    /// What publish and play requests go through first: one stream per connection, then the
    /// auth rules for a configured path. Returns the key of the stream, or `None` once the
    /// request is refused; an auth refusal also ends the connection.
    async fn admit(
        &mut self,
        request: RequestId,
        action: Action,
        app: &str,
        stream: &str,
        query: &str,
    ) -> Option<StreamKey> {
        if !matches!(self.role, Role::Idle) {
            // The connection's stream goes on: a second publish hears that the name is taken,
            // a second play that there is no such stream.
            let busy = match action {
                Action::Publish => Reject::BadName,
                _ => Reject::NotFound,
            };
            self.session.reject(request, busy);
            return None;
        }
        match self.authorize(action, app, stream, query).await {
            Ok(key) if self.path_configured(&key) => Some(key),
            _ => {
                self.session.reject(request, Reject::Unauthorized);
                self.refused = true;
                None
            }
        }
    }

    /// Runs the auth rules for a publish or play; on success, the key of the stream it names.
    /// A refusal is logged with the rule that failed; the client only learns it was refused.
    async fn authorize(
        &self,
        action: Action,
        app: &str,
        stream: &str,
        query: &str,
    ) -> Result<StreamKey, ()> {
        let snapshot = self.conn.core.snapshot();
        let params = Query::parse(query);
        let text = |k: &[u8]| {
            params
                .get(k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let (user, pass) = (text(b"user"), text(b"pass"));
        let request = AuthRequest {
            action,
            protocol: Protocol::Rtmp,
            vhost: &self.vhost,
            app,
            stream,
            query,
            headers: &[],
            peer: self
                .conn
                .peer
                .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| {
                    p.ip()
                }),
            user: user.as_deref(),
            pass: pass.as_deref(),
            now_unix: unix_now(),
        };
        if let Err(denied) = snapshot.auth.check(&request) {
            info!(action = %action, vhost = %self.vhost, app, stream, peer = ?self.conn.peer, "refused: {denied}");
            return Err(());
        }
        let id = self.conn.guard.control.info.uuid.to_string();
        if let Some((addr, ask)) = snapshot.auth.http_hook_request(&request, Some(&id)) {
            if let Err(why) = auth_hook::ask(addr, ask).await {
                info!(action = %action, app, stream, peer = ?self.conn.peer, "refused: {why}");
                return Err(());
            }
        }
        let vhost = snapshot
            .auth
            .stream_vhost(&self.vhost)
            .unwrap_or(DEFAULT_VHOST);
        Ok(StreamKey::new(vhost, app, stream))
    }

    /// Whether a `paths` entry covers the stream (MediaMTX refuses unconfigured paths); logs why not.
    fn path_configured(&self, key: &StreamKey) -> bool {
        let path = key.path();
        let configured = self.conn.core.snapshot().config.path_conf(&path).is_some();
        if !configured {
            info!(path, peer = ?self.conn.peer, "refused: no paths entry matches the path");
        }
        configured
    }

    /// Says goodbye as the ending requires; true if there is something worth flushing.
    fn finish(&mut self, ending: &Ending) -> bool {
        let role = std::mem::replace(&mut self.role, Role::Idle);
        let farewell = match ending {
            Ending::Refused => true,
            Ending::Notice(Notice::StreamEnded) => {
                self.session.stream_eof();
                true
            }
            Ending::Notice(
                Notice::Shutdown | Notice::Replaced | Notice::Kicked | Notice::PathRemoved,
            ) => {
                self.session.goodbye();
                true
            }
            _ => false,
        };
        match ending {
            Ending::PeerClosed => debug!("closed by peer"),
            Ending::IdleTimeout => {
                self.conn.core.hit_limit(Limit::ReadTimeout);
                info!(peer = ?self.conn.peer, "closing connection: no data for readTimeout")
            }
            Ending::HandshakeTimeout => {
                self.conn.core.hit_limit(Limit::HandshakeTimeout);
                info!(peer = ?self.conn.peer, "closing connection: handshake and connect not done within handshakeTimeout")
            }
            Ending::OutputBacklog => {
                self.conn.core.hit_limit(Limit::PlayerQueueBytes);
                info!(peer = ?self.conn.peer, "closing connection: it left more than playerMaxQueueBytes unread for slowPlayerTimeout")
            }
            Ending::Protocol(e @ SessionError::Chunk(ChunkError::MessageTooLarge { .. })) => {
                self.conn.core.hit_limit(Limit::MessageSize);
                warn!(peer = ?self.conn.peer, "closing connection: protocol error: {e}")
            }
            Ending::Io(e) => info!(peer = ?self.conn.peer, "closing connection: {e}"),
            Ending::Protocol(e) => {
                warn!(peer = ?self.conn.peer, "closing connection: protocol error: {e}")
            }
            Ending::Notice(n) => info!(peer = ?self.conn.peer, notice = ?n, "closing connection"),
            Ending::Refused => debug!("closing connection after a refusal"),
        }
        match &role {
            Role::Publishing(h) => info!(stream = %h.key, "publish ended"),
            Role::Playing(h) => debug!(stream = %h.key, "player stopped"),
            Role::Idle => {}
        }
        drop(role);
        if farewell {
            self.flush();
        }
        farewell
    }
}

/// The host of a URL such as `rtmp://host:1935/app`, without port or brackets.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The user a request that passed authentication names (its `user` query parameter, how RTMP
/// clients send credentials); empty when it names none. MediaMTX shows it as `user`.
fn query_user(query: &str) -> String {
    Query::parse(query)
        .get(b"user")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn vhost_from_tc_url() {
        assert_eq!(host_of("rtmp://a.example.com:1935/live"), "a.example.com");
        assert_eq!(host_of("rtmp://a.example.com/live?x=1"), "a.example.com");
        assert_eq!(host_of("rtmp://[::1]:1935/live"), "::1");
        assert_eq!(host_of("rtmp://localhost"), "localhost");
    }
}
