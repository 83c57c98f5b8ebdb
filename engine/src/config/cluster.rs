//! The `cluster:` section: which Redis holds the stream directory, and how this node is named and
//! reached by the others. Absent, the node runs alone.
//!
//! The Redis URL is read here only as far as the engine needs: to tell a direct server from a
//! Sentinel set, and to show it without its password. The `redis` crate reads the direct form
//! itself; it has no URL form for Sentinel, so that one is taken apart here.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Millis;

/// What a redacted password is shown as (the API's `<redacted>`).
const REDACTED: &str = "<redacted>";

/// `cluster:` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterConf {
    /// `redis://[user:pass@]host:port[/db]`, or
    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/masterName[/db]`.
    pub redis: String,
    /// This node's name in the directory; default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `rtmp://host:port`: where the other nodes pull this node's streams from.
    pub advertise: String,
    /// How long a directory entry lives without being renewed (renewed every third of it).
    #[serde(default = "default_ttl")]
    pub ttl: Millis,
    /// Prefix of every Redis key this cluster writes (several clusters can share one Redis).
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Redis unreachable: publishes are accepted (`true`) or refused (`false`). The issue that
    /// asked for it calls it `clusterFailOpen`; both names are read.
    #[serde(default = "default_fail_open", alias = "clusterFailOpen")]
    pub fail_open: bool,
}

fn default_ttl() -> Millis {
    Millis(10_000)
}

fn default_key_prefix() -> String {
    "corestream:".to_owned()
}

fn default_fail_open() -> bool {
    true
}

impl ClusterConf {
    /// Rules serde cannot express; `Err` names the key and the reason.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        RedisTarget::parse(&self.redis).map_err(|e| ("redis", format!("cluster.redis: {e}")))?;
        advertise_host_port(&self.advertise).map_err(|e| ("advertise", e))?;
        if self.ttl.0 < 1_000 {
            return Err(("ttl", "cluster.ttl must be at least 1s".to_owned()));
        }
        if self.key_prefix.contains(char::is_whitespace) {
            return Err((
                "keyPrefix",
                "cluster.keyPrefix must not contain spaces".to_owned(),
            ));
        }
        if let Some(name) = &self.node_name {
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err((
                    "nodeName",
                    "cluster.nodeName must be a non-empty word".to_owned(),
                ));
            }
        }
        Ok(())
    }

    pub fn ttl(&self) -> Duration {
        self.ttl.duration()
    }
}

/// `rtmp://host:port` split; `Err` says what is wrong.
pub fn advertise_host_port(advertise: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("cluster.advertise `{advertise}`: {why}");
    let rest = advertise
        .strip_prefix("rtmp://")
        .ok_or_else(|| bad("must be rtmp://host:port"))?;
    let rest = rest.trim_end_matches('/');
    if rest.contains(['/', '?', '@']) {
        return Err(bad(
            "must be rtmp://host:port, without a path or credentials",
        ));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("needs a port (rtmp://host:port)"))?;
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    if host.is_empty() || port == 0 {
        return Err(bad("needs a host and a port"));
    }
    Ok((host.to_owned(), port))
}

/// Where the directory lives.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server; the URL as the `redis` crate reads it.
    Direct { url: String },
    /// A Sentinel set that names the master.
    Sentinel(SentinelTarget),
}

/// `redis+sentinel://[user:pass@]host:port[,host:port…]/master[/db]` taken apart. A type of its
/// own so that the cluster worker (which connects with it) and [`RedisTarget::shown`] take it
/// whole and read the fields they need, instead of each spelling out all five.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub sentinels: Vec<(String, u16)>,
    /// The name the Sentinels know the master by.
    pub master: String,
    pub db: i64,
    /// Log-in on the master (not on the Sentinels).
    pub user: Option<String>,
    pub password: Option<String>,
}

impl SentinelTarget {
    /// Each Sentinel as `host:port`.
    pub fn addresses(&self) -> impl Iterator<Item = String> + '_ {
        self.sentinels.iter().map(|(h, p)| format!("{h}:{p}"))
    }
}

