//! What a core does with each message from another core.

use super::*;

impl Core {
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
            CoreMessage::HlsSessionOpen {
                key,
                opening,
                reuse,
                max_readers,
                reply,
            } => {
                let opened = self.hls_session_open(&key, *opening, reuse, max_readers);
                self.reply(reply, Reply::HlsSessionOpened(opened));
            }
            CoreMessage::HlsSessionSent { secret, bytes } => {
                self.hls_sessions.borrow_mut().add_sent(&secret, bytes);
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
            CoreMessage::KickHlsSession { id, reply } => {
                let kicked = self.hls_session_kick(id);
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
    pub(super) fn ended_upstream(&self, stream: &mut LocalStream) {
        for p in stream.players() {
            self.notify_session(p.session, Notice::StreamEnded);
        }
        if let Some(hls) = stream.take_hls() {
            hls.borrow_mut().detach();
        }
    }

    // ---- HLS: see `core/hls.rs` ---------------------------------------------------------------
}
