use super::{Frame, GopCache, GopLimits, MediaKind};
use crate::protocol::flv::{tracks_from_metadata, Tracks};

/// What a late joiner needs before live frames: metadata, codec sequence headers, and the GOP so far.
///
/// Both the core that owns a stream and every core mirroring it keep one, fed the same frames in the
/// same order, so a player starts identically wherever it is attached.
#[derive(Debug)]
pub struct StreamState {
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
    gop: GopCache,
    has_video: bool,
    /// Counts changes of the metadata and sequence headers.
    headers_version: u64,
    /// The kinds of media (not sequence headers) seen, for the tracks an FLV header announces.
    media_seen: Tracks,
    /// Timestamps of the first and latest media frame: how long the stream has shown its tracks.
    media_span: Option<(u32, u32)>,
}

/// Which tracks a stream's media has come from, and between which timestamps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaHistory {
    seen: Tracks,
    span: Option<(u32, u32)>,
}

/// After this much media, the tracks an FLV header announces are those that sent media: a
/// track the metadata or a sequence header promised but that sent nothing is left out, or
/// flv.js / mpegts.js would wait for it forever.
const TRACKS_SETTLE_MS: u32 = 1_000;

impl StreamState {
    pub fn new(limits: GopLimits) -> Self {
        StreamState {
            metadata: None,
            video_header: None,
            audio_header: None,
            gop: GopCache::new(limits),
            has_video: false,
            headers_version: 0,
            media_seen: Tracks::default(),
            media_span: None,
        }
    }

    /// Updates the state with the next frame of the stream.
    pub fn apply(&mut self, frame: &Frame) {
        match frame.kind {
            MediaKind::Script => {
                self.metadata = Some(frame.clone());
                self.headers_version += 1;
            }
            MediaKind::Video => {
                self.has_video = true;
                if frame.is_sequence_header() {
                    self.video_header = Some(frame.clone());
                    self.headers_version += 1;
                } else {
                    self.media_seen.video = true;
                    self.note_media(frame.timestamp);
                    self.gop.push(frame);
                }
            }
            MediaKind::Audio => {
                if frame.is_sequence_header() {
                    self.audio_header = Some(frame.clone());
                    self.headers_version += 1;
                } else {
                    self.media_seen.audio = true;
                    self.note_media(frame.timestamp);
                    self.gop.push(frame);
                }
            }
        }
    }

    /// True once any video has been seen: players then resynchronise on video keyframes only.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// What the stream's media has shown so far (which tracks, over how long): a mirror adopts its
    /// owner's with the start-up frames, so it announces the same tracks at once rather than
    /// after a second of its own.
    pub fn media_history(&self) -> MediaHistory {
        MediaHistory {
            seen: self.media_seen,
            span: self.media_span,
        }
    }

    /// Takes `history` (the owner's) as this state's own; see [`StreamState::media_history`].
    pub fn adopt_media_history(&mut self, history: MediaHistory) {
        self.media_seen = self.media_seen.union(history.seen);
        if history.span.is_some() {
            self.media_span = history.span;
        }
    }

    fn note_media(&mut self, timestamp: u32) {
        let (first, _) = self.media_span.unwrap_or((timestamp, timestamp));
        self.media_span = Some((first, timestamp));
    }

    /// Milliseconds of media so far (0 on a backwards timeline).
    fn media_elapsed(&self) -> u32 {
        self.media_span.map_or(0, |(first, last)| {
            (last.wrapping_sub(first) as i32).max(0) as u32
        })
    }

    /// The tracks the publisher said it has: in `onMetaData`, or by a sequence header.
    fn announced_tracks(&self) -> Tracks {
        let said = self
            .metadata
            .as_ref()
            .and_then(|m| tracks_from_metadata(&m.payload))
            .unwrap_or_default();
        said.union(Tracks {
            audio: self.audio_header.is_some(),
            video: self.video_header.is_some(),
        })
    }

    /// The tracks a new HTTP-FLV viewer's header announces: those announced or seen, until
    /// [`TRACKS_SETTLE_MS`] of media has shown which really send media; both while nothing is
    /// known, so a player waits for a track rather than miss it.
    pub fn flv_tracks(&self) -> Tracks {
        let tracks = if self.media_elapsed() >= TRACKS_SETTLE_MS {
            self.media_seen
        } else {
            self.announced_tracks().union(self.media_seen)
        };
        if tracks.is_empty() {
            Tracks::BOTH
        } else {
            tracks
        }
    }

    /// Whether [`flv_tracks`](Self::flv_tracks) can be trusted: media came from every announced
    /// track, or for long enough to tell.
    pub fn tracks_known(&self) -> bool {
        !self.media_seen.is_empty()
            && (self.media_seen.covers(self.announced_tracks())
                || self.media_elapsed() >= TRACKS_SETTLE_MS)
    }

    /// Whether a player that skipped frames may resume at `frame`.
    pub fn is_resync_point(&self, frame: &Frame) -> bool {
        frame.is_keyframe() || (!self.has_video && frame.kind == MediaKind::Audio)
    }

