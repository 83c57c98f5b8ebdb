//! Outgoing TCP connections for relay links: resolve, connect with a timeout, and hand the
//! socket to the same connection plumbing the server uses ([`Conn`]).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::TcpStream;

use super::error::{os_text, RelayError};
use crate::runtime::{ConnProtocol, Core, LocalSignal};
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
    let connect = async {
        let addr = resolve(host, port).await?;
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
    Conn::open(core, stream, ConnProtocol::Relay).ok_or(RelayError::Setup)
}

/// The first address of `host`. Names go to the system resolver on the executor's blocking
/// thread: a slow or unreachable DNS server delays this link only, never the core's media.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, RelayError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let name = host.to_owned();
    let found = glommio::executor()
        .spawn_blocking(move || {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|mut addrs| addrs.next())
        })
        .await;
    let failed = |reason: String| RelayError::Resolve {
        host: host.to_owned(),
        reason,
    };
    match found {
        Ok(Some(addr)) => Ok(addr),
        Ok(None) => Err(failed("no address".to_owned())),
        Err(e) => Err(failed(os_text(&e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_the_resolver_and_names_use_it() {
        glommio::LocalExecutor::default().run(async {
            assert_eq!(
                resolve("127.0.0.1", 1935).await.unwrap(),
                "127.0.0.1:1935".parse().unwrap()
            );
            assert_eq!(
                resolve("::1", 80).await.unwrap(),
                "[::1]:80".parse().unwrap()
            );
            // /etc/hosts names localhost on every Linux: the blocking thread answers.
            let local = resolve("localhost", 8080).await.unwrap();
            assert!(local.ip().is_loopback(), "{local}");
            assert_eq!(local.port(), 8080);
        });
    }
}
