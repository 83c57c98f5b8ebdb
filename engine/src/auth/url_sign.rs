//! CDN-style URL signatures, types A, B and C (worked examples in `vectors/url-auth.yaml`).
//!
//! - **A**: `sign_param = {ts}-{rand}-{uid}-{md5("{path}-{ts}-{rand}-{uid}-{key}")}`; the path is
//!   `/app/stream` for RTMP and the request path (`/app/stream.flv`) for HTTP.
//! - **B**: `sign_param = md5("/{app}/{stream}{key}{ts}")`, `time_param = ts`.
//! - **C**: `sign_param = md5("{key}{stream}{ts}")`, `time_param = ts`.
//!
//! `ts` is hashed exactly as it appears in the URL; it is read as decimal or hex per `time_format`.
//! A request is refused when `now >= ts + valid_seconds`, and when `ts > now + valid_seconds +
//! MAX_CLOCK_SKEW_SECS`: a signer never issues URLs further ahead than that, so a timestamp beyond
//! it is forged. The primary or the backup key may match (key rotation). Signatures are compared
//! in constant time, case-insensitively.
//!
//! Type C hashes `key`, `stream` and `ts` with nothing between them, so the signature of
//! (`stream1`, `T`) is also the signature of (`stream`, `1T`). Two rules close that class for every
//! type: a timestamp must have its format's exact shape (decimal: 1 to 10 digits, no sign, no
//! leading zero; hex: exactly 8 digits), and it may not lie in the future beyond the window. A
//! digit moved from the stream into the timestamp then either breaks the shape or, in decimal,
//! makes the time at least 10^9 seconds away from any time inside the window.

use super::ct_eq;
use super::query::Query;
use md5::{Digest, Md5};
use serde::Deserialize;

/// Which signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SignType {
    /// `auth_key={ts}-{rand}-{uid}-{md5}` over the request path.
    A,
    /// md5 of `/{app}/{stream}{key}{ts}` plus a time parameter.
    B,
    /// md5 of `{key}{stream}{ts}` plus a time parameter.
    C,
}

/// How the timestamp is written in the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeFormat {
    /// Unix seconds in decimal.
    Decimal,
    /// Unix seconds in hexadecimal (lower case when signing; either case accepted).
    Hex,
}

fn default_true() -> bool {
    true
}

fn default_valid_seconds() -> u64 {
    DEFAULT_VALID_SECONDS
}

/// Default validity window.
pub const DEFAULT_VALID_SECONDS: u64 = 600;
/// Largest accepted `valid_seconds` (30 days).
pub const MAX_VALID_SECONDS: u64 = 2_592_000;
/// How far a signer's clock may run ahead of ours: a timestamp up to `valid_seconds` plus this
/// in the future is accepted, anything later is refused as forged.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;
/// Digits of a decimal timestamp: Unix seconds fit in 10 digits until the year 2286.
const DECIMAL_TIME_DIGITS: usize = 10;
/// Digits of a hex timestamp: 32-bit Unix seconds, zero-padded, as the reference service signs.
const HEX_TIME_DIGITS: usize = 8;

/// `url_auth:` in a domain file. Its `Debug` hides the keys, so no debug log shows them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlAuthConfig {
    /// Set to `false` to keep the block but not enforce it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The scheme.
    #[serde(rename = "type")]
    pub sign_type: SignType,
    /// Query parameter carrying the signature.
    pub sign_param: String,
    /// Query parameter carrying the timestamp (B and C only).
    #[serde(default)]
    pub time_param: Option<String>,
    /// The key used to sign; always accepted.
    pub primary_key: String,
    /// A second accepted key, for rotation.
    #[serde(default)]
    pub backup_key: Option<String>,
    /// Seconds a signature stays valid after its timestamp.
    #[serde(default = "default_valid_seconds")]
    pub valid_seconds: u64,
    /// How the timestamp is written; default decimal for A and B, hex for C.
    #[serde(default)]
    pub time_format: Option<TimeFormat>,
}

