use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;

use crate::media::Frame;
use crate::protocol::hls::{Segmenter, SegmenterConfig};

/// The HLS output of one stream: muxed once, on the stream key's home core, whatever the number
/// of viewers or the core they ask on.
///
/// It outlives its publisher: when the stream ends it is detached (the open segment is finished)
/// and, if the stream comes back, re-attached with a discontinuity, so players keep one playlist
/// across a republish. Segment names carry an `instance` so a URI never names two different
/// segments, even across muxer restarts: segments can then be cached as immutable.
#[derive(Debug)]
pub struct HlsMuxer {
    segmenter: Segmenter,
    instance: u32,
    last_request: Instant,
    attached: bool,
    /// The stream left; its next frames start a new timeline.
    resumed: bool,
    /// For the API: wall-clock creation and last request, and bytes served.
    created_unix_ms: u64,
    last_request_unix_ms: u64,
    bytes_sent: u64,
}

impl HlsMuxer {
    pub fn new(stream: &str, instance: u32, target: Duration, window: usize, now: Instant) -> Self {
        let mut config = SegmenterConfig::new(format!("{stream}-{instance:x}"));
        config.target_duration = target;
        config.window = window;
        HlsMuxer {
            segmenter: Segmenter::new(config),
            instance,
            last_request: now,
            attached: false,
            resumed: false,
            created_unix_ms: unix_ms(),
            last_request_unix_ms: unix_ms(),
            bytes_sent: 0,
        }
    }

    pub fn instance(&self) -> u32 {
        self.instance
    }

    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Starts (or resumes) muxing a live stream from its start-up frames.
    pub fn attach(&mut self, startup: &[Frame], now: Instant) {
        if self.resumed {
            self.segmenter.mark_discontinuity();
        }
        self.attached = true;
        for f in startup {
            self.push(f, now);
        }
    }

    /// The stream ended: finish the open segment; a later attach is a discontinuity.
    pub fn detach(&mut self) {
        if self.attached {
            self.attached = false;
            self.resumed = true;
            self.segmenter.flush();
        }
    }

    pub fn push(&mut self, frame: &Frame, now: Instant) {
        if let Err(e) = self.segmenter.push(now, frame) {
            debug!("hls: frame not muxed: {e}");
        }
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_request = now;
        self.last_request_unix_ms = unix_ms();
    }

    /// Counts a playlist or segment handed out.
    pub fn record_sent(&mut self, bytes: usize) {
        self.bytes_sent += bytes as u64;
    }

    /// (created, last request) in Unix milliseconds, and bytes served.
    pub fn usage(&self) -> (u64, u64, u64) {
        (
            self.created_unix_ms,
            self.last_request_unix_ms,
            self.bytes_sent,
        )
    }

    pub fn idle_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_request)
    }

    /// The live playlist, once it lists at least one segment.
    pub fn playlist(&self) -> Option<String> {
        self.segmenter.is_ready().then(|| self.segmenter.playlist())
    }

    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        self.segmenter.segment(sequence)
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Splits a segment file name `<stream>-<instance hex>-<sequence>.ts` into its parts.
pub fn parse_segment_name(name: &str) -> Option<(&str, u32, u64)> {
    let stem = name.strip_suffix(".ts")?;
    let (rest, seq) = stem.rsplit_once('-')?;
    let (stream, instance) = rest.rsplit_once('-')?;
    if stream.is_empty() {
        return None;
    }
    Some((
        stream,
        u32::from_str_radix(instance, 16).ok()?,
        seq.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(
            parse_segment_name("cam-1-a-2f-17.ts"),
            Some(("cam-1-a", 0x2f, 17))
        );
        assert_eq!(parse_segment_name("s-0-0.ts"), Some(("s", 0, 0)));
        for bad in [
            "s.ts",
            "s-1.ts",
            "-1-2.ts",
            "s-zz-1.ts",
            "s-1-x.ts",
            "s-1-2.m3u8",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
