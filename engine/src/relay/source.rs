//! Pulled sources: what a path asks for ([`SourceSpec`]) and the task that keeps one running on
//! the stream key's home core, reconnecting with backoff and failing over between origins.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::backoff::Backoff;
use super::error::RelayError;
use super::link::{Held, Link};
use super::pull::{pull, RtspTransport};
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
    /// `sourceFingerprint`: the pinned certificate of an `https://` or `rtmps://` source (or
    /// origin).
    pub fingerprint: Option<String>,
    /// `rtspTransport` of an `rtsp://` source: `automatic`, `tcp` or `udp`.
    pub rtsp_transport: String,
    /// A pull of another cluster node's stream, from the owner the directory names (the
    /// `urls` are looked up before each connection, see `relay/cluster.rs`).
    pub cluster: bool,
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
            fingerprint: conf.source_fingerprint.clone(),
            rtsp_transport: conf.rtsp_transport.clone(),
            cluster: false,
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
        let link = Link {
            held: spec.cluster.then(Held::default),
            ..Link::default()
        };
        Source {
            key,
            spec,
            link,
            idle_since: Cell::new(None),
        }
    }

    pub(super) fn view(&self) -> SourceView {
        let url = match self.link.status.url() {
            u if u.is_empty() => self
                .spec
                .urls
                .first()
                .map(|u| url::redact(u))
                .unwrap_or_default(),
            u => u,
        };
        let (last_error, last_error_ms) = match self.link.status.last_error() {
            Some((e, ms)) => (Some(e), Some(ms)),
            None => (None, None),
        };
        SourceView {
            path: self.key.path(),
            kind: self
                .spec
                .urls
                .first()
                .and_then(|u| crate::config::source_type(u))
                .unwrap_or("rtmpSource"),
            url,
            on_demand: self.spec.on_demand,
            state: self.link.status.state(),
            last_error,
            last_error_ms,
            bytes_received: self.link.status.bytes(),
        }
    }
}

/// After attempt `index` of `urls` failed: which URL to try next, and how long to wait first.
/// A link that had worked starts over from the first URL after the shortest backoff; otherwise
/// the next URL is tried at once, and a backoff follows a whole round of failures.
fn after_failure(
    index: usize,
    urls: usize,
    was_ready: bool,
    backoff: &mut Backoff,
) -> (usize, Option<Duration>) {
    if was_ready {
        backoff.reset();
        (0, Some(backoff.next_delay()))
    } else if index + 1 < urls {
        (index + 1, None)
    } else {
        (0, Some(backoff.next_delay()))
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
        let shown = url::redact(&url);
        link.status.connecting(&shown);
        let fingerprint = source.spec.fingerprint.as_deref();
        let transport = RtspTransport::from_conf(&source.spec.rtsp_transport);
        let error = pull(&core, &source.key, link, &url, fingerprint, transport).await;
        let was_ready = link.status.state() == LinkState::Ready;
        if matches!(error, RelayError::Stopped) || link.is_stopped(&core) {
            break;
        }
        let error = url::hide_credentials(&error.to_string(), &url);
        warn!(core = %core.id, stream = %source.key, url = shown, "source failed: {error}");
        link.status.failed(error);
        let (next, wait) = after_failure(index, source.spec.urls.len(), was_ready, &mut backoff);
        index = next;
        if let Some(delay) = wait {
            link.pause(&core, delay).await;
        }
    }
    link.status.idle();
    info!(core = %core.id, stream = %source.key, "source stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Millis, PathFields};
    use crate::registry::DEFAULT_VHOST;

    #[test]
    fn failover_walks_the_origins_then_backs_off() {
        let mut b = Backoff::default();
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        // Three origins all down: two immediate failovers, then 1 s; the next round waits 2 s.
        assert_eq!(after_failure(0, 3, false, &mut b), (1, None));
        let (i, d) = after_failure(1, 3, false, &mut b);
        assert_eq!((i, d), (2, None));
        let (i, d) = after_failure(2, 3, false, &mut b);
        assert_eq!((i, secs(d)), (0, Some(1)));
        assert_eq!(after_failure(0, 3, false, &mut b).0, 1);
        let (_, d) = after_failure(2, 3, false, &mut b);
        assert_eq!(secs(d), Some(2));
        // A source that was live and dropped starts over from the first origin, quickly.
        let (i, d) = after_failure(1, 3, true, &mut b);
        assert_eq!((i, secs(d)), (0, Some(1)));
        // A single static URL just backs off.
        let mut single = Backoff::default();
        let waits: Vec<_> = (0..3)
            .map(|_| secs(after_failure(0, 1, false, &mut single).1))
            .collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4)]);
    }

    #[test]
    fn specs_from_paths() {
        let key = StreamKey::new(DEFAULT_VHOST, "live", "cam");
        let resolve = |f: PathFields| f.resolve("x", &PathFields::default(), false);
        assert_eq!(
            SourceSpec::for_path(&resolve(PathFields::default()), &key),
            None
        );
        let pulled = resolve(PathFields {
            source: Some("rtmp://o/live/cam".into()),
            source_on_demand_start_timeout: Some(Millis(2_000)),
            ..PathFields::default()
        });
        let spec = SourceSpec::for_path(&pulled, &key).unwrap();
        assert_eq!(spec.urls, ["rtmp://o/live/cam"]);
        assert!(!spec.on_demand);
        assert_eq!(spec.start_timeout, Duration::from_secs(2));
        let edge = resolve(PathFields {
            origins: Some(vec!["rtmp://o1/live".into(), "rtmp://o2:1936/live".into()]),
            ..PathFields::default()
        });
        let spec = SourceSpec::for_path(&edge, &key).unwrap();
        assert_eq!(spec.urls, ["rtmp://o1/live/cam", "rtmp://o2:1936/live/cam"]);
        assert!(spec.on_demand, "edges pull on demand");
    }
}
