//! What a run measures: per-core counters and histograms, the per-player observer that turns
//! received frames into figures, and the live progress counters.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corestream::media::{Frame, MediaKind};
use hdrhistogram::Histogram;

use crate::stamp::{self, Stamp};

/// Histograms hold microseconds (times) or kbit/s (bitrates), up to an hour / 100 Gbit/s.
const HIST_MAX: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, 3 digits).
    Histogram::new_with_bounds(1, HIST_MAX, 3).unwrap_or_else(|_| unreachable!())
}

fn record(h: &mut Histogram<u64>, v: u64) {
    h.saturating_record(v.clamp(1, HIST_MAX));
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(HIST_MAX)) as u64
}

/// Everything one executor measured. Merged across executors at the end.
#[derive(Debug, Clone)]
pub struct Stats {
    pub publishers_started: u64,
    pub publishers_failed: u64,
    pub publishers_ended_early: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    /// Sends that were more than a frame interval (40 ms) behind their schedule.
    pub sends_behind: u64,
    pub publish_connect_us: Histogram<u64>,

    pub players_started: u64,
    pub players_failed: u64,
    /// Players that got at least one audio or video frame.
    pub players_with_frames: u64,
    /// Players whose connection ended before the run did.
    pub players_ended_early: u64,
    pub frames_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes_received: u64,
    /// Stamped video frames missing between two received ones.
    pub frames_lost: u64,
    /// Stamped video frames that arrived later than the late threshold.
    pub frames_late: u64,
    /// Stamped frames that went backwards in sequence (duplicates or reordering).
    pub frames_out_of_order: u64,
    /// Frames sent before the player asked for the stream (the GOP cache's replay): counted, but
    /// not in the latency figures.
    pub frames_backlog: u64,
    /// Video frames with no stamp (only a concern if the source is a non-AVC file).
    pub frames_unstamped: u64,
    /// Stamped frames of another stream than the one the player asked for.
    pub frames_foreign: u64,
    /// Connect start to play start (RTMP `NetStream.Play.Start`, HTTP 200).
    pub connect_us: Histogram<u64>,
    /// Connect start to the first audio or video frame that is not a sequence header.
    pub first_frame_us: Histogram<u64>,
    /// Connect start to the first keyframe.
    pub first_keyframe_us: Histogram<u64>,
    pub latency_us: Histogram<u64>,
    pub player_kbps: Histogram<u64>,
    /// Sum of the players' delivered bitrates, bit/s.
    pub total_bps: f64,
    /// The first few connection errors, for the report.
    pub errors: Vec<String>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            publishers_started: 0,
            publishers_failed: 0,
            publishers_ended_early: 0,
            frames_sent: 0,
            bytes_sent: 0,
            sends_behind: 0,
            publish_connect_us: histogram(),
            players_started: 0,
            players_failed: 0,
            players_with_frames: 0,
            players_ended_early: 0,
            frames_received: 0,
            video_frames: 0,
            audio_frames: 0,
            bytes_received: 0,
            frames_lost: 0,
            frames_late: 0,
            frames_out_of_order: 0,
            frames_backlog: 0,
            frames_unstamped: 0,
            frames_foreign: 0,
            connect_us: histogram(),
            first_frame_us: histogram(),
            first_keyframe_us: histogram(),
            latency_us: histogram(),
            player_kbps: histogram(),
            total_bps: 0.0,
            errors: Vec::new(),
        }
    }
}

/// Connection errors kept for the report.
const MAX_ERRORS: usize = 8;

