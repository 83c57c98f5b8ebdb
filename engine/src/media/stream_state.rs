use super::{AudioCodec, Frame, GopCache, GopLimits, MediaKind, VideoCodec};
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
    /// Any audio seen, for the tracks an FLV header announces.
    has_audio: bool,
}

impl StreamState {
    pub fn new(limits: GopLimits) -> Self {
        StreamState {
            metadata: None,
            video_header: None,
            audio_header: None,
            gop: GopCache::new(limits),
            has_video: false,
            has_audio: false,
        }
    }

    /// Updates the state with the next frame of the stream.
    pub fn apply(&mut self, frame: &Frame) {
        match frame.kind {
            MediaKind::Script => self.metadata = Some(frame.clone()),
            MediaKind::Video => {
                self.has_video = true;
                if frame.is_sequence_header() {
                    self.video_header = Some(frame.clone());
                } else {
                    self.gop.push(frame);
                }
            }
            MediaKind::Audio => {
                self.has_audio = true;
                if frame.is_sequence_header() {
                    self.audio_header = Some(frame.clone());
                } else {
                    self.gop.push(frame);
                }
            }
        }
    }

    /// True once any video has been seen: players then resynchronise on video keyframes only.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// The tracks a new HTTP-FLV viewer's header announces: those the metadata names plus those
    /// seen; both while nothing is known yet, so a player waits for a track rather than miss it.
    pub fn flv_tracks(&self) -> Tracks {
        let seen = Tracks {
            audio: self.has_audio,
            video: self.has_video,
        };
        let said = self
            .metadata
            .as_ref()
            .and_then(|m| tracks_from_metadata(&m.payload))
            .unwrap_or_default();
        let tracks = said.union(seen);
        if tracks.is_empty() {
            Tracks::BOTH
        } else {
            tracks
        }
    }

    /// Whether the tracks are known: the metadata names them, or media (not just a sequence
    /// header) has come, by which time a publisher has sent every sequence header it will.
    pub fn tracks_known(&self) -> bool {
        !self.gop.is_empty()
            || self
                .metadata
                .as_ref()
                .is_some_and(|m| tracks_from_metadata(&m.payload).is_some())
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
        let start = self.gop.first_timestamp().unwrap_or(0);
        let mut frames = Vec::with_capacity(3 + self.gop.len());
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
        frames.extend(self.gop.frames().cloned());
        frames
    }

    pub fn gop_bytes(&self) -> usize {
        self.gop.bytes()
    }

    /// GOPs dropped from the cache for outgrowing `gopCacheMaxBytes`.
    pub fn gop_byte_overflows(&self) -> u64 {
        self.gop.byte_overflows()
    }

    /// The codecs the sequence headers announced so far.
    pub fn codecs(&self) -> (Option<VideoCodec>, Option<AudioCodec>) {
        (
            self.video_header.as_ref().and_then(Frame::video_codec),
            self.audio_header.as_ref().and_then(Frame::audio_codec),
        )
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
}
