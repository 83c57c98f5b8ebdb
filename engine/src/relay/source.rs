//! Pulled sources: what a path asks for ([`SourceSpec`]) and the task that keeps one running on
//! the stream key's home core, reconnecting with backoff and failing over between origins.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::backoff::Backoff;
use super::error::RelayError;
use super::link::Link;
use super::pull::pull;
use super::status::{LinkState, SourceView};
use super::url;
use crate::config::PathConf;
use crate::registry::StreamKey;
use crate::runtime::Core;

/// What a path's configuration asks a key's source to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    /// URLs tried in order: the `source`, or each of the `origins` with the stream's name.
    pub urls: Vec<String>,
    /// Started by the first reader and stopped `close_after` after the last one.
    pub on_demand: bool,
    pub start_timeout: Duration,
    pub close_after: Duration,
}

impl SourceSpec {
    /// The source `conf` asks for `key`; `None` for a path fed by publishers.
    pub fn for_path(conf: &PathConf, key: &StreamKey) -> Option<SourceSpec> {
        let (urls, on_demand) = if conf.source != "publisher" {
            (vec![conf.source.clone()], conf.source_on_demand)
        } else if !conf.origins.is_empty() {
            let urls = conf
                .origins
                .iter()
                .map(|o| url::join_stream(o, &key.stream))
                .collect();
            (urls, true)
        } else {
            return None;
        };
        Some(SourceSpec {
            urls,
            on_demand,
            start_timeout: conf.source_on_demand_start_timeout.duration(),
            close_after: conf.source_on_demand_close_after.duration(),
        })
    }
}

/// A running source.
#[derive(Debug)]
pub(super) struct Source {
    pub(super) key: StreamKey,
    pub(super) spec: SourceSpec,
    pub(super) link: Link,
    /// Since when an on-demand source has had no readers.
    pub(super) idle_since: Cell<Option<Instant>>,
}

impl Source {
    pub(super) fn new(key: StreamKey, spec: SourceSpec) -> Source {
        Source {
            key,
            spec,
            link: Link::default(),
            idle_since: Cell::new(None),
        }
    }

    pub(super) fn view(&self) -> SourceView {
        let url = match self.link.status.url() {
            u if u.is_empty() => self.spec.urls.first().cloned().unwrap_or_default(),
            u => u,
        };
        let (last_error, last_error_ms) = match self.link.status.last_error() {
            Some((e, ms)) => (Some(e), Some(ms)),
            None => (None, None),
        };
        SourceView {
            path: self.key.path(),
            kind: if url.starts_with("http") {
                "httpFlvSource"
            } else {
                "rtmpSource"
            },
            url,
            on_demand: self.spec.on_demand,
            state: self.link.status.state(),
            last_error,
            last_error_ms,
            bytes_received: self.link.status.bytes(),
        }
    }
}

/// Keeps `source` pulling until it is stopped: each URL in turn (the next at once after a
/// failure), then a backoff once every URL failed; a source that was ready starts over from the
/// first URL after the shortest backoff.
pub(super) async fn run(core: Rc<Core>, source: Rc<Source>) {
    let mut backoff = Backoff::default();
    let mut index = 0;
    let link = &source.link;
    while !link.is_stopped(&core) {
        let url = source.spec.urls[index].clone();
        link.status.connecting(&url);
        let error = pull(&core, &source.key, link, &url).await;
        let was_ready = link.status.state() == LinkState::Ready;
        if matches!(error, RelayError::Stopped) || link.is_stopped(&core) {
            break;
        }
        warn!(core = %core.id, stream = %source.key, url, "source failed: {error}");
        link.status.failed(error.to_string());
        if was_ready {
            backoff.reset();
            index = 0;
        } else if index + 1 < source.spec.urls.len() {
            index += 1;
            continue;
        } else {
            index = 0;
        }
        link.pause(&core, backoff.next_delay()).await;
    }
    link.status.idle();
    info!(core = %core.id, stream = %source.key, "source stopped");
}