/// Debug shows no password.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Direct { url } => write!(f, "Direct({})", redact_url(url)),
            RedisTarget::Sentinel(set) => {
                write!(f, "Sentinel({:?}, {})", set.sentinels, set.master)
            }
        }
    }
}

/// Why a Redis URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisUrlError {
    #[error("`{0}` is not a redis:// or redis+sentinel:// URL")]
    Scheme(String),
    #[error("`{0}` names no host")]
    NoHost(String),
    #[error("`{0}`: `{1}` is not host:port")]
    BadAddress(String, String),
    #[error("`{0}` names no master (redis+sentinel://host:port/masterName)")]
    NoMaster(String),
    #[error("`{0}`: `{1}` is not a database number")]
    BadDb(String, String),
}

impl RedisTarget {
    /// Reads `url`; errors show it with its password redacted.
    pub fn parse(url: &str) -> Result<RedisTarget, RedisUrlError> {
        let shown = redact_url(url);
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            let (userinfo, rest) = match rest.rsplit_once('@') {
                Some((u, r)) => (Some(u), r),
                None => (None, rest),
            };
            let (user, password) = match userinfo {
                Some(u) => match u.split_once(':') {
                    Some((user, pass)) => (
                        Some(user.to_owned()).filter(|u| !u.is_empty()),
                        Some(pass.to_owned()),
                    ),
                    None => (None, Some(u.to_owned())),
                },
                None => (None, None),
            };
            let rest = rest.split('?').next().unwrap_or_default();
            let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
            if hosts.is_empty() {
                return Err(RedisUrlError::NoHost(shown));
            }
            let sentinels = hosts
                .split(',')
                .map(|h| {
                    let (host, port) = match h.rsplit_once(':') {
                        Some((host, port)) => (host, port.parse::<u16>().ok()),
                        None => (h, Some(26379)),
                    };
                    match port {
                        Some(p) if !host.is_empty() => Ok((host.to_owned(), p)),
                        _ => Err(RedisUrlError::BadAddress(shown.clone(), h.to_owned())),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut parts = path.split('/').filter(|p| !p.is_empty());
            let master = parts
                .next()
                .ok_or_else(|| RedisUrlError::NoMaster(shown.clone()))?
                .to_owned();
            let db = match parts.next() {
                Some(d) => d
                    .parse()
                    .map_err(|_| RedisUrlError::BadDb(shown.clone(), d.to_owned()))?,
                None => 0,
            };
            return Ok(RedisTarget::Sentinel(SentinelTarget {
                sentinels,
                master,
                db,
                user,
                password,
            }));
        }
        let Some(rest) = url.strip_prefix("redis://") else {
            return Err(RedisUrlError::Scheme(shown));
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if hostport.is_empty() || hostport.starts_with(':') {
            return Err(RedisUrlError::NoHost(shown));
        }
        if let Some((_, port)) = hostport.rsplit_once(':') {
            if !hostport.ends_with(']') && port.parse::<u16>().is_err() {
                return Err(RedisUrlError::BadAddress(shown, hostport.to_owned()));
            }
        }
        if let Some(db) = rest[authority.len()..]
            .split('?')
            .next()
            .and_then(|p| p.strip_prefix('/'))
            .filter(|p| !p.is_empty())
        {
            if db.parse::<i64>().is_err() {
                return Err(RedisUrlError::BadDb(shown, db.to_owned()));
            }
        }
        Ok(RedisTarget::Direct {
            url: url.to_owned(),
        })
    }

    /// The target as logs and the API show it: no password.
    pub fn shown(&self) -> String {
        match self {
            RedisTarget::Direct { url } => redact_url(url),
            RedisTarget::Sentinel(set) => {
                let hosts: Vec<String> = set.addresses().collect();
                let auth = match (&set.user, &set.password) {
                    (Some(u), Some(_)) => format!("{u}:{REDACTED}@"),
                    (None, Some(_)) => format!(":{REDACTED}@"),
                    (Some(u), None) => format!("{u}@"),
                    (None, None) => String::new(),
                };
                let (master, db) = (&set.master, set.db);
                format!("redis+sentinel://{auth}{}/{master}/{db}", hosts.join(","))
            }
        }
    }
}

/// `scheme://user:pass@rest` with the password replaced (a lone user part is shown as is
/// when there is a colon, replaced when it stands alone: Redis takes `redis://secret@host` as a
/// password).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let shown = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_owned(),
    };
    format!("{scheme}://{shown}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_urls() {
        assert_eq!(
            RedisTarget::parse("redis://127.0.0.1:6379/2").unwrap(),
            RedisTarget::Direct {
                url: "redis://127.0.0.1:6379/2".into()
            }
        );
        assert!(RedisTarget::parse("redis://u:p@host:1").is_ok());
        assert!(matches!(
            RedisTarget::parse("http://host:1"),
            Err(RedisUrlError::Scheme(_))
        ));
        assert!(matches!(
            RedisTarget::parse("redis://:secret@host:x"),
            Err(RedisUrlError::BadAddress(..))
        ));
        assert!(matches!(
            RedisTarget::parse("redis://host:1/db"),
            Err(RedisUrlError::BadDb(..))
        ));
        // The error never carries the password.
        let e = RedisTarget::parse("redis://u:hunter2@host:x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn sentinel_urls() {
        let t = RedisTarget::parse("redis+sentinel://u:pw@a:26379,b:26380/mymaster/3").unwrap();
        assert_eq!(
            t,
            RedisTarget::Sentinel(SentinelTarget {
                sentinels: vec![("a".into(), 26379), ("b".into(), 26380)],
                master: "mymaster".into(),
                db: 3,
                user: Some("u".into()),
                password: Some("pw".into()),
            })
        );
        assert_eq!(
            t.shown(),
            "redis+sentinel://u:<redacted>@a:26379,b:26380/mymaster/3"
        );
        assert!(!format!("{t:?}").contains("pw"));
        assert!(matches!(
            RedisTarget::parse("redis+sentinel://a:1"),
            Err(RedisUrlError::NoMaster(_))
        ));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("redis://u:pw@h:1/0"),
            "redis://u:<redacted>@h:1/0"
        );
        assert_eq!(redact_url("redis://pw@h:1"), "redis://<redacted>@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn config_errors_point_at_the_key_and_hide_the_password() {
        let parse = |t: &str| crate::config::Config::parse_with_env(t, "c.yaml", &[]);
        let ok =
            parse("cluster:\n  redis: redis://127.0.0.1:6379\n  advertise: rtmp://10.0.0.1:1935\n")
                .unwrap();
        let c = ok.cluster.unwrap();
        assert_eq!((c.ttl, c.fail_open), (Millis(10_000), true));
        assert_eq!(c.key_prefix, "corestream:");
        let strict = parse(
            "cluster:\n  redis: redis://h:1\n  advertise: rtmp://h:1\n  clusterFailOpen: no\n",
        )
        .unwrap();
        assert!(!strict.cluster.unwrap().fail_open);
        let e = parse(
            "logLevel: info\ncluster:\n  redis: http://u:hunter2@h\n  advertise: rtmp://h:1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c.yaml:3:1: redis: cluster.redis:"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = parse("cluster:\n  redis: redis://h:1\n  advertise: rtmp://h:1\n  ttl: 500ms\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.yaml:4:1: ttl: cluster.ttl must be at least 1s"),
            "{e}"
        );
        assert!(
            parse("cluster:\n  redis: redis://h:1\n  advertise: rtmp://h:1\n  x: 1\n").is_err()
        );
        // Absent: alone.
        assert!(parse("logLevel: info\n").unwrap().cluster.is_none());
    }

    #[test]
    fn advertise_addresses() {
        assert_eq!(
            advertise_host_port("rtmp://10.0.0.1:1935").unwrap(),
            ("10.0.0.1".into(), 1935)
        );
        assert!(advertise_host_port("rtmp://h").is_err());
        assert!(advertise_host_port("http://h:1").is_err());
        assert!(advertise_host_port("rtmp://h:1/live").is_err());
    }
}
