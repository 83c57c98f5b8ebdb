//! Internal users, as MediaMTX's `authInternalUsers` with `authMethod: internal`.
//!
//! Entries are tried in order; the first whose credentials (skipped for `user: any`), IP (an empty
//! `ips` means any address) and permissions all match admits the request. Credentials are plain
//! text or `sha256:` followed by the standard base64 of the SHA-256 digest (MediaMTX's format);
//! `argon2:` is refused at load. A permission's `path` is empty (any path), an exact path
//! (`app/stream`), or `~regex` searched (unanchored, like Go's `MatchString`) in the path; regexes
//! use ASCII classes, as Go's RE2 does. `api`, `metrics` and `pprof` ignore `path`.

use super::ct_eq;
use base64::Engine as _;
use regex_automata::dfa::{dense, regex::Regex};
use regex_automata::util::syntax;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;

/// What a request wants to do (MediaMTX's actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publish a stream.
    Publish,
    /// Play a live stream.
    Read,
    /// Play a recording (accepted for MediaMTX compatibility; no endpoint yet).
    Playback,
    /// The control API.
    Api,
    /// The Prometheus endpoint.
    Metrics,
    /// Profiling (accepted for MediaMTX compatibility; no endpoint yet).
    Pprof,
}

impl Action {
    fn uses_path(self) -> bool {
        matches!(self, Action::Publish | Action::Read | Action::Playback)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Read => "read",
            Action::Playback => "playback",
            Action::Api => "api",
            Action::Metrics => "metrics",
            Action::Pprof => "pprof",
        })
    }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One `authInternalUsers` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InternalUser {
    /// User name, `sha256:...`, or `any` (no credentials checked).
    pub user: String,
    /// Password, plain or `sha256:...`; ignored for `any`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub pass: String,
    /// Allowed client addresses and CIDR ranges; empty = any.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ips: Vec<String>,
    /// What the entry may do.
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissions: Vec<Permission>,
}

/// One permission of an [`InternalUser`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The action allowed.
    pub action: Action,
    /// Empty: any path; `~regex`; or an exact `app/stream`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub path: String,
}

impl InternalUser {
    fn any(ips: &[&str], actions: &[Action]) -> Self {
        Self {
            user: "any".into(),
            pass: String::new(),
            ips: ips.iter().map(|s| (*s).to_string()).collect(),
            permissions: actions
                .iter()
                .map(|&action| Permission {
                    action,
                    path: String::new(),
                })
                .collect(),
        }
    }

    /// MediaMTX's default list: anyone may publish, read and play back; api, metrics and pprof
    /// from 127.0.0.1 and ::1 only.
    pub fn mediamtx_defaults() -> Vec<InternalUser> {
        vec![
            Self::any(&[], &[Action::Publish, Action::Read, Action::Playback]),
            Self::any(
                &["127.0.0.1", "::1"],
                &[Action::Api, Action::Metrics, Action::Pprof],
            ),
        ]
    }
}

/// Why an `authInternalUsers` entry is refused at load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserConfigError {
    /// Not an address or CIDR range.
    #[error("authInternalUsers[{index}].ips: `{value}` is not an IP address or CIDR range")]
    BadIp {
        /// Entry index.
        index: usize,
        /// The text.
        value: String,
    },
    /// `~regex` that does not compile.
    #[error("authInternalUsers[{index}].permissions: bad path regex `{path}`: {message}")]
    BadRegex {
        /// Entry index.
        index: usize,
        /// The path as written.
        path: String,
        /// The regex error.
        message: String,
    },
    /// A `sha256:` credential that is not base64 of 32 bytes.
    #[error("authInternalUsers[{index}].{field}: `sha256:` must be followed by the base64 of a 32-byte digest")]
    BadSha256 {
        /// Entry index.
        index: usize,
        /// `user` or `pass`.
        field: &'static str,
    },
    /// `argon2:` hashes need a dependency we do not carry.
    #[error("authInternalUsers[{index}].{field}: argon2 hashes are not supported; use sha256:")]
    Argon2Unsupported {
        /// Entry index.
        index: usize,
        /// `user` or `pass`.
        field: &'static str,
    },
}

