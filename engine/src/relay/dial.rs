//! Outgoing TCP connections for relay links: resolve, connect with a timeout, and hand the
//! socket to the same connection plumbing the server uses ([`Conn`]).

use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::TcpStream;

use super::error::{os_text, RelayError};
use crate::runtime::{Core, LocalSignal};
use crate::server::conn::Conn;
use crate::server::net::NetReader;

/// How long a connect may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to `host:port` and registers the connection with the core; gives up with
/// [`RelayError::Stopped`] as soon as `stop` fires.
pub(super) async fn dial(
    core: &Rc<Core>,
    host: &str,
    port: u16,
    stop: &LocalSignal,
) -> Result<(Conn, NetReader), RelayError> {
    // Names are resolved with the system resolver (blocking, but relay targets are few and are
    // mostly addresses or names in /etc/hosts).
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| RelayError::Resolve {
            host: host.to_owned(),
            reason: os_text(&e),
        })?
        .next()
        .ok_or_else(|| RelayError::Resolve {
            host: host.to_owned(),
            reason: "no address".to_owned(),
        })?;
    let connect = async {
        TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| RelayError::Connect {
                addr,
                reason: os_text(&std::io::Error::from(e)),
            })
    };
    let stopped = async {
        stop.wait().await;
        Err(RelayError::Stopped)
    };
    let stream = future::or(connect, stopped).await?;
    Conn::open(core, stream).ok_or(RelayError::Setup)
}