impl std::fmt::Debug for UrlAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlAuthConfig")
            .field("enabled", &self.enabled)
            .field("sign_type", &self.sign_type)
            .field("sign_param", &self.sign_param)
            .field("time_param", &self.time_param)
            .field("primary_key", &"<redacted>")
            .field(
                "backup_key",
                &self.backup_key.as_ref().map(|_| "<redacted>"),
            )
            .field("valid_seconds", &self.valid_seconds)
            .field("time_format", &self.time_format)
            .finish()
    }
}

/// A rule of `url_auth` that the configuration breaks; `field()` names the YAML key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlAuthConfigError {
    /// A key that is not 1–100 characters of `[0-9a-zA-Z]`.
    #[error("must be 1-100 characters of [0-9a-zA-Z]")]
    BadKey {
        /// `primary_key` or `backup_key`.
        field: &'static str,
    },
    /// A parameter name that breaks the naming rule.
    #[error("must be 1-100 characters of [0-9a-zA-Z_.,!-] with at least one letter")]
    BadParamName {
        /// `sign_param` or `time_param`.
        field: &'static str,
    },
    /// `sign_param == time_param`.
    #[error("must differ from sign_param")]
    SameParams,
    /// B and C need `time_param`.
    #[error("is required for type {0:?}")]
    MissingTimeParam(SignType),
    /// A carries its time inside `sign_param`.
    #[error("is not used by type A (the time is inside sign_param)")]
    TimeParamWithTypeA,
    /// Out of `[0, 2592000]`.
    #[error("must be between 0 and {MAX_VALID_SECONDS}")]
    ValidSecondsRange,
}

impl UrlAuthConfigError {
    /// The YAML key the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadKey { field } | Self::BadParamName { field } => field,
            Self::SameParams | Self::MissingTimeParam(_) | Self::TimeParamWithTypeA => "time_param",
            Self::ValidSecondsRange => "valid_seconds",
        }
    }
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlSignError {
    /// A required query parameter is absent or empty.
    #[error("missing query parameter `{0}`")]
    Missing(String),
    /// Type A's value is not `ts-rand-uid-hash`.
    #[error("malformed `{0}`")]
    Malformed(String),
    /// The timestamp does not parse in the configured format.
    #[error("bad timestamp `{0}`")]
    BadTime(String),
    /// `ts > now + valid_seconds + MAX_CLOCK_SKEW_SECS`: no signer issues such a URL.
    #[error("timestamp {ts} is later than the latest a signer may issue ({latest})")]
    InFuture {
        /// The request's timestamp.
        ts: u64,
        /// `now + valid_seconds + MAX_CLOCK_SKEW_SECS`.
        latest: u64,
    },
    /// `now >= ts + valid_seconds`.
    #[error("signature expired at {expired_at} (now {now})")]
    Expired {
        /// `ts + valid_seconds`.
        expired_at: u64,
        /// Request time.
        now: u64,
    },
    /// Neither key produces the signature.
    #[error("signature does not match")]
    Mismatch,
}

/// Why `sign_url` could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The configuration breaks a rule.
    #[error("url_auth.{field}: {0}", field = .0.field())]
    Config(#[from] UrlAuthConfigError),
    /// Not `scheme://host/app/stream[?query]`.
    #[error("cannot sign `{0}`: expected scheme://host/app/stream")]
    BadUrl(String),
    /// Type A's `rand` must be non-empty and free of `-`, and `uid` free of `-`.
    #[error("type A rand must be non-empty, and rand and uid may not contain `-`")]
    BadRand,
}

/// What a signature is checked against.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The request path for type A (`/live/test.flv`, or `/live/test` for RTMP).
    pub path: &'a str,
    /// The app (type B).
    pub app: &'a str,
    /// The stream name without extension (types B and C).
    pub stream: &'a str,
    /// The decoded query.
    pub query: &'a Query,
    /// Request time, Unix seconds.
    pub now_unix: u64,
}

