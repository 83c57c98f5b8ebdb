//! Capped exponential backoff between reconnection attempts.
#![forbid(unsafe_code)]

use std::time::Duration;

/// First wait after a failure.
pub const INITIAL: Duration = Duration::from_secs(1);
/// Longest wait.
pub const MAX: Duration = Duration::from_secs(30);

/// Waits `initial`, then twice as long after each further failure, never more than `max`; a
/// success ([`Backoff::reset`]) starts again from `initial`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(INITIAL, MAX)
    }
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial.min(max),
        }
    }

    /// How long to wait after this failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// The link worked: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), INITIAL);
        let mut tiny = Backoff::new(Duration::from_secs(5), Duration::from_secs(3));
        assert_eq!(tiny.next_delay(), Duration::from_secs(3));
    }
}
