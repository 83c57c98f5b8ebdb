//! Where a request may come from, decided on its head before any body is read: the Host it names
//! (DNS rebinding), the Origin a browser puts on it (CORS and cross-site requests) and the
//! Content-Type of writes (a cross-site `text/plain` POST needs no preflight, a JSON one does).
//! No I/O: the driver passes the head and the listener's addresses.

use std::net::{IpAddr, SocketAddr};

use crate::protocol::http::{Method, Request};

/// Methods a preflight admits.
pub const ALLOW_METHODS: &str = "OPTIONS, GET, POST, PATCH, DELETE";
/// Headers a preflight admits.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type";

/// Why a head is refused before authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The Host names none of the API's own names (a rebound DNS name, typically).
    #[error("host not allowed")]
    Host,
    /// A write whose body is not declared as JSON.
    #[error("content type must be application/json")]
    ContentType,
    /// A request from another site that the configuration does not admit.
    #[error("cross-site request not allowed")]
    CrossSite,
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::ContentType => 415,
            Refusal::Host | Refusal::CrossSite => 403,
        }
    }
}

/// What the API serves under: its listen address, the address this connection came in on, and
/// `apiAllowedHosts`.
#[derive(Debug, Clone, Copy)]
pub struct Site<'a> {
    pub listen: SocketAddr,
    pub local: SocketAddr,
    pub allowed_hosts: &'a [String],
    /// `apiAllowOrigins` or `metricsAllowOrigins`.
    pub allow_origins: &'a [String],
}

