//! One flush per core: the connections whose send queues hold output, written in passes.
//!
//! A player's queue does not wake a writer of its own for every frame. Output marks the queue due
//! with its core's [`Flusher`], once, and the flusher writes every due queue in one pass:
//! - control output (command answers, a new player's start-up burst, a close) and media of a
//!   connection whose merge window is 0 at the end of the current turn of the event loop, so
//!   that what arrived together (an audio and a video frame of one read) goes out together;
//! - other media once its merge window (`writeMergeLatency`) has passed since the queue became
//!   due, on the one timer the core has for this, so a player gets one system call per window
//!   instead of one per frame.
//!
//! Each write is one `sendmsg` of the queue's buffers ([`Socket::send_vectored`], iovecs on the
//! stack, nothing allocated). A socket the kernel cannot take everything from is *blocked*: a
//! small task waits for room through glommio, writes the next buffer, and hands the queue back as
//! due; the queue keeps its place and order meanwhile. A failed socket drops its queue.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future;

use super::queue::PlayerQueue;
use super::socket::{Socket, MAX_IOVECS};

/// What the flusher has done so far on its core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushCounters {
    /// `sendmsg` calls (and slow-path writes), successful or not.
    pub writes: u64,
    pub bytes: u64,
    /// Times a socket could not take everything and waited for room.
    pub blocked: u64,
}

/// A core's flusher. Lives in an `Rc` on its executor; [`Flusher::run`] is its task.
#[derive(Debug, Default)]
pub struct Flusher {
    entries: RefCell<Vec<Option<Entry>>>,
    free: RefCell<Vec<u32>>,
    /// Slots to write at the end of this turn.
    urgent: RefCell<Vec<u32>>,
    /// Slots to write once their `due` time has come.
    merged: RefCell<Vec<u32>>,
    /// The flusher's task, waiting for work.
    waker: RefCell<Option<Waker>>,
    counters: Cell<FlushCounters>,
    next_generation: Cell<u32>,
    me: RefCell<Weak<Flusher>>,
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    queue: Weak<RefCell<PlayerQueue>>,
    socket: Weak<Socket>,
    /// How long media may wait to be merged with what follows.
    window: Duration,
    in_urgent: bool,
    /// Set while the slot is in `merged`: when it must be written.
    due: Option<Instant>,
    /// The wait for room of a full socket; the slot is not written meanwhile.
    room_wait: RoomWait,
    failed: bool,
    /// Someone waits for the queue to be empty (a connection closing with a flush).
    drained: Option<Waker>,
}

/// A full socket's wait for room, in the slot's entry.
#[derive(Debug, Default)]
enum RoomWait {
    #[default]
    None,
    /// The task is being spawned. glommio polls a task inside `spawn_local` (`spawn_and_run`), so
    /// a socket that has room again by then ends the wait before its handle can be stored; the
    /// wait's end finds this and the handle is not kept.
    Starting,
    /// The task waits. Dropping it cancels it (and lets go of the socket).
    Waiting(glommio::Task<()>),
}

/// A queue's handle on its flusher: marks the queue due. Stale tickets (of a closed connection
/// whose slot was reused) are recognised by their generation and do nothing.
#[derive(Debug, Clone)]
pub struct FlushTicket {
    flusher: Weak<Flusher>,
    slot: u32,
    generation: u32,
}

impl FlushTicket {
    pub(super) fn mark(&self, urgent: bool) {
        if let Some(f) = self.flusher.upgrade() {
            f.mark(self.slot, self.generation, urgent);
        }
    }

    /// Sets how long this connection's media may wait to be merged (`writeMergeLatency`).
    pub fn set_window(&self, window: Duration) {
        if let Some(f) = self.flusher.upgrade() {
            f.with_entry(self.slot, self.generation, |e| e.window = window);
        }
    }
}

/// A connection's place with its core's flusher; dropping it removes the connection (and cancels
/// a wait for room, which lets go of the socket).
#[derive(Debug)]
pub struct Registration {
    flusher: Rc<Flusher>,
    slot: u32,
    generation: u32,
}

