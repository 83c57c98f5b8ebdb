//! Why the engine could not start: every executor, listener and signal set up at start reports
//! its failure as one of these.

use std::net::SocketAddr;

use super::PlacementError;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Placement(#[from] PlacementError),
    #[error("cannot listen on {addr} ({what}): {reason}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        reason: std::io::Error,
    },
    #[error("cannot start the executor of core {core} on CPU {cpu}: {reason}")]
    Executor {
        core: u16,
        cpu: usize,
        reason: String,
    },
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
    /// The `cluster:` section could not be put to work (its thread, the host name).
    #[error("cluster: {0}")]
    Cluster(String),
}
