//! The accept loop every listener of a data core runs.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use crate::runtime::{Core, Limit};

/// Accepts connections until the core shuts down, serving each in its own task.
pub(crate) async fn accept_loop<F, Fut>(
    core: Rc<Core>,
    listener: TcpListener,
    protocol: &'static str,
    serve: F,
) where
    F: Fn(Rc<Core>, TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            core.shutdown_signal().wait().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) if core.at_connection_limit() => {
                core.hit_limit(Limit::ConnectionsPerCore);
                info!(core = %core.id, protocol, peer = ?stream.peer_addr().ok(), "connection refused: the core serves maxConnectionsPerCore connections");
                drop(stream);
            }
            Some(Ok(stream)) => {
                glommio::spawn_local(serve(core.clone(), stream)).detach();
            }
            Some(Err(e)) => {
                // Out of descriptors or memory: back off instead of spinning.
                warn!(core = %core.id, protocol, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
