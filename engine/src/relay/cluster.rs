//! Cluster pulls: a reader of a stream that is live on another node of the cluster gets it
//! through one pull per stream per node, from the owner the directory names.
//!
//! The pull runs on the key's home core like any on-demand source (it closes after
//! `sourceOnDemandCloseAfter` without readers), but it looks the owner up again before every
//! connection, and its stream outlives each connection ([`Held`](super::link::Held)): when
//! the owner dies and the encoder is republished on another node, the players here stay
//! attached and resume at the new owner's first keyframe.

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::{debug, info, warn};

use super::error::RelayError;
use super::pull::{pull, RtspTransport};
use super::source::{Source, SourceSpec};
use super::status::LinkState;
use super::Relays;
use crate::auth::sign_url;
use crate::cluster::{pull_url, Cluster, Lookup};
use crate::config::cluster::advertise_host_port;
use crate::config::{Config, PathFields};
use crate::registry::{StreamKey, DEFAULT_VHOST};
use crate::runtime::Core;

/// The spec of a cluster pull of `key`: on demand, with the timeouts of the key's path.
pub(super) fn spec(config: &Config, key: &StreamKey) -> SourceSpec {
    let conf = config.path_conf(&key.path());
    let conf = conf.unwrap_or_else(|| {
        PathFields::default().resolve("", &config.path_defaults, config.override_publisher)
    });
    SourceSpec {
        urls: Vec::new(),
        on_demand: true,
        start_timeout: conf.source_on_demand_start_timeout.duration(),
        close_after: conf.source_on_demand_close_after.duration(),
        fingerprint: None,
        rtsp_transport: String::new(),
        cluster: true,
    }
}

/// Between two attempts: a quarter of the directory's `ttl`, within [250 ms, 2 s]. Each one
/// costs one Redis lookup.
fn retry_delay(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(2))
}

/// How long the players of a stream that had an owner wait for a new one (its encoder
/// republished on another node) before they end: twice the directory's `ttl`, at least 5 s.
fn orphan_grace(ttl: Duration) -> Duration {
    (ttl * 2).max(Duration::from_secs(5))
}

/// The domain a pull of `key` goes through: the stream's vhost, or the play domain serving it
/// when that is a publish domain (which admits no reader); `None` for the default vhost.
fn pull_domain(core: &Core, key: &StreamKey) -> Option<String> {
    if key.vhost == DEFAULT_VHOST {
        return None;
    }
    let snapshot = core.snapshot();
    let domain = snapshot.auth.read_domain(&key.vhost).unwrap_or(&key.vhost);
    Some(domain.to_owned())
}

/// The URL base a pull from `advertise` names: `domain` as its host when there is one, so the
/// owner finds the same stream and checks the signature against that domain's rule; the
/// connection goes to `advertise` all the same.
fn via_domain(advertise: &str, domain: Option<&str>) -> String {
    let Some(domain) = domain else {
        return advertise.to_owned();
    };
    match advertise_host_port(advertise) {
        Ok((_, port)) => format!("rtmp://{domain}:{port}"),
        Err(_) => advertise.to_owned(),
    }
}

/// `url` signed with the `url_auth` of `domain`, when it has one: the origin checks the pull
/// like any reader of that domain.
fn signed(core: &Core, key: &StreamKey, domain: Option<&str>, url: String) -> String {
    let snapshot = core.snapshot();
    let Some(rule) = domain.and_then(|d| snapshot.auth.url_auth(d)) else {
        return url;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rand = format!("{:016x}", rand::random::<u64>());
    match sign_url(&url, rule, now, &rand, "0") {
        Ok(signed) => signed,
        Err(e) => {
            warn!(stream = %key, "cluster pull: cannot sign the URL with the domain's url_auth: {e}");
            url
        }
    }
}

/// Keeps `source` pulling `key` from its owner until it is stopped (no readers for
/// `close_after`), the key turns out not to be live anywhere (first lookup), or the stream
/// stays without an owner for [`orphan_grace`] after it had one.
pub(super) async fn run(
    core: Rc<Core>,
    relays: Weak<Relays>,
    source: Rc<Source>,
    cluster: Cluster,
) {
    let key = &source.key;
    let link = &source.link;
    let ttl = cluster.settings.ttl;
    let retry = retry_delay(ttl);
    let mut had_owner = false;
    let mut orphan_since: Option<Instant> = None;
    while !link.is_stopped(&core) {
        let owner = cluster.lookup(key).await;
        if link.is_stopped(&core) {
            break;
        }
        match owner {
            Lookup::Owner { node, advertise } => {
                had_owner = true;
                orphan_since = None;
                let domain = pull_domain(&core, key);
                let base = via_domain(&advertise, domain.as_deref());
                let url = signed(
                    &core,
                    key,
                    domain.as_deref(),
                    pull_url(&base, key, cluster.node()),
                );
                if let (Some(held), Ok((host, port))) =
                    (&link.held, advertise_host_port(&advertise))
                {
                    held.dial_to.replace(Some((host, port)));
                }
                // The hop parameter and any signature stay out of logs and the API.
                let shown = format!("{advertise}/{}/{}", key.app, key.stream);
                link.status.connecting(&shown);
                let error = pull(&core, key, link, &url, None, RtspTransport::Tcp).await;
                if matches!(error, RelayError::Stopped) || link.is_stopped(&core) {
                    break;
                }
                let was_ready = link.status.state() == LinkState::Ready;
                warn!(core = %core.id, stream = %key, owner = %node, url = shown, was_ready, "cluster pull failed: {error}");
                link.status.failed(error.to_string());
            }
            Lookup::NotFound if !had_owner => {
                debug!(core = %core.id, stream = %key, "cluster: the stream is not published on any node");
                if let Some(relays) = relays.upgrade() {
                    relays.cluster_missed(key);
                }
                break;
            }
            Lookup::Unreachable(e) if !had_owner => {
                warn!(core = %core.id, stream = %key, "cluster: cannot look the stream up: {e}");
                if let Some(relays) = relays.upgrade() {
                    relays.cluster_missed(key);
                }
                break;
            }
            Lookup::NotFound | Lookup::Unreachable(_) => {
                let since = *orphan_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= orphan_grace(ttl) {
                    info!(core = %core.id, stream = %key, "cluster: no node has published the stream for the directory's ttl: its players here end");
                    break;
                }
                link.status
                    .failed("no cluster node publishes the stream now".to_owned());
            }
        }
        link.pause(&core, retry).await;
    }
    // The players held through a failover end with the pull.
    if let Some(held) = &link.held {
        held.stream.replace(None);
    }
    link.status.idle();
    if let Some(relays) = relays.upgrade() {
        relays.forget(key, &source);
    }
    info!(core = %core.id, stream = %key, "cluster pull stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_name_the_stream_domain() {
        assert_eq!(
            via_domain("rtmp://10.0.0.2:1935", None),
            "rtmp://10.0.0.2:1935"
        );
        assert_eq!(
            via_domain("rtmp://10.0.0.2:1935", Some("play.example.com")),
            "rtmp://play.example.com:1935"
        );
    }

    #[test]
    fn retries_follow_the_ttl() {
        assert_eq!(
            retry_delay(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(retry_delay(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(
            retry_delay(Duration::from_secs(1)),
            Duration::from_millis(250)
        );
    }
}
