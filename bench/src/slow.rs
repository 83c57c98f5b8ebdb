//! Slow players: viewers that read at a fraction of the stream's bitrate, to measure how well
//! the server isolates everyone else from them. They are kept out of every player figure; the
//! report only counts them (started, cut off by the server, bytes read).
#![forbid(unsafe_code)]

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How many slow players, and how fast they read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowPlan {
    /// Over all streams (player `j` plays stream `j % streams`).
    pub players: usize,
    /// Each one's read rate, bytes per second.
    pub read_bytes_per_s: u64,
}

impl SlowPlan {
    /// `players` reading at `fraction` of a stream of `bitrate` bits per second.
    pub fn new(players: usize, fraction: f64, bitrate: u64) -> SlowPlan {
        let rate = (bitrate as f64 / 8.0 * fraction).max(1.0);
        SlowPlan {
            players,
            read_bytes_per_s: rate as u64,
        }
    }
}

/// Live counters of the slow players, shared by the executors.
#[derive(Debug, Default)]
pub struct SlowProgress {
    pub started: AtomicU64,
    /// Closed by the server before the end of the run.
    pub cut: AtomicU64,
    pub bytes_read: AtomicU64,
}

/// What the report says about them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlowReport {
    pub players: u64,
    pub read_bytes_per_s: u64,
    pub started: u64,
    pub cut_by_server: u64,
    pub bytes_read: u64,
}

/// A token bucket in bytes: how much a slow player may read now. Sans-IO: given the time.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    rate: u64,
    read: u64,
}

impl Pacer {
    pub fn new(start: Instant, read_bytes_per_s: u64) -> Pacer {
        Pacer {
            start,
            rate: read_bytes_per_s.max(1),
            read: 0,
        }
    }

    /// Bytes that may be read at `now`.
    pub fn allowance(&self, now: Instant) -> u64 {
        let earned =
            (now.saturating_duration_since(self.start).as_secs_f64() * self.rate as f64) as u64;
        earned.saturating_sub(self.read)
    }

    /// How long from `now` until `bytes` may be read.
    pub fn wait_for(&self, now: Instant, bytes: u64) -> Duration {
        let missing = bytes.saturating_sub(self.allowance(now));
        Duration::from_secs_f64(missing as f64 / self.rate as f64)
    }

    pub fn consumed(&mut self, bytes: u64) {
        self.read += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_reads_a_fraction_of_the_bitrate() {
        let p = SlowPlan::new(50, 0.1, 2_500_000);
        assert_eq!(p.read_bytes_per_s, 31_250);
    }

    #[test]
    fn pacer_allows_the_rate_and_no_more() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, 1000);
        assert_eq!(p.allowance(t0), 0);
        assert_eq!(p.allowance(t0 + Duration::from_secs(2)), 2000);
        p.consumed(1500);
        assert_eq!(p.allowance(t0 + Duration::from_secs(2)), 500);
        assert_eq!(
            p.wait_for(t0 + Duration::from_secs(2), 1500),
            Duration::from_secs(1)
        );
        assert_eq!(p.wait_for(t0 + Duration::from_secs(2), 100), Duration::ZERO);
    }
}
