//! HLS sessions: how HLS viewers, who hold no connection, are known one by one (MediaMTX's
//! `/v3/hlssessions`). A viewer's first playlist request opens a session on the stream key's home
//! core and is redirected to the same playlist with the session's secret in a `session` query
//! parameter, which the playlist then carries onto every media URI; each later request names the
//! session by that secret, from the address that opened it. A session unused for
//! [`SESSION_CLOSE_AFTER`] closes; a playlist request naming it later opens it again under the
//! same secret (a player paused for a while keeps its URL, and one session). A kicked secret is
//! refused for [`KICKED_REMEMBERED`].
//!
//! The table is plain state on the home core, fed the time by its caller.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::conn::{unix_ms, ConnUuid};
use crate::registry::StreamKey;

/// MediaMTX's: a session without a request for this long closes.
pub const SESSION_CLOSE_AFTER: Duration = Duration::from_secs(30);
/// How long a kicked session's secret is refused: long enough for any player to give up.
pub const KICKED_REMEMBERED: Duration = Duration::from_secs(600);
/// The query parameter that carries a session's secret (MediaMTX's name).
pub const SESSION_QUERY_PARAM: &str = "session";
/// The cookie that may carry it instead (MediaMTX's name).
pub const SESSION_COOKIE: &str = "hlsSession";

/// What a request names: the session's secret, and the address it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsSessionRef {
    pub secret: ConnUuid,
    pub ip: IpAddr,
}

/// How a request's session stands, as the home core found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HlsSessionCheck {
    /// The request named no session, or its answer came later (a parked request, checked when
    /// it was parked).
    #[default]
    NotAsked,
    /// A session of this key from this address: the request counts as its.
    Valid,
    /// No such session of this key from this address (closed as inactive, opened on another
    /// key or address, or never opened): a playlist request gets one.
    Unknown,
    /// Kicked through the API: refused.
    Kicked,
}

/// What the viewer told about itself when its session opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsSessionOpening {
    pub remote: Option<SocketAddr>,
    /// The first request's query, without the session's own parameters.
    pub query: String,
    pub user: String,
    pub user_agent: String,
}

/// One session as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsSessionView {
    pub id: ConnUuid,
    pub created_ms: u64,
    pub path: String,
    pub opening: HlsSessionOpening,
    pub outbound_bytes: u64,
}

#[derive(Debug)]
struct HlsSession {
    id: ConnUuid,
    key: StreamKey,
    ip: Option<IpAddr>,
    created_ms: u64,
    opening: HlsSessionOpening,
    last_request: Instant,
    outbound_bytes: u64,
}

/// A session that closed, for the caller to log and release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedHlsSession {
    pub id: ConnUuid,
    pub key: StreamKey,
}

/// The HLS sessions of the keys whose home is this core, by secret.
#[derive(Debug, Default)]
pub struct HlsSessions {
    by_secret: HashMap<ConnUuid, HlsSession>,
    /// Secrets of kicked sessions, until they would have closed anyway.
    kicked: HashMap<ConnUuid, Instant>,
}

impl HlsSessions {
    /// Opens a session of `key` for the viewer; its `(id, secret)`. The id is a random v4 UUID,
    /// public (the API shows it); the secret, known only to the viewer, is `reuse` when the
    /// viewer names one that no session and no kick holds, else a new random one.
    pub fn open(
        &mut self,
        key: &StreamKey,
        opening: HlsSessionOpening,
        reuse: Option<ConnUuid>,
        now: Instant,
    ) -> (ConnUuid, ConnUuid) {
        let id = ConnUuid::new_v4();
        let secret = reuse
            .filter(|s| !self.by_secret.contains_key(s) && !self.kicked.contains_key(s))
            .unwrap_or_else(ConnUuid::new_v4);
        self.by_secret.insert(
            secret,
            HlsSession {
                id,
                key: key.clone(),
                ip: opening.remote.map(|a| a.ip()),
                created_ms: unix_ms(),
                opening,
                last_request: now,
                outbound_bytes: 0,
            },
        );
        (id, secret)
    }

    /// Checks a request of `key` naming `session`; a valid one counts as used now.
    pub fn check(
        &mut self,
        key: &StreamKey,
        session: &HlsSessionRef,
        now: Instant,
    ) -> HlsSessionCheck {
        if self.kicked.contains_key(&session.secret) {
            return HlsSessionCheck::Kicked;
        }
        match self.by_secret.get_mut(&session.secret) {
            Some(s) if s.key == *key && s.ip.is_none_or(|ip| ip == session.ip) => {
                s.last_request = now;
                HlsSessionCheck::Valid
            }
            _ => HlsSessionCheck::Unknown,
        }
    }

