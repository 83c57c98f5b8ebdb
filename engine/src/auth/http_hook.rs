//! `authMethod: http` (MediaMTX): every publish and read, and the actions not excluded, are asked
//! of an external HTTP service with a JSON `POST`; a 2xx answer allows. This module builds the
//! request and judges the answer; the drivers move the bytes.

use std::net::{SocketAddr, ToSocketAddrs};

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::users::Permission;
use super::{Action, AuthRequest, Protocol};
use crate::protocol::http::{encode_request_head, parse_response_head, Limits, Parsed};

/// Where the external service listens, parsed and resolved once at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpHook {
    pub addr: SocketAddr,
    host: String,
    path: String,
    exclude: Vec<Permission>,
}

/// Why `authHTTPAddress` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HookConfigError {
    #[error("authMethod: http needs authHTTPAddress")]
    MissingAddress,
    #[error("authHTTPAddress `{0}`: expected http://host[:port]/path (https is not supported)")]
    BadUrl(String),
    #[error("authHTTPAddress `{url}`: cannot resolve the host: {reason}")]
    Resolve { url: String, reason: String },
}

/// The JSON body MediaMTX sends, field for field.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookBody {
    pub user: String,
    pub password: String,
    pub token: String,
    pub ip: String,
    pub action: String,
    pub path: String,
    pub protocol: String,
    pub id: Option<String>,
    pub query: String,
}

impl HttpHook {
    pub fn new(
        address: Option<&str>,
        exclude: Vec<Permission>,
    ) -> Result<HttpHook, HookConfigError> {
        let url = address.ok_or(HookConfigError::MissingAddress)?;
        let bad = || HookConfigError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad());
        }
        let with_port = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| HookConfigError::Resolve {
                url: url.to_owned(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| HookConfigError::Resolve {
                url: url.to_owned(),
                reason: "no address".into(),
            })?;
        Ok(HttpHook {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
            exclude,
        })
    }

    /// Whether `action` on `path` skips the service (and is judged by the internal users).
    pub fn excludes(&self, action: Action, path: &str) -> bool {
        self.exclude
            .iter()
            .any(|p| p.action == action && (p.path.is_empty() || p.path == path))
    }

    /// The whole HTTP request asking about `req` (`id`: the connection's id, if it has one).
    pub fn request(&self, req: &AuthRequest<'_>, id: Option<&str>) -> BytesMut {
        let query = super::query::Query::parse(req.query);
        let token = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "))
            .map(str::to_owned)
            .or_else(|| {
                query
                    .get(b"token")
                    .map(|t| String::from_utf8_lossy(t).into_owned())
            })
            .unwrap_or_default();
        let body = HookBody {
            user: req.user.unwrap_or_default().to_owned(),
            password: req.pass.unwrap_or_default().to_owned(),
            token,
            ip: req.peer.to_string(),
            action: req.action.to_string(),
            path: hook_path(req),
            protocol: match req.protocol {
                Protocol::Rtmp => "rtmp",
                Protocol::Flv | Protocol::Hls => "hls",
                Protocol::Api => "",
            }
            .to_owned(),
            id: id.map(str::to_owned),
            query: req.query.to_owned(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut out = BytesMut::new();
        let length = json.len().to_string();
        let headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", length.as_str()),
            ("Connection", "close"),
        ];
        if encode_request_head(&mut out, "POST", &self.path, &self.host, &headers).is_err() {
            out.clear();
        }
        out.extend_from_slice(&json);
        out
    }
}

/// MediaMTX's path: `app/stream` (the app alone for a stream without a name), or nothing for
/// API-like actions.
fn hook_path(req: &AuthRequest<'_>) -> String {
    req.path()
}

/// Judges the service's answer once its head is in `buf`: `Some(Ok)` for 2xx, `Some(Err(status))`
/// otherwise, `None` while the head is incomplete.
pub fn verdict(buf: &[u8]) -> Option<Result<(), String>> {
    match parse_response_head(buf, &Limits::default()) {
        Ok(Parsed::Complete { message, .. }) if (200..300).contains(&message.status) => {
            Some(Ok(()))
        }
        Ok(Parsed::Complete { message, .. }) => {
            Some(Err(format!("the auth service answered {}", message.status)))
        }
        Ok(Parsed::NeedMore) => None,
        Err(e) => Some(Err(format!("the auth service's answer is not HTTP: {e}"))),
    }
}

/// MediaMTX's default `authHTTPExclude`: the API, metrics and pprof.
pub fn default_exclude() -> Vec<Permission> {
    [Action::Api, Action::Metrics, Action::Pprof]
        .into_iter()
        .map(|action| Permission {
            action,
            path: String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest<'static> {
        AuthRequest {
            action: Action::Publish,
            protocol: Protocol::Rtmp,
            vhost: "",
            app: "live",
            stream: "cam",
            query: "user=u&token=t%21",
            headers: &[],
            peer: "10.0.0.7".parse().unwrap(),
            user: Some("u"),
            pass: Some("p"),
            now_unix: 0,
        }
    }

    #[test]
    fn posts_mediamtx_json() {
        let hook = HttpHook::new(Some("http://127.0.0.1:9120/auth"), default_exclude()).unwrap();
        let bytes = hook.request(&request(), Some("abc"));
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /auth HTTP/1.1\r\n"), "{head}");
        assert!(head.contains("Host: 127.0.0.1:9120"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        let parsed: HookBody = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed,
            HookBody {
                user: "u".into(),
                password: "p".into(),
                token: "t!".into(),
                ip: "10.0.0.7".into(),
                action: "publish".into(),
                path: "live/cam".into(),
                protocol: "rtmp".into(),
                id: Some("abc".into()),
                query: "user=u&token=t%21".into(),
            }
        );
    }

    #[test]
    fn verdicts_and_exclusions() {
        assert_eq!(
            verdict(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            Some(Ok(()))
        );
        assert_eq!(verdict(b"HTTP/1.1 204 No Content\r\n\r\n"), Some(Ok(())));
        assert!(matches!(
            verdict(b"HTTP/1.1 401 Unauthorized\r\n\r\n"),
            Some(Err(_))
        ));
        assert_eq!(verdict(b"HTTP/1.1 200 OK\r\n"), None);
        assert!(matches!(verdict(b"garbage\r\n\r\n"), Some(Err(_))));
        let hook = HttpHook::new(Some("http://localhost:1/"), default_exclude()).unwrap();
        assert!(hook.excludes(Action::Api, ""));
        assert!(!hook.excludes(Action::Publish, "live/cam"));
        assert!(HttpHook::new(None, vec![]).is_err());
        assert!(HttpHook::new(Some("https://a/b"), vec![]).is_err());
    }
}
