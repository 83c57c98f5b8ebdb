use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

use super::flush::FlushTicket;

/// Slots an empty queue keeps; more are given back (a merge window of a typical stream fits).
const SHRINK_ABOVE: usize = 16;

/// What happened to a media buffer offered to a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum PushOutcome {
    Queued,
    /// The player is behind: the buffer was dropped, and so will be everything up to the next
    /// resynchronisation point (keyframe).
    Dropped,
    /// The player has been behind for longer than allowed and must be disconnected.
    TooSlow,
}

/// The bounded send queue of one player, filled by the stream's fan-out and drained by its core's
/// flusher (a connection's socket) or by a task (the media of a push over TLS).
///
/// Invariants: `queued_bytes` is the sum of the queued buffers' lengths; media is only queued while
/// it stays under `max_bytes` (control messages are never dropped: they are few and small), except
/// a single frame larger than `max_bytes`, which is queued when the queue is at most half full so
/// that streams with keyframes bigger than the bound still play. Once a
/// buffer is dropped every following media buffer is dropped until a resynchronisation point finds
/// the queue at most half full, so the player never decodes a frame whose references it lost.
#[derive(Debug)]
pub struct PlayerQueue {
    items: VecDeque<Bytes>,
    queued_bytes: usize,
    max_bytes: usize,
    slow_timeout: Duration,
    skipping: bool,
    behind_since: Option<Instant>,
    /// `TooSlow` was reported: the player is being cut, so later pushes are only `Dropped`
    /// (one slow player is kicked, logged and counted once, however many frames follow).
    too_slow: bool,
    dropped_frames: u64,
    closed: bool,
    waker: Option<Waker>,
    /// The core's flusher drains this queue into a socket: output marks it due.
    flush: Option<FlushTicket>,
    /// Bytes handed to the socket and not given back: the connection's outbound bytes.
    sent_bytes: u64,
}

impl PlayerQueue {
    pub fn new(max_bytes: usize, slow_timeout: Duration) -> Self {
        PlayerQueue {
            items: VecDeque::new(),
            queued_bytes: 0,
            max_bytes,
            slow_timeout,
            skipping: false,
            behind_since: None,
            too_slow: false,
            dropped_frames: 0,
            closed: false,
            waker: None,
            flush: None,
            sent_bytes: 0,
        }
    }

    /// Has the core's flusher drain this queue from now on.
    pub fn set_flush(&mut self, ticket: FlushTicket) {
        self.flush = Some(ticket);
    }

    /// How long media may wait to be merged with what follows (`writeMergeLatency`); only a
    /// queue the flusher drains has one.
    pub fn set_merge_window(&self, window: Duration) {
        if let Some(ticket) = &self.flush {
            ticket.set_window(window);
        }
    }

    /// The flusher no longer knows this queue (its connection is closing).
    pub fn clear_flush(&mut self) {
        self.flush = None;
    }

    /// Queues protocol output that must reach the player (command responses, status messages).
    pub fn push_control(&mut self, buf: Bytes) {
        if self.closed || buf.is_empty() {
            return;
        }
        self.queued_bytes += buf.len();
        self.items.push_back(buf);
        self.wake(true);
    }

    /// Offers one encoded media frame. `resync_point` says whether a player that skipped frames
    /// may resume here.
    pub fn push_media(&mut self, buf: Bytes, resync_point: bool, now: Instant) -> PushOutcome {
        if self.closed {
            return PushOutcome::Dropped;
        }
        if self.skipping {
            if resync_point && self.queued_bytes <= self.max_bytes / 2 {
                self.skipping = false;
                self.behind_since = None;
            } else {
                return self.drop_frame(now);
            }
        }
        // A frame larger than the whole bound would never fit, and a player that keeps up would
        // skip every one of them (and everything after them, forever): take it when the queue
        // is no fuller than a skipping player needs it to be to resume.
        let oversized = buf.len() > self.max_bytes && self.queued_bytes <= self.max_bytes / 2;
        if self.queued_bytes + buf.len() > self.max_bytes && !oversized {
            self.skipping = true;
            return self.drop_frame(now);
        }
        self.queued_bytes += buf.len();
        self.items.push_back(buf);
        // Merging is for small frames: a quarter of the bound waiting is written without waiting
        // for the window, so merging never makes a player that keeps up look behind.
        self.wake(self.queued_bytes > self.max_bytes / 4);
        PushOutcome::Queued
    }

