//! HLS on a core: the muxers of the stream keys whose home this core is, and the answers to
//! playlist and media requests, asked by any core.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use tracing::info;

use super::Core;
use crate::registry::{
    home_core, HlsMuxer, HlsReply, HlsResponder, HlsSettings, LocalStream, StreamKey,
};
use crate::runtime::hls_session::{HlsSessionCheck, HlsSessionOpening};
use crate::runtime::{
    ConnUuid, CoreMessage, HlsAnswer, HlsQuery, HlsSessionOpened, Reply, ReplyTo, StreamId,
};

impl Core {
    /// Asks the key's home core for a playlist or segment.
    pub async fn hls_get(&self, key: &StreamKey, query: HlsQuery) -> Option<HlsAnswer> {
        let home = home_core(key, self.data_cores);
        match self
            .request(home, |reply| CoreMessage::HlsGet {
                key: key.clone(),
                query,
                reply,
            })
            .await
        {
            Some(Reply::Hls(answer)) => Some(answer),
            _ => None,
        }
    }

    /// Asks the key's home core to open an HLS session for a viewer, under the secret `reuse`
    /// if the viewer names a session that closed.
    pub async fn hls_session_open_at_home(
        &self,
        key: &StreamKey,
        opening: HlsSessionOpening,
        reuse: Option<ConnUuid>,
        max_readers: u32,
    ) -> Option<HlsSessionOpened> {
        let home = home_core(key, self.data_cores);
        match self
            .request(home, |reply| CoreMessage::HlsSessionOpen {
                key: key.clone(),
                opening: Box::new(opening),
                reuse,
                max_readers,
                reply,
            })
            .await
        {
            Some(Reply::HlsSessionOpened(opened)) => Some(opened),
            _ => None,
        }
    }

    /// Tells the key's home core that `bytes` of bodies went to the session with `secret`.
    pub fn hls_session_sent(&self, key: &StreamKey, secret: ConnUuid, bytes: u64) {
        let home = home_core(key, self.data_cores);
        self.send(home, CoreMessage::HlsSessionSent { secret, bytes });
    }

    /// Opens a session of `key` (on its home core) if the key is live or a source of it is
    /// starting, and the path has room for another reader.
    pub(super) fn hls_session_open(
        &self,
        key: &StreamKey,
        opening: HlsSessionOpening,
        reuse: Option<ConnUuid>,
        max_readers: u32,
    ) -> HlsSessionOpened {
        let (live, starting) = self.hls_demand(key);
        // A muxer outlives its stream for hlsMuxerCloseAfter: what it holds is still served.
        if !live && !starting && !self.hls.borrow().contains_key(key) {
            return HlsSessionOpened::NoStream;
        }
        if self.path_is_full(key, max_readers) {
            return HlsSessionOpened::Full;
        }
        let remote = opening.remote;
        let (id, secret) = self
            .hls_sessions
            .borrow_mut()
            .open(key, opening, reuse, Instant::now());
        info!(core = %self.id, stream = %key, session = %id, peer = ?remote, "hls session opened");
        HlsSessionOpened::Opened { secret }
    }

    /// Closes the HLS session `id` if its home is this core.
    pub(super) fn hls_session_kick(&self, id: ConnUuid) -> bool {
        let kicked = self.hls_sessions.borrow_mut().kick(id, Instant::now());
        if let Some(s) = &kicked {
            info!(core = %self.id, stream = %s.key, session = %s.id, "hls session kicked through the API");
        }
        kicked.is_some()
    }

    /// A reader's request for `key`: starts the key's on-demand source as a player does.
    /// Whether the key is live, and whether a source of it is starting.
    fn hls_demand(&self, key: &StreamKey) -> (bool, bool) {
        let live = self.directory.borrow().find(key).is_some();
        if let (false, Some(me)) = (live, self.me.upgrade()) {
            self.links.demanded(&me, key, true);
        }
        (live, !live && self.links.has_source(key))
    }

    /// The key's muxer, created (and attached if the stream is live) on first use.
    pub(super) fn hls_muxer(&self, key: &StreamKey) -> Rc<RefCell<HlsMuxer>> {
        let existing = self.hls.borrow().get(key).cloned();
        let muxer = existing.unwrap_or_else(|| {
            let config = &self.snapshot().config;
            let settings = HlsSettings {
                variant: config.hls_variant,
                segment_duration: config.hls_segment_duration.duration(),
                part_duration: config.hls_part_duration.duration(),
                window: config.hls_segment_count,
            };
            let me = self.me.clone();
            let responder: HlsResponder = Rc::new(move |to, body| {
                if let Some(core) = me.upgrade() {
                    let answer = HlsAnswer {
                        live: true,
                        starting: false,
                        body,
                        too_far: false,
                        session: HlsSessionCheck::NotAsked,
                    };
                    core.reply(to, Reply::Hls(answer));
                }
            });
            let muxer = Rc::new(RefCell::new(HlsMuxer::new(
                &key.stream,
                (self.next() & 0xffff_ffff) as u32,
                settings,
                responder,
                Instant::now(),
            )));
            info!(core = %self.id, stream = %key, variant = ?settings.variant, "hls muxer started");
            self.hls.borrow_mut().insert(key.clone(), muxer.clone());
            muxer
        });
        if !muxer.borrow().is_attached() {
            self.hls_attach(key, &muxer);
        }
        muxer
    }

