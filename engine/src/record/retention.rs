//! Retention: segments older than their path's `recordDeleteAfter` are deleted by a task of
//! low priority on the control core (the data cores never walk directories).

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use crate::config::Snapshot;

/// Spawns the retention task on the current (control) executor; `snapshot` gives the live
/// configuration.
pub fn spawn(snapshot: impl Fn() -> Arc<Snapshot> + 'static) {
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(10),
        glommio::Latency::NotImportant,
        "record-retention",
    );
    let task = async move {
        loop {
            let period = super::store::retention_period(&snapshot().config)
                .unwrap_or(Duration::from_secs(60));
            glommio::timer::sleep(period).await;
            let now_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            let deleted = super::store::delete_expired(&snapshot().config, now_us);
            if !deleted.is_empty() {
                info!(count = deleted.len(), first = %deleted[0].display(), "recording segments past recordDeleteAfter deleted");
            }
        }
    };
    if let Ok(task) = glommio::spawn_local_into(task, queue) {
        task.detach();
    }
}
