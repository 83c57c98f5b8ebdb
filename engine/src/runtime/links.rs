//! The relay links a core runs (pulled sources, pushes), as the runtime sees them: what it tells
//! them when its streams change, and what the API shows of them. The runtime does not know the
//! relay: the bootstrap installs it (`relay::Relays`) behind [`StreamLinks`].

use std::rc::Rc;

use super::{ConnUuid, Core, StreamId};
use crate::registry::StreamKey;

/// What a core tells its relay links.
pub trait StreamLinks: std::fmt::Debug {
    /// A stream was published on this core: its path's pushes start.
    fn published(&self, core: &Rc<Core>, key: &StreamKey, stream: StreamId);
    /// A reader asked this core, `key`'s home, for a publisher it does not have: an on-demand
    /// source of the key starts, or (`cluster`) a pull from the node the cluster's directory
    /// names.
    fn demanded(&self, core: &Rc<Core>, key: &StreamKey, cluster: bool);
    /// The configuration changed: sources and pushes follow it.
    fn reconfigured(&self, core: &Rc<Core>);
    /// How long a reader of `key` waits for it to go live when the key has an on-demand source.
    fn start_timeout(
        &self,
        config: &crate::config::Config,
        key: &StreamKey,
    ) -> Option<std::time::Duration>;
    /// Whether a source of `key` runs on this core (connecting or live).
    fn has_source(&self, key: &StreamKey) -> bool;
    /// Stops every link (shutdown).
    fn stop_all(&self, core: &Core);
    /// What the API shows of this core's links.
    fn views(&self) -> (Vec<SourceView>, Vec<ForwardView>);
}

/// Where a link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkState {
    /// Dialling, handshaking, or waiting for the first frame.
    #[default]
    Connecting,
    /// Media flows (a source's stream is live; a push target takes frames).
    Ready,
    /// The last attempt failed; the next one comes after a backoff.
    Error,
    /// An on-demand link with no readers: not running.
    Idle,
}

impl LinkState {
    /// The API's word for a pulled source.
    pub fn source_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Ready => "ready",
            LinkState::Error => "error",
            LinkState::Idle => "idle",
        }
    }

    /// The API's word for a push target.
    pub fn forward_str(self) -> &'static str {
        match self {
            LinkState::Ready => "live",
            other => other.source_str(),
        }
    }
}

/// A pulled source as the control core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    /// The path name (`app/stream`).
    pub path: String,
    /// MediaMTX's source type: `rtmpSource`, `rtspSource`, or `httpFlvSource` (ours).
    pub kind: &'static str,
    pub url: String,
    pub on_demand: bool,
    pub state: LinkState,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub bytes_received: u64,
}

/// A push target as the control core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardView {
    /// The push's id (`/v3/paths/forward/get`), a random v4 UUID given when the push starts.
    pub id: ConnUuid,
    /// Its entry's place in the path's `forward` list, from 1 (MediaMTX's `pos`).
    pub pos: usize,
    /// When the push started (Unix ms).
    pub created_ms: u64,
    pub path: String,
    pub dest: String,
    /// The pinned certificate of an `rtmps://` target, as configured.
    pub fingerprint: Option<String>,
    pub state: LinkState,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub bytes_sent: u64,
}
