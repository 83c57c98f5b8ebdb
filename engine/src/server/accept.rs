//! The accept loop every listener of a data core runs.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

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
    F: Fn(Rc<Core>, TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let mut spare = SpareDescriptor::new();
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
            Some(Err(e)) if out_of_descriptors(&e) => {
                // The kernel keeps the client queued and the listener readable: give back the
                // spare descriptor, take the client and close it at once (it learns now rather
                // than timing out), take the spare again and pause so this does not spin.
                core.hit_limit(Limit::Descriptors);
                warn!(core = %core.id, protocol, "accept failed: {e}; shedding one pending client and pausing {OUT_OF_DESCRIPTORS_PAUSE:?}");
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
