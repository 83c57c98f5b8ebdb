//! RTSP authentication (RFC 2617 as RTSP servers and cameras use it): Basic, and Digest with MD5,
//! with or without `qop=auth`.

use base64::Engine as _;
use md5::{Digest as _, Md5};

/// A challenge from `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: String,
    },
    Digest {
        realm: String,
        nonce: String,
        opaque: Option<String>,
        /// `qop=auth` offered.
        qop_auth: bool,
    },
}

impl Challenge {
    /// Parses one `WWW-Authenticate` value; `None` for a scheme we do not speak.
    pub fn parse(value: &str) -> Option<Challenge> {
        let value = value.trim();
        let (scheme, params) = value.split_once(' ').unwrap_or((value, ""));
        let get = |name: &str| param(params, name);
        if scheme.eq_ignore_ascii_case("Basic") {
            Some(Challenge::Basic {
                realm: get("realm").unwrap_or_default(),
            })
        } else if scheme.eq_ignore_ascii_case("Digest") {
            let algorithm = get("algorithm").unwrap_or_else(|| "MD5".to_owned());
            if !algorithm.eq_ignore_ascii_case("MD5") {
                return None;
            }
            Some(Challenge::Digest {
                realm: get("realm").unwrap_or_default(),
                nonce: get("nonce")?,
                opaque: get("opaque"),
                qop_auth: get("qop").is_some_and(|q| q.split(',').any(|q| q.trim() == "auth")),
            })
        } else {
            None
        }
    }

    /// The best of several challenges: Digest over Basic.
    pub fn pick<'a>(values: impl Iterator<Item = &'a str>) -> Option<Challenge> {
        let all: Vec<Challenge> = values.filter_map(Challenge::parse).collect();
        all.iter()
            .find(|c| matches!(c, Challenge::Digest { .. }))
            .or_else(|| all.first())
            .cloned()
    }

    /// The `Authorization` value for `method uri`. `nc` counts the requests made with this
    /// nonce (from 1) and `cnonce` is the client's nonce; both only matter with `qop=auth`.
    pub fn authorization(
        &self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> String {
        match self {
            Challenge::Basic { .. } => {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                format!("Basic {token}")
            }
            Challenge::Digest {
                realm,
                nonce,
                opaque,
                qop_auth,
            } => {
                let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
                let ha2 = md5_hex(&format!("{method}:{uri}"));
                let mut v = format!(
                    "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\""
                );
                if *qop_auth {
                    let nc = format!("{nc:08x}");
                    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
                    v.push_str(&format!(
                        ", response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""
                    ));
                } else {
                    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
                    v.push_str(&format!(", response=\"{response}\""));
                }
                if let Some(o) = opaque {
                    v.push_str(&format!(", opaque=\"{o}\""));
                }
                v
            }
        }
    }
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `name=value` or `name="value"` in a comma-separated parameter list.
fn param(params: &str, name: &str) -> Option<String> {
    let mut rest = params;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',']);
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(value.to_owned());
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic() {
        let c = Challenge::parse("Basic realm=\"cam\"").unwrap();
        assert_eq!(
            c.authorization("Aladdin", "open sesame", "DESCRIBE", "rtsp://x/", 1, ""),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn digest_without_qop() {
        // Verified by hand: HA1 = md5("user:IP Camera:pass"), HA2 = md5("DESCRIBE:rtsp://10.0.0.5:554/s").
        let c = Challenge::pick(
            [
                "Basic realm=\"IP Camera\"",
                "Digest realm=\"IP Camera\", nonce=\"abc123\", algorithm=\"MD5\"",
            ]
            .into_iter(),
        )
        .unwrap();
        let ha1 = md5_hex("user:IP Camera:pass");
        let ha2 = md5_hex("DESCRIBE:rtsp://10.0.0.5:554/s");
        let expected = md5_hex(&format!("{ha1}:abc123:{ha2}"));
        assert_eq!(
            c.authorization("user", "pass", "DESCRIBE", "rtsp://10.0.0.5:554/s", 1, "x"),
            format!(
                "Digest username=\"user\", realm=\"IP Camera\", nonce=\"abc123\", \
                 uri=\"rtsp://10.0.0.5:554/s\", response=\"{expected}\""
            )
        );
    }

    #[test]
    fn digest_rfc2617_example_with_qop() {
        // RFC 2617 §3.5's worked example.
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        let v = c.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            1,
            "0a4f113b",
        );
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(
            v.contains("nc=00000001") && v.ends_with("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"")
        );
    }

    #[test]
    fn unknown_schemes_are_ignored() {
        assert_eq!(Challenge::parse("Negotiate xyz"), None);
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256"),
            None
        );
    }
}
