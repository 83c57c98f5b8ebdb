//! Pushing a live stream onward (`forward`): an RTMP publish to the target (`rtmps://`: over TLS),
//! fed as a player of the stream on its owner core, reconnected with backoff while the stream
//! lives.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use glommio::Task;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::dial::dial;
use super::error::RelayError;
use super::link::{self, Link};
use super::status::{ForwardView, LinkState};
use super::tls::TlsClient;
use super::transport::{encrypt_media, RtmpLink, Transport};
use super::url::{self, RelayUrl};
use crate::delivery::PlayerQueue;
use crate::delivery::{Player, SinkFormat};
use crate::protocol::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use crate::registry::StreamKey;
use crate::runtime::{unix_ms, ConnState, ConnUuid, Core, StreamId, Via};
use crate::server::conn::Conn;

/// One push of one stream to one target.
#[derive(Debug)]
pub(super) struct Forward {
    /// Its id for the API, kept for the push's life (all its reconnections); a new publish of
    /// the key gets new pushes and new ids.
    id: ConnUuid,
    /// When it started (Unix ms).
    created_ms: u64,
    /// Its entry's place in the path's `forward` list, from 1; followed on every configuration
    /// change (an entry added before it moves it).
    pub(super) pos: Cell<usize>,
    pub(super) key: StreamKey,
    /// The target as configured.
    pub(super) dest: String,
    /// The pinned certificate of an `rtmps://` target.
    fingerprint: Option<String>,
    /// The stream it pushes (a new publish of the key gets new forwards).
    pub(super) stream: StreamId,
    pub(super) link: Link,
    /// The current connection's send queue, for the bytes sent.
    queue: RefCell<Option<Rc<RefCell<PlayerQueue>>>>,
    /// Bytes sent by earlier connections.
    sent_before: Cell<u64>,
}

impl Forward {
    pub(super) fn new(
        key: StreamKey,
        pos: usize,
        dest: String,
        fingerprint: Option<String>,
        stream: StreamId,
    ) -> Forward {
        Forward {
            id: ConnUuid::new_v4(),
            created_ms: unix_ms(),
            pos: Cell::new(pos),
            key,
            dest,
            fingerprint,
            stream,
            link: Link::default(),
            queue: RefCell::new(None),
            sent_before: Cell::new(0),
        }
    }

    fn sent(&self) -> u64 {
        let current = self
            .queue
            .borrow()
            .as_ref()
            .map_or(0, |q| q.borrow().sent_bytes());
        self.sent_before.get() + current
    }

    pub(super) fn view(&self) -> ForwardView {
        let (last_error, last_error_ms) = match self.link.status.last_error() {
            Some((e, ms)) => (Some(e), Some(ms)),
            None => (None, None),
        };
        ForwardView {
            id: self.id,
            pos: self.pos.get(),
            created_ms: self.created_ms,
            path: self.key.path(),
            dest: self.dest.clone(),
            fingerprint: self.fingerprint.clone(),
            state: self.link.status.state(),
            last_error,
            last_error_ms,
            bytes_sent: self.sent(),
        }
    }

    /// The dest as logs show it, credentials hidden.
    fn shown_dest(&self) -> String {
        url::hide_credentials(&self.dest, &self.dest)
    }

    /// The URL pushed to: the dest, with the stream's name when it names only an app.
    fn target(&self) -> Result<super::url::RtmpUrl, RelayError> {
        match url::parse(&self.dest)? {
            RelayUrl::Rtmp(mut u) => {
                if u.stream.is_empty() {
                    u.stream = self.key.stream.clone();
                }
                Ok(u)
            }
            RelayUrl::HttpFlv(_) | RelayUrl::Rtsp(_) => {
                Err(url::UrlError::UnsupportedScheme.into())
            }
        }
    }
}

