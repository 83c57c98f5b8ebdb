use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{HlsMuxer, StreamKey};
use crate::media::{Frame, GopLimits, MediaKind, PlayerQueue, PushOutcome, StreamState};
use crate::protocol::{flv, http, rtmp};
use crate::runtime::{CoreId, SessionId, StreamId};

/// How a player wants its media framed. Each format is encoded once per frame per core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkFormat {
    /// RTMP chunks on the given message stream id.
    Rtmp { message_stream: u32 },
    /// FLV tags; `chunked` wraps each in HTTP/1.1 chunked framing (HTTP/1.0 viewers get them bare).
    Flv { chunked: bool },
}

/// A player attached to a stream on this core.
#[derive(Debug, Clone)]
pub struct Player {
    pub session: SessionId,
    pub queue: Rc<RefCell<PlayerQueue>>,
    pub format: SinkFormat,
}

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
    players: Vec<Player>,
    subscribers: Vec<RemoteSubscriber>,
    /// The stream's HLS muxer, on the key's home core only.
    hls: Option<Rc<RefCell<HlsMuxer>>>,
    /// HTTP-FLV players attached before the stream's tracks were known: their FLV header (and so
    /// their start-up frames) waits until it can say which tracks there are.
    flv_pending: Vec<SessionId>,
    scratch: BytesMut,
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
            players: Vec::new(),
            subscribers: Vec::new(),
            hls: None,
            flv_pending: Vec::new(),
            scratch: BytesMut::new(),
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Completes a mirror with the owner's start-up frames and starts its waiting players.
    /// Returns the players that were too slow to take them.
    pub fn start_mirror(&mut self, startup: &[Frame], now: Instant) -> Vec<SessionId> {
        for f in startup {
            self.state.apply(f);
        }
        self.ready = true;
        if let Some(hls) = &self.hls {
            hls.borrow_mut().attach(startup, now);
        }
        let mut too_slow = Vec::new();
        for p in &self.players {
            if self.defers_flv_start(p) {
                self.flv_pending.push(p.session);
            } else if !send_startup(&self.state, p, now, &mut self.scratch) {
                too_slow.push(p.session);
            }
        }
        too_slow
    }

    /// Whether `p`'s start waits for the stream's tracks (see `flv_pending`).
    fn defers_flv_start(&self, p: &Player) -> bool {
        matches!(p.format, SinkFormat::Flv { .. }) && !self.state.tracks_known()
    }

    /// The HTTP-FLV players that waited for the tracks, once they are known: they are started
    /// (the frame just applied is among their start-up frames). Returns them and the players too
    /// slow to take their start-up frames.
    fn start_pending_flv(&mut self, now: Instant) -> (Vec<SessionId>, Vec<SessionId>) {
        if self.flv_pending.is_empty() || !self.state.tracks_known() {
            return (Vec::new(), Vec::new());
        }
        let started = std::mem::take(&mut self.flv_pending);
        let mut too_slow = Vec::new();
        for p in self.players.iter().filter(|p| started.contains(&p.session)) {
            if !send_startup(&self.state, p, now, &mut self.scratch) {
                too_slow.push(p.session);
            }
        }
        (started, too_slow)
    }

    /// Attaches a player; it gets the start-up frames at once if the stream is ready.
    /// Returns false if its queue cannot even take those.
    pub fn add_player(&mut self, player: Player, now: Instant) -> bool {
        let ok = if !self.ready {
            true
        } else if self.defers_flv_start(&player) {
            self.flv_pending.push(player.session);
            true
        } else {
            send_startup(&self.state, &player, now, &mut self.scratch)
        };
        self.players.push(player);
        ok
    }

    pub fn remove_player(&mut self, session: SessionId) -> Option<Player> {
        self.flv_pending.retain(|s| *s != session);
        let i = self.players.iter().position(|p| p.session == session)?;
        Some(self.players.swap_remove(i))
    }

    pub fn players(&self) -> &[Player] {
        &self.players
    }

    pub fn take_players(&mut self) -> Vec<Player> {
        self.flv_pending.clear();
        std::mem::take(&mut self.players)
    }

    pub fn startup_frames(&self) -> Vec<Frame> {
        self.state.startup_frames()
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
        if self.players.is_empty() {
            return Vec::new();
        }
        let always = frame.is_sequence_header() || frame.kind == MediaKind::Script;
        let resync = self.state.is_resync_point(frame);
        let mut encoded: Option<(SinkFormat, Bytes)> = None;
        // Players that waited for the tracks get this frame with their start-up frames; those
        // still waiting get nothing before their header.
        let (started, mut too_slow) = self.start_pending_flv(now);
        for p in &self.players {
            if started.contains(&p.session) || self.flv_pending.contains(&p.session) {
                continue;
            }
            let buf = match &encoded {
                Some((format, buf)) if *format == p.format => buf.clone(),
                _ => {
                    let buf = encode(frame, p.format, &mut self.scratch);
                    encoded = Some((p.format, buf.clone()));
                    buf
                }
            };
            let mut queue = p.queue.borrow_mut();
            if always {
                queue.push_control(buf);
            } else if queue.push_media(buf, resync, now) == PushOutcome::TooSlow {
                too_slow.push(p.session);
            }
        }
        too_slow
    }

    /// Feeds the stream to an HLS muxer from now on (from its start-up frames if it is live).
    pub fn set_hls(&mut self, muxer: Rc<RefCell<HlsMuxer>>, now: Instant) {
        if self.ready {
            muxer.borrow_mut().attach(&self.state.startup_frames(), now);
        }
        self.hls = Some(muxer);
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

    /// The codecs announced so far (for the control API's `tracks`).
    pub fn codecs(
        &self,
    ) -> (
        Option<crate::media::VideoCodec>,
        Option<crate::media::AudioCodec>,
    ) {
        self.state.codecs()
    }
}

