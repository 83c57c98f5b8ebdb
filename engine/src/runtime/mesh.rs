//! The bounded channels between every pair of executors.

use std::rc::Rc;

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};

use super::{CoreId, CoreMessage, StreamId};
use crate::media::Frame;

/// Messages a data core can have waiting from all other data cores together. Media takes most
/// of it; a core that falls this far behind one sender loses that sender's frames (and
/// resynchronises on the next keyframe) instead of stalling the publisher's core.
const INBOUND_CAPACITY: usize = 65536;
/// Room in each channel between two data cores, whatever the number of cores: the mesh has
/// cores² channels, each allocated whole up front, and with more cores each pair carries a
/// smaller share of the streams.
const MIN_CHANNEL_CAPACITY: usize = 1024;
const MAX_CHANNEL_CAPACITY: usize = 8192;
/// Room in each channel to and from the control executor, which carries no media: requests of
/// the API and their answers, a few per request per core.
const CONTROL_CHANNEL_CAPACITY: usize = 512;

/// What travels in a channel. Every slot of a channel is allocated (and touched) up front, and
/// the mesh has executors² channels, so a slot must stay small: media, the only traffic with a
/// rate, travels inline; everything else is boxed (one allocation per control message).
enum Envelope {
    Media { stream: StreamId, frame: Frame },
    Boxed(Box<CoreMessage>),
}

impl Envelope {
    fn wrap(msg: CoreMessage) -> Envelope {
        match msg {
            CoreMessage::Media { stream, frame } => Envelope::Media { stream, frame },
            other => Envelope::Boxed(Box::new(other)),
        }
    }

    fn open(self) -> CoreMessage {
        match self {
            Envelope::Media { stream, frame } => CoreMessage::Media { stream, frame },
            Envelope::Boxed(msg) => *msg,
        }
    }
}

/// The receiving end of one channel, connected on its executor.
pub struct MeshReceiver(ConnectedReceiver<Envelope>);

impl MeshReceiver {
    /// The next message; `None` once every sender is gone.
    pub async fn recv(&self) -> Option<CoreMessage> {
        self.0.recv().await.map(Envelope::open)
    }
}

/// One executor's ends of the mesh, before they are connected on that executor's thread.
pub struct MeshEnds {
    pub core: CoreId,
    senders: Vec<Option<SharedSender<Envelope>>>,
    receivers: Vec<(CoreId, SharedReceiver<Envelope>)>,
}

/// Builds a full mesh between `executors` executors (data cores first, then the control core).
pub fn build(executors: usize) -> Vec<MeshEnds> {
    let control = executors - 1;
    let data_capacity = data_channel_capacity(control);
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
            let capacity = if from == control || to == control {
                CONTROL_CHANNEL_CAPACITY
            } else {
                data_capacity
            };
            let (tx, rx) = shared_channel::new_bounded(capacity);
            ends[from].senders[to] = Some(tx);
            ends[to].receivers.push((CoreId(from as u16), rx));
        }
    }
    ends
}

/// The room in each channel between two of `data_cores` data cores.
fn data_channel_capacity(data_cores: usize) -> usize {
    let share = (INBOUND_CAPACITY / data_cores.max(1)).max(1);
    // Rounded down to a power of two: the channel rounds up to one anyway.
    let power_of_two = 1 << (usize::BITS - 1 - share.leading_zeros());
    power_of_two.clamp(MIN_CHANNEL_CAPACITY, MAX_CHANNEL_CAPACITY)
}

/// Connected senders to every other executor, indexed by core.
pub struct Mesh {
    senders: Vec<Option<Rc<ConnectedSender<Envelope>>>>,
}

impl MeshEnds {
    /// Connects every end on the current executor. Each connect waits for its peer, so every
    /// executor must run this concurrently with the others; returns the senders and the receivers.
    pub async fn connect(self) -> (Mesh, Vec<(CoreId, MeshReceiver)>) {
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
            connected_receivers.push((from, MeshReceiver(task.await)));
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
            Some(tx) => tx
                .try_send(Envelope::wrap(msg))
                .map_err(|e| give_back(e).open()),
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
                    if tx.send(Envelope::wrap(msg)).await.is_err() {
                        tracing::debug!(to = %to, "core channel closed; message dropped at shutdown");
                    }
                })
                .detach();
            }
        }
    }
}

/// Recovers the message from a failed send (full or closed channel).
fn give_back(err: glommio::GlommioError<Envelope>) -> Envelope {
    match err {
        glommio::GlommioError::Closed(glommio::ResourceType::Channel(msg))
        | glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg)) => msg,
        // try_send only fails with the two above; anything else carries no message to return.
        other => unreachable!("shared channel try_send failed unexpectedly: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_slot_stays_small() {
        // Up to 8192 slots per channel and cores² channels: 64 bytes is 0.5 MiB a channel.
        assert!(
            std::mem::size_of::<Envelope>() <= 64,
            "{} bytes",
            std::mem::size_of::<Envelope>()
        );
    }

    #[test]
    fn channels_shrink_as_cores_grow() {
        assert_eq!(data_channel_capacity(1), 8192);
        assert_eq!(data_channel_capacity(8), 8192);
        assert_eq!(data_channel_capacity(9), 4096);
        assert_eq!(data_channel_capacity(16), 4096);
        assert_eq!(data_channel_capacity(17), 2048);
        assert_eq!(data_channel_capacity(63), 1024);
        assert_eq!(data_channel_capacity(128), 1024);
        assert_eq!(data_channel_capacity(1000), 1024);
    }

    #[test]
    fn envelopes_give_back_the_message() {
        let msg = CoreMessage::StreamEnd {
            stream: StreamId(7),
        };
        assert!(matches!(
            Envelope::wrap(msg).open(),
            CoreMessage::StreamEnd {
                stream: StreamId(7)
            }
        ));
    }
}
