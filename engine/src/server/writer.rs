//! The task that drains a connection's [`PlayerQueue`] into its socket.

use std::cell::RefCell;
use std::rc::Rc;

use super::net::{NetWriter, MAX_IOVECS};
use crate::media::{wait_for_items, PlayerQueue};
use crate::runtime::Core;

/// Writes whatever the queue holds, one merged `sendmsg` per batch, until the queue is closed and
/// empty or the socket fails. Returns the socket error, if any.
pub(crate) async fn drain_queue(
    queue: Rc<RefCell<PlayerQueue>>,
    mut writer: NetWriter,
    core: Rc<Core>,
) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(MAX_IOVECS);
    loop {
        let more = wait_for_items(&queue).await;
        if !more {
            return Ok(());
        }
        queue.borrow_mut().take_batch(&mut batch, MAX_IOVECS);
        let written = writer.write_all(&mut batch).await?;
        core.add_bytes_sent(written as u64);
    }
}
