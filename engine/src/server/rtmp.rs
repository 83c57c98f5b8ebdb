//! The RTMP driver: accepts connections and moves bytes between sockets and
//! [`ServerSession`]s, turning the session's events into publishes and plays on the core.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn, Instrument};

use super::net::{self, NetReader};
use super::writer::drain_queue;
use crate::auth::query::Query;
use crate::auth::{Action, AuthRequest, Protocol};
use crate::media::PlayerQueue;
use crate::protocol::rtmp::{Reject, ServerEvent, ServerSession, SessionConfig, SessionError};
use crate::registry::{Player, SinkFormat, StreamKey, DEFAULT_VHOST};
use crate::runtime::{
    ConnState, Core, Notice, PlayHandle, PublishHandle, PublishRefused, ReaderSlot, SessionGuard,
    Via,
};

/// Socket reads go into a buffer this large.
const READ_BUFFER: usize = 64 * 1024;
/// How long a closing connection may take to flush its last messages.
const FLUSH_TIME: Duration = Duration::from_secs(1);

/// Accepts RTMP connections on this core until shutdown.
pub async fn serve_rtmp(core: Rc<Core>, listener: TcpListener) {
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            core.shutdown_signal().wait().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                let core = core.clone();
                glommio::spawn_local(async move { serve_connection(core, stream).await }).detach();
            }
            Some(Err(e)) => {
                // Out of descriptors or memory: back off instead of spinning.
                warn!(core = %core.id, "rtmp accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    PeerClosed,
    IdleTimeout,
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

async fn serve_connection(core: Rc<Core>, stream: TcpStream) {
    let guard = core.open_session();
    let peer = stream.peer_addr().ok();
    let span = tracing::info_span!("rtmp", core = %core.id, conn = %guard.id);
    async move {
        debug!(peer = ?peer, "connection accepted");
        if let Err(e) = stream.set_nodelay(true) {
            debug!("cannot set TCP_NODELAY: {e}");
        }
        let (reader, writer) = match net::split(stream) {
            Ok(halves) => halves,
            Err(e) => {
                warn!("cannot set up connection: {e}");
                return;
            }
        };
        let queue = Rc::new(RefCell::new(PlayerQueue::new(
            core.snapshot().config.player_max_queue_bytes,
            core.snapshot().config.slow_player_timeout.duration(),
        )));
        guard.control.info.set_remote(peer);
        guard.control.info.set_queue(queue.clone());
        let writer = glommio::spawn_local(drain_queue(queue.clone(), writer, core.clone()));
        let mut conn = Connection {
            core: core.clone(),
            guard,
            session: ServerSession::new(SessionConfig {
                max_message_len: core.snapshot().config.max_message_size as usize,
                handshake_seed: rand::random(),
                ..SessionConfig::default()
            }),
            queue: queue.clone(),
            role: Role::Idle,
            out: BytesMut::new(),
            peer,
            vhost: String::new(),
            refused: false,
            reader_slot: None,
        };
        let ending = conn.run(reader).await;
        let farewell = conn.finish(&ending);
        queue.borrow_mut().close();
        if farewell {
            // Let the last status messages reach the client; a stuck one is cut off.
            if let Ok(Err(e)) =
                glommio::timer::timeout(FLUSH_TIME, async { Ok(writer.await) }).await
            {
                debug!("flush failed: {e}");
            }
        }
        // Dropping the writer task (if still running) and both halves closes the socket.
    }
    .instrument(span)
    .await
}

struct Connection {
    core: Rc<Core>,
    guard: SessionGuard,
    session: ServerSession,
    queue: Rc<RefCell<PlayerQueue>>,
    role: Role,
    out: BytesMut,
    peer: Option<SocketAddr>,
    /// Host of the `connect` tcUrl: the vhost for domains and signatures.
    vhost: String,
    /// Set when a request was refused: flush the refusal, then close.
    refused: bool,
    /// While reading: this connection's place under the path's `maxReaders`.
    reader_slot: Option<ReaderSlot>,
}

impl Connection {
    async fn run(&mut self, mut reader: NetReader) -> Ending {
        let mut buf = vec![0u8; READ_BUFFER];
        let read_timeout = self.core.snapshot().config.read_timeout.duration();
        loop {
            let control = self.guard.control.clone();
            // Players send next to nothing once playing, so silence only counts against the
            // others: a publisher or a client that has not started yet.
            let timed = !matches!(self.role, Role::Playing(_));
            let read = future::or(
                async {
                    let r = if timed {
                        glommio::timer::timeout(read_timeout, async {
                            Ok(reader.read(&mut buf).await)
                        })
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                    } else {
                        reader.read(&mut buf).await
                    };
                    Some(r)
                },
                async {
                    control.signal().wait().await;
                    None
                },
            );
            let n = match read.await {
                None => break Ending::Notice(control.notice().unwrap_or(Notice::Shutdown)),
                Some(Ok(0)) => break Ending::PeerClosed,
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    break Ending::IdleTimeout
                }
                Some(Err(e)) => break Ending::Io(e),
            };
            self.guard.control.info.add_bytes_in(n as u64);
            if let Err(e) = self.session.handle_input(&buf[..n]) {
                break Ending::Protocol(e);
            }
            while let Some(event) = self.session.poll_event() {
                self.on_event(event).await;
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
            self.queue
                .borrow_mut()
                .push_control(self.out.split().freeze());
        }
    }

    async fn on_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connected { tc_url, .. } => {
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
                if !matches!(self.role, Role::Idle) {
                    self.session.reject_publish(request, Reject::BadName);
                    return;
                }
                let key = match self.authorize(Action::Publish, &app, &stream, &query) {
                    Ok(key) if self.path_configured(&key) => key,
                    _ => {
                        self.session.reject_publish(request, Reject::Unauthorized);
                        self.refused = true;
                        return;
                    }
                };
                match self.core.claim_publish(&key, self.guard.id).await {
                    Ok(handle) => {
                        self.session.accept_publish(request);
                        info!(stream = %key, peer = ?self.peer, stream_id = %handle.stream_id(), "publish started");
                        self.guard
                            .control
                            .info
                            .set_role(ConnState::Publish, key.path(), &query);
                        self.role = Role::Publishing(handle);
                    }
                    Err(PublishRefused::AlreadyPublishing) => {
                        info!(stream = %key, peer = ?self.peer, "publish refused: stream is already being published");
                        self.session.reject_publish(request, Reject::BadName);
                    }
                    Err(PublishRefused::Unavailable) => {
                        warn!(stream = %key, "publish refused: the stream's home core did not answer");
                        self.session.reject_publish(request, Reject::BadName);
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
                if !matches!(self.role, Role::Idle) {
                    self.session.reject_play(request, Reject::NotFound);
                    return;
                }
                let key = match self.authorize(Action::Read, &app, &stream, &query) {
                    Ok(key) if self.path_configured(&key) => key,
                    _ => {
                        self.session.reject_play(request, Reject::Unauthorized);
                        self.refused = true;
                        return;
                    }
                };
                debug!(stream = %key, "play requested");
                let max_readers = self
                    .core
                    .snapshot()
                    .config
                    .path_conf(&key.path())
                    .map_or(0, |p| p.max_readers);
                let Some(slot) = self
                    .core
                    .claim_reader(&key, self.guard.id, max_readers)
                    .await
                else {
                    info!(stream = %key, peer = ?self.peer, max_readers, "play refused: the path has maxReaders readers");
                    self.session.reject_play(request, Reject::NotFound);
                    self.refused = true;
                    return;
                };
                self.reader_slot = Some(slot);
                let Some(via) = self
                    .core
                    .find_stream(
                        &key,
                        self.core.snapshot().config.play_wait_timeout.duration(),
                    )
                    .await
                else {
                    info!(stream = %key, peer = ?self.peer, "play refused: stream not found");
                    self.session.reject_play(request, Reject::NotFound);
                    self.reader_slot = None;
                    return;
                };
                self.session.accept_play(request);
                // The play answer must be queued before the first media.
                self.flush();
                let player = Player {
                    session: self.guard.id,
                    queue: self.queue.clone(),
                    format: SinkFormat::Rtmp {
                        message_stream: self.session.play_stream_id().unwrap_or(1),
                    },
                };
                match self.core.attach_player(&key, player, via) {
                    Some(handle) => {
                        match handle.via {
                            Via::Local => {
                                info!(stream = %key, peer = ?self.peer, via = "local", "player started")
                            }
                            Via::Remote(owner) => {
                                info!(stream = %key, peer = ?self.peer, via = "remote", owner_core = %owner, "player started")
                            }
                        }
                        self.guard
                            .control
                            .info
                            .set_role(ConnState::Read, key.path(), &query);
                        self.role = Role::Playing(handle);
                    }
                    None => self.guard.control.notify(Notice::StreamEnded),
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
                    self.guard.control.info.set_idle();
                }
            }
            ServerEvent::PlayStopped => {
                if matches!(self.role, Role::Playing(_)) {
                    self.role = Role::Idle;
                    self.reader_slot = None;
                    self.guard.control.info.set_idle();
                }
            }
        }
    }

    /// Runs the auth rules for a publish or play; on success, the key of the stream it names.
    /// A refusal is logged with the rule that failed; the client only learns it was refused.
    fn authorize(
        &self,
        action: Action,
        app: &str,
        stream: &str,
        query: &str,
    ) -> Result<StreamKey, ()> {
        let snapshot = self.core.snapshot();
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
                .peer
                .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| {
                    p.ip()
                }),
            user: user.as_deref(),
            pass: pass.as_deref(),
            now_unix: unix_now(),
        };
        if let Err(denied) = snapshot.auth.check(&request) {
            info!(action = %action, vhost = %self.vhost, app, stream, peer = ?self.peer, "refused: {denied}");
            return Err(());
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
        let configured = self.core.snapshot().config.path_conf(&path).is_some();
        if !configured {
            info!(path, peer = ?self.peer, "refused: no paths entry matches the path");
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
                info!(peer = ?self.peer, "closing connection: no data for readTimeout")
            }
            Ending::Io(e) => info!(peer = ?self.peer, "closing connection: {e}"),
            Ending::Protocol(e) => {
                warn!(peer = ?self.peer, "closing connection: protocol error: {e}")
            }
            Ending::Notice(n) => info!(peer = ?self.peer, notice = ?n, "closing connection"),
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