#[derive(Debug, Clone)]
enum Credential {
    Plain(String),
    Sha256([u8; 32]),
}

impl Credential {
    fn parse(s: &str, index: usize, field: &'static str) -> Result<Self, UserConfigError> {
        if let Some(b64) = s.strip_prefix("sha256:") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or(UserConfigError::BadSha256 { index, field })?;
            return Ok(Self::Sha256(bytes));
        }
        if s.starts_with("argon2:") {
            return Err(UserConfigError::Argon2Unsupported { index, field });
        }
        Ok(Self::Plain(s.into()))
    }

    fn check(&self, given: &str) -> bool {
        match self {
            Self::Plain(p) => ct_eq(p.as_bytes(), given.as_bytes()),
            Self::Sha256(d) => ct_eq(d, &Sha256::digest(given.as_bytes())),
        }
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) if self.addr.is_ipv4() => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) if self.addr.is_ipv6() => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `addr/prefix`, as MediaMTX shows networks (`127.0.0.1/32`).
impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug)]
enum PathMatch {
    Any,
    Exact(String),
    Regex(Box<Regex>),
}

#[derive(Debug)]
struct CompiledPermission {
    action: Action,
    path: PathMatch,
}

#[derive(Debug)]
struct CompiledUser {
    /// `None` for `any`.
    credentials: Option<(Credential, Credential)>,
    label: String,
    ips: Vec<IpNet>,
    permissions: Vec<CompiledPermission>,
}

/// The compiled `authInternalUsers` list: immutable, `Send + Sync`.
#[derive(Debug)]
pub struct Users {
    entries: Vec<CompiledUser>,
}

/// Why one entry did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryMiss {
    /// User or password differ (or none given).
    Credentials,
    /// The peer's address is not in `ips`.
    Ip,
    /// No permission for the action and path.
    Permission,
}

impl fmt::Display for EntryMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryMiss::Credentials => "wrong or missing credentials",
            EntryMiss::Ip => "address not allowed",
            EntryMiss::Permission => "no permission for this action and path",
        })
    }
}

/// What the users layer looks at.
#[derive(Debug, Clone, Copy)]
pub struct UserQuery<'a> {
    /// The action.
    pub action: Action,
    /// `app/stream` (MediaMTX's path).
    pub path: &'a str,
    /// Client address.
    pub peer: IpAddr,
    /// Given user name.
    pub user: Option<&'a str>,
    /// Given password.
    pub pass: Option<&'a str>,
}

/// Compiles a MediaMTX `~regex` (without the `~`) as RE2 would: ASCII classes, unanchored search.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .dense(
            dense::Config::new()
                .dfa_size_limit(Some(1 << 20))
                .determinize_size_limit(Some(1 << 20)),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

impl Users {
    /// Compiles the entries (addresses, hashes, regexes).
    pub fn compile(list: &[InternalUser]) -> Result<Self, UserConfigError> {
        let mut entries = Vec::with_capacity(list.len());
        for (index, u) in list.iter().enumerate() {
            let credentials = if u.user == "any" {
                None
            } else {
                Some((
                    Credential::parse(&u.user, index, "user")?,
                    Credential::parse(&u.pass, index, "pass")?,
                ))
            };
            let ips = u
                .ips
                .iter()
                .map(|s| {
                    IpNet::parse(s).ok_or_else(|| UserConfigError::BadIp {
                        index,
                        value: s.clone(),
                    })
                })
                .collect::<Result<_, _>>()?;
            let mut permissions = Vec::with_capacity(u.permissions.len());
            for p in &u.permissions {
                let path = if p.path.is_empty() {
                    PathMatch::Any
                } else if let Some(re) = p.path.strip_prefix('~') {
                    PathMatch::Regex(Box::new(compile_regex(re).map_err(|message| {
                        UserConfigError::BadRegex {
                            index,
                            path: p.path.clone(),
                            message,
                        }
                    })?))
                } else {
                    PathMatch::Exact(p.path.clone())
                };
                permissions.push(CompiledPermission {
                    action: p.action,
                    path,
                });
            }
            let label = if u.user.starts_with("sha256:") {
                "(hashed)".to_string()
            } else {
                u.user.clone()
            };
            entries.push(CompiledUser {
                credentials,
                label,
                ips,
                permissions,
            });
        }
        Ok(Self { entries })
    }