/// The host part of a `Host` header or an origin's authority (`[::1]:80` -> `::1`).
fn host_part(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

/// The authority (`host[:port]`) of an origin (`scheme://host[:port]`); `None` for `null` and
/// anything malformed.
fn origin_authority(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(rest.trim_end_matches('/'))
}

impl Site<'_> {
    /// Whether the Host header names this API. A request without Host (HTTP/1.0) comes from no
    /// browser and passes.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = host_part(host.trim());
        if name.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(name))
        {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                ip.is_loopback()
                    || ip == self.listen.ip().to_canonical()
                    || ip == self.local.ip().to_canonical()
            }
            Err(_) => false,
        }
    }

    /// Whether `origin` is listed by name (not through `*`).
    pub fn origin_listed(&self, origin: &str) -> bool {
        self.allow_origins
            .iter()
            .any(|o| o != "*" && o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }

    fn origin_admitted(&self, origin: &str) -> bool {
        self.allow_origins.iter().any(|o| o == "*") || self.origin_listed(origin)
    }

    /// The CORS headers of every answer (MediaMTX's: the origin admitted, with credentials).
    pub fn cors_headers(&self, req: &Request) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        match req.header("origin") {
            Some(origin) if self.origin_admitted(origin) => {
                h.push(("Access-Control-Allow-Origin", origin.to_owned()));
                h.push(("Access-Control-Allow-Credentials", "true".to_owned()));
                h.push(("Vary", "Origin".to_owned()));
            }
            Some(_) => h.push(("Vary", "Origin".to_owned())),
            None if self.allow_origins.iter().any(|o| o == "*") => {
                h.push(("Access-Control-Allow-Origin", "*".to_owned()));
            }
            None => {}
        }
        h
    }

    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`): answered 204 without
    /// credentials, as browsers send none on it.
    pub fn is_preflight(req: &Request) -> bool {
        req.method == Method::Options && req.header("access-control-request-method").is_some()
    }

    /// Whether the request carries an Origin of another site than the one it is addressed to.
    pub fn cross_site(req: &Request) -> bool {
        let Some(origin) = req.header("origin") else {
            return false;
        };
        match (origin_authority(origin), req.header("host")) {
            (Some(from), Some(host)) => !from.eq_ignore_ascii_case(host.trim()),
            // `Origin: null` (sandboxed pages, file://) or no Host: treat as foreign.
            _ => true,
        }
    }

    /// The checks on a head before credentials: Host, then the Content-Type of writes, then
    /// cross-site writes without a body type (a browser's bodiless POST needs no preflight).
    pub fn check_head(&self, req: &Request, body_len: usize) -> Result<(), Refusal> {
        if !self.host_allowed(req.header("host")) {
            return Err(Refusal::Host);
        }
        let write = matches!(
            req.method,
            Method::Post | Method::Patch | Method::Put | Method::Delete
        );
        if !write {
            return Ok(());
        }
        match req.header("content-type") {
            Some(ct) if is_json(ct) => Ok(()),
            Some(_) => Err(Refusal::ContentType),
            None if body_len > 0 => Err(Refusal::ContentType),
            None if Self::cross_site(req) && !self.origin_of(req) => Err(Refusal::CrossSite),
            None => Ok(()),
        }
    }

    /// Whether the request's origin is listed by name.
    fn origin_of(&self, req: &Request) -> bool {
        req.header("origin").is_some_and(|o| self.origin_listed(o))
    }

    /// A request admitted without credentials (a user `any`, by address) from another site is
    /// refused unless its origin is listed by name: `*` never makes a visited page an anonymous
    /// administrator.
    pub fn check_anonymous(&self, req: &Request, has_credentials: bool) -> Result<(), Refusal> {
        if !has_credentials && Self::cross_site(req) && !self.origin_of(req) {
            return Err(Refusal::CrossSite);
        }
        Ok(())
    }
}

/// `application/json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::http::{parse_request, Limits, Parsed};

    fn req(text: &str) -> Request {
        match parse_request(text.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    fn site<'a>(hosts: &'a [String], origins: &'a [String]) -> Site<'a> {
        Site {
            listen: "127.0.0.1:9997".parse().unwrap(),
            local: "127.0.0.1:9997".parse().unwrap(),
            allowed_hosts: hosts,
            allow_origins: origins,
        }
    }

    #[test]
    fn hosts() {
        let hosts = vec!["api.example.com".to_owned()];
        let star = vec!["*".to_owned()];
        let s = site(&hosts, &star);
        for ok in [
            "127.0.0.1:9997",
            "localhost:9997",
            "LOCALHOST",
            "[::1]:9997",
            "api.example.com",
        ] {
            assert!(s.host_allowed(Some(ok)), "{ok}");
        }
        for bad in ["evil.example:9997", "10.1.2.3", "localhost.evil.com"] {
            assert!(!s.host_allowed(Some(bad)), "{bad}");
        }
        assert!(s.host_allowed(None));
    }

    #[test]
    fn writes_need_json_and_cross_site_needs_listing() {
        let star = vec!["*".to_owned()];
        let s = site(&[], &star);
        let plain = req("POST /v3/config/paths/add/x HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(s.check_head(&plain, 2), Err(Refusal::ContentType));
        let json = req("POST /v3/config/paths/add/x HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(s.check_head(&json, 2), Ok(()));
        let cross = req("POST /v3/rtmpconns/kick/x HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nOrigin: http://evil.example\r\n\r\n");
        assert_eq!(s.check_head(&cross, 0), Err(Refusal::CrossSite));
        let get = req("GET /v3/config/global/get HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nOrigin: http://evil.example\r\n\r\n");
        assert_eq!(s.check_anonymous(&get, false), Err(Refusal::CrossSite));
        assert_eq!(s.check_anonymous(&get, true), Ok(()));
        let same =
            req("GET / HTTP/1.1\r\nHost: 127.0.0.1:9997\r\nOrigin: http://127.0.0.1:9997\r\n\r\n");
        assert_eq!(s.check_anonymous(&same, false), Ok(()));
        let listed = vec!["http://evil.example".to_owned()];
        assert_eq!(site(&[], &listed).check_anonymous(&get, false), Ok(()));
        assert_eq!(site(&[], &listed).check_head(&cross, 0), Ok(()));
    }

    #[test]
    fn cors_headers_follow_the_list() {
        let star = vec!["*".to_owned()];
        let get = req("GET / HTTP/1.1\r\nHost: h\r\nOrigin: http://dash.example\r\n\r\n");
        let h = site(&[], &star).cors_headers(&get);
        assert!(h.contains(&("Access-Control-Allow-Origin", "http://dash.example".into())));
        let other = vec!["http://x.example".to_owned()];
        let h = site(&[], &other).cors_headers(&get);
        assert!(!h.iter().any(|(n, _)| *n == "Access-Control-Allow-Origin"));
        let pre = req("OPTIONS /v3/paths/list HTTP/1.1\r\nHost: h\r\nOrigin: http://dash.example\r\nAccess-Control-Request-Method: PATCH\r\n\r\n");
        assert!(Site::is_preflight(&pre));
    }
}
