//! The control core's end of the mesh: scatter a request to every data core, gather the answers.
//!
//! The control core never touches a data core's state; it asks with a [`CoreMessage`] carrying a
//! [`ReplyTo`] and waits for each [`CoreMessage::Reply`]. Channels are FIFO per pair of cores, so a
//! gather sent after a [`CoreMessage::ConfigUpdate`] is answered only once that update was applied:
//! [`ControlLink::apply_config`] uses that as its barrier.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalSender};

use super::{scoped_id, CoreId, CoreMessage, Mesh, Reply, ReplyTo};
use crate::config::Snapshot;

/// How long the control core waits for a data core's answer.
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

/// Upper bounds (seconds) of the mesh round-trip histogram's buckets.
pub const ROUND_TRIP_BUCKETS: [f64; 8] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0];

/// A latency histogram with fixed buckets, plain integers (one core writes it).
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts per bucket of [`ROUND_TRIP_BUCKETS`], not cumulative; the last slot is `+Inf`.
    pub counts: [u64; ROUND_TRIP_BUCKETS.len() + 1],
    pub sum_seconds: f64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&mut self, seconds: f64) {
        let i = ROUND_TRIP_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(ROUND_TRIP_BUCKETS.len());
        self.counts[i] += 1;
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// The control core's link to the data cores. Lives in an `Rc` on the control executor.
pub struct ControlLink {
    pub id: CoreId,
    pub data_cores: usize,
    mesh: Mesh,
    pending: RefCell<HashMap<u64, LocalSender<Reply>>>,
    next_id: Cell<u64>,
    /// Request-to-answer time of every data core's reply.
    round_trip: RefCell<Histogram>,
}

impl ControlLink {
    pub fn new(id: CoreId, data_cores: usize, mesh: Mesh) -> Rc<ControlLink> {
        Rc::new(ControlLink {
            id,
            data_cores,
            mesh,
            pending: RefCell::default(),
            next_id: Cell::new(1),
            round_trip: RefCell::default(),
        })
    }

    /// Handles a message from a data core: only replies are addressed to the control core.
    pub fn handle(&self, msg: CoreMessage) {
        if let CoreMessage::Reply { request, reply } = msg {
            if let Some(tx) = self.pending.borrow_mut().remove(&request) {
                // The asker may have timed out; nothing to do then.
                let _ = tx.try_send(reply);
            }
        }
    }

    /// Sends a request built by `build` to every data core and returns each core's answer, in
    /// core order; `None` for a core that did not answer in time.
    pub async fn scatter(&self, build: impl Fn(ReplyTo) -> CoreMessage) -> Vec<Option<Reply>> {
        let started = Instant::now();
        let mut waiting = Vec::with_capacity(self.data_cores);
        for core in 0..self.data_cores {
            let n = self.next_id.get();
            self.next_id.set(n + 1);
            let request = scoped_id(self.id, n);
            let (tx, rx) = local_channel::new_bounded(1);
            self.pending.borrow_mut().insert(request, tx);
            self.mesh.send_reliable(
                CoreId(core as u16),
                build(ReplyTo {
                    core: self.id,
                    request,
                }),
            );
            waiting.push((request, rx));
        }
        let mut answers = Vec::with_capacity(waiting.len());
        for (request, rx) in waiting {
            let left = GATHER_TIMEOUT.saturating_sub(started.elapsed());
            let answer = glommio::timer::timeout(left, async { Ok(rx.recv().await) })
                .await
                .ok()
                .flatten();
            if answer.is_some() {
                self.round_trip
                    .borrow_mut()
                    .record(started.elapsed().as_secs_f64());
            }
            self.pending.borrow_mut().remove(&request);
            answers.push(answer);
        }
        answers
    }

    /// Hands `snapshot` to every data core and waits until each has applied it; false if a core
    /// did not confirm in time (it still applies the update when it gets to it).
    pub async fn apply_config(&self, snapshot: &Arc<Snapshot>) -> bool {
        for core in 0..self.data_cores {
            self.mesh.send_reliable(
                CoreId(core as u16),
                CoreMessage::ConfigUpdate(snapshot.clone()),
            );
        }
        self.scatter(|reply| CoreMessage::GatherStats { reply })
            .await
            .iter()
            .all(Option::is_some)
    }

    /// Tells every data core to stop.
    pub fn shutdown(&self) {
        for core in 0..self.data_cores {
            self.mesh
                .send_reliable(CoreId(core as u16), CoreMessage::Shutdown);
        }
    }

    pub fn round_trip(&self) -> Histogram {
        self.round_trip.borrow().clone()
    }
}