impl Stats {
    /// Keeps `error` if fewer than a handful are kept already.
    pub fn note_error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error);
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        for e in &o.errors {
            self.note_error(e.clone());
        }
        self.publishers_started += o.publishers_started;
        self.publishers_failed += o.publishers_failed;
        self.publishers_ended_early += o.publishers_ended_early;
        self.frames_sent += o.frames_sent;
        self.bytes_sent += o.bytes_sent;
        self.sends_behind += o.sends_behind;
        self.players_started += o.players_started;
        self.players_failed += o.players_failed;
        self.players_with_frames += o.players_with_frames;
        self.players_ended_early += o.players_ended_early;
        self.frames_received += o.frames_received;
        self.video_frames += o.video_frames;
        self.audio_frames += o.audio_frames;
        self.bytes_received += o.bytes_received;
        self.frames_lost += o.frames_lost;
        self.frames_late += o.frames_late;
        self.frames_out_of_order += o.frames_out_of_order;
        self.frames_backlog += o.frames_backlog;
        self.frames_unstamped += o.frames_unstamped;
        self.frames_foreign += o.frames_foreign;
        self.total_bps += o.total_bps;
        for (a, b) in [
            (&mut self.publish_connect_us, &o.publish_connect_us),
            (&mut self.connect_us, &o.connect_us),
            (&mut self.first_frame_us, &o.first_frame_us),
            (&mut self.first_keyframe_us, &o.first_keyframe_us),
            (&mut self.latency_us, &o.latency_us),
            (&mut self.player_kbps, &o.player_kbps),
        ] {
            // Same bounds everywhere, so adding cannot fail.
            let _ = a.add(b);
        }
    }
}

/// Counters the progress line reads while the run goes on, shared by every executor.
#[derive(Debug, Default)]
pub struct Progress {
    pub publishers_live: AtomicU64,
    pub players_live: AtomicU64,
    pub players_done: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_lost: AtomicU64,
    pub frames_late: AtomicU64,
    /// Last latency seen, microseconds.
    pub last_latency_us: AtomicU64,
    /// Executors that have finished.
    pub executors_done: AtomicU64,
    /// The slow players, counted apart.
    pub slow: crate::slow::SlowProgress,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Turns what one player receives into figures. Sans-IO: the driver hands it each frame with the
/// time it arrived.
#[derive(Debug)]
pub struct PlayerObserver {
    /// Index of the stream this player asked for.
    stream: u32,
    /// When the player started connecting.
    started: Instant,
    /// The same moment on the stamps' clock.
    started_us: u64,
    late_us: u64,
    /// NAL unit length size from the AVC sequence header.
    nalu_len_size: usize,
    last_seq: Option<u64>,
    play_started: Option<Instant>,
    got_frame: bool,
    got_keyframe: bool,
    bytes: u64,
}

/// What one frame was, for the caller's progress counters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FrameOutcome {
    pub lost: u64,
    pub late: bool,
    pub latency_us: Option<u64>,
}

impl PlayerObserver {
    pub fn new(stream: u32, started: Instant, started_us: u64, late: Duration) -> Self {
        Self {
            stream,
            started,
            started_us,
            late_us: micros(late),
            nalu_len_size: 4,
            last_seq: None,
            play_started: None,
            got_frame: false,
            got_keyframe: false,
            bytes: 0,
        }
    }

    /// The play request was accepted (RTMP `Play.Start`, HTTP 200).
    pub fn on_play_started(&mut self, now: Instant, stats: &mut Stats) {
        if self.play_started.is_none() {
            self.play_started = Some(now);
            stats.players_started += 1;
            record(&mut stats.connect_us, micros(now - self.started));
        }
    }

    pub fn is_playing(&self) -> bool {
        self.play_started.is_some()
    }

    /// Bytes read from the socket.
    pub fn on_bytes(&mut self, n: usize, stats: &mut Stats) {
        self.bytes += n as u64;
        stats.bytes_received += n as u64;
    }

