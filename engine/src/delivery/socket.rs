//! One connected TCP socket, shared by the connection's reading task and its core's flusher, on a
//! single descriptor.
//!
//! glommio's `TcpStream` reads through io_uring readiness and has no vectored write. Reading stays
//! glommio's; writing is ours: a whole batch of a player's buffers goes to the kernel in one
//! `sendmsg(MSG_DONTWAIT)` with the iovecs on the stack, and only when the socket is full do we
//! fall back to glommio's write of one buffer, which waits for room without blocking the executor.
//! The stream sits in a `RefCell` that is borrowed only inside a `poll`, never across an `.await`,
//! so the reader and the writer share it without a second descriptor (`dup`).
#![allow(unsafe_code)] // sendmsg and poll on the socket's own descriptor; each block has its SAFETY note

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::Poll;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

/// Most iovecs one `sendmsg` carries. Linux takes up to `UIO_MAXIOV` (1024); a player's merged
/// window rarely holds more than a few dozen buffers, and the array lives on the stack.
pub const MAX_IOVECS: usize = 64;

/// A connected socket. Lives in an `Rc` on its core; dropping the last one closes the descriptor.
#[derive(Debug)]
pub struct Socket {
    stream: RefCell<TcpStream>,
}

impl Socket {
    pub fn new(stream: TcpStream) -> Self {
        Socket {
            stream: RefCell::new(stream),
        }
    }

    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.stream.borrow().peer_addr().ok()
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        self.stream.borrow().set_nodelay(true).map_err(Into::into)
    }

    fn fd(&self) -> RawFd {
        self.stream.borrow().as_raw_fd()
    }

    /// Reads once (readiness through io_uring; the read itself is a plain `recv`).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf)).await
    }

    /// Reads once, at most `max` bytes, into `buffer` (a core's, shared by its connections) and
    /// hands them to `take` at once; `None` at the end of the stream.
    ///
    /// The buffer is borrowed only inside the `poll` that receives (glommio waits for readiness
    /// without a buffer and then `recv`s synchronously), and `take` runs in that same `poll`:
    /// an idle connection holds no read buffer of its own.
    pub async fn read_with<T>(
        &self,
        buffer: &RefCell<Vec<u8>>,
        max: usize,
        take: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<Option<T>> {
        let mut take = Some(take);
        poll_fn(|cx| {
            let mut buffer = buffer.borrow_mut();
            let len = max.min(buffer.len());
            let buf = &mut buffer[..len];
            // The stream's borrow ends before `take` runs.
            let polled = Pin::new(&mut *self.stream.borrow_mut()).poll_read(cx, buf);
            match polled {
                Poll::Ready(Ok(0)) => Poll::Ready(Ok(None)),
                Poll::Ready(Ok(n)) => match take.take() {
                    Some(take) => Poll::Ready(Ok(Some(take(&buf[..n])))),
                    None => Poll::Ready(Ok(None)),
                },
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Writes `buf` once the socket has room: the slow path after `sendmsg` found it full.
    /// Returns how much the kernel took (at least one byte unless `buf` is empty).
    pub async fn write_when_ready(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, buf)).await
    }

    /// One non-blocking `sendmsg` of `bufs` (at most [`MAX_IOVECS`] are used). Returns the bytes
    /// the kernel took; `WouldBlock` when it took none.
    pub fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let count = bufs.len().min(MAX_IOVECS);
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        // `IoSlice` is guaranteed ABI-compatible with `struct iovec` on Unix.
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = count as _;
        // SAFETY: every iovec points into memory borrowed for the duration of the call, `msg`
        // points at them and outlives the call, the kernel only reads them, and the descriptor is
        // owned by `self.stream`, open for as long as `self` lives.
        let n = unsafe { libc::sendmsg(self.fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Whether the peer has closed its side (FIN or reset), whatever it sent before that is still
    /// unread: a zero-timeout `poll` for `POLLRDHUP`, which consumes nothing.
    pub fn peer_closed(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
        let n = unsafe { libc::poll(&mut fd, 1, 0) };
        n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Ends our sending direction (FIN) while the peer may still send.
    pub fn shutdown_write(&self) {
        // SAFETY: shutdown(2) on a descriptor we own; failure (already closed) is harmless.
        unsafe {
            libc::shutdown(self.fd(), libc::SHUT_WR);
        }
    }
}
