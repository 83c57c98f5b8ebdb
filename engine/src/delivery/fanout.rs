//! A stream's players on one core, and the encodings they share.
//!
//! Players are grouped by what they need on the wire ([`SinkFormat`]: RTMP chunks on a message
//! stream id, FLV tags chunked or close-delimited). Each frame is encoded once per format present
//! among the players, whatever their order in the list; a joining player's start-up burst
//! (metadata, sequence headers, the cached GOP) is encoded once per format too and kept in step
//! with the GOP cache, so a thousand players joining one stream cost one encoding of its GOP.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::queue::{PlayerQueue, PushOutcome};
use crate::media::{Frame, MediaKind, StreamState};
use crate::protocol::{flv, http, rtmp};
use crate::runtime::SessionId;

/// How a player wants its media framed.
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

/// One format's encoding of a stream's start-up frames, valid for one GOP (`gop_epoch`) and one
/// set of headers (`headers_version`); the GOP part grows as the cache does.
#[derive(Debug)]
struct EncodedStartup {
    format: SinkFormat,
    gop_epoch: u64,
    headers_version: u64,
    /// Metadata and sequence headers, never dropped by a queue.
    headers: Vec<Bytes>,
    /// The cached GOP's frames, with whether a skipping player may resume at each.
    gop: Vec<(Bytes, bool)>,
}

/// A stream's players on this core.
#[derive(Debug, Default)]
pub struct Fanout {
    players: Vec<Player>,
    /// HTTP-FLV players attached before the stream's tracks were known: their FLV header (and so
    /// their start-up frames) waits until it can say which tracks there are.
    held: Vec<SessionId>,
    /// The current frame's encodings, one per format met so far.
    encoded: Vec<(SinkFormat, Bytes)>,
    startup: Vec<EncodedStartup>,
    scratch: BytesMut,
}

