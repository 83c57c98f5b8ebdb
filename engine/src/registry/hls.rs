use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;

use crate::config::HlsVariant;
use crate::media::Frame;
use crate::protocol::hls::{PartPush, PartSegmenter, PartsConfig, Segmenter, SegmenterConfig};
use crate::runtime::ReplyTo;

/// How a muxer is set up (from the configuration when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsSettings {
    pub variant: HlsVariant,
    pub segment_duration: Duration,
    pub part_duration: Duration,
    pub window: usize,
}

/// A media file of a muxer, by the last part of its name (after `<stream>-<instance>-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HlsName {
    /// `<sequence>.ts`
    TsSegment(u64),
    /// `<sequence>.mp4`
    Fmp4Segment(u64),
    /// `p<number>.mp4`
    Part(u64),
    /// `init<version>.mp4`
    Init(u32),
}

impl HlsName {
    pub fn content_type(self) -> &'static str {
        match self {
            HlsName::TsSegment(_) => "video/mp2t",
            _ => "video/mp4",
        }
    }
}

/// A request the muxer cannot answer yet: a blocking playlist reload (`_HLS_msn`, `_HLS_part`)
/// or a part named by a preload hint. Parked here, on the muxer's core, and answered when the
/// media exists or the deadline passes: no task waits per request.
#[derive(Debug)]
struct Waiter {
    wants: Wanted,
    reply: ReplyTo,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    Playlist { msn: u64, part: Option<u64> },
    Part(u64),
}

/// Sends a parked request its answer (the body, or `None` when it timed out unanswerable).
pub type HlsResponder = Rc<dyn Fn(ReplyTo, Option<Bytes>)>;

/// At most this many requests wait on one muxer; more are answered at once.
const MAX_WAITERS: usize = 4096;
/// A preload hint names the next part; a request for a part further ahead is not waited for.
const MAX_PARTS_AHEAD: u64 = 2;

/// What a request gets from [`HlsMuxer::request_playlist`] or [`HlsMuxer::request_media`].
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HlsReply {
    /// The body, or `None`: not there (yet, for a playlist being prepared).
    Now(Option<Bytes>),
    /// Parked: the responder answers later.
    Parked,
    /// A blocking reload for a segment too far ahead (the LL-HLS draft's 400).
    TooFar,
}

/// One per stream and held behind an `Rc`: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Packager {
    Ts(Segmenter),
    Parts(PartSegmenter),
}

/// The HLS output of one stream: muxed once, on the stream key's home core, whatever the number
/// of viewers or the core they ask on.
///
/// It outlives its publisher: when the stream ends it is detached (the open segment is finished)
/// and, if the stream comes back, re-attached with a discontinuity, so players keep one playlist
/// across a republish. Media names carry an `instance` so a URI never names two different
/// files, even across muxer restarts: they can then be cached as immutable.
pub struct HlsMuxer {
    packager: Packager,
    instance: u32,
    last_request: Instant,
    attached: bool,
    /// The stream left; its next frames start a new timeline.
    resumed: bool,
    waiters: Vec<Waiter>,
    /// How long a parked request waits at most.
    max_wait: Duration,
    responder: HlsResponder,
    /// For the API: wall-clock creation and last request, and bytes served.
    created_unix_ms: u64,
    last_request_unix_ms: u64,
    bytes_sent: u64,
}

impl std::fmt::Debug for HlsMuxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsMuxer")
            .field("packager", &self.packager)
            .field("instance", &self.instance)
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

impl HlsMuxer {
    pub fn new(
        stream: &str,
        instance: u32,
        settings: HlsSettings,
        responder: HlsResponder,
        now: Instant,
    ) -> Self {
        let name = format!("{stream}-{instance:x}");
        let packager = match settings.variant {
            HlsVariant::Mpegts => {
                let mut config = SegmenterConfig::new(name);
                config.target_duration = settings.segment_duration;
                config.window = settings.window;
                Packager::Ts(Segmenter::new(config))
            }
            HlsVariant::Fmp4 | HlsVariant::LowLatency => {
                Packager::Parts(PartSegmenter::new(PartsConfig {
                    segment_duration: settings.segment_duration,
                    part_duration: settings.part_duration,
                    window: settings.window,
                    low_latency: settings.variant == HlsVariant::LowLatency,
                    ..PartsConfig::new(name)
                }))
            }
        };
        // The LL-HLS draft: a blocking request that cannot be answered within three target
        // durations gets an error. Kept under the cross-core reply timeout (5 s).
        let target = settings.segment_duration.max(Duration::from_secs(1));
        HlsMuxer {
            packager,
            instance,
            last_request: now,
            attached: false,
            resumed: false,
            waiters: Vec::new(),
            max_wait: (target * 3).min(Duration::from_secs(4)),
            responder,
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
            match &mut self.packager {
                Packager::Ts(s) => s.mark_discontinuity(),
                Packager::Parts(s) => s.mark_discontinuity(),
            }
            self.wake(now);
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
            match &mut self.packager {
                Packager::Ts(s) => {
                    s.flush();
                }
                Packager::Parts(s) => {
                    s.flush();
                }
            }
            self.wake(Instant::now());
        }
    }