fn valid_key(k: &str) -> bool {
    (1..=100).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_param(p: &str) -> bool {
    (1..=100).contains(&p.len())
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.,!-".contains(&b))
        && p.bytes().any(|b| b.is_ascii_alphabetic())
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    // One table lookup per digit (the VM's), not a `format!` per byte: this runs per request.
    super::dsl::vm::hex(&h.finalize(), false)
        .into_iter()
        .map(char::from)
        .collect()
}

/// What a type's signature covers, besides the key.
enum SigInput<'a> {
    /// md5("{path}-{ts}-{rand}-{uid}-{key}"); `signed` is "{ts}-{rand}-{uid}".
    A { path: &'a [u8], signed: &'a [u8] },
    /// B: md5("/{app}/{stream}{key}{ts}"); C: md5("{key}{stream}{ts}").
    BC {
        b: bool,
        app: &'a [u8],
        stream: &'a [u8],
        ts: &'a [u8],
    },
}

impl SigInput<'_> {
    fn md5_hex(&self, key: &str) -> String {
        let key = key.as_bytes();
        match *self {
            SigInput::A { path, signed } => md5_hex(&[path, b"-", signed, b"-", key]),
            SigInput::BC {
                b: true,
                app,
                stream,
                ts,
            } => md5_hex(&[b"/", app, b"/", stream, key, ts]),
            SigInput::BC { stream, ts, .. } => md5_hex(&[key, stream, ts]),
        }
    }
}

impl UrlAuthConfig {
    /// A config with the given type and key and the documented defaults (parameter names
    /// `auth_key` for A, `sign`/`t` for B and C).
    pub fn new(sign_type: SignType, primary_key: impl Into<String>) -> Self {
        let (sign_param, time_param) = match sign_type {
            SignType::A => ("auth_key", None),
            SignType::B | SignType::C => ("sign", Some("t".to_string())),
        };
        Self {
            enabled: true,
            sign_type,
            sign_param: sign_param.into(),
            time_param,
            primary_key: primary_key.into(),
            backup_key: None,
            valid_seconds: DEFAULT_VALID_SECONDS,
            time_format: None,
        }
    }

    /// The effective time format (defaults: A decimal, B decimal, C hex).
    pub fn time_format(&self) -> TimeFormat {
        self.time_format.unwrap_or(match self.sign_type {
            SignType::A | SignType::B => TimeFormat::Decimal,
            SignType::C => TimeFormat::Hex,
        })
    }

    /// Checks the rules of ARCHITECTURE §5.
    pub fn validate(&self) -> Result<(), UrlAuthConfigError> {
        if !valid_key(&self.primary_key) {
            return Err(UrlAuthConfigError::BadKey {
                field: "primary_key",
            });
        }
        if self.backup_key.as_deref().is_some_and(|k| !valid_key(k)) {
            return Err(UrlAuthConfigError::BadKey {
                field: "backup_key",
            });
        }
        if !valid_param(&self.sign_param) {
            return Err(UrlAuthConfigError::BadParamName {
                field: "sign_param",
            });
        }
        match (&self.time_param, self.sign_type) {
            (Some(_), SignType::A) => return Err(UrlAuthConfigError::TimeParamWithTypeA),
            (None, t @ (SignType::B | SignType::C)) => {
                return Err(UrlAuthConfigError::MissingTimeParam(t))
            }
            (Some(t), _) if !valid_param(t) => {
                return Err(UrlAuthConfigError::BadParamName {
                    field: "time_param",
                })
            }
            (Some(t), _) if *t == self.sign_param => return Err(UrlAuthConfigError::SameParams),
            _ => {}
        }
        if self.valid_seconds > MAX_VALID_SECONDS {
            return Err(UrlAuthConfigError::ValidSecondsRange);
        }
        Ok(())
    }