impl Fanout {
    pub fn players(&self) -> &[Player] {
        &self.players
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    pub fn take_players(&mut self) -> Vec<Player> {
        self.startup.clear();
        self.held.clear();
        std::mem::take(&mut self.players)
    }

    /// Attaches a player; with `state` (the stream is live) it gets the start-up frames at once.
    /// Returns false if its queue cannot even take those.
    pub fn add(&mut self, player: Player, state: Option<&StreamState>, now: Instant) -> bool {
        let ok = match state {
            Some(state) if waits_for_tracks(state, &player) => {
                self.held.push(player.session);
                true
            }
            Some(state) => self.send_startup(state, &player, now),
            None => true,
        };
        self.players.push(player);
        ok
    }

    pub fn remove(&mut self, session: SessionId) -> Option<Player> {
        self.held.retain(|s| *s != session);
        let i = self.players.iter().position(|p| p.session == session)?;
        let player = self.players.swap_remove(i);
        // A format nobody plays any more keeps no start-up encoding.
        let format = player.format;
        if !self.players.iter().any(|p| p.format == format) {
            self.startup.retain(|s| s.format != format);
        }
        Some(player)
    }

    /// Sends the start-up frames to every player (a mirror that just became ready). Returns the
    /// players that were too slow to take them.
    pub fn start_all(&mut self, state: &StreamState, now: Instant) -> Vec<SessionId> {
        let players = std::mem::take(&mut self.players);
        let mut too_slow = Vec::new();
        for p in &players {
            if waits_for_tracks(state, p) {
                self.held.push(p.session);
            } else if !self.send_startup(state, p, now) {
                too_slow.push(p.session);
            }
        }
        self.players = players;
        too_slow
    }

    /// Starts the held HTTP-FLV players once the stream's tracks are known (`frame`, just
    /// applied, is among their start-up frames). Returns them and those too slow to take it.
    fn start_held(
        &mut self,
        state: &StreamState,
        now: Instant,
    ) -> (Vec<SessionId>, Vec<SessionId>) {
        if self.held.is_empty() || !state.tracks_known() {
            return (Vec::new(), Vec::new());
        }
        let started = std::mem::take(&mut self.held);
        let players = std::mem::take(&mut self.players);
        let mut too_slow = Vec::new();
        for p in players.iter().filter(|p| started.contains(&p.session)) {
            if !self.send_startup(state, p, now) {
                too_slow.push(p.session);
            }
        }
        self.players = players;
        (started, too_slow)
    }

    /// Queues `frame` (already applied to `state`), encoded once per format, to every player.
    /// Returns the players that fell too far behind.
    pub fn deliver(&mut self, frame: &Frame, state: &StreamState, now: Instant) -> Vec<SessionId> {
        if self.players.is_empty() {
            return Vec::new();
        }
        let always = frame.is_sequence_header() || frame.kind == MediaKind::Script;
        let resync = state.is_resync_point(frame);
        self.encoded.clear();
        // Held players that start now get this frame with their start-up frames; those still
        // held get nothing before their header.
        let (started, mut too_slow) = self.start_held(state, now);
        for p in &self.players {
            if !self.held.is_empty() || !started.is_empty() {
                let session = p.session;
                if started.contains(&session) || self.held.contains(&session) {
                    continue;
                }
            }
            let buf = match self.encoded.iter().find(|(f, _)| *f == p.format) {
                Some((_, buf)) => buf.clone(),
                None => {
                    let buf = encode(frame, p.format, &mut self.scratch);
                    self.encoded.push((p.format, buf.clone()));
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
        self.encoded.clear();
        too_slow
    }

    /// Queues the start-up frames to one player and has them sent at once; false if it could not
    /// take them.
    fn send_startup(&mut self, state: &StreamState, p: &Player, now: Instant) -> bool {
        if let SinkFormat::Flv { chunked } = p.format {
            let header = flv_header(state.flv_tracks(), chunked, &mut self.scratch);
            p.queue.borrow_mut().push_control(header);
        }
        let cached = self.encoded_startup(state, p.format);
        let mut queue = p.queue.borrow_mut();
        for buf in &cached.headers {
            queue.push_control(buf.clone());
        }
        let mut ok = true;
        for (buf, resync) in &cached.gop {
            if queue.push_media(buf.clone(), *resync, now) == PushOutcome::TooSlow {
                ok = false;
                break;
            }
        }
        queue.flush_now();
        ok
    }

    /// The start-up frames in `format`, brought up to date with `state`: only what changed since
    /// the last player of that format joined is encoded.
    fn encoded_startup(&mut self, state: &StreamState, format: SinkFormat) -> &EncodedStartup {
        let i = match self.startup.iter().position(|s| s.format == format) {
            Some(i) => i,
            None => {
                self.startup.push(EncodedStartup {
                    format,
                    gop_epoch: u64::MAX,
                    headers_version: u64::MAX,
                    headers: Vec::new(),
                    gop: Vec::new(),
                });
                self.startup.len() - 1
            }
        };
        let cached = &mut self.startup[i];
        let scratch = &mut self.scratch;
        let epoch_changed = cached.gop_epoch != state.gop_epoch();
        if epoch_changed {
            cached.gop_epoch = state.gop_epoch();
            cached.gop.clear();
        }
        // Headers are stamped with the GOP's first timestamp: a new GOP re-encodes them too.
        if epoch_changed || cached.headers_version != state.headers_version() {
            cached.headers_version = state.headers_version();
            cached.headers = state
                .startup_headers()
                .iter()
                .map(|f| encode(f, format, scratch))
                .collect();
        }
        for f in state.gop_frames().skip(cached.gop.len()) {
            let buf = encode(f, format, scratch);
            cached.gop.push((buf, state.is_resync_point(f)));
        }
        &self.startup[i]
    }
}

/// Whether `p` is an HTTP-FLV player that must wait for the stream's tracks: its FLV header says
/// which there are, and flv.js / mpegts.js wait forever for a track the header promises.
fn waits_for_tracks(state: &StreamState, p: &Player) -> bool {
    matches!(p.format, SinkFormat::Flv { .. }) && !state.tracks_known()
}

/// An FLV file header flagging `tracks`, framed as an HTTP chunk for chunked viewers.
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

/// Frames `frame` as `format` wants it.
pub fn encode(frame: &Frame, format: SinkFormat, scratch: &mut BytesMut) -> Bytes {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::media::GopLimits;
    use crate::runtime::SessionId;

    fn frame(kind: MediaKind, ts: u32, body: &'static [u8]) -> Frame {
        Frame::new(kind, ts, Bytes::from_static(body))
    }

    fn player(session: u64, format: SinkFormat) -> Player {
        Player {
            session: SessionId(session),
            queue: Rc::new(RefCell::new(PlayerQueue::new(
                1 << 20,
                Duration::from_secs(5),
            ))),
            format,
        }
    }

    fn queued(p: &Player) -> Vec<Bytes> {
        let mut out = Vec::new();
        p.queue.borrow_mut().take_batch(&mut out, 1000);
        out
    }

    fn live_state() -> StreamState {
        let mut state = StreamState::new(GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        });
        for f in [
            frame(MediaKind::Script, 0, b"\x02\x00\x0aonMetaData"),
            frame(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]),
            frame(MediaKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]),
            frame(MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]),
            frame(MediaKind::Video, 40, &[0x27, 1, 0, 0, 0]),
        ] {
            state.apply(&f);
        }
        state
    }

