use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::{HlsMuxer, StreamKey};
use crate::delivery::{Fanout, Player};
use crate::media::{Frame, GopLimits, MediaHistory, MediaKind, StreamState};
use crate::record::Recorder;
use crate::runtime::{CoreId, SessionId, StreamId};

/// Where a core-local stream's frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// A publisher connected to this core: this core owns the stream.
    Publisher(SessionId),
    /// The core that owns the stream; this one mirrors it for its local players.
    Core(CoreId),
}

/// A core subscribed to a stream this core owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSubscriber {
    pub core: CoreId,
    /// A frame for this core was lost (its channel was full): skip to the next keyframe.
    pub needs_keyframe: bool,
}

/// One live stream as a core sees it: its origin on the publisher's core, or a mirror on a core
/// with players of a stream published elsewhere. Both keep the same [`StreamState`] so players
/// start the same way on any core, and both fan frames out to their local players, encoding each
/// frame once per format.
#[derive(Debug)]
pub struct LocalStream {
    pub id: StreamId,
    pub key: StreamKey,
    pub upstream: Upstream,
    /// A mirror is not ready until the owner sent its start-up frames.
    ready: bool,
    state: StreamState,
    players: Fanout,
    subscribers: Vec<RemoteSubscriber>,
    /// The stream's HLS muxer, on the key's home core only.
    hls: Option<Rc<RefCell<HlsMuxer>>>,
    /// The stream's recording, on the publisher's core only.
    recorder: Option<Recorder>,
    /// A pull of another cluster node's stream: that node records it, this one does not.
    pub cluster_mirror: bool,
}

impl LocalStream {
    pub fn origin(id: StreamId, key: StreamKey, publisher: SessionId, gop: GopLimits) -> Self {
        Self::new(id, key, Upstream::Publisher(publisher), true, gop)
    }

    pub fn mirror(id: StreamId, key: StreamKey, owner: CoreId, gop: GopLimits) -> Self {
        Self::new(id, key, Upstream::Core(owner), false, gop)
    }

    fn new(id: StreamId, key: StreamKey, upstream: Upstream, ready: bool, gop: GopLimits) -> Self {
        LocalStream {
            id,
            key,
            upstream,
            ready,
            state: StreamState::new(gop),
            players: Fanout::default(),
            subscribers: Vec::new(),
            hls: None,
            recorder: None,
            cluster_mirror: false,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Completes a mirror with the owner's start-up frames and starts its waiting players.
    /// Returns the players that were too slow to take them.
    pub fn start_mirror(
        &mut self,
        startup: &[Frame],
        history: MediaHistory,
        now: Instant,
    ) -> Vec<SessionId> {
        for f in startup {
            self.state.apply(f);
        }
        self.state.adopt_media_history(history);
        self.ready = true;
        if let Some(hls) = &self.hls {
            hls.borrow_mut().attach(startup, now);
        }
        self.players.start_all(&self.state, now)
    }

    /// Attaches a player; it gets the start-up frames at once if the stream is ready.
    /// Returns false if its queue cannot even take those.
    pub fn add_player(&mut self, player: Player, now: Instant) -> bool {
        let state = self.ready.then_some(&self.state);
        self.players.add(player, state, now)
    }

    pub fn remove_player(&mut self, session: SessionId) -> Option<Player> {
        self.players.remove(session)
    }

    pub fn players(&self) -> &[Player] {
        self.players.players()
    }

    pub fn take_players(&mut self) -> Vec<Player> {
        self.players.take_players()
    }

    pub fn startup_frames(&self) -> Vec<Frame> {
        self.state.startup_frames()
    }

    /// What the stream's media has shown so far (see [`StreamState::media_history`]).
    pub fn media_history(&self) -> MediaHistory {
        self.state.media_history()
    }

    /// Feeds the next frame: updates the start-up state and queues the frame, encoded once per
    /// format, to every local player. Returns the players that fell too far behind.
    pub fn deliver(&mut self, frame: &Frame, now: Instant) -> Vec<SessionId> {
        self.state.apply(frame);
        if !self.ready {
            return Vec::new();
        }
        if let Some(hls) = &self.hls {
            hls.borrow_mut().push(frame, now);
        }
        if let Some(recorder) = &mut self.recorder {
            recorder.push(frame);
        }
        self.players.deliver(frame, &self.state, now)
    }

    /// Feeds the stream to an HLS muxer from now on (from its start-up frames if it is live).
    pub fn set_hls(&mut self, muxer: Rc<RefCell<HlsMuxer>>, now: Instant) {
        if self.ready {
            muxer.borrow_mut().attach(&self.state.startup_frames(), now);
        }
        self.hls = Some(muxer);
    }

    /// Records the stream from now on, from its start-up frames (its GOP cache begins on a
    /// keyframe, so the first segment does too).
    pub fn set_recorder(&mut self, mut recorder: Recorder) {
        for f in self.state.startup_frames() {
            recorder.push(&f);
        }
        self.recorder = Some(recorder);
    }

    pub fn take_recorder(&mut self) -> Option<Recorder> {
        self.recorder.take()
    }

    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_ref()
    }

    pub fn take_hls(&mut self) -> Option<Rc<RefCell<HlsMuxer>>> {
        self.hls.take()
    }

    pub fn has_hls(&self) -> bool {
        self.hls.is_some()
    }

    /// A mirror nobody on this core needs any more.
    pub fn is_unused(&self) -> bool {
        self.players.is_empty() && self.hls.is_none()
    }

    pub fn add_subscriber(&mut self, core: CoreId) {
        if !self.subscribers.iter().any(|s| s.core == core) {
            self.subscribers.push(RemoteSubscriber {
                core,
                needs_keyframe: false,
            });
        }
    }

    pub fn remove_subscriber(&mut self, core: CoreId) {
        self.subscribers.retain(|s| s.core != core);
    }

    pub fn subscribers(&self) -> impl Iterator<Item = CoreId> + '_ {
        self.subscribers.iter().map(|s| s.core)
    }

