//! Requests to other cores and their answers: each request has an id and a one-slot channel
//! its answer is delivered to, or nothing if it does not come in time.

use std::cell::RefCell;
use std::collections::HashMap;

use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};

use crate::runtime::Reply;

/// The requests of a core waiting for an answer.
#[derive(Debug, Default)]
pub(crate) struct Rpc {
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
}

impl Rpc {
    /// Registers request `id`; its answer arrives on the receiver.
    pub(crate) fn open(&self, id: u64) -> LocalReceiver<Reply> {
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, tx);
        rx
    }

    /// The request is answered or given up.
    pub(crate) fn close(&self, id: u64) {
        self.pending.borrow_mut().remove(&id);
    }

    /// Delivers the answer to request `id`, if its requester still waits.
    pub(crate) fn answer(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            // The requester may have timed out and gone; nothing to do then.
            let _ = tx.try_send(reply);
        }
    }
}