/// How writing one queue went.
enum Written {
    /// Everything queued went out.
    Drained,
    /// The socket is full.
    Blocked,
    Failed(io::Error),
}

impl Flusher {
    pub fn new() -> Rc<Flusher> {
        let f = Rc::new(Flusher::default());
        *f.me.borrow_mut() = Rc::downgrade(&f);
        f
    }

    pub fn counters(&self) -> FlushCounters {
        self.counters.get()
    }

    /// Has the flusher write `queue` into `socket` from now on.
    pub fn register(
        self: &Rc<Self>,
        queue: &Rc<RefCell<PlayerQueue>>,
        socket: &Rc<Socket>,
    ) -> Registration {
        let generation = self.next_generation.get().wrapping_add(1);
        self.next_generation.set(generation);
        let entry = Entry {
            generation,
            queue: Rc::downgrade(queue),
            socket: Rc::downgrade(socket),
            window: Duration::ZERO,
            in_urgent: false,
            due: None,
            room_wait: RoomWait::None,
            failed: false,
            drained: None,
        };
        let mut entries = self.entries.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(slot) => {
                entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                entries.push(Some(entry));
                (entries.len() - 1) as u32
            }
        };
        queue.borrow_mut().set_flush(FlushTicket {
            flusher: Rc::downgrade(self),
            slot,
            generation,
        });
        Registration {
            flusher: self.clone(),
            slot,
            generation,
        }
    }

    /// Runs `f` on the slot's entry if the slot still belongs to `generation`.
    fn with_entry<R>(
        &self,
        slot: u32,
        generation: u32,
        f: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let mut entries = self.entries.borrow_mut();
        let e = entries.get_mut(slot as usize)?.as_mut()?;
        (e.generation == generation).then(|| f(e))
    }

    fn mark(&self, slot: u32, generation: u32, urgent: bool) {
        let added = self.with_entry(slot, generation, |e| {
            if e.failed {
                false
            } else if urgent || e.window.is_zero() {
                if e.in_urgent {
                    return false;
                }
                e.in_urgent = true;
                self.urgent.borrow_mut().push(slot);
                true
            } else if e.due.is_none() {
                e.due = Some(Instant::now() + e.window);
                self.merged.borrow_mut().push(slot);
                true
            } else {
                false
            }
        });
        if added == Some(true) {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// The flusher's task: runs for the life of the core.
    pub async fn run(self: Rc<Self>) {
        loop {
            poll_fn(|cx| {
                let idle = self.urgent.borrow().is_empty() && self.merged.borrow().is_empty();
                self.ready_or_wait(cx, !idle)
            })
            .await;
            if self.urgent.borrow().is_empty() {
                let due = self.next_due();
                let now = Instant::now();
                if let Some(due) = due.filter(|&d| d > now) {
                    let urgent =
                        poll_fn(|cx| self.ready_or_wait(cx, !self.urgent.borrow().is_empty()));
                    future::or(glommio::timer::sleep(due - now), urgent).await;
                }
            }
            // No yield before the pass: being woken already puts the flusher behind the task
            // that queued the output (a publisher's whole read, audio and video together).
            self.pass(Instant::now());
        }
    }

    /// Ready when `ready` says so; otherwise the flusher's task waits for `mark` to wake it.
    fn ready_or_wait(&self, cx: &mut std::task::Context<'_>, ready: bool) -> Poll<()> {
        if ready {
            Poll::Ready(())
        } else {
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let entries = self.entries.borrow();
        self.merged
            .borrow()
            .iter()
            .filter_map(|&s| entries[s as usize].as_ref().and_then(|e| e.due))
            .min()
    }

    /// Writes every urgent slot and every merged slot whose time has come.
    fn pass(&self, now: Instant) {
        let urgent = std::mem::take(&mut *self.urgent.borrow_mut());
        for &slot in &urgent {
            if let Some(e) = self.entries.borrow_mut()[slot as usize].as_mut() {
                e.in_urgent = false;
            }
            self.write_slot(slot);
        }
        self.recycle(urgent, &self.urgent);
        let merged = std::mem::take(&mut *self.merged.borrow_mut());
        let mut later = Vec::new();
        for &slot in &merged {
            let due = {
                let mut entries = self.entries.borrow_mut();
                let Some(e) = entries[slot as usize].as_mut() else {
                    continue;
                };
                match e.due {
                    Some(due) if due > now => Some(due),
                    _ => {
                        e.due = None;
                        None
                    }
                }
            };
            if due.is_some() {
                later.push(slot);
            } else {
                self.write_slot(slot);
            }
        }
        // Slots marked while writing (a blocked socket's hand-back) were pushed meanwhile.
        let mut m = self.merged.borrow_mut();
        later.append(&mut m);
        *m = later;
        drop(m);
        self.recycle(merged, &self.merged);
    }

    /// Gives a taken list's allocation back if the list is still empty, so steady passes
    /// allocate nothing.
    fn recycle(&self, mut list: Vec<u32>, into: &RefCell<Vec<u32>>) {
        let mut into = into.borrow_mut();
        if into.is_empty() {
            list.clear();
            *into = list;
        }
    }

    /// Writes one slot's queue, if it is still there and not waiting for room.
    fn write_slot(&self, slot: u32) {
        let (queue, socket, generation) = {
            let entries = self.entries.borrow();
            let Some(e) = entries[slot as usize].as_ref() else {
                return;
            };
            if !matches!(e.room_wait, RoomWait::None) || e.failed {
                return;
            }
            match (e.queue.upgrade(), e.socket.upgrade()) {
                (Some(q), Some(s)) => (q, s, e.generation),
                _ => return,
            }
        };
        match self.write_queue(&queue, &socket) {
            Written::Drained => self.wake_drained(slot),
            Written::Blocked => {
                let mut c = self.counters.get();
                c.blocked += 1;
                self.counters.set(c);
                let me = self.me.borrow().clone();
                self.with_entry(slot, generation, |e| e.room_wait = RoomWait::Starting);
                let task = glommio::spawn_local(wait_for_room(me, slot, generation, queue, socket));
                // Kept only if the wait did not end while being spawned; a finished task is let go.
                let finished = self
                    .with_entry(slot, generation, |e| match e.room_wait {
                        RoomWait::Starting => {
                            e.room_wait = RoomWait::Waiting(task);
                            None
                        }
                        _ => Some(task),
                    })
                    .flatten();
                if let Some(task) = finished {
                    task.detach();
                }
            }
            Written::Failed(e) => {
                tracing::debug!("send failed: {e}");
                self.fail(slot, &queue);
            }
        }
    }

    /// `sendmsg` until the queue is empty or the socket full.
    fn write_queue(&self, queue: &RefCell<PlayerQueue>, socket: &Socket) -> Written {
        loop {
            let q = queue.borrow();
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let n = q.fill_iovecs(&mut iov);
            if n == 0 {
                return Written::Drained;
            }
            let total: usize = iov[..n].iter().map(|b| b.len()).sum();
            let sent = socket.send_vectored(&iov[..n]);
            drop(q);
            self.count_write(&sent);
            match sent {
                Ok(written) => {
                    queue.borrow_mut().consume(written);
                    if written < total {
                        return Written::Blocked;
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Written::Blocked,
                    io::ErrorKind::Interrupted => {}
                    _ => return Written::Failed(e),
                },
            }
        }
    }

    /// Counts one write (a `sendmsg`, or a slow-path write) and what it took.
    fn count_write(&self, result: &io::Result<usize>) {
        let mut c = self.counters.get();
        c.writes += 1;
        if let Ok(n) = result {
            c.bytes += *n as u64;
        }
        self.counters.set(c);
    }

    fn fail(&self, slot: u32, queue: &RefCell<PlayerQueue>) {
        if let Some(e) = self.entries.borrow_mut()[slot as usize].as_mut() {
            e.failed = true;
        }
        queue.borrow_mut().discard();
        self.wake_drained(slot);
    }

    fn wake_drained(&self, slot: u32) {
        let waker = self.entries.borrow_mut()[slot as usize]
            .as_mut()
            .and_then(|e| e.drained.take());
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The wait for room ended: the slot is written again, at the end of this turn.
    fn unblock(&self, slot: u32, generation: u32) {
        self.end_room_wait(slot, generation);
        self.mark(slot, generation, true);
    }

    /// Clears the slot's wait for room, from inside the waiting task itself.
    fn end_room_wait(&self, slot: u32, generation: u32) {
        let wait = self.with_entry(slot, generation, |e| std::mem::take(&mut e.room_wait));
        // This runs inside the task: let it finish rather than cancel it.
        if let Some(RoomWait::Waiting(task)) = wait {
            task.detach();
        }
    }

    fn unregister(&self, slot: u32, generation: u32) {
        let removed = {
            let mut entries = self.entries.borrow_mut();
            match entries.get_mut(slot as usize) {
                Some(e) if e.as_ref().is_some_and(|e| e.generation == generation) => e.take(),
                _ => None,
            }
        };
        if let Some(e) = removed {
            if let Some(q) = e.queue.upgrade() {
                q.borrow_mut().clear_flush();
            }
            self.free.borrow_mut().push(slot);
            // Dropping a waiting task (if any) cancels it and releases the socket.
            drop(e);
        }
    }
}

impl Registration {
    /// Waits until everything queued has gone out (or the socket failed); the caller bounds it.
    pub async fn drained(&self) {
        poll_fn(|cx| {
            let waiting = self.flusher.with_entry(self.slot, self.generation, |e| {
                let empty = e.queue.upgrade().is_none_or(|q| q.borrow().is_empty());
                let waiting = !(e.failed || empty);
                if waiting {
                    e.drained = Some(cx.waker().clone());
                }
                waiting
            });
            if waiting == Some(true) {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }

    /// Whether the socket failed (its queue was dropped).
    pub fn failed(&self) -> bool {
        self.flusher
            .with_entry(self.slot, self.generation, |e| e.failed)
            .unwrap_or(false)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.flusher.unregister(self.slot, self.generation);
    }
}

/// The slow path of a full socket: wait for room (glommio), write the oldest buffer, hand the
/// rest back to the flusher.
async fn wait_for_room(
    flusher: Weak<Flusher>,
    slot: u32,
    generation: u32,
    queue: Rc<RefCell<PlayerQueue>>,
    socket: Rc<Socket>,
) {
    let front = queue.borrow().front();
    let written = match front {
        Some(buf) => socket.write_when_ready(&buf).await,
        None => Ok(0),
    };
    let Some(f) = flusher.upgrade() else {
        return;
    };
    f.count_write(&written);
    match written {
        Ok(n) => {
            queue.borrow_mut().consume(n);
            f.unblock(slot, generation);
        }
        Err(e) => {
            tracing::debug!("send failed: {e}");
            f.end_room_wait(slot, generation);
            f.fail(slot, &queue);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::os::unix::io::AsRawFd;
    use std::time::Duration;

    use bytes::Bytes;
    use glommio::timer::sleep;

    use super::*;

    /// Reads what has arrived without waiting.
    fn read_now(peer: &mut std::net::TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// A running flusher, our end of a loopback connection (glommio's) and the peer's
    /// (non-blocking).
    async fn flusher_and_connection(
        listener: &TcpListener,
    ) -> (Rc<Flusher>, glommio::net::TcpStream, std::net::TcpStream) {
        let flusher = Flusher::new();
        glommio::spawn_local(flusher.clone().run()).detach();
        let addr = listener.local_addr().unwrap();
        let stream = glommio::net::TcpStream::connect(addr).await.unwrap();
        let (peer, _) = listener.accept().unwrap();
        peer.set_nonblocking(true).unwrap();
        (flusher, stream, peer)
    }

    fn big_queue() -> Rc<RefCell<PlayerQueue>> {
        Rc::new(RefCell::new(PlayerQueue::new(
            64 << 20,
            Duration::from_secs(5),
        )))
    }

    /// Media waits for the merge window and goes out in one write with what followed it;
    /// control output goes at the end of the turn; a socket the kernel cannot take everything
    /// from keeps its order and gets the rest once it has room; a removed connection is not
    /// written any more.
    #[test]
    fn merges_within_the_window_and_keeps_order_through_a_full_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        glommio::LocalExecutor::default().run(async move {
            let (flusher, stream, mut peer) = flusher_and_connection(&listener).await;
            let socket = Rc::new(Socket::new(stream));
            let queue = big_queue();
            let registration = flusher.register(&queue, &socket);
            queue.borrow().set_merge_window(Duration::from_millis(80));
            let now = Instant::now();

            let media = |q: &RefCell<PlayerQueue>, b: &'static [u8]| {
                assert_eq!(
                    q.borrow_mut().push_media(Bytes::from_static(b), true, now),
                    super::super::PushOutcome::Queued
                );
            };
            media(&queue, b"a");
            media(&queue, b"b");
            sleep(Duration::from_millis(20)).await;
            assert!(read_now(&mut peer).is_empty(), "media waits for the window");
            assert_eq!(flusher.counters().writes, 0);
            sleep(Duration::from_millis(100)).await;
            assert_eq!(read_now(&mut peer), b"ab");
            assert_eq!(flusher.counters().writes, 1, "one write for the window");

            media(&queue, b"c");
            queue.borrow_mut().push_control(Bytes::from_static(b"!"));
            sleep(Duration::from_millis(5)).await;
            assert_eq!(
                read_now(&mut peer),
                b"c!",
                "control goes at once, media with it"
            );
            assert_eq!(flusher.counters().writes, 2);

            // More than the socket takes at once: the rest goes when the peer reads.
            queue.borrow().set_merge_window(Duration::ZERO);
            let big: Vec<Bytes> = (0..64u8)
                .map(|i| Bytes::from(vec![i; 256 * 1024]))
                .collect();
            for b in &big {
                queue.borrow_mut().push_control(b.clone());
            }
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while got.len() < 64 * 256 * 1024 && Instant::now() < deadline {
                sleep(Duration::from_millis(2)).await;
                got.extend(read_now(&mut peer));
            }
            assert_eq!(got.len(), 64 * 256 * 1024);
            assert!(got
                .chunks(256 * 1024)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
            assert!(
                flusher.counters().blocked > 0,
                "the socket filled up at least once"
            );
            assert!(queue.borrow().is_empty());

            // Gone from the flusher: nothing more is written.
            drop(registration);
            queue.borrow_mut().push_control(Bytes::from_static(b"late"));
            sleep(Duration::from_millis(10)).await;
            assert!(read_now(&mut peer).is_empty());
        });
    }

    /// A socket that is full for a moment only: the wait for room ends inside `spawn_local`
    /// (glommio polls a new task at once), and the rest of the queue still goes out. Over links
    /// with a 1500-byte MTU every start-up burst did this, and the player got nothing more.
    #[test]
    fn a_wait_for_room_that_ends_at_once_lets_the_queue_go_on() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        glommio::LocalExecutor::default().run(async move {
            let (flusher, stream, mut peer) = flusher_and_connection(&listener).await;
            // A send buffer of a few KiB: a 16 KiB write is taken in part, and the loopback
            // acknowledges what was sent before `sendmsg` returns, so there is room again at once.
            // SAFETY: the descriptor is the stream's, open for as long as it lives.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
            socket2::SockRef::from(&fd)
                .set_send_buffer_size(4096)
                .unwrap();
            let socket = Rc::new(Socket::new(stream));
            let queue = big_queue();
            let _registration = flusher.register(&queue, &socket);
            const BUFFERS: usize = 32;
            const LEN: usize = 16 * 1024;
            for i in 0..BUFFERS {
                queue
                    .borrow_mut()
                    .push_control(Bytes::from(vec![i as u8; LEN]));
            }
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while got.len() < BUFFERS * LEN && Instant::now() < deadline {
                sleep(Duration::from_millis(2)).await;
                got.extend(read_now(&mut peer));
            }
            assert!(flusher.counters().blocked > 0, "the socket filled up");
            assert_eq!(got.len(), BUFFERS * LEN, "everything queued arrived");
            assert!(got
                .chunks(LEN)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
        });
    }
}
