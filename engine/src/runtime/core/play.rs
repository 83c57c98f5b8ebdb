//! Playing on a core: finding where a stream is published, attaching a player to it here
//! (through a mirror when it is published on another core), and detaching.

use super::*;

/// Where a player's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The stream is published on this core.
    Local,
    /// Mirrored from the publisher's core.
    Remote(CoreId),
}

impl Core {
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

    pub(super) fn play_handle(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
        via: Via,
    ) -> PlayHandle {
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

    pub(super) fn detach_player(&self, key: &StreamKey, session: SessionId) {
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        let mut s = stream.borrow_mut();
        s.remove_player(session);
        self.drop_mirror_if_unused(key, &s);
    }

    /// A mirror nobody reads any more (no player, no HLS muxer) is removed, and its owner stops
    /// sending us frames.
    pub(super) fn drop_mirror_if_unused(&self, key: &StreamKey, s: &LocalStream) {
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
