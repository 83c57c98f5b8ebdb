//! What the API shows of a relay link (a pulled source or a push target): its state, its last
//! error and when it happened, its byte count. Plain cells on the link's core; copied into
//! [`SourceView`] / [`ForwardView`] for the control core.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};

use crate::runtime::unix_ms;

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

/// One link's live status.
#[derive(Debug, Default)]
pub struct LinkStatus {
    state: Cell<LinkState>,
    /// The URL being tried now (an edge moves through its origins).
    url: RefCell<String>,
    /// The last failure's text and Unix milliseconds.
    last_error: RefCell<Option<(String, u64)>>,
    bytes: Cell<u64>,
}

impl LinkStatus {
    pub fn connecting(&self, url: &str) {
        self.state.set(LinkState::Connecting);
        *self.url.borrow_mut() = url.to_owned();
    }

    pub fn ready(&self) {
        self.state.set(LinkState::Ready);
    }

    pub fn idle(&self) {
        self.state.set(LinkState::Idle);
    }

    pub fn failed(&self, error: String) {
        self.state.set(LinkState::Error);
        *self.last_error.borrow_mut() = Some((error, unix_ms()));
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes.set(self.bytes.get() + n);
    }

    pub fn state(&self) -> LinkState {
        self.state.get()
    }

    pub fn url(&self) -> String {
        self.url.borrow().clone()
    }

    pub fn last_error(&self) -> Option<(String, u64)> {
        self.last_error.borrow().clone()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.get()
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
    pub path: String,
    pub dest: String,
    pub state: LinkState,
    pub last_error: Option<String>,
    pub last_error_ms: Option<u64>,
    pub bytes_sent: u64,
}
