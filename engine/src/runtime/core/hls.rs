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
use crate::runtime::{CoreMessage, HlsAnswer, HlsQuery, Reply, ReplyTo, StreamId};

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
        let live = self.directory.borrow().find(key).is_some();
        let is_playlist = matches!(query, HlsQuery::Playlist { .. });
        // A playlist request is a reader: it starts the key's on-demand source like a player does.
        if let (true, false, Some(me)) = (is_playlist, live, self.me.upgrade()) {
            self.links.demanded(&me, key, true);
        }
        let starting = !live && self.links.has_source(key);
        let now = Instant::now();
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
        };
        let Some(muxer) = muxer else {
            return Some(answer);
        };
        let mut m = muxer.borrow_mut();
        m.touch(now);
        let outcome = match query {
            HlsQuery::Playlist { block: None } => HlsReply::Now(m.playlist().map(Bytes::from)),
            HlsQuery::Playlist {
                block: Some((msn, part)),
            } => m.request_playlist(msn, part, reply, now),
            HlsQuery::Media { instance, name } if instance == m.instance() => {
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
