//! The bounded channels between every pair of executors.

use std::rc::Rc;

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use super::{CoreId, CoreMessage};

/// Room in each channel. Media takes most of it; a core that falls this far behind loses frames
/// (and resynchronises on the next keyframe) instead of stalling the publisher's core.
const CHANNEL_CAPACITY: usize = 8192;

/// One executor's ends of the mesh, before they are connected on that executor's thread.
pub struct MeshEnds {
    pub core: CoreId,
    senders: Vec<Option<SharedSender<CoreMessage>>>,
    receivers: Vec<(CoreId, SharedReceiver<CoreMessage>)>,
}

/// Builds a full mesh between `executors` executors (data cores first, then the control core).
pub fn build(executors: usize) -> Vec<MeshEnds> {
    let mut ends: Vec<MeshEnds> = (0..executors)
        .map(|i| MeshEnds {
            core: CoreId(i as u16),
            senders: (0..executors).map(|_| None).collect(),
            receivers: Vec::new(),
        })
        .collect();
    for from in 0..executors {
        for to in 0..executors {
            if from == to {
                continue;
            }
            let (tx, rx) = shared_channel::new_bounded(CHANNEL_CAPACITY);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push((CoreId(from as u16), rx));
        }
    }
    ends
}

/// Connected senders to every other executor, indexed by core.
pub struct Mesh {
    senders: Vec<Option<Rc<ConnectedSender<CoreMessage>>>>,
}

impl MeshEnds {
    /// Connects every end on the current executor. Each connect waits for its peer, so every
    /// executor must run this concurrently with the others; returns the senders and the receivers.
    pub async fn connect(self) -> (Mesh, Vec<(CoreId, ConnectedReceiver<CoreMessage>)>) {
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|(from, rx)| (from, glommio::spawn_local(rx.connect())))
            .collect();
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|tx| tx.map(|tx| glommio::spawn_local(tx.connect())))
            .collect();
        let mut connected_senders = Vec::with_capacity(senders.len());
        for tx in senders {
            connected_senders.push(match tx {
                Some(task) => Some(Rc::new(task.await)),
                None => None,
            });
        }
        let mut connected_receivers = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            connected_receivers.push((from, task.await));
        }
        (
            Mesh {
                senders: connected_senders,
            },
            connected_receivers,
        )
    }
}

impl Mesh {
    /// Sends without waiting. Gives the message back if the channel is full or closed.
    // The message comes back by value only when the channel is full; boxing it would allocate on
    // exactly that overloaded path.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, to: CoreId, msg: CoreMessage) -> Result<(), CoreMessage> {
        match self.senders.get(to.index()).and_then(Option::as_ref) {
            Some(tx) => tx.try_send(msg).map_err(give_back),
            None => Err(msg),
        }
    }

    /// Sends a message that must not be lost: at once if there is room, else from a task that
    /// waits for room, so the caller never blocks.
    pub fn send_reliable(&self, to: CoreId, msg: CoreMessage) {
        if let Err(msg) = self.try_send(to, msg) {
            if let Some(tx) = self.senders.get(to.index()).and_then(Option::as_ref) {
                let tx = tx.clone();
                glommio::spawn_local(async move {
                    if tx.send(msg).await.is_err() {
                        tracing::debug!(to = %to, "core channel closed; message dropped at shutdown");
                    }
                })
                .detach();
            }
        }
    }
}

/// Recovers the message from a failed send (full or closed channel).
fn give_back(err: glommio::GlommioError<CoreMessage>) -> CoreMessage {
    match err {
        glommio::GlommioError::Closed(glommio::ResourceType::Channel(msg))
        | glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg)) => msg,
        // try_send only fails with the two above; anything else carries no message to return.
        other => unreachable!("shared channel try_send failed unexpectedly: {other}"),
    }
}
