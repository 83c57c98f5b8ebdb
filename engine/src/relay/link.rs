//! What every relay link (a pulled source, a push target) has: a stop signal, the connection it
//! runs on now, and its status; and the read that turns the connection's outcomes into
//! [`RelayError`]s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::BytesMut;

use super::error::{os_text, RelayError};
use super::status::LinkStatus;
use crate::runtime::{Core, LocalSignal, Notice, PublishHandle, SessionId};
use crate::server::conn::{Conn, ReadOutcome};
use crate::server::net::NetReader;

/// Socket reads go into a buffer this large.
pub(super) const READ_BUFFER: usize = 16 * 1024;

/// One link's control and status.
#[derive(Debug, Default)]
pub(super) struct Link {
    /// Fired to stop the link for good.
    pub(super) stop: LocalSignal,
    /// The connection the link runs on now, to close it when stopped.
    pub(super) session: Cell<Option<SessionId>>,
    pub(super) status: LinkStatus,
    /// A pull of another cluster node's stream: the stream outlives each connection (its
    /// players wait through a failover), see [`Held`].
    pub(super) held: Option<Held>,
}

/// The stream a cluster pull keeps between connections: its players stay attached while the
/// pull finds the stream's new owner, and resume at the new upstream's first keyframe.
#[derive(Default)]
pub(super) struct Held {
    /// The stream, between two connections.
    pub(super) stream: RefCell<Option<PublishHandle>>,
    /// The last timestamp pushed: a new upstream's timeline is moved to continue from it, so
    /// players (and the HLS muxer) see one timeline.
    pub(super) last_timestamp: Cell<Option<u32>>,
    /// Where the next connection goes when the URL's host is the stream's domain rather than
    /// the owner's address.
    pub(super) dial_to: RefCell<Option<(String, u16)>>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("holding", &self.stream.borrow().is_some())
            .field("last_timestamp", &self.last_timestamp.get())
            .finish()
    }
}

impl Link {
    /// Stops the link: its current connection closes, no new one is made.
    pub(super) fn stop(&self, core: &Core) {
        self.stop.fire();
        if let Some(session) = self.session.get() {
            core.notify_session(session, Notice::PathRemoved);
        }
    }

    pub(super) fn is_stopped(&self, core: &Core) -> bool {
        self.stop.is_fired() || core.shutdown_signal().is_fired()
    }

    /// Waits for `delay`, or less if the link is stopped or the engine shuts down.
    pub(super) async fn pause(&self, core: &Core, delay: std::time::Duration) {
        let sleep = glommio::timer::sleep(delay);
        let stopped = futures_lite::future::or(self.stop.wait(), core.shutdown_signal().wait());
        futures_lite::future::or(sleep, stopped).await;
    }
}

/// Reads once from a link's connection, within the core's `readTimeout`.
pub(super) async fn read(
    conn: &Conn,
    reader: &mut NetReader,
    buf: &mut [u8],
    status: &LinkStatus,
) -> Result<usize, RelayError> {
    let timeout = conn.core.snapshot().config.read_timeout.duration();
    read_within(conn, reader, buf, status, Some(timeout)).await
}

/// [`read`] with another timeout, or none (a reader that watches another input's silence).
pub(super) async fn read_within(
    conn: &Conn,
    reader: &mut NetReader,
    buf: &mut [u8],
    status: &LinkStatus,
    timeout: Option<std::time::Duration>,
) -> Result<usize, RelayError> {
    match conn.read(reader, buf, timeout).await {
        ReadOutcome::Data(n) => {
            conn.guard.control.info.add_bytes_in(n as u64);
            status.add_bytes(n as u64);
            Ok(n)
        }
        ReadOutcome::Closed => Err(RelayError::Closed),
        ReadOutcome::TimedOut => Err(RelayError::Timeout("no data for readTimeout")),
        ReadOutcome::Failed(e) => Err(RelayError::Read(os_text(&e))),
        ReadOutcome::Notice(Notice::StreamEnded) => Err(RelayError::Ended),
        ReadOutcome::Notice(Notice::TooSlow) => Err(RelayError::TooSlow),
        ReadOutcome::Notice(_) => Err(RelayError::Stopped),
    }
}

/// Queues what a sans-IO session produced for the connection's writer.
pub(super) fn send(conn: &Conn, out: &mut BytesMut) {
    if !out.is_empty() {
        conn.queue.borrow_mut().push_control(out.split().freeze());
    }
}

/// A registered connection of this core, for the link that runs on it.
pub(super) fn attach(link: &Link, conn: &Conn) {
    link.session.set(Some(conn.guard.id));
    conn.guard.control.info.set_remote(conn.peer);
    conn.guard.control.info.set_queue(Rc::clone(&conn.queue));
}