    fn entry_check(e: &CompiledUser, q: &UserQuery<'_>) -> Result<(), EntryMiss> {
        if let Some((user, pass)) = &e.credentials {
            // Both are checked so timing does not tell a wrong user from a wrong password.
            let u = user.check(q.user.unwrap_or(""));
            let p = pass.check(q.pass.unwrap_or(""));
            if !(u & p) || q.user.is_none() {
                return Err(EntryMiss::Credentials);
            }
        }
        if !e.ips.is_empty() && !e.ips.iter().any(|n| n.contains(q.peer)) {
            return Err(EntryMiss::Ip);
        }
        let allowed = e.permissions.iter().any(|p| {
            p.action == q.action
                && (!q.action.uses_path()
                    || match &p.path {
                        PathMatch::Any => true,
                        PathMatch::Exact(s) => s == q.path,
                        PathMatch::Regex(re) => re.is_match(q.path.as_bytes()),
                    })
        });
        if allowed {
            Ok(())
        } else {
            Err(EntryMiss::Permission)
        }
    }

    /// The index of the first entry that admits the request, or every entry's reason.
    pub fn check(&self, q: &UserQuery<'_>) -> Result<usize, Vec<EntryMiss>> {
        let mut misses = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            match Self::entry_check(e, q) {
                Ok(()) => return Ok(i),
                Err(m) => misses.push(m),
            }
        }
        Err(misses)
    }

    /// One line per entry, for `auth explain`.
    pub fn explain(&self, q: &UserQuery<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            match Self::entry_check(e, q) {
                Ok(()) => {
                    out.push(format!(
                        "  authInternalUsers[{i}] (user {}): PASS (first match wins)",
                        e.label
                    ));
                    break;
                }
                Err(m) => out.push(format!(
                    "  authInternalUsers[{i}] (user {}): no match: {m}",
                    e.label
                )),
            }
        }
        out
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<'a>(
        action: Action,
        path: &'a str,
        peer: &str,
        user: Option<&'a str>,
        pass: Option<&'a str>,
    ) -> UserQuery<'a> {
        UserQuery {
            action,
            path,
            peer: peer.parse().unwrap(),
            user,
            pass,
        }
    }

    fn users(yaml: &str) -> Users {
        let list: Vec<InternalUser> = serde_yaml_ng::from_str(yaml).unwrap();
        Users::compile(&list).unwrap()
    }

    #[test]
    fn cidr_v4_v6() {
        let n = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.255.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let n = IpNet::parse("2001:db8::/32").unwrap();
        assert!(n.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!n.contains("2001:db9::1".parse().unwrap()));
        assert!(!n.contains("10.1.2.3".parse().unwrap()));
        let n = IpNet::parse("::1").unwrap();
        assert!(n.contains("::1".parse().unwrap()));
        assert!(!n.contains("::2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("::/0")
            .unwrap()
            .contains("::8".parse().unwrap()));
        assert_eq!(IpNet::parse("1.2.3.4/33"), None);
        assert_eq!(IpNet::parse("1.2.3"), None);
    }

    #[test]
    fn mediamtx_defaults() {
        let u = Users::compile(&InternalUser::mediamtx_defaults()).unwrap();
        assert_eq!(
            u.check(&q(Action::Publish, "live/x", "8.8.8.8", None, None)),
            Ok(0)
        );
        assert_eq!(
            u.check(&q(Action::Playback, "live/x", "8.8.8.8", None, None)),
            Ok(0)
        );
        assert_eq!(u.check(&q(Action::Api, "", "127.0.0.1", None, None)), Ok(1));
        assert_eq!(u.check(&q(Action::Metrics, "", "::1", None, None)), Ok(1));
        assert_eq!(
            u.check(&q(Action::Api, "", "8.8.8.8", None, None)),
            Err(vec![EntryMiss::Permission, EntryMiss::Ip])
        );
    }

    #[test]
    fn passwords_paths_and_order() {
        // echo -n secret | openssl dgst -binary -sha256 | base64
        let u = users(
            r#"
- user: alice
  pass: sha256:K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=
  ips: ['192.168.0.0/16', 'fd00::/8']
  permissions:
  - action: publish
    path: live/alice
  - action: read
    path: "~^live/(alice|bob)$"
- user: bob
  pass: hunter2
  permissions:
  - action: read
  - action: api
    path: ignored
- user: any
  pass:
  ips: []
  permissions:
  - action: read
    path: ~^public/
"#,
        );
        let ok = |r| assert!(u.check(&r).is_ok(), "{r:?}");
        let no = |r| assert!(u.check(&r).is_err(), "{r:?}");
        ok(q(
            Action::Publish,
            "live/alice",
            "192.168.1.1",
            Some("alice"),
            Some("secret"),
        ));
        ok(q(
            Action::Publish,
            "live/alice",
            "fd12::1",
            Some("alice"),
            Some("secret"),
        ));
        no(q(
            Action::Publish,
            "live/alice",
            "10.0.0.1",
            Some("alice"),
            Some("secret"),
        ));
        no(q(
            Action::Publish,
            "live/alice",
            "192.168.1.1",
            Some("alice"),
            Some("Secret"),
        ));
        no(q(
            Action::Publish,
            "live/alice2",
            "192.168.1.1",
            Some("alice"),
            Some("secret"),
        ));
        ok(q(
            Action::Read,
            "live/bob",
            "192.168.1.1",
            Some("alice"),
            Some("secret"),
        ));
        no(q(
            Action::Read,
            "live/bobby",
            "192.168.1.1",
            Some("alice"),
            Some("secret"),
        ));
        assert_eq!(
            u.check(&q(
                Action::Read,
                "x/y",
                "1.1.1.1",
                Some("bob"),
                Some("hunter2")
            )),
            Ok(1)
        );
        assert_eq!(
            u.check(&q(Action::Api, "", "1.1.1.1", Some("bob"), Some("hunter2"))),
            Ok(1)
        );
        no(q(
            Action::Publish,
            "x/y",
            "1.1.1.1",
            Some("bob"),
            Some("hunter2"),
        ));
        assert_eq!(
            u.check(&q(Action::Read, "public/x", "1.1.1.1", None, None)),
            Ok(2)
        );
        assert_eq!(
            u.check(&q(Action::Read, "x/public/x", "1.1.1.1", None, None)),
            Err(vec![
                EntryMiss::Credentials,
                EntryMiss::Credentials,
                EntryMiss::Permission
            ])
        );
        assert_eq!(
            u.explain(&q(Action::Read, "public/x", "1.1.1.1", None, None))
                .len(),
            3
        );
    }

    #[test]
    fn load_errors() {
        let err = |yaml: &str| {
            let list: Vec<InternalUser> = serde_yaml_ng::from_str(yaml).unwrap();
            Users::compile(&list).unwrap_err()
        };
        assert_eq!(
            err("- {user: a, ips: ['1.2.3.4/40']}"),
            UserConfigError::BadIp {
                index: 0,
                value: "1.2.3.4/40".into()
            }
        );
        assert_eq!(
            err("- {user: a, pass: 'sha256:abc'}"),
            UserConfigError::BadSha256 {
                index: 0,
                field: "pass"
            }
        );
        assert_eq!(
            err("- {user: 'argon2:x'}"),
            UserConfigError::Argon2Unsupported {
                index: 0,
                field: "user"
            }
        );
        assert!(matches!(
            err("- {user: any, permissions: [{action: read, path: '~('}]}"),
            UserConfigError::BadRegex { .. }
        ));
        assert!(serde_yaml_ng::from_str::<Vec<InternalUser>>("- {user: a, bogus: 1}").is_err());
        assert!(serde_yaml_ng::from_str::<Vec<InternalUser>>(
            "- {user: a, permissions: [{action: fly}]}"
        )
        .is_err());
    }
}