/// Pushes while the stream lives; ends when it ends or the forward is stopped.
pub(super) async fn run(core: Rc<Core>, relays: Rc<super::Relays>, fwd: Rc<Forward>) {
    let mut backoff = Backoff::default();
    let link = &fwd.link;
    while !link.is_stopped(&core) && core.owns_stream(&fwd.key, fwd.stream) {
        link.status.connecting(&fwd.dest);
        let error = push_once(&core, &fwd).await;
        let was_ready = link.status.state() == LinkState::Ready;
        if matches!(error, RelayError::Stopped | RelayError::Ended) || link.is_stopped(&core) {
            break;
        }
        let error = url::hide_credentials(&error.to_string(), &fwd.dest);
        warn!(core = %core.id, stream = %fwd.key, dest = %fwd.shown_dest(), "push failed: {error}");
        link.status.failed(error);
        if was_ready {
            backoff.reset();
        }
        link.pause(&core, backoff.next_delay()).await;
    }
    link.status.idle();
    relays.remove_forward(&fwd);
    info!(core = %core.id, stream = %fwd.key, dest = %fwd.shown_dest(), "push stopped");
}

async fn push_once(core: &Rc<Core>, fwd: &Forward) -> RelayError {
    let target = match fwd.target() {
        Ok(t) => t,
        Err(e) => return e,
    };
    let mut rtmp = match Transport::new(target.tls, &target.host, fwd.fingerprint.as_deref()) {
        Ok(t) => RtmpLink::new(t),
        Err(e) => return e,
    };
    let (conn, mut reader) = match dial(core, &target.host, target.port, &fwd.link.stop).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    link::attach(&fwd.link, &conn);
    let mut config = ClientConfig::new(
        &target.app,
        &target.tc_url,
        &target.stream,
        ClientMode::Publish,
    );
    config.handshake_seed = rand::random();
    let mut client = ClientSession::new(config);
    let mut play = None;
    let mut tls_media: Option<(Rc<RefCell<PlayerQueue>>, Task<()>)> = None;
    let ending = loop {
        if let Err(e) = rtmp
            .turn(&mut client, &conn, &mut reader, &fwd.link.status)
            .await
        {
            break e;
        }
        let mut failed = None;
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::PublishStarted { stream_id } if play.is_none() => {
                    // Our own control output goes first: media follows on the same queue.
                    if let Err(e) = rtmp.flush(&mut client, &conn) {
                        failed = Some(e);
                        break;
                    }
                    let queue = match rtmp.transport() {
                        Transport::Plain => conn.queue.clone(),
                        Transport::Tls(tls) => {
                            let (media, pump) = start_tls_media(core, tls, &conn);
                            tls_media = Some((media.clone(), pump));
                            media
                        }
                    };
                    let player = Player {
                        session: conn.guard.id,
                        queue,
                        format: SinkFormat::Rtmp {
                            message_stream: stream_id,
                        },
                    };
                    match core.attach_player(&fwd.key, player, Via::Local) {
                        Some(handle) => {
                            info!(core = %core.id, stream = %fwd.key, dest = %fwd.shown_dest(), "push started");
                            fwd.link.status.ready();
                            *fwd.queue.borrow_mut() = Some(conn.queue.clone());
                            conn.guard.control.info.set_role(
                                ConnState::Read,
                                fwd.key.path(),
                                "",
                                "",
                            );
                            play = Some(handle);
                        }
                        None => failed = Some(RelayError::Ended),
                    }
                }
                ClientEvent::Status {
                    level,
                    code,
                    description,
                } if level == "error" => {
                    failed = Some(RelayError::Status { code, description });
                }
                _ => {}
            }
        }
        if let Some(e) = failed {
            break e;
        }
    };
    drop(play);
    if let Some((media, pump)) = tls_media {
        media.borrow_mut().close();
        drop(pump);
    }
    if let Some(q) = fwd.queue.borrow_mut().take() {
        fwd.sent_before
            .set(fwd.sent_before.get() + q.borrow().sent_bytes());
    }
    fwd.link.session.set(None);
    conn.close(false).await;
    ending.for_forward()
}

/// The player queue of a push over TLS and the task that encrypts what it holds into the
/// connection's queue (see [`encrypt_media`]); the queue has a player's limits.
fn start_tls_media(
    core: &Rc<Core>,
    tls: &Rc<RefCell<TlsClient>>,
    conn: &Conn,
) -> (Rc<RefCell<PlayerQueue>>, Task<()>) {
    let config = &core.snapshot().config;
    let max = config.player_max_queue_bytes;
    let media = Rc::new(RefCell::new(PlayerQueue::new(
        max,
        config.slow_player_timeout.duration(),
    )));
    let pump = glommio::spawn_local(encrypt_media(
        media.clone(),
        tls.clone(),
        conn.queue.clone(),
        max / 2,
    ));
    (media, pump)
}
