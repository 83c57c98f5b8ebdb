//! Socket I/O the runtime does not offer: merged, vectored, non-blocking writes.
//!
//! glommio's `TcpStream` has no vectored write, and accepted sockets are blocking fds. A player's
//! pending buffers go to the kernel in one `sendmsg(MSG_DONTWAIT)` with many iovecs; when the socket
//! is full we fall back to glommio's own (io_uring) write for one buffer, which waits for room
//! without blocking the executor. Everything runtime-specific about writing lives here.
#![allow(unsafe_code)] // sendmsg and dup on raw fds; each block has its SAFETY note

use std::io;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};

use bytes::{Buf, Bytes};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

/// Most iovecs per `sendmsg` (Linux's `UIO_MAXIOV` is 1024).
pub const MAX_IOVECS: usize = 64;

/// The reading half of a connection.
pub struct NetReader {
    stream: TcpStream,
}

/// The writing half of a connection: a second descriptor of the same socket, so reading and
/// writing proceed in separate tasks.
pub struct NetWriter {
    stream: TcpStream,
}

/// Binds a listener for one core: `SO_REUSEPORT`, so every core binds the same address and the
/// kernel spreads connections over them, and `SO_REUSEADDR`, so a restart is not refused while
/// connections of the previous run linger in TIME_WAIT (glommio's own `bind` sets only the former).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<glommio::net::TcpListener> {
    bind(addr, true)
}

/// Binds a listener only one executor serves (the control API and metrics): `SO_REUSEADDR`, so a
/// restart after a crash is not refused while the dead process's connections linger in
/// TIME_WAIT, but no `SO_REUSEPORT`, so a second engine on the same address is still refused.
pub fn listen_exclusive(addr: std::net::SocketAddr) -> io::Result<glommio::net::TcpListener> {
    bind(addr, false)
}

fn bind(addr: std::net::SocketAddr, per_core: bool) -> io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if per_core {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a freshly bound, listening TCP socket, handed over whole.
    Ok(unsafe {
        glommio::net::TcpListener::from_raw_fd(std::os::unix::io::IntoRawFd::into_raw_fd(socket))
    })
}

/// Splits a connection into halves that can be used by two tasks at once.
pub fn split(stream: TcpStream) -> io::Result<(NetReader, NetWriter)> {
    // SAFETY: `dup` on a valid open descriptor owned by `stream`; the result is checked below.
    let dup = unsafe { libc::dup(stream.as_raw_fd()) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor of a connected TCP socket that nothing else owns.
    let writer = unsafe { TcpStream::from_raw_fd(dup) };
    Ok((NetReader { stream }, NetWriter { stream: writer }))
}

impl NetReader {
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// Ends our sending direction (FIN) while the peer may still send.
    pub fn shutdown_write(&self) {
        // SAFETY: shutdown(2) on a descriptor we own; failure (already closed) is harmless.
        unsafe {
            libc::shutdown(self.stream.as_raw_fd(), libc::SHUT_WR);
        }
    }
}

impl NetWriter {
    /// Writes every buffer of `bufs`, in order, and empties it. Returns the bytes written.
    pub async fn write_all(&mut self, bufs: &mut Vec<Bytes>) -> io::Result<usize> {
        let mut total = 0;
        let mut start = 0;
        while start < bufs.len() {
            let end = bufs.len().min(start + MAX_IOVECS);
            let written = match send_vectored(self.stream.as_raw_fd(), &bufs[start..end]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += written;
            // Drop what went out whole; trim the buffer the kernel took part of.
            let mut left = written;
            while left > 0 {
                let b = &mut bufs[start];
                if left >= b.len() {
                    left -= b.len();
                    start += 1;
                } else {
                    b.advance(left);
                    left = 0;
                }
            }
            if start < end {
                // The socket is full: let glommio wait for room while it writes the next buffer.
                let b = std::mem::take(&mut bufs[start]);
                self.stream.write_all(&b).await?;
                total += b.len();
                start += 1;
            }
        }
        bufs.clear();
        Ok(total)
    }
}

/// One non-blocking `sendmsg` of `bufs`; returns the bytes the kernel took.
fn send_vectored(fd: RawFd, bufs: &[Bytes]) -> io::Result<usize> {
    let iov: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points into a `Bytes` borrowed for the duration of the call, and `msg`
    // points at `iov`, which outlives the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
