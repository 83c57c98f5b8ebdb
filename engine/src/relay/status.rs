//! What the API shows of a relay link (a pulled source or a push target): its state, its last
//! error and when it happened, its byte count. Plain cells on the link's core; copied into
//! [`SourceView`] / [`ForwardView`] for the control core.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};

use crate::runtime::unix_ms;
pub use crate::runtime::{ForwardView, LinkState, SourceView};

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