    #[test]
    fn interleaved_formats_share_one_encoding_each() {
        let state = live_state();
        let rtmp = SinkFormat::Rtmp { message_stream: 1 };
        let flv = SinkFormat::Flv { chunked: true };
        let mut fanout = Fanout::default();
        let players: Vec<_> = (0..4)
            .map(|i| player(i, if i % 2 == 0 { rtmp } else { flv }))
            .collect();
        for p in &players {
            assert!(fanout.add(p.clone(), None, Instant::now()));
        }
        let f = frame(MediaKind::Video, 80, &[0x27, 1, 0, 0, 0, 9, 9]);
        assert!(fanout.deliver(&f, &state, Instant::now()).is_empty());
        let bufs: Vec<_> = players.iter().map(|p| queued(p).remove(0)).collect();
        // The same bytes, shared: one encoding per format, not one per player.
        assert_eq!(bufs[0].as_ptr(), bufs[2].as_ptr());
        assert_eq!(bufs[1].as_ptr(), bufs[3].as_ptr());
        assert_ne!(bufs[0], bufs[1]);
    }

    #[test]
    fn joining_players_share_the_start_up_encoding_and_follow_the_gop() {
        let mut state = live_state();
        let rtmp = SinkFormat::Rtmp { message_stream: 1 };
        let mut fanout = Fanout::default();
        let a = player(1, rtmp);
        assert!(fanout.add(a.clone(), Some(&state), Instant::now()));
        let first = queued(&a);
        // metadata, two sequence headers, the keyframe and the P frame
        assert_eq!(first.len(), 5);
        // The GOP grows; the next player gets the new frame too, encoded once.
        let f = frame(MediaKind::Video, 80, &[0x27, 1, 0, 0, 0]);
        state.apply(&f);
        let b = player(2, rtmp);
        assert!(fanout.add(b.clone(), Some(&state), Instant::now()));
        let second = queued(&b);
        assert_eq!(second.len(), 6);
        for (x, y) in first.iter().zip(&second) {
            assert_eq!(x.as_ptr(), y.as_ptr(), "shared, not encoded again");
        }
        // A new GOP starts over, with the headers restamped.
        state.apply(&frame(MediaKind::Video, 2000, &[0x17, 1, 0, 0, 0]));
        let c = player(3, rtmp);
        assert!(fanout.add(c.clone(), Some(&state), Instant::now()));
        let third = queued(&c);
        assert_eq!(third.len(), 4);
        assert_ne!(third[1], first[1], "sequence header stamped at the new GOP");
    }
}
