use std::collections::VecDeque;

use super::Frame;

/// Bounds of a GOP cache; exceeding either empties the cache until the next keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopLimits {
    pub max_bytes: usize,
    pub max_duration_ms: u32,
}

/// The frames since the last keyframe, so a new player can start decoding at once.
///
/// Invariant: when not empty, the first frame is a video keyframe and the total payload size is at
/// most `limits.max_bytes`. A GOP that outgrows its limits is dropped whole, because a partial GOP
/// cannot be decoded; new players then wait for the next keyframe like they would without a cache.
#[derive(Debug)]
pub struct GopCache {
    frames: VecDeque<Frame>,
    bytes: usize,
    limits: GopLimits,
    /// GOPs dropped because they outgrew `limits.max_bytes`, for the limit counters.
    byte_overflows: u64,
    /// Counts the clears: within one epoch the cache only grows at its end, which lets a copy of
    /// it (an encoded one) be brought up to date by appending.
    epoch: u64,
}

impl GopCache {
    pub fn new(limits: GopLimits) -> Self {
        GopCache {
            frames: VecDeque::new(),
            bytes: 0,
            limits,
            byte_overflows: 0,
            epoch: 0,
        }
    }

    /// Records a media frame (sequence headers and metadata are kept elsewhere).
    pub fn push(&mut self, frame: &Frame) {
        if frame.is_keyframe() {
            self.clear();
        } else if self.frames.is_empty() {
            // Nothing decodable to append to.
            return;
        }
        let first_ts = self.frames.front().map_or(frame.timestamp, |f| f.timestamp);
        let span = frame.timestamp.wrapping_sub(first_ts);
        let bytes = self.bytes + frame.payload.len();
        let too_long = span > self.limits.max_duration_ms && span < u32::MAX / 2;
        if bytes > self.limits.max_bytes || too_long {
            if !too_long {
                self.byte_overflows += 1;
            }
            self.clear();
            return;
        }
        self.bytes = bytes;
        self.frames.push_back(frame.clone());
    }

    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.epoch += 1;
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn frames(&self) -> impl Iterator<Item = &Frame> {
        self.frames.iter()
    }

    pub fn first_timestamp(&self) -> Option<u32> {
        self.frames.front().map(|f| f.timestamp)
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many GOPs were dropped for outgrowing `max_bytes` so far.
    pub fn byte_overflows(&self) -> u64 {
        self.byte_overflows
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::media::MediaKind;

    fn video(ts: u32, key: bool, len: usize) -> Frame {
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1];
        body.resize(len.max(2), 0);
        Frame::new(MediaKind::Video, ts, Bytes::from(body))
    }

    fn limits(max_bytes: usize, max_duration_ms: u32) -> GopLimits {
        GopLimits {
            max_bytes,
            max_duration_ms,
        }
    }

    #[test]
    fn starts_on_keyframe_and_restarts_on_the_next() {
        let mut gop = GopCache::new(limits(1 << 20, 10_000));
        gop.push(&video(0, false, 10));
        assert!(gop.is_empty(), "no keyframe yet");
        gop.push(&video(40, true, 10));
        gop.push(&video(80, false, 10));
        assert_eq!(gop.len(), 2);
        gop.push(&video(120, true, 10));
        assert_eq!(gop.len(), 1);
        assert_eq!(gop.first_timestamp(), Some(120));
    }

    #[test]
    fn overflow_by_bytes_or_duration_drops_the_gop() {
        let mut gop = GopCache::new(limits(100, 10_000));
        gop.push(&video(0, true, 60));
        gop.push(&video(40, false, 60));
        assert!(gop.is_empty());
        assert_eq!(gop.bytes(), 0);
        assert_eq!(gop.byte_overflows(), 1);

        let mut gop = GopCache::new(limits(1 << 20, 1_000));
        gop.push(&video(0, true, 10));
        gop.push(&video(900, false, 10));
        assert_eq!(gop.len(), 2);
        gop.push(&video(1_001, false, 10));
        assert!(gop.is_empty());
        gop.push(&video(1_040, false, 10));
        assert!(gop.is_empty(), "stays empty until a keyframe");
        assert_eq!(
            gop.byte_overflows(),
            0,
            "a GOP too long is not a byte overflow"
        );
    }
}