    /// Sends what is queued at the end of this turn of the event loop rather than after the merge
    /// window: a new player's start-up burst, so its first frame is not delayed.
    pub fn flush_now(&mut self) {
        if !self.items.is_empty() {
            self.wake(true);
        }
    }

    fn drop_frame(&mut self, now: Instant) -> PushOutcome {
        self.dropped_frames += 1;
        let since = *self.behind_since.get_or_insert(now);
        if !self.too_slow && now.duration_since(since) >= self.slow_timeout {
            self.too_slow = true;
            PushOutcome::TooSlow
        } else {
            PushOutcome::Dropped
        }
    }

    /// Moves up to `max` buffers into `out` for one vectored write, oldest first.
    pub fn take_batch(&mut self, out: &mut Vec<Bytes>, max: usize) {
        while out.len() < max {
            match self.items.pop_front() {
                Some(b) => {
                    self.queued_bytes -= b.len();
                    self.sent_bytes += b.len() as u64;
                    out.push(b);
                }
                None => break,
            }
        }
    }

    /// Points `out` at the oldest queued buffers, as many as fit; returns how many.
    pub fn fill_iovecs<'a>(&'a self, out: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, b) in out.iter_mut().zip(&self.items) {
            *slot = std::io::IoSlice::new(b);
            n += 1;
        }
        n
    }

    /// Removes the first `written` bytes, as a write of [`PlayerQueue::fill_iovecs`]'s buffers
    /// took them: whole buffers leave the queue, a partly written one keeps its rest in front.
    pub fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        self.sent_bytes += written as u64;
        while written > 0 {
            let Some(front) = self.items.front_mut() else {
                break;
            };
            if written >= front.len() {
                written -= front.len();
                self.items.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
        if self.items.is_empty() && self.items.capacity() > SHRINK_ABOVE {
            // A start-up burst or a slow spell grew the queue: give the room back.
            self.items.shrink_to(SHRINK_ABOVE);
        }
    }

    /// The oldest queued buffer (shared, not removed).
    pub fn front(&self) -> Option<Bytes> {
        self.items.front().cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether more than `max_bytes` wait: only control output (never dropped) or one oversized
    /// frame gets it there, so the connection should stop taking requests until it drains.
    pub fn over_bound(&self) -> bool {
        self.queued_bytes > self.max_bytes
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Bytes taken for writing (and not put back) so far.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }

    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Stops accepting output; what is queued still goes out.
    pub fn close(&mut self) {
        self.closed = true;
        self.wake(true);
    }

    /// Stops accepting output and drops what is queued: its socket failed.
    pub fn discard(&mut self) {
        self.closed = true;
        self.items.clear();
        self.queued_bytes = 0;
        self.wake(true);
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Registers the writer to be woken when output arrives or the queue closes.
    pub fn set_waker(&mut self, waker: &Waker) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waker = Some(waker.clone());
        }
    }

    /// Tells whoever drains the queue that there is output: a task at once; the flusher at the
    /// end of this turn (`urgent`) or once the merge window has passed.
    fn wake(&mut self, urgent: bool) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        if let Some(ticket) = &self.flush {
            ticket.mark(urgent);
        }
    }
}