    /// The cores `frame` must be sent to. A core that lost a frame gets nothing until the next
    /// keyframe (sequence headers and metadata always go through).
    pub fn forward_targets(&mut self, frame: &Frame, out: &mut Vec<CoreId>) {
        out.clear();
        let always = frame.is_sequence_header() || frame.kind == MediaKind::Script;
        let resync = self.state.is_resync_point(frame);
        for s in &mut self.subscribers {
            if s.needs_keyframe && !always {
                if !resync {
                    continue;
                }
                s.needs_keyframe = false;
            }
            out.push(s.core);
        }
    }

    /// Records that `core`'s channel was full and it lost a frame.
    pub fn mark_lagging(&mut self, core: CoreId) {
        if let Some(s) = self.subscribers.iter_mut().find(|s| s.core == core) {
            s.needs_keyframe = true;
        }
    }

    pub fn gop_bytes(&self) -> usize {
        self.state.gop_bytes()
    }

    /// GOPs dropped from the cache for outgrowing `gopCacheMaxBytes`.
    pub fn gop_byte_overflows(&self) -> u64 {
        self.state.gop_byte_overflows()
    }

    /// The sequence headers so far (video, audio), for the control API's tracks.
    pub fn headers(&self) -> (Option<&crate::media::Frame>, Option<&crate::media::Frame>) {
        self.state.headers()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(kind: MediaKind, ts: u32, body: &'static [u8]) -> Frame {
        Frame::new(kind, ts, Bytes::from_static(body))
    }

    fn flv_player(session: u64) -> Player {
        Player {
            session: SessionId(session),
            queue: Rc::new(RefCell::new(crate::delivery::PlayerQueue::new(
                1 << 20,
                std::time::Duration::from_secs(5),
            ))),
            format: crate::delivery::SinkFormat::Flv { chunked: false },
        }
    }

    fn queued(p: &Player) -> Vec<Bytes> {
        let mut out = Vec::new();
        p.queue.borrow_mut().take_batch(&mut out, 1000);
        out
    }

    #[test]
    fn flv_header_waits_for_the_tracks() {
        let now = Instant::now();
        let gop = GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        };
        let mut s = LocalStream::origin(
            StreamId(1),
            StreamKey::new("v", "live", "s"),
            SessionId(9),
            gop,
        );
        let early = flv_player(1);
        assert!(s.add_player(early.clone(), now));
        // A video-only publisher: a sequence header, then a keyframe.
        let header = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 0]),
        );
        let key = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        );
        assert!(s.deliver(&header, now).is_empty());
        assert!(
            queued(&early).is_empty(),
            "nothing before the tracks are known"
        );
        assert!(s.deliver(&key, now).is_empty());
        let got = queued(&early);
        assert_eq!(&got[0][..5], b"FLV\x01\x01", "video only");
        // Header, sequence header, keyframe: the keyframe once.
        assert_eq!(got.len(), 3);
        let late = flv_player(2);
        assert!(s.add_player(late.clone(), now));
        assert_eq!(&queued(&late)[0][..5], b"FLV\x01\x01");
    }

    /// A mirror knows the tracks as its owner does: a stream that promised audio and, for longer
    /// than the settling time, sent only video starts a mirror's FLV viewers at once, video only,
    /// even though the mirror's own GOP is shorter than that (it must not wait for more media).
    #[test]
    fn a_mirror_announces_the_tracks_its_owner_knows() {
        let now = Instant::now();
        let gop = GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        };
        let key = StreamKey::new("v", "live", "s");
        let mut origin = LocalStream::origin(StreamId(1), key.clone(), SessionId(9), gop);
        let audio_seq = Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        );
        let video_seq = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 0]),
        );
        let _ = origin.deliver(&video_seq, now);
        let _ = origin.deliver(&audio_seq, now);
        for i in 0..40u32 {
            let key = i == 25;
            let body: &'static [u8] = if key {
                &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]
            } else {
                &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]
            };
            let _ = origin.deliver(
                &Frame::new(MediaKind::Video, i * 40, Bytes::from_static(body)),
                now,
            );
        }
        let mut mirror = LocalStream::mirror(StreamId(0), key, CoreId(0), gop);
        let viewer = flv_player(1);
        assert!(mirror.add_player(viewer.clone(), now));
        let too_slow = mirror.start_mirror(&origin.startup_frames(), origin.media_history(), now);
        assert!(too_slow.is_empty());
        let got = queued(&viewer);
        assert_eq!(
            &got.first().expect("started at once")[..5],
            b"FLV\x01\x01",
            "video only"
        );
    }

    /// A core whose channel was full lost a frame: it gets nothing more until the next keyframe,
    /// except metadata and sequence headers, which every later frame needs.
    #[test]
    fn a_lagging_core_resumes_at_the_next_keyframe_with_the_current_headers() {
        let key = StreamKey::new("", "live", "s");
        let limits = GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        };
        let mut s = LocalStream::origin(StreamId(1), key, SessionId(1), limits);
        s.add_subscriber(CoreId(1));
        s.add_subscriber(CoreId(2));
        let mut to = Vec::new();
        let key_frame = frame(MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]);
        // As a publish does: the stream's state first, then the cores it goes to.
        let _ = s.deliver(&key_frame, Instant::now());
        s.forward_targets(&key_frame, &mut to);
        assert_eq!(to, [CoreId(1), CoreId(2)]);
        s.mark_lagging(CoreId(2));
        for (f, expected) in [
            (
                frame(MediaKind::Video, 40, &[0x27, 1, 0, 0, 0]),
                vec![CoreId(1)],
            ),
            (
                frame(MediaKind::Audio, 45, &[0xaf, 1, 0x21]),
                vec![CoreId(1)],
            ),
            (
                frame(MediaKind::Video, 50, &[0x17, 0, 0, 0, 0, 1]),
                vec![CoreId(1), CoreId(2)],
            ),
            (
                frame(MediaKind::Script, 50, b"\x02\x00\x0aonMetaData"),
                vec![CoreId(1), CoreId(2)],
            ),
            (
                frame(MediaKind::Video, 80, &[0x27, 1, 0, 0, 0]),
                vec![CoreId(1)],
            ),
            (
                frame(MediaKind::Video, 2000, &[0x17, 1, 0, 0, 0]),
                vec![CoreId(1), CoreId(2)],
            ),
            (
                frame(MediaKind::Video, 2040, &[0x27, 1, 0, 0, 0]),
                vec![CoreId(1), CoreId(2)],
            ),
        ] {
            let _ = s.deliver(&f, Instant::now());
            s.forward_targets(&f, &mut to);
            assert_eq!(to, expected, "{f:?}");
        }
    }
}