    pub fn on_frame(
        &mut self,
        frame: &Frame,
        now: Instant,
        now_us: u64,
        stats: &mut Stats,
    ) -> FrameOutcome {
        let mut outcome = FrameOutcome::default();
        stats.frames_received += 1;
        match frame.kind {
            MediaKind::Script => return outcome,
            MediaKind::Audio => stats.audio_frames += 1,
            MediaKind::Video => stats.video_frames += 1,
        }
        if frame.is_sequence_header() {
            if let Some(n) = stamp::avc_length_size(&frame.payload) {
                self.nalu_len_size = n;
            }
            return outcome;
        }
        if stamp::is_avc_end_of_sequence(&frame.payload) {
            return outcome;
        }
        let since_start = micros(now - self.started);
        if !self.got_frame {
            self.got_frame = true;
            stats.players_with_frames += 1;
            record(&mut stats.first_frame_us, since_start);
        }
        if frame.is_keyframe() && !self.got_keyframe {
            self.got_keyframe = true;
            record(&mut stats.first_keyframe_us, since_start);
        }
        if frame.kind != MediaKind::Video {
            return outcome;
        }
        let Some(Stamp {
            stream,
            seq,
            send_us,
        }) = stamp::extract_avc_tag(&frame.payload, self.nalu_len_size)
        else {
            stats.frames_unstamped += 1;
            return outcome;
        };
        if stream != self.stream {
            stats.frames_foreign += 1;
            return outcome;
        }
        match self.last_seq {
            Some(last) if seq <= last => {
                stats.frames_out_of_order += 1;
                return outcome;
            }
            Some(last) if seq > last + 1 => {
                outcome.lost = seq - last - 1;
                stats.frames_lost += outcome.lost;
            }
            _ => {}
        }
        self.last_seq = Some(seq);
        if send_us < self.started_us {
            stats.frames_backlog += 1;
            return outcome;
        }
        let latency = now_us.saturating_sub(send_us);
        record(&mut stats.latency_us, latency);
        outcome.latency_us = Some(latency);
        if latency > self.late_us {
            stats.frames_late += 1;
            outcome.late = true;
        }
        outcome
    }

    /// The player stopped at `now`; `early` if before the run's end.
    pub fn finish(&self, now: Instant, early: bool, stats: &mut Stats) {
        let Some(play_started) = self.play_started else {
            stats.players_failed += 1;
            return;
        };
        if early {
            stats.players_ended_early += 1;
        }
        let secs = (now - play_started).as_secs_f64();
        if secs >= 0.5 {
            let bps = self.bytes as f64 * 8.0 / secs;
            record(&mut stats.player_kbps, (bps / 1000.0).round() as u64);
            stats.total_bps += bps;
        }
    }
}

/// One process's CPU time and memory, read from `/proc/<pid>`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcSample {
    /// User plus system CPU seconds.
    pub cpu_s: f64,
    pub rss_bytes: u64,
}

/// `/proc` reports CPU times in USER_HZ clock ticks, 100 per second on every Linux ABI we run on.
const USER_HZ: f64 = 100.0;