    pub fn push(&mut self, frame: &Frame, now: Instant) {
        let closed = match &mut self.packager {
            Packager::Ts(s) => s.push(now, frame).map(|_| false).map_err(|e| e.to_string()),
            Packager::Parts(s) => s
                .push(now, frame)
                .map(|o| o == PartPush::PartClosed)
                .map_err(|e| e.to_string()),
        };
        match closed {
            Ok(true) => self.wake(now),
            Ok(false) => {}
            Err(e) => debug!("hls: frame not muxed: {e}"),
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

    /// The live playlist, once it holds enough media for a player to start at a safe distance
    /// from the live edge.
    pub fn playlist(&self) -> Option<String> {
        match &self.packager {
            Packager::Ts(s) => s.is_ready().then(|| s.playlist()),
            Packager::Parts(s) => s.is_ready().then(|| s.playlist()),
        }
    }

    /// A media file of this muxer.
    pub fn media(&self, name: HlsName) -> Option<Bytes> {
        match (&self.packager, name) {
            (Packager::Ts(s), HlsName::TsSegment(n)) => s.segment(n),
            (Packager::Parts(s), HlsName::Fmp4Segment(n)) => s.segment(n),
            (Packager::Parts(s), HlsName::Part(n)) => s.part(n),
            (Packager::Parts(s), HlsName::Init(v)) => s.init(v),
            _ => None,
        }
    }

    /// A blocking playlist request (`_HLS_msn`, `_HLS_part`): answered now if the playlist holds
    /// that part (or is not ready: the caller waits for it), else parked.
    pub fn request_playlist(
        &mut self,
        msn: u64,
        part: Option<u64>,
        reply: ReplyTo,
        now: Instant,
    ) -> HlsReply {
        let Packager::Parts(s) = &self.packager else {
            return HlsReply::Now(self.playlist().map(Bytes::from));
        };
        if !s.is_ready() || s.has_part(msn, part) {
            return HlsReply::Now(self.playlist().map(Bytes::from));
        }
        if s.is_too_far(msn) {
            return HlsReply::TooFar;
        }
        self.park(Wanted::Playlist { msn, part }, reply, now)
    }

    /// A media file, waiting for a part that is about to exist (a preload hint's).
    pub fn request_media(&mut self, name: HlsName, reply: ReplyTo, now: Instant) -> HlsReply {
        if let Some(body) = self.media(name) {
            return HlsReply::Now(Some(body));
        }
        match (&self.packager, name) {
            (Packager::Parts(s), HlsName::Part(n))
                if !s.has_part_number(n) && n <= s.next_part_number() + MAX_PARTS_AHEAD =>
            {
                self.park(Wanted::Part(n), reply, now)
            }
            _ => HlsReply::Now(None),
        }
    }

    fn park(&mut self, wants: Wanted, reply: ReplyTo, now: Instant) -> HlsReply {
        if self.waiters.len() >= MAX_WAITERS {
            return HlsReply::Now(None);
        }
        self.waiters.push(Waiter {
            wants,
            reply,
            deadline: now + self.max_wait,
        });
        HlsReply::Parked
    }

    /// Answers the parked requests that can be answered: those whose media now exists and,
    /// past their deadline, the rest (a playlist request then gets the playlist as it is).
    pub fn wake(&mut self, now: Instant) {
        if self.waiters.is_empty() {
            return;
        }
        let Packager::Parts(s) = &self.packager else {
            return;
        };
        let waiters = std::mem::take(&mut self.waiters);
        let mut sent = 0;
        for w in waiters {
            let ready = match w.wants {
                Wanted::Playlist { msn, part } => s.has_part(msn, part),
                Wanted::Part(n) => s.has_part_number(n),
            };
            let expired = now >= w.deadline || !self.attached;
            if !ready && !expired {
                self.waiters.push(w);
                continue;
            }
            let body = match w.wants {
                Wanted::Playlist { .. } => s.is_ready().then(|| Bytes::from(s.playlist())),
                Wanted::Part(n) => s.part(n),
            };
            sent += body.as_ref().map_or(0, Bytes::len);
            (self.responder)(w.reply, body);
        }
        self.bytes_sent += sent as u64;
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Splits a media file name `<stream>-<instance hex>-<name>` into its parts.
pub fn parse_media_name(file: &str) -> Option<(&str, u32, HlsName)> {
    let (rest, last) = file.rsplit_once('-')?;
    let (stream, instance) = rest.rsplit_once('-')?;
    if stream.is_empty() {
        return None;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let name = if let Some(seq) = last.strip_suffix(".ts") {
        HlsName::TsSegment(digits(seq).then(|| seq.parse().ok())??)
    } else {
        let stem = last.strip_suffix(".mp4")?;
        if let Some(n) = stem.strip_prefix('p') {
            HlsName::Part(digits(n).then(|| n.parse().ok())??)
        } else if let Some(v) = stem.strip_prefix("init") {
            HlsName::Init(digits(v).then(|| v.parse().ok())??)
        } else {
            HlsName::Fmp4Segment(digits(stem).then(|| stem.parse().ok())??)
        }
    };
    Some((stream, u32::from_str_radix(instance, 16).ok()?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::RefCell;

    use bytes::Bytes;

    use crate::media::MediaKind;
    use crate::runtime::CoreId;

    const AVC_SEQ: &[u8] = &[
        0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x0d, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x0d, 1, 0, 2,
        0x68, 0xce,
    ];

    fn video(ts: u32) -> Frame {
        let first = if ts.is_multiple_of(1000) { 0x17 } else { 0x27 };
        Frame::new(
            MediaKind::Video,
            ts,
            Bytes::from(vec![first, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        )
    }

    fn reply(request: u64) -> ReplyTo {
        ReplyTo {
            core: CoreId(1),
            request,
        }
    }

    #[test]
    fn parked_requests_are_answered_when_their_part_exists_or_time_is_up() {
        type Answers = Rc<RefCell<Vec<(u64, Option<Bytes>)>>>;
        let answers: Answers = Rc::default();
        let log = answers.clone();
        let responder: HlsResponder =
            Rc::new(move |to, body| log.borrow_mut().push((to.request, body)));
        let now = Instant::now();
        let settings = HlsSettings {
            variant: HlsVariant::LowLatency,
            segment_duration: Duration::from_secs(1),
            part_duration: Duration::from_millis(200),
            window: 7,
        };
        let mut m = HlsMuxer::new("s", 1, settings, responder, now);
        let startup = [Frame::new(MediaKind::Video, 0, Bytes::from_static(AVC_SEQ))];
        m.attach(&startup, now);
        for ts in (0..1880).step_by(40) {
            m.push(&video(ts), now);
        }
        assert!(m.playlist().is_some());
        // Segment 1 has parts 0..=3 (p5..p8); part 4 of it, part p9 and segment 2 are ahead.
        assert!(matches!(
            m.request_playlist(1, Some(3), reply(1), now),
            HlsReply::Now(Some(_))
        ));
        assert_eq!(
            m.request_playlist(1, Some(4), reply(2), now),
            HlsReply::Parked
        );
        assert_eq!(
            m.request_media(HlsName::Part(9), reply(3), now),
            HlsReply::Parked
        );
        assert_eq!(m.request_playlist(2, None, reply(4), now), HlsReply::Parked);
        assert_eq!(m.request_playlist(9, None, reply(5), now), HlsReply::TooFar);
        assert_eq!(
            m.request_media(HlsName::Part(20), reply(6), now),
            HlsReply::Now(None)
        );
        assert!(answers.borrow().is_empty());
        // Frames up to 1.96 s extend part 4 of segment 1; the keyframe at 2 s closes it (p9).
        m.push(&video(1880), now);
        m.push(&video(1920), now);
        m.push(&video(1960), now);
        assert!(answers.borrow().is_empty());
        m.push(&video(2000), now);
        let got: Vec<u64> = answers.borrow().iter().map(|(r, _)| *r).collect();
        assert_eq!(got, [2, 3]);
        assert!(answers.borrow()[0]
            .1
            .as_ref()
            .is_some_and(|p| p.starts_with(b"#EXTM3U")));
        assert!(answers.borrow()[1]
            .1
            .as_ref()
            .is_some_and(|p| &p[4..8] == b"moof"));
        // Segment 2 never comes in time: at the deadline the playlist as it is.
        m.wake(now + Duration::from_secs(5));
        assert_eq!(answers.borrow().len(), 3);
        assert_eq!(answers.borrow()[2].0, 4);
        assert!(answers.borrow()[2].1.is_some());
    }

    #[test]
    fn media_names_round_trip() {
        assert_eq!(
            parse_media_name("cam-1-a-2f-17.ts"),
            Some(("cam-1-a", 0x2f, HlsName::TsSegment(17)))
        );
        assert_eq!(
            parse_media_name("s-0-0.ts"),
            Some(("s", 0, HlsName::TsSegment(0)))
        );
        assert_eq!(
            parse_media_name("s-ab-12.mp4"),
            Some(("s", 0xab, HlsName::Fmp4Segment(12)))
        );
        assert_eq!(
            parse_media_name("s-ab-p7.mp4"),
            Some(("s", 0xab, HlsName::Part(7)))
        );
        assert_eq!(
            parse_media_name("s-ab-init0.mp4"),
            Some(("s", 0xab, HlsName::Init(0)))
        );
        for bad in [
            "s.ts",
            "s-1.ts",
            "-1-2.ts",
            "s-zz-1.ts",
            "s-1-x.ts",
            "s-1-2.m3u8",
            "s-1-+2.ts",
            "s-1-p.mp4",
            "s-1-initx.mp4",
            "s-1-q1.mp4",
        ] {
            assert_eq!(parse_media_name(bad), None, "{bad}");
        }
    }
}
