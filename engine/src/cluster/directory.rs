//! The directory's logic without Redis: key names, the scripts' texts, what this node claims and
//! what each renewal answer means for it, and the URL one node pulls another's stream from.
//!
//! The worker (`worker.rs`) sends what this decides; everything here is tested without a server.

use std::collections::HashMap;

use crate::registry::StreamKey;

/// The query parameter an inter-node pull carries: the pulling node's name. A node that gets a
/// play request with it serves only what is live on it, never looks further, so A pulling from B
/// pulling from A cannot happen.
pub const HOP_PARAM: &str = "clusterHop";

/// Claims `KEYS[1]` for `ARGV[1]` for `ARGV[2]` ms: free, or already ours (renewed), or taken
/// over when `ARGV[3]` is `1` (`overridePublisher`). Answers `{code, previous owner}`: code 1
/// granted, 2 taken over, 0 refused (another node has it).
pub const CLAIM_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, ''} end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, ''} end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return {2, v or ''} end
return {0, v or ''}
";

/// Renews `KEYS[1]` if still ours, registers it again if it vanished (Redis restarted, or failed
/// over to a replica that had not seen it). Answers `{code, owner}`: 1 renewed, 2 registered
/// again, 0 lost to `owner`.
pub const RENEW_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, ''} end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return {2, ''} end
return {0, v}
";