impl ProcSample {
    /// Reads `/proc/<pid>/stat` (or `/proc/self/stat` for `None`). `None` if the process is gone.
    pub fn read(pid: Option<u32>) -> Option<ProcSample> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}"),
            None => "/proc/self".to_owned(),
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        Self::parse_stat(&stat)
    }

    /// Parses a `/proc/<pid>/stat` line: utime and stime (fields 14 and 15) and rss in pages
    /// (field 24), counting fields after the parenthesised command name, which may hold spaces.
    pub fn parse_stat(stat: &str) -> Option<ProcSample> {
        let after = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (state).
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        let ticks = field(14)? + field(15)?;
        let rss_pages = field(24)?;
        Some(ProcSample {
            cpu_s: ticks as f64 / USER_HZ,
            rss_bytes: rss_pages * 4096,
        })
    }

    /// The sum over several processes (nginx's workers, say); `None` if none could be read.
    pub fn read_all(pids: &[u32]) -> Option<ProcSample> {
        let samples: Vec<ProcSample> = pids.iter().filter_map(|&p| Self::read(Some(p))).collect();
        if samples.is_empty() {
            return None;
        }
        Some(ProcSample {
            cpu_s: samples.iter().map(|s| s.cpu_s).sum(),
            rss_bytes: samples.iter().map(|s| s.rss_bytes).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::Stamper;
    use bytes::{BufMut, Bytes, BytesMut};

    fn video(stamper: &mut Stamper, send_us: u64, key: bool) -> Frame {
        let stamp = stamper.next(send_us);
        let mut p = BytesMut::new();
        p.put_slice(&[if key { 0x17 } else { 0x27 }, 1, 0, 0, 0]);
        let sei = stamp::sei_nal(&stamp);
        p.put_u32(sei.len() as u32);
        p.put_slice(&sei);
        p.put_slice(&[0, 0, 0, 2, 0x41, 0x9a]);
        Frame::new(MediaKind::Video, 0, p.freeze())
    }

    #[test]
    fn observer_measures_latency_loss_and_first_frames() {
        let t0 = Instant::now();
        let mut stats = Stats::default();
        let mut obs = PlayerObserver::new(2, t0, 1_000_000, Duration::from_millis(100));
        let mut st = Stamper::new(2);
        obs.on_play_started(t0 + Duration::from_millis(3), &mut stats);
        // A backlog frame (sent before the player started) counts but has no latency.
        let f = video(&mut st, 900_000, true);
        obs.on_frame(&f, t0 + Duration::from_millis(5), 1_005_000, &mut stats);
        let f = video(&mut st, 1_010_000, false);
        let o = obs.on_frame(&f, t0 + Duration::from_millis(15), 1_012_000, &mut stats);
        assert_eq!(o.latency_us, Some(2_000));
        // Two frames never arrive.
        st.next(0);
        st.next(0);
        let f = video(&mut st, 1_050_000, false);
        let o = obs.on_frame(&f, t0 + Duration::from_millis(300), 1_300_000, &mut stats);
        assert_eq!((o.lost, o.late), (2, true));
        // Replayed: out of order.
        let mut replay = Stamper::new(2);
        obs.on_frame(
            &video(&mut replay, 1_000_001, false),
            t0,
            1_300_000,
            &mut stats,
        );
        // Another stream's frame.
        let mut other = Stamper::new(9);
        obs.on_frame(
            &video(&mut other, 1_000_001, false),
            t0,
            1_300_000,
            &mut stats,
        );
        assert_eq!(stats.frames_backlog, 1);
        assert_eq!(stats.frames_lost, 2);
        assert_eq!(stats.frames_late, 1);
        assert_eq!(stats.frames_out_of_order, 1);
        assert_eq!(stats.frames_foreign, 1);
        assert_eq!(stats.latency_us.len(), 2);
        assert_eq!(stats.players_with_frames, 1);
        assert!((4_990..=5_010).contains(&stats.first_frame_us.max()));
        assert_eq!(stats.connect_us.len(), 1);
    }

    #[test]
    fn first_keyframe_waits_for_a_keyframe() {
        let t0 = Instant::now();
        let mut stats = Stats::default();
        let mut obs = PlayerObserver::new(0, t0, 0, Duration::from_secs(1));
        let mut st = Stamper::new(0);
        let seq = Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
        );
        obs.on_frame(&seq, t0, 0, &mut stats);
        assert_eq!(stats.first_frame_us.len(), 0);
        obs.on_frame(
            &video(&mut st, 1, false),
            t0 + Duration::from_millis(10),
            2,
            &mut stats,
        );
        obs.on_frame(
            &video(&mut st, 1, true),
            t0 + Duration::from_millis(50),
            2,
            &mut stats,
        );
        assert!(stats.first_frame_us.max() <= 10_010);
        assert!(stats.first_keyframe_us.min() >= 49_000);
    }

    #[test]
    fn finish_records_bitrate_or_failure() {
        let t0 = Instant::now();
        let mut stats = Stats::default();
        let obs = PlayerObserver::new(0, t0, 0, Duration::from_secs(1));
        obs.finish(t0, false, &mut stats);
        assert_eq!(stats.players_failed, 1);
        let mut obs = PlayerObserver::new(0, t0, 0, Duration::from_secs(1));
        obs.on_play_started(t0, &mut stats);
        obs.on_bytes(250_000, &mut stats);
        obs.finish(t0 + Duration::from_secs(2), true, &mut stats);
        assert_eq!(stats.players_ended_early, 1);
        assert!((stats.player_kbps.max() as i64 - 1000).abs() <= 1);
        assert!((stats.total_bps - 1_000_000.0).abs() < 1.0);
    }

    #[test]
    fn proc_stat_parsing() {
        let line = "1234 (core stream (x)) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 3 0 100 123456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = ProcSample::parse_stat(line).unwrap();
        assert_eq!(s.cpu_s, 3.0);
        assert_eq!(s.rss_bytes, 2560 * 4096);
        assert!(ProcSample::parse_stat("garbage").is_none());
        let me = ProcSample::read(None).unwrap();
        assert!(me.rss_bytes > 0);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.frames_lost = 1;
        b.frames_lost = 2;
        record(&mut a.latency_us, 10);
        record(&mut b.latency_us, 20);
        a.merge(&b);
        assert_eq!(a.frames_lost, 3);
        assert_eq!(a.latency_us.len(), 2);
    }
}