    /// Counts `bytes` sent to the session (bodies, as MediaMTX counts them).
    pub fn add_sent(&mut self, secret: &ConnUuid, bytes: u64) {
        if let Some(s) = self.by_secret.get_mut(secret) {
            s.outbound_bytes += bytes;
        }
    }

    /// Closes the session with public id `id`; its secret is refused from now on.
    pub fn kick(&mut self, id: ConnUuid, now: Instant) -> Option<ClosedHlsSession> {
        let secret = *self.by_secret.iter().find(|(_, s)| s.id == id)?.0;
        let s = self.by_secret.remove(&secret)?;
        self.kicked.insert(secret, now);
        Some(closed(s))
    }

    /// Closes the sessions unused for [`SESSION_CLOSE_AFTER`] and forgets kicked secrets older
    /// than [`KICKED_REMEMBERED`].
    pub fn expire(&mut self, now: Instant) -> Vec<ClosedHlsSession> {
        self.kicked
            .retain(|_, at| now.duration_since(*at) < KICKED_REMEMBERED);
        let idle: Vec<ConnUuid> = self
            .by_secret
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_request) >= SESSION_CLOSE_AFTER)
            .map(|(secret, _)| *secret)
            .collect();
        idle.iter()
            .filter_map(|secret| self.by_secret.remove(secret))
            .map(closed)
            .collect()
    }

    /// How many sessions read `key`.
    pub fn count(&self, key: &StreamKey) -> usize {
        self.by_secret.values().filter(|s| s.key == *key).count()
    }

    pub fn views(&self) -> Vec<HlsSessionView> {
        self.by_secret
            .values()
            .map(|s| HlsSessionView {
                id: s.id,
                created_ms: s.created_ms,
                path: s.key.path(),
                opening: s.opening.clone(),
                outbound_bytes: s.outbound_bytes,
            })
            .collect()
    }
}

fn closed(s: HlsSession) -> ClosedHlsSession {
    ClosedHlsSession {
        id: s.id,
        key: s.key,
    }
}

