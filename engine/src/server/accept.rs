//! The accept loop every listener of a data core runs.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use super::shed::{Handshake, Handshakes};
use crate::runtime::rlimit::{out_of_descriptors, SpareDescriptor};
use crate::runtime::{Core, Limit};

/// How long an accept loop pauses after running out of descriptors, so it does not spin while
/// connections end and give theirs back.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until the core shuts down, serving each in its own task.
pub(crate) async fn accept_loop<F, Fut>(
    core: Rc<Core>,
    listener: TcpListener,
    protocol: &'static str,
    serve: F,
) where
    F: Fn(Rc<Core>, TcpStream, Handshake) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let mut spare = SpareDescriptor::new();
    let handshakes = Rc::new(Handshakes::default());
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
                let handshake = handshakes.start();
                let shed = handshake.shed.clone();
                let serving = serve(core.clone(), stream, handshake);
                // A shed connection's task is dropped where it waits, closing its socket.
                glommio::spawn_local(future::or(serving, shed.wait())).detach();
            }
            Some(Err(e)) if out_of_descriptors(&e) => {
                // The kernel keeps the client queued and the listener readable: give back the
                // spare descriptor, take the client and close it at once (it learns now rather
                // than timing out), take the spare again and pause so this does not spin.
                core.hit_limit(Limit::Descriptors);
                let shed = handshakes.shed_oldest();
                warn!(core = %core.id, protocol, shed_handshake = shed, "accept failed: {e}; closing the oldest unfinished handshake and one pending client, pausing {OUT_OF_DESCRIPTORS_PAUSE:?}");
                spare.release();
                if let Ok(Ok(stream)) = glommio::timer::timeout(Duration::from_millis(1), async {
                    Ok(listener.accept().await)
                })
                .await
                {
                    drop(stream);
                }
                spare.refill();
                glommio::timer::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
            }
            Some(Err(e)) => {
                // Out of memory or a transient error: back off instead of spinning.
                warn!(core = %core.id, protocol, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
