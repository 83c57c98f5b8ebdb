//! What every client connection has, whatever its protocol: a registration with the core, a
//! reading half, and a bounded send queue that the core's flusher writes.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::TcpStream;
use tracing::debug;

use super::net::NetReader;
use crate::delivery::{PlayerQueue, Registration, Socket};
use crate::runtime::{ConnProtocol, Core, Notice, SessionGuard};

/// How long a closing connection may take to flush its last bytes.
const FLUSH_TIME: Duration = Duration::from_secs(1);
/// How long, and for how many bytes, a lingering close keeps reading.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1 << 20;
/// How often a connection whose output is over its bound looks whether it drained.
const ROOM_POLL: Duration = Duration::from_millis(10);

/// One accepted connection's plumbing.
pub(crate) struct Conn {
    pub(crate) core: Rc<Core>,
    pub(crate) guard: SessionGuard,
    pub(crate) queue: Rc<RefCell<PlayerQueue>>,
    pub(crate) peer: Option<SocketAddr>,
    /// How long output may stay over `playerMaxQueueBytes` before the connection is cut.
    slow_timeout: Duration,
    /// The queue's place with the core's flusher; dropped before the socket, so the flusher never
    /// writes to a closed descriptor.
    flush: Registration,
    /// Kept so a closing connection's last output can still go out after its reader is gone.
    _socket: Rc<Socket>,
}

/// What a read that can be interrupted returned: with [`Conn::read`], `Data` is the byte count;
/// with [`Conn::read_with`], what its `take` returned.
pub(crate) enum ReadOutcome<T = usize> {
    Data(T),
    Closed,
    TimedOut,
    Failed(io::Error),
    /// The core told the connection to close.
    Notice(Notice),
}

impl Conn {
    /// Registers the connection, labelled with the listener or link it belongs to, and its queue
    /// with the core's flusher; `None` if the socket is unusable.
    pub(crate) fn open(
        core: &Rc<Core>,
        stream: TcpStream,
        protocol: ConnProtocol,
    ) -> Option<(Conn, NetReader)> {
        let guard = core.open_session();
        guard.control.info.set_protocol(protocol);
        let socket = Rc::new(Socket::new(stream));
        let peer = socket.peer_addr();
        if let Err(e) = socket.set_nodelay() {
            debug!("cannot set TCP_NODELAY: {e}");
        }
        let config = &core.snapshot().config;
        let slow_timeout = config.slow_player_timeout.duration();
        let queue = Rc::new(RefCell::new(PlayerQueue::new(
            config.player_max_queue_bytes,
            slow_timeout,
        )));
        let flush = core.flusher().register(&queue, &socket);
        let conn = Conn {
            core: core.clone(),
            guard,
            queue,
            peer,
            slow_timeout,
            flush,
            _socket: socket.clone(),
        };
        Some((conn, NetReader::new(socket)))
    }

    /// Reads once into `buf`, giving up after `timeout` (if any) or when the core sends a notice.
    pub(crate) async fn read(
        &self,
        reader: &mut NetReader,
        buf: &mut [u8],
        timeout: Option<Duration>,
    ) -> ReadOutcome {
        let max = buf.len();
        self.read_with(reader, max, timeout, |data| {
            buf[..data.len()].copy_from_slice(data);
            data.len()
        })
        .await
    }

    /// Reads once, at most `max` bytes, through the core's shared read buffer, and hands what
    /// came to `take` before anything else runs; gives up after `timeout` (if any) or when the
    /// core sends a notice. A connection that waits for input holds no buffer of its own.
    pub(crate) async fn read_with<T>(
        &self,
        reader: &mut NetReader,
        max: usize,
        timeout: Option<Duration>,
        take: impl FnOnce(&[u8]) -> T,
    ) -> ReadOutcome<T> {
        let control = self.guard.control.clone();
        let buffer = self.core.read_buffer();
        let read = async {
            let r = match timeout {
                Some(t) => glommio::timer::timeout(t, async {
                    Ok(reader.read_with(buffer, max, take).await)
                })
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                None => reader.read_with(buffer, max, take).await,
            };
            match r {
                Ok(None) => ReadOutcome::Closed,
                Ok(Some(v)) => ReadOutcome::Data(v),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => ReadOutcome::TimedOut,
                Err(e) => ReadOutcome::Failed(e),
            }
        };
        let notice = async {
            control.signal().wait().await;
            ReadOutcome::Notice(control.notice().unwrap_or(Notice::Shutdown))
        };
        future::or(read, notice).await
    }

    /// Backpressure on a client's input: while its output queue is over its bound (answers to
    /// requests it sends faster than it reads them, which are never dropped), stop reading it.
    /// Returns false if the queue stayed over the bound for `slowPlayerTimeout`; the caller closes
    /// the connection. Returns at once on a notice, which the next [`Conn::read`] reports.
    pub(crate) async fn wait_for_room(&self) -> bool {
        if !self.queue.borrow().over_bound() {
            return true;
        }
        let deadline = Instant::now() + self.slow_timeout;
        let control = self.guard.control.clone();
        let drained = async {
            while self.queue.borrow().over_bound() {
                if Instant::now() >= deadline {
                    return false;
                }
                glommio::timer::sleep(ROOM_POLL).await;
            }
            true
        };
        let notice = async {
            control.signal().wait().await;
            true
        };
        future::or(drained, notice).await
    }

    /// Ends the connection after an error response while the client may still be sending (a
    /// request head too large, say): flush, send FIN, and read what is in flight for a moment, so
    /// the kernel does not answer the client's last bytes with a reset that destroys the response.
    pub(crate) async fn close_lingering(self, mut reader: NetReader) {
        self.queue.borrow_mut().close();
        if !self.flushed().await {
            return;
        }
        reader.shutdown_write();
        let buffer = self.core.read_buffer();
        let _ = glommio::timer::timeout(LINGER_TIME, async {
            let mut total = 0;
            while let Ok(Some(n)) = reader.read_with(buffer, usize::MAX, |d| d.len()).await {
                total += n;
                if total > LINGER_MAX_BYTES {
                    break;
                }
            }
            Ok(())
        })
        .await;
    }

    /// Ends the connection: with `flush`, the queued output gets [`FLUSH_TIME`] to reach the
    /// client first. Dropping the connection and its reader closes the socket.
    pub(crate) async fn close(self, flush: bool) {
        self.queue.borrow_mut().close();
        if flush && !self.flushed().await {
            debug!("flush cut off after {FLUSH_TIME:?}");
        }
    }

    /// Waits up to [`FLUSH_TIME`] for the queue to drain; false if it did not, or the socket
    /// failed.
    async fn flushed(&self) -> bool {
        let drained = glommio::timer::timeout(FLUSH_TIME, async {
            self.flush.drained().await;
            Ok(())
        })
        .await
        .is_ok();
        drained && !self.flush.failed()
    }
}