    /// The frames a new player is sent first, in order: metadata, sequence headers, then the cached
    /// GOP. Sequence headers are stamped with the GOP's first timestamp so that every player sees
    /// monotonic media timestamps from its very first frame. Metadata goes out at timestamp 0:
    /// FLV demuxers (ffmpeg's among them) only take `onMetaData` as stream metadata at 0, and
    /// otherwise make a spurious subtitle stream of it.
    pub fn startup_frames(&self) -> Vec<Frame> {
        let mut frames = self.startup_headers();
        frames.extend(self.gop.frames().cloned());
        frames
    }

    /// The metadata and sequence headers of [`StreamState::startup_frames`], stamped as there.
    pub fn startup_headers(&self) -> Vec<Frame> {
        let start = self.gop.first_timestamp().unwrap_or(0);
        let mut frames = Vec::with_capacity(3);
        if let Some(metadata) = &self.metadata {
            let mut f = metadata.clone();
            f.timestamp = 0;
            frames.push(f);
        }
        for header in [&self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
        {
            let mut f = header.clone();
            f.timestamp = start;
            frames.push(f);
        }
        frames
    }

    /// The cached GOP of [`StreamState::startup_frames`].
    pub fn gop_frames(&self) -> impl Iterator<Item = &Frame> {
        self.gop.frames()
    }

    /// Changes whenever the GOP cache starts over (see [`GopCache::epoch`]).
    pub fn gop_epoch(&self) -> u64 {
        self.gop.epoch()
    }

    /// Changes whenever the metadata or a sequence header does.
    pub fn headers_version(&self) -> u64 {
        self.headers_version
    }

    pub fn gop_bytes(&self) -> usize {
        self.gop.bytes()
    }

    /// GOPs dropped from the cache for outgrowing `gopCacheMaxBytes`.
    pub fn gop_byte_overflows(&self) -> u64 {
        self.gop.byte_overflows()
    }

    /// The codecs the sequence headers announced so far.
    /// The sequence headers the publisher sent (video, audio).
    pub fn headers(&self) -> (Option<&Frame>, Option<&Frame>) {
        (self.video_header.as_ref(), self.audio_header.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(kind: MediaKind, ts: u32, body: &'static [u8]) -> Frame {
        Frame::new(kind, ts, Bytes::from_static(body))
    }

    #[test]
    fn late_joiner_gets_headers_then_gop() {
        let mut state = StreamState::new(GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        });
        state.apply(&frame(MediaKind::Script, 0, b"\x02\x00\x0aonMetaData"));
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]));
        state.apply(&frame(MediaKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]));
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]));
        state.apply(&frame(MediaKind::Video, 40, &[0x27, 1, 0, 0, 0]));
        state.apply(&frame(MediaKind::Video, 2000, &[0x17, 1, 0, 0, 0]));
        state.apply(&frame(MediaKind::Audio, 2010, &[0xaf, 1, 0x21]));
        let start = state.startup_frames();
        let kinds: Vec<_> = start.iter().map(|f| (f.kind, f.timestamp)).collect();
        assert_eq!(
            kinds,
            vec![
                (MediaKind::Script, 0),
                (MediaKind::Video, 2000),
                (MediaKind::Audio, 2000),
                (MediaKind::Video, 2000),
                (MediaKind::Audio, 2010),
            ]
        );
        assert!(start[3].is_keyframe());
    }

    #[test]
    fn flv_tracks_follow_the_media() {
        let limits = GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 10_000,
        };
        let video_only = Tracks {
            audio: false,
            video: true,
        };
        // Sequence headers for both, but only video media: the audio header promised a track
        // that never comes, and after a second of media the header leaves it out.
        let mut state = StreamState::new(limits);
        assert_eq!(state.flv_tracks(), Tracks::BOTH);
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]));
        state.apply(&frame(MediaKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]));
        assert!(!state.tracks_known());
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]));
        assert!(!state.tracks_known(), "audio may follow");
        assert_eq!(state.flv_tracks(), Tracks::BOTH);
        state.apply(&frame(MediaKind::Video, 960, &[0x27, 1, 0, 0, 0]));
        assert!(!state.tracks_known());
        state.apply(&frame(MediaKind::Video, 1000, &[0x27, 1, 0, 0, 0]));
        assert!(state.tracks_known());
        assert_eq!(state.flv_tracks(), video_only);

        // Both send media: known at once.
        let mut state = StreamState::new(limits);
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]));
        state.apply(&frame(MediaKind::Audio, 0, &[0xaf, 0, 0x12, 0x10]));
        state.apply(&frame(MediaKind::Video, 0, &[0x17, 1, 0, 0, 0]));
        state.apply(&frame(MediaKind::Audio, 5, &[0xaf, 1, 0x21]));
        assert!(state.tracks_known());
        assert_eq!(state.flv_tracks(), Tracks::BOTH);
    }
}
