//! The connections registered with a core, and how the core tells one to close.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crate::runtime::{LocalSignal, SessionId};

/// Why the core tells a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The stream it plays ended.
    StreamEnded,
    /// It stayed behind the live stream for longer than `slowPlayerTimeout`.
    TooSlow,
    /// A newer publisher of the same stream replaced it.
    Replaced,
    /// The engine is shutting down.
    Shutdown,
    /// The control API kicked it.
    Kicked,
    /// The configuration no longer has its path, or changed the path's source.
    PathRemoved,
}

/// What the core holds of a connection: a way to tell it to close.
#[derive(Debug, Default)]
pub struct SessionControl {
    notice: Cell<Option<Notice>>,
    signal: LocalSignal,
    /// What the control API shows of the connection.
    pub info: crate::runtime::ConnInfo,
}

impl SessionControl {
    /// Tells the connection to close; the first notice wins.
    pub fn notify(&self, notice: Notice) {
        if self.notice.get().is_none() {
            self.notice.set(Some(notice));
        }
        self.signal.fire();
    }

    pub fn notice(&self) -> Option<Notice> {
        self.notice.get()
    }

    pub fn signal(&self) -> &LocalSignal {
        &self.signal
    }
}

/// A core's connections, by session.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: RefCell<HashMap<SessionId, Rc<SessionControl>>>,
}

impl Sessions {
    pub(crate) fn insert(&self, id: SessionId, control: Rc<SessionControl>) {
        self.map.borrow_mut().insert(id, control);
    }

    pub(crate) fn remove(&self, id: SessionId) {
        self.map.borrow_mut().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Tells the connection `id` to close, if it is still here.
    pub(crate) fn notify(&self, id: SessionId, notice: Notice) {
        let control = self.map.borrow().get(&id).cloned();
        if let Some(c) = control {
            c.notify(notice);
        }
    }

    /// Every connection, copied out so that the caller may notify them (which may run code that
    /// registers or removes connections).
    pub(crate) fn all(&self) -> Vec<(SessionId, Rc<SessionControl>)> {
        self.map
            .borrow()
            .iter()
            .map(|(id, c)| (*id, c.clone()))
            .collect()
    }
}
