//! The connections of one accept loop that have not finished their handshake (RTMP: handshake
//! and `connect`; HTTP: the first request head), oldest first. When the process runs out of
//! descriptors, the oldest of them is closed first: a client that has not even said who it is
//! gives way to new ones, and established publishers and players are never touched.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::runtime::LocalSignal;

/// The pending handshakes of one accept loop.
#[derive(Debug, Default)]
pub(crate) struct Handshakes {
    next: Cell<u64>,
    /// Accept order -> the signal that closes that connection.
    pending: RefCell<BTreeMap<u64, LocalSignal>>,
}

/// One connection's place among the pending handshakes; gone when it is done or dropped.
#[derive(Debug)]
pub(crate) struct Handshake {
    id: u64,
    list: Rc<Handshakes>,
    /// Fired when the connection is shed; its task stops at once.
    pub(crate) shed: LocalSignal,
}

impl Handshakes {
    /// Registers a connection just accepted.
    pub(crate) fn start(self: &Rc<Self>) -> Handshake {
        let id = self.next.get();
        self.next.set(id + 1);
        let shed = LocalSignal::new();
        self.pending.borrow_mut().insert(id, shed.clone());
        Handshake {
            id,
            list: self.clone(),
            shed,
        }
    }

    /// Closes the oldest connection still in its handshake; false when there is none.
    pub(crate) fn shed_oldest(&self) -> bool {
        let oldest = self.pending.borrow_mut().pop_first();
        match oldest {
            Some((_, signal)) => {
                signal.fire();
                true
            }
            None => false,
        }
    }

    /// Connections still in their handshake.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.borrow().len()
    }
}

impl Handshake {
    /// The handshake is over: this connection is no longer shed.
    pub(crate) fn done(&self) {
        self.list.pending.borrow_mut().remove(&self.id);
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_pending_handshake_is_shed_first() {
        let list = Rc::new(Handshakes::default());
        let a = list.start();
        let b = list.start();
        let c = list.start();
        a.done();
        assert_eq!(list.len(), 2);
        assert!(list.shed_oldest());
        assert!(!a.shed.is_fired());
        assert!(b.shed.is_fired());
        assert!(!c.shed.is_fired());
        drop(c);
        assert!(!list.shed_oldest());
    }
}