/// Waits, as whatever drains `queue` does, until it holds something (`true`) or is closed and
/// empty (`false`): what was queued before the close still goes out.
pub async fn wait_for_items(queue: &RefCell<PlayerQueue>) -> bool {
    poll_fn(|cx| {
        let mut q = queue.borrow_mut();
        if !q.is_empty() {
            Poll::Ready(true)
        } else if q.is_closed() {
            Poll::Ready(false)
        } else {
            q.set_waker(cx.waker());
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    #[test]
    fn control_output_past_the_bound_is_reported() {
        let mut q = PlayerQueue::new(100, Duration::from_secs(5));
        q.push_control(buf(100));
        assert!(!q.over_bound());
        q.push_control(buf(1));
        assert!(
            q.over_bound(),
            "control output is never dropped, so the reader must stop"
        );
        let mut out = Vec::new();
        q.take_batch(&mut out, 1);
        assert!(!q.over_bound());
    }

    #[test]
    fn overflow_skips_to_the_next_resync_point() {
        let t0 = Instant::now();
        let mut q = PlayerQueue::new(100, Duration::from_secs(5));
        assert_eq!(q.push_media(buf(60), true, t0), PushOutcome::Queued);
        assert_eq!(q.push_media(buf(60), false, t0), PushOutcome::Dropped);
        // Room again, but not a keyframe: still skipping.
        let mut out = Vec::new();
        q.take_batch(&mut out, 8);
        assert_eq!(q.push_media(buf(10), false, t0), PushOutcome::Dropped);
        assert_eq!(q.push_media(buf(10), true, t0), PushOutcome::Queued);
        assert_eq!(q.push_media(buf(10), false, t0), PushOutcome::Queued);
        assert_eq!(q.dropped_frames(), 2);
        assert_eq!(q.queued_bytes(), 20);
    }

    #[test]
    fn control_is_never_dropped_and_slow_players_are_cut() {
        let t0 = Instant::now();
        let mut q = PlayerQueue::new(100, Duration::from_secs(5));
        q.push_control(buf(150));
        assert_eq!(q.queued_bytes(), 150);
        assert_eq!(q.push_media(buf(1), true, t0), PushOutcome::Dropped);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(q.push_media(buf(1), true, later), PushOutcome::TooSlow);
        // Reported once: the frames offered before the connection closes are only dropped.
        assert_eq!(q.push_media(buf(1), false, later), PushOutcome::Dropped);
        assert_eq!(q.push_media(buf(1), true, later), PushOutcome::Dropped);
    }

    #[test]
    fn a_frame_larger_than_the_bound_reaches_a_player_that_keeps_up() {
        let t0 = Instant::now();
        let mut q = PlayerQueue::new(100, Duration::from_secs(5));
        // Something small ahead of it (e.g. audio in the same batch) does not keep it out.
        assert_eq!(q.push_media(buf(10), false, t0), PushOutcome::Queued);
        assert_eq!(q.push_media(buf(150), true, t0), PushOutcome::Queued);
        assert_eq!(q.queued_bytes(), 160);
        // Over the bound now: the next frames are dropped up to the next keyframe...
        assert_eq!(q.push_media(buf(10), false, t0), PushOutcome::Dropped);
        let mut out = Vec::new();
        q.take_batch(&mut out, 8);
        // ...which, oversized again, is taken once the player has caught up.
        assert_eq!(q.push_media(buf(150), true, t0), PushOutcome::Queued);
        // A queue more than half full takes no oversized frame.
        let mut q = PlayerQueue::new(100, Duration::from_secs(5));
        assert_eq!(q.push_media(buf(60), true, t0), PushOutcome::Queued);
        assert_eq!(q.push_media(buf(150), true, t0), PushOutcome::Dropped);
    }

    #[test]
    fn a_partial_write_keeps_the_rest_in_order() {
        let mut q = PlayerQueue::new(1000, Duration::from_secs(5));
        for i in 0..3u8 {
            q.push_control(Bytes::from(vec![i; 4]));
        }
        let mut iov = [std::io::IoSlice::new(&[]); 8];
        assert_eq!(q.fill_iovecs(&mut iov), 3);
        // The kernel took the first buffer and half of the second.
        q.consume(6);
        assert_eq!(q.queued_bytes(), 6);
        assert_eq!(q.sent_bytes(), 6);
        let mut rest = Vec::new();
        q.take_batch(&mut rest, 8);
        assert_eq!(rest[0][..], [1, 1]);
        assert_eq!(rest[1][..], [2, 2, 2, 2]);
        assert_eq!(q.queued_bytes(), 0);
    }
}