/// Deletes `KEYS[1]` only if it is still `ARGV[1]`'s: an unpublish never removes the entry of
/// the node that took the stream over.
pub const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The Redis keys of one cluster (all under its `keyPrefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// `stream → node`: `{prefix}stream:{vhost}/{app}/{stream}`.
    pub fn stream(&self, key: &StreamKey) -> String {
        format!(
            "{}stream:{}/{}/{}",
            self.prefix, key.vhost, key.app, key.stream
        )
    }

    /// The pattern every stream key matches (for listing).
    pub fn stream_pattern(&self) -> String {
        format!("{}stream:*", escape_glob(&self.prefix))
    }

    /// `{prefix}stream:vhost/app/stream` back to `vhost/app/stream`.
    pub fn stream_name<'a>(&self, redis_key: &'a str) -> Option<&'a str> {
        redis_key
            .strip_prefix(self.prefix.as_str())
            .and_then(|k| k.strip_prefix("stream:"))
    }

    /// A node's load record (JSON, with expiry): `{prefix}node:{name}`.
    pub fn node(&self, name: &str) -> String {
        format!("{}node:{name}", self.prefix)
    }

    /// The set of node names that have published a load record (pruned of expired ones).
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
}

/// `*`, `?`, `[` and `\` taken literally in a `SCAN MATCH` pattern.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Where a stream this node claimed stands in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState {
    /// Redis holds it for this node.
    Registered,
    /// Accepted while Redis could not be asked (`failOpen`): registered at the next renewal
    /// that reaches Redis.
    Unconfirmed,
    /// Another node holds it now (it took the stream over, or claimed it while this one could
    /// not renew); this node's publisher should stop.
    Lost { owner: String },
}

/// What a renewal answer (or a failed renewal) changed, for the log and the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewChange {
    /// Nothing worth a line.
    None,
    /// The entry had vanished and is registered again.
    Reregistered,
    /// The entry now names another node.
    Lost { owner: String },
}

/// The streams this node claimed, by Redis key: what the worker renews every `ttl / 3`.
#[derive(Debug, Default)]
pub struct Claims {
    entries: HashMap<String, ClaimState>,
}

impl Claims {
    /// A claim Redis granted (or could not be asked about, with `failOpen`).
    pub fn granted(&mut self, redis_key: String, confirmed: bool) {
        let state = if confirmed {
            ClaimState::Registered
        } else {
            ClaimState::Unconfirmed
        };
        self.entries.insert(redis_key, state);
    }

    /// The publisher stopped: the entry is forgotten (the worker deletes it if still ours).
    pub fn released(&mut self, redis_key: &str) -> Option<ClaimState> {
        self.entries.remove(redis_key)
    }

    /// The keys a renewal pass sends, in a stable order: every one not lost.
    pub fn to_renew(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, s)| !matches!(s, ClaimState::Lost { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Applies one renewal answer (`code`, `owner`, as [`RENEW_SCRIPT`] returns them).
    pub fn renewed(&mut self, redis_key: &str, code: i64, owner: &str) -> RenewChange {
        let Some(state) = self.entries.get_mut(redis_key) else {
            return RenewChange::None;
        };
        match code {
            1 => {
                *state = ClaimState::Registered;
                RenewChange::None
            }
            2 => {
                *state = ClaimState::Registered;
                RenewChange::Reregistered
            }
            _ => {
                *state = ClaimState::Lost {
                    owner: owner.to_owned(),
                };
                RenewChange::Lost {
                    owner: owner.to_owned(),
                }
            }
        }
    }

    /// Redis could not be reached for a renewal: every registered entry is unconfirmed until the
    /// next renewal that reaches it.
    pub fn unreachable(&mut self) {
        for state in self.entries.values_mut() {
            if *state == ClaimState::Registered {
                *state = ClaimState::Unconfirmed;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn count(&self, wanted: fn(&ClaimState) -> bool) -> usize {
        self.entries.values().filter(|s| wanted(s)).count()
    }

    pub fn state(&self, redis_key: &str) -> Option<&ClaimState> {
        self.entries.get(redis_key)
    }

    /// Every key, for the release at shutdown.
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

/// The URL this node (`me`) pulls `key` from its owner's `advertise` URL with: the stream's
/// app and name, and the hop parameter that stops loops. The caller signs it when the stream's
/// domain signs URLs.
pub fn pull_url(advertise: &str, key: &StreamKey, me: &str) -> String {
    format!(
        "{}/{}/{}?{HOP_PARAM}={}",
        advertise.trim_end_matches('/'),
        key.app,
        key.stream,
        query_escape(me)
    )
}

/// Whether a play request's query carries the hop parameter (it comes from another node).
pub fn is_hop(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some(HOP_PARAM))
}

/// Percent-encodes what a node name may hold beyond unreserved characters.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DEFAULT_VHOST;

    fn key() -> StreamKey {
        StreamKey::new(DEFAULT_VHOST, "live", "cam")
    }

    #[test]
    fn key_names() {
        let keys = Keys::new("cs:");
        let k = keys.stream(&key());
        assert_eq!(k, format!("cs:stream:{DEFAULT_VHOST}/live/cam"));
        assert_eq!(
            keys.stream_name(&k),
            Some(format!("{DEFAULT_VHOST}/live/cam").as_str())
        );
        assert_eq!(keys.node("a"), "cs:node:a");
        assert_eq!(keys.nodes(), "cs:nodes");
        assert_eq!(Keys::new("a*b:").stream_pattern(), "a\\*b:stream:*");
    }

    #[test]
    fn claim_renew_release() {
        let mut claims = Claims::default();
        claims.granted("k1".into(), true);
        claims.granted("k2".into(), false);
        assert_eq!(claims.to_renew(), ["k1", "k2"]);
        assert_eq!(claims.renewed("k1", 1, ""), RenewChange::None);
        // Accepted while Redis was away, then found absent: registered.
        assert_eq!(claims.renewed("k2", 2, ""), RenewChange::Reregistered);
        assert_eq!(claims.state("k2"), Some(&ClaimState::Registered));
        // Redis gone: everything unconfirmed; back with the entries lost (a restart without
        // persistence): each one registered again.
        claims.unreachable();
        assert_eq!(claims.count(|s| *s == ClaimState::Unconfirmed), 2);
        assert_eq!(claims.renewed("k1", 2, ""), RenewChange::Reregistered);
        // Taken over by another node: lost, and no longer renewed.
        assert_eq!(
            claims.renewed("k2", 0, "nodeB"),
            RenewChange::Lost {
                owner: "nodeB".into()
            }
        );
        assert_eq!(claims.to_renew(), ["k1"]);
        assert_eq!(
            claims.released("k2"),
            Some(ClaimState::Lost {
                owner: "nodeB".into()
            })
        );
        assert_eq!(claims.released("k1"), Some(ClaimState::Registered));
        assert!(claims.is_empty());
        // An answer for a key released meanwhile changes nothing.
        assert_eq!(claims.renewed("k1", 0, "x"), RenewChange::None);
    }

    #[test]
    fn pull_urls_carry_the_hop() {
        let url = pull_url("rtmp://10.0.0.2:1935/", &key(), "node a");
        assert_eq!(url, "rtmp://10.0.0.2:1935/live/cam?clusterHop=node%20a");
        assert!(is_hop("clusterHop=a"));
        assert!(is_hop("x=1&clusterHop=a"));
        assert!(!is_hop("clusterHopx=1"));
        assert!(!is_hop(""));
    }
}
