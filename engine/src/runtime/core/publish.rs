//! Publishing on a core: claiming a stream key (through its home core, and the cluster's
//! directory when there is one), the handle that feeds the stream's frames to players here and to
//! subscribed cores, and what ends a stream.

use super::*;

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

impl Core {
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

    pub(super) async fn claim(
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
    pub(super) fn end_local_stream(&self, stream: &mut LocalStream) {
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
