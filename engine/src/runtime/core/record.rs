//! Recording on a core: each stream this core owns (its publisher is here) is recorded by a
//! [`Recorder`] of its own when its path says `record: yes`; a configuration change starts,
//! ends or restarts recordings without touching the streams or their players.

use std::cell::RefCell;
use std::rc::Rc;

use super::Core;
use crate::config::{Config, PathFields};
use crate::record::{RecordPlan, RecordStats, Recorder};
use crate::registry::{LocalStream, Upstream};

impl Core {
    /// What the configuration asks of the recording of `path`.
    fn record_plan(config: &Config, path: &str) -> Option<RecordPlan> {
        let conf = config.path_conf(path).unwrap_or_else(|| {
            PathFields::default().resolve(path, &config.path_defaults, config.override_publisher)
        });
        RecordPlan::of(path, &conf)
    }

    /// The counters of `path`'s recordings on this core, kept across its publishers.
    fn record_stats(&self, path: &str) -> Rc<RefCell<RecordStats>> {
        self.record_stats
            .borrow_mut()
            .entry(path.to_owned())
            .or_default()
            .clone()
    }

    /// Starts, ends or restarts the recording of a stream this core owns, as its path's
    /// configuration asks.
    pub(super) fn apply_recording(&self, stream: &mut LocalStream) {
        // Mirrors, and pulls of another cluster node's stream (recorded by its owner), are not
        // recorded here.
        if !matches!(stream.upstream, Upstream::Publisher(_)) || stream.cluster_mirror {
            return;
        }
        let path = stream.key.path();
        let plan = Self::record_plan(&self.snapshot().config, &path);
        if stream.recorder().map(Recorder::plan) == plan.as_ref() {
            return;
        }
        if let Some(old) = stream.take_recorder() {
            old.finish();
        }
        if let Some(plan) = plan {
            let stats = self.record_stats(&path);
            stream.set_recorder(Recorder::start(plan, stats));
        }
    }

    /// After a configuration change: every owned stream's recording as its path now asks.
    pub(super) fn apply_recordings(&self) {
        for (_, stream) in self.streams.entries() {
            self.apply_recording(&mut stream.borrow_mut());
        }
    }

    /// Each path's recording counters, for the API and `/metrics`.
    pub(super) fn record_views(&self) -> Vec<(String, RecordStats)> {
        self.record_stats
            .borrow()
            .iter()
            .map(|(path, stats)| (path.clone(), stats.borrow().clone()))
            .collect()
    }
}