fn flv_header(tracks: flv::Tracks, chunked: bool, scratch: &mut BytesMut) -> Bytes {
    let len = flv::HEADER_LEN + flv::PREVIOUS_TAG_SIZE_LEN;
    if chunked {
        http::encode_chunk_header(scratch, len);
    }
    flv::encode_header(scratch, tracks.audio, tracks.video);
    if chunked {
        scratch.extend_from_slice(http::CHUNK_END);
    }
    scratch.split().freeze()
}

fn encode(frame: &Frame, format: SinkFormat, scratch: &mut BytesMut) -> Bytes {
    // Metadata goes out at timestamp 0 whenever it comes (see `StreamState::startup_frames`).
    let restamped;
    let frame = if frame.kind == MediaKind::Script && frame.timestamp != 0 {
        restamped = Frame::new(MediaKind::Script, 0, frame.payload.clone());
        &restamped
    } else {
        frame
    };
    match format {
        SinkFormat::Rtmp { message_stream } => {
            rtmp::encode_media(scratch, frame, message_stream, rtmp::OUT_CHUNK_SIZE);
        }
        SinkFormat::Flv { chunked } => {
            let len = flv::tag_len(frame);
            if chunked {
                http::encode_chunk_header(scratch, len);
            }
            if let Err(e) = flv::encode_tag(scratch, frame) {
                // Only a tag over 16 MiB fails, and RTMP cannot carry one in the first place.
                tracing::warn!("flv: frame not framed: {e}");
                scratch.clear();
                return Bytes::new();
            }
            if chunked {
                scratch.extend_from_slice(http::CHUNK_END);
            }
        }
    }
    scratch.split().freeze()
}

/// Queues the start-up frames to one player; false if it could not take them. An HTTP-FLV
/// viewer gets its FLV header first, flagging the tracks the stream has so far.
fn send_startup(state: &StreamState, p: &Player, now: Instant, scratch: &mut BytesMut) -> bool {
    let mut queue = p.queue.borrow_mut();
    if let SinkFormat::Flv { chunked } = p.format {
        queue.push_control(flv_header(state.flv_tracks(), chunked, scratch));
    }
    for f in state.startup_frames() {
        let buf = encode(&f, p.format, scratch);
        if f.is_sequence_header() || f.kind == MediaKind::Script {
            queue.push_control(buf);
        } else if queue.push_media(buf, state.is_resync_point(&f), now) == PushOutcome::TooSlow {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn flv_player(session: u64) -> Player {
        Player {
            session: SessionId(session),
            queue: Rc::new(RefCell::new(PlayerQueue::new(
                1 << 20,
                Duration::from_secs(5),
            ))),
            format: SinkFormat::Flv { chunked: false },
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
}
