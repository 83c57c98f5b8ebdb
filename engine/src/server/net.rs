//! Listening sockets, and the reading half of a connection.
//!
//! Writing is the core's flusher's (see [`crate::delivery`]); a connection reads and is written
//! through one [`Socket`], on one descriptor.
#![allow(unsafe_code)] // adopting a bound listener's descriptor; the block has its SAFETY note

use std::io;
use std::os::unix::io::FromRawFd;
use std::rc::Rc;

use crate::delivery::Socket;

/// The reading half of a connection.
pub struct NetReader {
    socket: Rc<Socket>,
}

/// Binds a listener for one core: `SO_REUSEPORT`, so every core binds the same address and the
/// kernel spreads connections over them, and `SO_REUSEADDR`, so a restart is not refused while
/// connections of the previous run linger in TIME_WAIT (glommio's own `bind` sets only the former).
pub fn listen(addr: std::net::SocketAddr) -> io::Result<glommio::net::TcpListener> {
    bind(addr, true)
}

/// Binds the one listener of a service a single core serves (the control API, metrics): like
/// [`listen`] but without `SO_REUSEPORT`, so no other socket can share the port.
pub fn listen_single(addr: std::net::SocketAddr) -> io::Result<glommio::net::TcpListener> {
    bind(addr, false)
}

fn bind(addr: std::net::SocketAddr, reuse_port: bool) -> io::Result<glommio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
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

impl NetReader {
    pub fn new(socket: Rc<Socket>) -> Self {
        NetReader { socket }
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.read(buf).await
    }

    /// Reads once into the core's shared `buffer` and hands the bytes to `take` at once (see
    /// [`Socket::read_with`]); `None` at the end of the stream.
    pub async fn read_with<T>(
        &mut self,
        buffer: &std::cell::RefCell<Vec<u8>>,
        max: usize,
        take: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<Option<T>> {
        self.socket.read_with(buffer, max, take).await
    }

    /// Whether the peer has closed its side (FIN or reset), whatever it sent before that is still
    /// unread.
    pub fn peer_closed(&self) -> bool {
        self.socket.peer_closed()
    }

    /// Ends our sending direction (FIN) while the peer may still send.
    pub fn shutdown_write(&self) {
        self.socket.shutdown_write()
    }
}