    /// Warnings for `check-config` (allowed, but the reference service would refuse them).
    pub fn warnings(&self, publish_domain: bool) -> Vec<String> {
        let mut w = Vec::new();
        if publish_domain && self.sign_type != SignType::B {
            w.push(format!(
                "publish domains usually use url_auth type B (this one uses {:?})",
                self.sign_type
            ));
        }
        if publish_domain && self.time_format() != TimeFormat::Decimal {
            w.push("publish domains usually use decimal time".into());
        }
        if self.sign_type == SignType::C {
            w.push(
                "url_auth type C signs key+stream+time with no separator, so a signature also \
                 fits other (stream, time) splits; only the timestamp's fixed shape and window \
                 stop that: prefer type A or B"
                    .into(),
            );
        }
        w
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary_key.as_str()).chain(self.backup_key.as_deref())
    }

    fn parse_time(&self, t: &[u8]) -> Result<u64, UrlSignError> {
        let bad = || UrlSignError::BadTime(String::from_utf8_lossy(t).into_owned());
        let (radix, shaped) = match self.time_format() {
            TimeFormat::Decimal => (10, canonical_decimal(t)),
            TimeFormat::Hex => (
                16,
                t.len() == HEX_TIME_DIGITS && t.iter().all(u8::is_ascii_hexdigit),
            ),
        };
        if !shaped {
            return Err(bad());
        }
        let s = std::str::from_utf8(t).map_err(|_| bad())?;
        u64::from_str_radix(s, radix).map_err(|_| bad())
    }

    fn format_time(&self, ts: u64) -> String {
        match self.time_format() {
            TimeFormat::Decimal => ts.to_string(),
            TimeFormat::Hex => format!("{ts:08x}"),
        }
    }

    /// Refuses expired timestamps and timestamps further ahead than a signer may issue.
    fn check_window(&self, ts: u64, now: u64) -> Result<(), UrlSignError> {
        let latest = now
            .saturating_add(self.valid_seconds)
            .saturating_add(MAX_CLOCK_SKEW_SECS);
        if ts > latest {
            return Err(UrlSignError::InFuture { ts, latest });
        }
        let expired_at = ts.saturating_add(self.valid_seconds);
        if now >= expired_at {
            return Err(UrlSignError::Expired { expired_at, now });
        }
        Ok(())
    }

    fn param<'q>(query: &'q Query, name: &str) -> Result<&'q [u8], UrlSignError> {
        match query.get(name.as_bytes()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(UrlSignError::Missing(name.into())),
        }
    }

    /// Verifies a request's signature. Disabled configs pass.
    pub fn verify(&self, req: &SignedRequest<'_>) -> Result<(), UrlSignError> {
        if !self.enabled {
            return Ok(());
        }
        let sig = Self::param(req.query, &self.sign_param)?;
        let (ts_text, given, input) = match self.sign_type {
            SignType::A => {
                let malformed = || UrlSignError::Malformed(self.sign_param.clone());
                // Exactly `ts-rand-uid-md5`: with a `-` allowed in rand or uid, the signature of
                // path `/live/x-T2-r2` would also sign path `/live/x` at time T2 (the path's
                // dashes would move into the signed fields), the type A form of splicing.
                if sig.iter().filter(|&&b| b == b'-').count() != 3 {
                    return Err(malformed());
                }
                let first = sig.iter().position(|&b| b == b'-').ok_or_else(malformed)?;
                let last = sig.iter().rposition(|&b| b == b'-').ok_or_else(malformed)?;
                let input = SigInput::A {
                    path: req.path.as_bytes(),
                    signed: &sig[..last],
                };
                (&sig[..first], &sig[last + 1..], input)
            }
            SignType::B | SignType::C => {
                let tp = self.time_param.as_deref().unwrap_or_default();
                let ts = Self::param(req.query, tp)?;
                let input = SigInput::BC {
                    b: self.sign_type == SignType::B,
                    app: req.app.as_bytes(),
                    stream: req.stream.as_bytes(),
                    ts,
                };
                (ts, sig, input)
            }
        };
        let ts = self.parse_time(ts_text)?;
        self.check_window(ts, req.now_unix)?;
        let given = given.to_ascii_lowercase();
        // Every key is tried so timing does not reveal which one matched.
        let matched = self.keys().fold(false, |acc, key| {
            ct_eq(input.md5_hex(key).as_bytes(), &given) | acc
        });
        if matched {
            Ok(())
        } else {
            Err(UrlSignError::Mismatch)
        }
    }
}