    /// The answer to an HLS request, or `None` when the muxer parked it to answer later.
    pub(super) fn hls_answer(
        &self,
        key: &StreamKey,
        query: HlsQuery,
        reply: ReplyTo,
    ) -> Option<HlsAnswer> {
        let now = Instant::now();
        let is_playlist = matches!(query, HlsQuery::Playlist { .. });
        let session = match query {
            HlsQuery::Playlist { session, .. } | HlsQuery::Media { session, .. } => session,
        };
        let session = session.map_or(HlsSessionCheck::NotAsked, |s| {
            self.hls_sessions.borrow_mut().check(key, &s, now)
        });
        // A kicked viewer gets nothing; one whose session is gone gets a new one first.
        if session == HlsSessionCheck::Kicked
            || (is_playlist && session == HlsSessionCheck::Unknown)
        {
            return Some(HlsAnswer {
                live: false,
                starting: false,
                body: None,
                too_far: false,
                session,
            });
        }
        let (live, starting) = if is_playlist {
            self.hls_demand(key)
        } else {
            let live = self.directory.borrow().find(key).is_some();
            (live, !live && self.links.has_source(key))
        };
        let muxer = if is_playlist && live {
            Some(self.hls_muxer(key))
        } else {
            self.hls.borrow().get(key).cloned()
        };
        let mut answer = HlsAnswer {
            live,
            starting,
            body: None,
            too_far: false,
            session,
        };
        let Some(muxer) = muxer else {
            return Some(answer);
        };
        let mut m = muxer.borrow_mut();
        m.touch(now);
        let outcome = match query {
            HlsQuery::Playlist { block: None, .. } => HlsReply::Now(m.playlist().map(Bytes::from)),
            HlsQuery::Playlist {
                block: Some((msn, part)),
                ..
            } => m.request_playlist(msn, part, reply, now),
            HlsQuery::Media { instance, name, .. } if instance == m.instance() => {
                m.request_media(name, reply, now)
            }
            HlsQuery::Media { .. } => HlsReply::Now(None),
        };
        match outcome {
            HlsReply::Now(body) => answer.body = body,
            HlsReply::TooFar => answer.too_far = true,
            HlsReply::Parked => return None,
        }
        if let Some(b) = &answer.body {
            m.record_sent(b.len());
        }
        Some(answer)
    }

    /// Feeds the muxer from the key's stream: the local stream or mirror if there is one, else a
    /// new mirror subscribed to the publisher's core. Does nothing while the key is not live.
    fn hls_attach(&self, key: &StreamKey, muxer: &Rc<RefCell<HlsMuxer>>) {
        let now = Instant::now();
        if let Some(stream) = self.streams.get(key) {
            let mut s = stream.borrow_mut();
            if !s.has_hls() {
                s.set_hls(muxer.clone(), now);
            }
            return;
        }
        let Some(publisher) = self.directory.borrow().find(key) else {
            return;
        };
        if publisher.core == self.id {
            // Claimed here but the stream is not set up yet: the next tick attaches.
            return;
        }
        let mut mirror =
            LocalStream::mirror(StreamId(0), key.clone(), publisher.core, self.gop_limits());
        mirror.set_hls(muxer.clone(), now);
        self.streams.insert(key, Rc::new(RefCell::new(mirror)));
        self.send(
            publisher.core,
            CoreMessage::Subscribe {
                key: key.clone(),
                subscriber: self.id,
            },
        );
    }

    /// Whether `key`'s HLS muxer (on this, its home core) was asked for something within `within`:
    /// HLS viewers hold no connection, so this is how they count as readers.
    pub fn hls_requested_within(&self, key: &StreamKey, now: Instant, within: Duration) -> bool {
        self.hls
            .borrow()
            .get(key)
            .is_some_and(|m| m.borrow().idle_for(now) < within)
    }

    /// Periodic HLS upkeep: attaches muxers whose stream went live, stops idle ones.
    pub fn hls_tick(&self) {
        let now = Instant::now();
        for closed in self.hls_sessions.borrow_mut().expire(now) {
            info!(core = %self.id, stream = %closed.key, session = %closed.id, "hls session closed: no requests for 30s");
        }
        let close_after = self.snapshot().config.hls_muxer_close_after.duration();
        let always = self.snapshot().config.hls_always_remux;
        let muxers: Vec<_> = self
            .hls
            .borrow()
            .iter()
            .map(|(k, m)| (k.clone(), m.clone()))
            .collect();
        for (key, muxer) in muxers {
            // Parked requests past their deadline get their answer.
            muxer.borrow_mut().wake(now);
            let live = self.directory.borrow().find(&key).is_some();
            let idle = muxer.borrow().idle_for(now) >= close_after;
            if idle && !(always && live) {
                self.hls_stop(&key);
            } else if !muxer.borrow().is_attached() {
                self.hls_attach(&key, &muxer);
            }
        }
    }

    fn hls_stop(&self, key: &StreamKey) {
        self.hls.borrow_mut().remove(key);
        info!(core = %self.id, stream = %key, "hls muxer stopped: no requests");
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        let mut s = stream.borrow_mut();
        s.take_hls();
        self.drop_mirror_if_unused(key, &s);
    }
}