/// The secret a request names: its `session` query parameter, else its `hlsSession` cookie.
/// `None` if it names none or one that is not a UUID.
pub fn requested_secret(query: &str, cookie: Option<&str>) -> Option<ConnUuid> {
    let from_query = query
        .split('&')
        .find_map(|p| p.strip_prefix(SESSION_QUERY_PARAM)?.strip_prefix('='));
    let from_cookie = || {
        cookie?
            .split(';')
            .find_map(|c| c.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
    };
    from_query.or_else(from_cookie)?.parse().ok()
}

/// `query` without the session's own parameters (`session`, and MediaMTX's `cookieCheck`).
pub fn query_without_session(query: &str) -> String {
    query
        .split('&')
        .filter(|p| {
            let name = p.split('=').next().unwrap_or_default();
            !p.is_empty() && name != SESSION_QUERY_PARAM && name != "cookieCheck"
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stream: &str) -> StreamKey {
        StreamKey::new("__defaultVhost__", "live", stream)
    }

    fn opening(ip: &str) -> HlsSessionOpening {
        HlsSessionOpening {
            remote: Some(SocketAddr::new(ip.parse().unwrap(), 40000)),
            query: "token=x".into(),
            user: String::new(),
            user_agent: "test".into(),
        }
    }

    fn asked(secret: ConnUuid, ip: &str) -> HlsSessionRef {
        HlsSessionRef {
            secret,
            ip: ip.parse().unwrap(),
        }
    }

    #[test]
    fn a_session_is_valid_only_for_its_key_and_address() {
        let mut table = HlsSessions::default();
        let now = Instant::now();
        let (id, secret) = table.open(&key("a"), opening("10.0.0.1"), None, now);
        assert_ne!(id, secret);
        let check = |t: &mut HlsSessions, k: &StreamKey, ip| t.check(k, &asked(secret, ip), now);
        assert_eq!(
            check(&mut table, &key("a"), "10.0.0.1"),
            HlsSessionCheck::Valid
        );
        assert_eq!(
            check(&mut table, &key("b"), "10.0.0.1"),
            HlsSessionCheck::Unknown
        );
        assert_eq!(
            check(&mut table, &key("a"), "10.0.0.2"),
            HlsSessionCheck::Unknown
        );
        let other = asked(ConnUuid::new_v4(), "10.0.0.1");
        assert_eq!(
            table.check(&key("a"), &other, now),
            HlsSessionCheck::Unknown
        );
        assert_eq!(table.count(&key("a")), 1);
        assert_eq!(table.count(&key("b")), 0);
    }

    #[test]
    fn sessions_close_after_thirty_idle_seconds_and_requests_keep_them() {
        let mut table = HlsSessions::default();
        let t0 = Instant::now();
        let (_, busy) = table.open(&key("a"), opening("10.0.0.1"), None, t0);
        let (idle_id, _) = table.open(&key("a"), opening("10.0.0.1"), None, t0);
        let t1 = t0 + Duration::from_secs(20);
        assert_eq!(
            table.check(&key("a"), &asked(busy, "10.0.0.1"), t1),
            HlsSessionCheck::Valid
        );
        assert!(table.expire(t1).is_empty());
        let closed = table.expire(t0 + SESSION_CLOSE_AFTER);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].id, idle_id);
        assert_eq!(table.views().len(), 1);
        assert_eq!(table.expire(t1 + SESSION_CLOSE_AFTER).len(), 1);
        assert!(table.views().is_empty());
    }

    #[test]
    fn a_kicked_secret_is_refused_until_it_would_have_expired() {
        let mut table = HlsSessions::default();
        let t0 = Instant::now();
        let (id, secret) = table.open(&key("a"), opening("10.0.0.1"), None, t0);
        table.add_sent(&secret, 1000);
        assert_eq!(table.views()[0].outbound_bytes, 1000);
        assert_eq!(table.kick(id, t0).unwrap().id, id);
        assert!(table.kick(id, t0).is_none());
        let ask = asked(secret, "10.0.0.1");
        assert_eq!(table.check(&key("a"), &ask, t0), HlsSessionCheck::Kicked);
        // Still refused after the session would have closed, and not opened again under it.
        let later = t0 + SESSION_CLOSE_AFTER;
        table.expire(later);
        assert_eq!(table.check(&key("a"), &ask, later), HlsSessionCheck::Kicked);
        let (_, other) = table.open(&key("a"), opening("10.0.0.1"), Some(secret), later);
        assert_ne!(other, secret);
        let much_later = t0 + KICKED_REMEMBERED;
        table.expire(much_later);
        assert_eq!(
            table.check(&key("a"), &ask, much_later),
            HlsSessionCheck::Unknown
        );
    }

    #[test]
    fn a_closed_session_opens_again_under_its_secret_but_a_held_one_is_not_shared() {
        let mut table = HlsSessions::default();
        let t0 = Instant::now();
        let (id, secret) = table.open(&key("a"), opening("10.0.0.1"), None, t0);
        // Another viewer naming a secret that a session holds gets a secret of its own.
        let (_, taken) = table.open(&key("a"), opening("10.0.0.2"), Some(secret), t0);
        assert_ne!(taken, secret);
        let later = t0 + SESSION_CLOSE_AFTER + Duration::from_secs(10);
        assert_eq!(table.expire(later).len(), 2);
        let ask = asked(secret, "10.0.0.1");
        assert_eq!(
            table.check(&key("a"), &ask, later),
            HlsSessionCheck::Unknown
        );
        let (again, same) = table.open(&key("a"), opening("10.0.0.1"), Some(secret), later);
        assert_eq!(same, secret);
        assert_ne!(again, id);
        assert_eq!(table.check(&key("a"), &ask, later), HlsSessionCheck::Valid);
    }

    #[test]
    fn the_secret_comes_from_the_query_or_the_cookie() {
        let s = ConnUuid::new_v4();
        assert_eq!(requested_secret(&format!("a=1&session={s}"), None), Some(s));
        let cookie = format!("x=1; hlsSession={s}");
        assert_eq!(requested_secret("a=1", Some(&cookie)), Some(s));
        assert_eq!(requested_secret("session=nope", None), None);
        assert_eq!(requested_secret("sessions=1", None), None);
        assert_eq!(requested_secret("", None), None);
        assert_eq!(
            query_without_session(&format!("a=1&session={s}&cookieCheck=1&b=2")),
            "a=1&b=2"
        );
    }
}
