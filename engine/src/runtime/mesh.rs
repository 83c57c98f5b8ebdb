//! The bounded channels between every pair of executors.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
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
    build_with(executors, data_channel_capacity(executors - 1))
}

/// [`build`] with `data_capacity` slots in each channel between two data cores.
fn build_with(executors: usize, data_capacity: usize) -> Vec<MeshEnds> {
    let control = executors - 1;
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
    senders: Vec<Option<Rc<Outbound>>>,
}

/// One destination: its channel and, in order, the messages that must not be lost and found the
/// channel full. While any waits, nothing else is sent to that core, so no message overtakes
/// one sent before it (media never arrives before the start of its stream).
struct Outbound {
    tx: ConnectedSender<Envelope>,
    backlog: RefCell<VecDeque<Envelope>>,
    /// A task is sending the backlog (its head may be out of the queue, on its way).
    draining: Cell<bool>,
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
                Some(task) => Some(Rc::new(Outbound {
                    tx: task.await,
                    backlog: RefCell::default(),
                    draining: Cell::new(false),
                })),
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
    /// Sends without waiting. Gives the message back if the channel is full or closed, or if
    /// messages that must not be lost are still waiting for room (this one would overtake them).
    // The message comes back by value only when the channel is full; boxing it would allocate on
    // exactly that overloaded path.
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, to: CoreId, msg: CoreMessage) -> Result<(), CoreMessage> {
        match self.senders.get(to.index()).and_then(Option::as_ref) {
            Some(out) if !out.draining.get() => out
                .tx
                .try_send(Envelope::wrap(msg))
                .map_err(|e| give_back(e).open()),
            _ => Err(msg),
        }
    }

    /// Sends a message that must not be lost: at once if there is room and nothing waits before
    /// it, else after everything that waits, from a task that waits for room, so the caller never
    /// blocks and the order of messages to one core is kept.
    pub fn send_reliable(&self, to: CoreId, msg: CoreMessage) {
        let Some(out) = self.senders.get(to.index()).and_then(Option::as_ref) else {
            return;
        };
        let envelope = Envelope::wrap(msg);
        let envelope = if !out.draining.get() {
            match out.tx.try_send(envelope) {
                Ok(()) => return,
                Err(e) => give_back(e),
            }
        } else {
            envelope
        };
        out.backlog.borrow_mut().push_back(envelope);
        if !out.draining.replace(true) {
            let out = out.clone();
            glommio::spawn_local(async move {
                loop {
                    let next = out.backlog.borrow_mut().pop_front();
                    let Some(envelope) = next else {
                        break;
                    };
                    if out.tx.send(envelope).await.is_err() {
                        tracing::debug!(to = %to, "core channel closed; messages dropped at shutdown");
                        out.backlog.borrow_mut().clear();
                        break;
                    }
                }
                out.draining.set(false);
            })
            .detach();
        }
    }

    /// Whether messages to `to` wait for room (and media to it is refused meanwhile).
    pub fn is_waiting(&self, to: CoreId) -> bool {
        self.senders
            .get(to.index())
            .and_then(Option::as_ref)
            .is_some_and(|out| out.draining.get())
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

    /// A message that must not be lost and finds the channel full waits, and nothing sent after
    /// it overtakes it: media offered meanwhile is refused (the sender drops it and marks that
    /// core lagging), and once the backlog is through, media flows again.
    #[test]
    fn nothing_overtakes_a_message_waiting_for_room() {
        use glommio::{LocalExecutorBuilder, Placement};
        use std::sync::{Arc, Barrier};

        const CAPACITY: usize = 4;
        // Two data cores and the control executor (which only has to connect).
        let mut ends = build_with(3, CAPACITY).into_iter();
        let (a, b, c) = (
            ends.next().unwrap(),
            ends.next().unwrap(),
            ends.next().unwrap(),
        );
        let filled = Arc::new(Barrier::new(2));
        let media = |n: u32| CoreMessage::Media {
            stream: StreamId(1),
            frame: Frame::new(crate::media::MediaKind::Video, n, bytes::Bytes::new()),
        };
        let sender_filled = filled.clone();
        let sender = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let (mesh, _rx) = a.connect().await;
                let to = CoreId(1);
                let mut sent = 0;
                while mesh.try_send(to, media(sent)).is_ok() {
                    sent += 1;
                }
                assert!(sent >= CAPACITY as u32, "the channel holds its capacity");
                mesh.send_reliable(
                    to,
                    CoreMessage::StreamEnd {
                        stream: StreamId(9),
                    },
                );
                assert!(mesh.is_waiting(to));
                assert!(
                    mesh.try_send(to, media(1000)).is_err(),
                    "media must not overtake the waiting message"
                );
                sender_filled.wait();
                // The receiver drains; the backlog goes through, then media flows again.
                while mesh.is_waiting(to) {
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                while mesh.try_send(to, media(2000)).is_err() {
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                sent
            })
            .unwrap();
        let receiver = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let (_mesh, rx) = b.connect().await;
                filled.wait();
                let from_a = &rx.iter().find(|(from, _)| *from == CoreId(0)).unwrap().1;
                let mut seen = Vec::new();
                loop {
                    match from_a.recv().await.unwrap() {
                        CoreMessage::Media { frame, .. } if frame.timestamp == 2000 => break,
                        CoreMessage::Media { frame, .. } => seen.push(frame.timestamp),
                        CoreMessage::StreamEnd { stream } => seen.push(10_000 + stream.0 as u32),
                        _ => unreachable!(),
                    }
                }
                seen
            })
            .unwrap();
        let control = LocalExecutorBuilder::new(Placement::Unbound)
            .spawn(move || async move {
                let _ = c.connect().await;
            })
            .unwrap();
        let sent = sender.join().unwrap();
        let seen = receiver.join().unwrap();
        control.join().unwrap();
        let mut expected: Vec<u32> = (0..sent).collect();
        expected.push(10_009);
        assert_eq!(seen, expected);
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