/// A decimal timestamp as a signer writes it: 1 to 10 digits, no sign, no leading zero.
pub fn canonical_decimal(t: &[u8]) -> bool {
    (1..=DECIMAL_TIME_DIGITS).contains(&t.len())
        && t.iter().all(u8::is_ascii_digit)
        && (t[0] != b'0' || t.len() == 1)
}

/// Signs `url` (`scheme://host[:port]/app/stream[.ext][?query]`) with `cfg`'s primary key at
/// `timestamp` (valid until `timestamp + cfg.valid_seconds`). `rand` and `uid` are used by type A
/// only. The signature parameters are appended to any existing query.
///
/// For B and C the app is the path without its last segment and the stream is the last segment
/// without a `.flv` / `.m3u8` extension; for A the whole path is signed.
pub fn sign_url(
    url: &str,
    cfg: &UrlAuthConfig,
    timestamp: u64,
    rand: &str,
    uid: &str,
) -> Result<String, SignError> {
    cfg.validate()?;
    let bad = || SignError::BadUrl(url.into());
    let (_, after_scheme) = url.split_once("://").ok_or_else(bad)?;
    let path_start = after_scheme.find('/').ok_or_else(bad)?;
    let rest = &after_scheme[path_start..];
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (app, last) = path[1..].rsplit_once('/').ok_or_else(bad)?;
    let stream = last
        .strip_suffix(".flv")
        .or_else(|| last.strip_suffix(".m3u8"))
        .unwrap_or(last);
    if app.is_empty() || stream.is_empty() {
        return Err(bad());
    }
    let ts = cfg.format_time(timestamp);
    let key = cfg.primary_key.as_str();
    let added = match cfg.sign_type {
        SignType::A => {
            if rand.is_empty() || rand.contains('-') || uid.contains('-') {
                return Err(SignError::BadRand);
            }
            let hash = md5_hex(&[format!("{path}-{ts}-{rand}-{uid}-{key}").as_bytes()]);
            format!("{}={ts}-{rand}-{uid}-{hash}", cfg.sign_param)
        }
        SignType::B | SignType::C => {
            let hash = if cfg.sign_type == SignType::B {
                md5_hex(&[format!("/{app}/{stream}{key}{ts}").as_bytes()])
            } else {
                md5_hex(&[format!("{key}{stream}{ts}").as_bytes()])
            };
            let tp = cfg.time_param.as_deref().unwrap_or_default();
            format!("{}={hash}&{tp}={ts}", cfg.sign_param)
        }
    };
    let base = &url[..url.len() - query.map_or(0, |q| q.len() + 1)];
    Ok(match query {
        Some(q) if !q.is_empty() => format!("{base}?{q}&{added}"),
        _ => format!("{base}?{added}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_yaml_ng::Value;

    fn vectors() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/auth/testdata/url-auth.yaml"
        );
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("test vectors missing at {path}: {e}"));
        serde_yaml_ng::from_str(&text).expect("url-auth.yaml parses")
    }

    fn s(v: &Value, k: &str) -> String {
        match &v[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{k}: {other:?}"),
        }
    }

    fn u(v: &Value, k: &str) -> u64 {
        v[k].as_u64().unwrap_or_else(|| panic!("{k} not a number"))
    }

    fn cfg_from(v: &Value, t: SignType) -> UrlAuthConfig {
        let mut c = UrlAuthConfig::new(t, s(v, "key"));
        c.sign_param = s(v, "sign_param");
        c.time_param = v.get("time_param").map(|_| s(v, "time_param"));
        c.valid_seconds = u(v, "valid_seconds");
        if let Some(f) = v.get("time_format") {
            c.time_format = Some(serde_yaml_ng::from_value(f.clone()).unwrap());
        }
        c.validate().unwrap();
        c
    }

    fn req<'a>(
        path: &'a str,
        app: &'a str,
        stream: &'a str,
        q: &'a Query,
        now: u64,
    ) -> SignedRequest<'a> {
        SignedRequest {
            path,
            app,
            stream,
            query: q,
            now_unix: now,
        }
    }

    fn query_of(url: &str) -> Query {
        Query::parse(url.split_once('?').map_or("", |(_, q)| q))
    }

    /// Checks the vector's digest (under `digest_key`) and that signing its bare URL at `ts`
    /// gives its signed URL, which is returned.
    fn assert_signs_like(v: &Value, c: &UrlAuthConfig, digest_key: &str, ts: u64) -> String {
        assert_eq!(
            md5_hex(&[s(v, "string_to_sign").as_bytes()]),
            s(v, digest_key)
        );
        let url = s(v, "signed_url");
        let (rand, uid) = match c.sign_type {
            SignType::A => (s(v, "rand"), s(v, "uid")),
            _ => (String::new(), String::new()),
        };
        let bare = url.split('?').next().unwrap();
        assert_eq!(sign_url(bare, c, ts, &rand, &uid).unwrap(), url);
        url
    }

    #[test]
    fn type_a_vector() {
        let all = vectors();
        let v = &all["type_a"];
        let c = cfg_from(v, SignType::A);
        let ts = u(v, "timestamp");
        let signed = assert_signs_like(v, &c, "md5hash", ts);
        let q = query_of(&signed);
        let path = s(v, "uri");
        let expires = u(v, "expires_at");
        assert_eq!(c.verify(&req(&path, "live", "test", &q, ts)), Ok(()));
        assert_eq!(
            c.verify(&req(&path, "live", "test", &q, expires - 1)),
            Ok(())
        );
        assert_eq!(
            c.verify(&req(&path, "live", "test", &q, expires)),
            Err(UrlSignError::Expired {
                expired_at: expires,
                now: expires
            })
        );
        // The RTMP path differs from the HTTP one, so the HTTP signature does not pass there.
        assert_eq!(
            c.verify(&req("/live/test", "live", "test", &q, ts)),
            Err(UrlSignError::Mismatch)
        );
        let bad = Query::parse("auth_key=1758296819-fbe5e26c0b7abe1431c3c897f7bdc278");
        assert_eq!(
            c.verify(&req(&path, "live", "test", &bad, ts)),
            Err(UrlSignError::Malformed("auth_key".into()))
        );
    }

    #[test]
    fn type_b_vector_and_backup_key() {
        let all = vectors();
        let v = &all["type_b"];
        let c = cfg_from(v, SignType::B);
        let ts: u64 = s(v, "timestamp").parse().unwrap();
        let url = assert_signs_like(v, &c, "signature", ts);
        let q = query_of(&url);
        let r = |q: &Query, now| c.verify(&req("/live/test.flv", "live", "test", q, now));
        assert_eq!(r(&q, ts + 599), Ok(()));
        assert!(matches!(r(&q, ts + 600), Err(UrlSignError::Expired { .. })));
        assert_eq!(
            r(&Query::parse("volcTime=1758296819"), ts),
            Err(UrlSignError::Missing("volcSecret".into()))
        );
        assert_eq!(
            r(&Query::parse("volcSecret=ab"), ts),
            Err(UrlSignError::Missing("volcTime".into()))
        );
        // Signed with a new key: refused until it is configured as backup (or primary).
        let mut other = c.clone();
        other.primary_key = "newKey2".into();
        let url2 = sign_url("http://h/live/test.flv?x=1", &other, ts, "", "").unwrap();
        assert!(url2.starts_with("http://h/live/test.flv?x=1&volcSecret="));
        let q2 = query_of(&url2);
        assert_eq!(r(&q2, ts), Err(UrlSignError::Mismatch));
        let mut rotated = c.clone();
        rotated.backup_key = Some("newKey2".into());
        rotated.validate().unwrap();
        let rr = |q| rotated.verify(&req("/live/test.flv", "live", "test", q, ts));
        assert_eq!(rr(&q2), Ok(()));
        assert_eq!(rr(&q), Ok(()));
        // Upper-case hex signature is accepted; a decimal config refuses a hex time.
        let upper = Query::parse(&format!(
            "volcSecret={}&volcTime={ts}",
            s(v, "signature").to_uppercase()
        ));
        assert_eq!(r(&upper, ts), Ok(()));
        assert!(matches!(
            r(&Query::parse("volcSecret=x&volcTime=68cd7af3"), ts),
            Err(UrlSignError::BadTime(_))
        ));
    }

    #[test]
    fn type_c_vector_hex_time() {
        let all = vectors();
        let v = &all["type_c"];
        let c = cfg_from(v, SignType::C);
        assert_eq!(c.time_format(), TimeFormat::Hex);
        let ts = u64::from_str_radix(&s(v, "timestamp"), 16).unwrap();
        let url = assert_signs_like(v, &c, "signature", ts);
        let expires = u64::from_str_radix(&s(v, "expires_at_hex"), 16).unwrap();
        assert_eq!(expires, ts + 600);
        let q = query_of(&url);
        let r = |now| c.verify(&req("/live/test", "live", "test", &q, now));
        assert_eq!(r(expires - 1), Ok(()));
        assert!(matches!(r(expires), Err(UrlSignError::Expired { .. })));
        // Type C does not cover the app.
        assert_eq!(c.verify(&req("/x/test", "x", "test", &q, ts)), Ok(()));
        assert_eq!(
            c.verify(&req("/live/t2", "live", "t2", &q, ts)),
            Err(UrlSignError::Mismatch)
        );
        // A backup key passes too.
        let mut rotated = UrlAuthConfig {
            backup_key: Some("123abc".into()),
            ..c.clone()
        };
        rotated.primary_key = "fresh99".into();
        assert_eq!(
            rotated.verify(&req("/live/test", "live", "test", &q, ts)),
            Ok(())
        );
    }

    #[test]
    fn config_rules() {
        let ok = UrlAuthConfig::new(SignType::B, "abc123");
        assert_eq!(ok.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut UrlAuthConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate()
        };
        assert_eq!(
            with(&|c| c.primary_key = "a_b".into()),
            Err(UrlAuthConfigError::BadKey {
                field: "primary_key"
            })
        );
        assert_eq!(
            with(&|c| c.primary_key = "a".repeat(101)),
            Err(UrlAuthConfigError::BadKey {
                field: "primary_key"
            })
        );
        assert_eq!(with(&|c| c.primary_key = "a".repeat(100)), Ok(()));
        assert_eq!(
            with(&|c| c.backup_key = Some(String::new())),
            Err(UrlAuthConfigError::BadKey {
                field: "backup_key"
            })
        );
        assert_eq!(
            with(&|c| c.sign_param = "123".into()),
            Err(UrlAuthConfigError::BadParamName {
                field: "sign_param"
            })
        );
        assert_eq!(with(&|c| c.sign_param = "a_.,!-1".into()), Ok(()));
        assert_eq!(
            with(&|c| c.time_param = Some("a b".into())),
            Err(UrlAuthConfigError::BadParamName {
                field: "time_param"
            })
        );
        assert_eq!(
            with(&|c| c.time_param = Some("sign".into())),
            Err(UrlAuthConfigError::SameParams)
        );
        assert_eq!(
            with(&|c| c.time_param = None),
            Err(UrlAuthConfigError::MissingTimeParam(SignType::B))
        );
        assert_eq!(
            with(&|c| c.valid_seconds = MAX_VALID_SECONDS + 1),
            Err(UrlAuthConfigError::ValidSecondsRange)
        );
        assert_eq!(with(&|c| c.valid_seconds = 0), Ok(()));
        let mut a = UrlAuthConfig::new(SignType::A, "k");
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(
            sign_url("http://h/a/b.flv", &a, 1, "x-y", "0"),
            Err(SignError::BadRand)
        );
        a.time_param = Some("t".into());
        assert_eq!(a.validate(), Err(UrlAuthConfigError::TimeParamWithTypeA));
        assert_eq!(UrlAuthConfig::new(SignType::C, "k").warnings(true).len(), 3);
        assert_eq!(
            UrlAuthConfig::new(SignType::C, "k").warnings(false).len(),
            1
        );
        assert!(UrlAuthConfig::new(SignType::B, "k")
            .warnings(true)
            .is_empty());
        assert!(matches!(
            sign_url("nourl", &ok, 1, "", ""),
            Err(SignError::BadUrl(_))
        ));
    }

    /// Issue 14: the type C signature of (`stream1`, T) is the signature of (`stream`, `1T`).
    #[test]
    fn type_c_splicing_and_far_future_times_are_refused() {
        let now = 1_758_296_819;
        for format in [TimeFormat::Decimal, TimeFormat::Hex] {
            let mut c = UrlAuthConfig::new(SignType::C, "123abc");
            c.time_format = Some(format);
            let url = sign_url("rtmp://h/live/stream1", &c, now, "", "").unwrap();
            let q = query_of(&url);
            assert_eq!(c.verify(&req("", "live", "stream1", &q, now)), Ok(()));
            let t = q.get(b"t").unwrap().to_vec();
            let spliced = format!(
                "sign={}&t=1{}",
                String::from_utf8_lossy(q.get(b"sign").unwrap()),
                String::from_utf8_lossy(&t)
            );
            let q2 = query_of(&format!("x?{spliced}"));
            // The digest matches (that is the flaw); the timestamp's shape or window refuses it,
            // now and in a hundred years.
            assert_eq!(
                md5_hex(&[b"123abc", b"stream", b"1", &t]),
                md5_hex(&[b"123abc", b"stream1", &t])
            );
            for at in [now, now + 100 * 365 * 86_400] {
                assert!(matches!(
                    c.verify(&req("", "live", "stream", &q2, at)),
                    Err(UrlSignError::BadTime(_) | UrlSignError::InFuture { .. })
                ));
            }
        }
    }

    #[test]
    fn timestamps_have_one_shape_and_a_bounded_future() {
        let now = 1_758_296_819u64;
        let mut c = UrlAuthConfig::new(SignType::B, "k");
        let at = |c: &UrlAuthConfig, ts: &str, now: u64| {
            let sig = md5_hex(&[b"/live/s", b"k", ts.as_bytes()]);
            c.verify(&req(
                "",
                "live",
                "s",
                &query_of(&format!("x?sign={sig}&t={ts}")),
                now,
            ))
        };
        let latest = now + 600 + MAX_CLOCK_SKEW_SECS;
        assert_eq!(at(&c, &latest.to_string(), now), Ok(()));
        assert_eq!(
            at(&c, &(latest + 1).to_string(), now),
            Err(UrlSignError::InFuture {
                ts: latest + 1,
                latest
            })
        );
        for bad in [
            "01758296819",
            "+1758296819",
            "17582968190",
            "",
            "1758296819 ",
        ] {
            assert!(
                matches!(
                    at(&c, bad, now),
                    Err(UrlSignError::BadTime(_) | UrlSignError::Missing(_))
                ),
                "{bad:?}"
            );
        }
        c.time_format = Some(TimeFormat::Hex);
        assert_eq!(at(&c, &format!("{now:08x}"), now), Ok(()));
        assert_eq!(at(&c, &format!("{now:08X}"), now), Ok(()));
        for bad in ["68cd7af", "068cd7af3", "0x8cd7af3"] {
            assert!(
                matches!(at(&c, bad, now), Err(UrlSignError::BadTime(_))),
                "{bad:?}"
            );
        }
        assert_eq!(c.format_time(1), "00000001");
        c.backup_key = Some("SecondKey9".into());
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SecondKey9") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
