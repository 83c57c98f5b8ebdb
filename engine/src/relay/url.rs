//! Pull and push URLs: `rtmp(s)://host[:port]/app[/stream][?query]`,
//! `http(s)://host[:port]/path.flv[?query]` and `rtsp://[user:pass@]host[:port]/path`, split into
//! what the clients need.
#![forbid(unsafe_code)]

use std::fmt;

use crate::protocol::rtsp::{RtspUrl, RtspUrlError};

/// Default RTMP port.
pub const RTMP_PORT: u16 = 1935;
/// Default HTTP port.
pub const HTTP_PORT: u16 = 80;
/// Default HTTPS port.
pub const HTTPS_PORT: u16 = 443;

/// Why a URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("unsupported scheme (rtmp://, rtmps://, http://, https:// and rtsp:// are)")]
    UnsupportedScheme,
    #[error("no host")]
    MissingHost,
    #[error("invalid port '{0}'")]
    InvalidPort(String),
    #[error("no app (rtmp://host/app/stream)")]
    MissingApp,
    /// `user:pass@` in an `rtmp(s)://` or `http(s)://` URL: MediaMTX's Adobe RTMP authentication
    /// or HTTP basic auth, neither of which the relay speaks; dialing it would ask the resolver
    /// for `user:pass@host`.
    #[error("credentials in the URL are not supported here (only rtsp:// takes user:pass@); pass a token in the query instead")]
    Credentials,
    #[error("{0}")]
    Rtsp(#[from] RtspUrlError),
}

/// Where an RTMP client connects and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub host: String,
    pub port: u16,
    /// `connect`'s app.
    pub app: String,
    /// `play`/`publish`'s name with its `?query`; empty when the URL names only the app.
    pub stream: String,
    /// `connect`'s tcUrl: `rtmp://host:port/app` (`rtmps://` with TLS).
    pub tc_url: String,
    /// `rtmps://`: the connection runs TLS (default port 443).
    pub tls: bool,
}

/// Where an HTTP client connects and what it requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: u16,
    /// The request target: path and query.
    pub target: String,
    /// The `Host` header (with the port when it is not the default).
    pub authority: String,
    /// `https://`: the connection runs TLS.
    pub tls: bool,
}

impl HttpUrl {
    /// Whether the URL names an HLS playlist: pulled as HLS, not as HTTP-FLV. Every URL but one
    /// whose path ends in `.flv` (Corestream's HTTP-FLV pull) is, as MediaMTX takes every HTTP
    /// source for a playlist, named `.m3u8` or not.
    pub fn is_hls(&self) -> bool {
        !self
            .target
            .split(['?', '#'])
            .next()
            .is_some_and(|p| p.ends_with(".flv"))
    }
}

/// A parsed relay URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayUrl {
    Rtmp(RtmpUrl),
    HttpFlv(HttpUrl),
    Rtsp(RtspUrl),
}

impl RelayUrl {
    pub fn host(&self) -> &str {
        match self {
            RelayUrl::Rtmp(u) => &u.host,
            RelayUrl::HttpFlv(u) => &u.host,
            RelayUrl::Rtsp(u) => &u.host,
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            RelayUrl::Rtmp(u) => u.port,
            RelayUrl::HttpFlv(u) => u.port,
            RelayUrl::Rtsp(u) => u.port,
        }
    }
}

impl fmt::Display for RelayUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayUrl::Rtmp(u) if u.stream.is_empty() => f.write_str(&u.tc_url),
            RelayUrl::Rtmp(u) => write!(f, "{}/{}", u.tc_url, u.stream),
            RelayUrl::HttpFlv(u) => {
                let scheme = if u.tls { "https" } else { "http" };
                write!(f, "{scheme}://{}{}", u.authority, u.target)
            }
            // Without the credentials.
            RelayUrl::Rtsp(u) => write!(f, "{u}"),
        }
    }
}

/// Parses an `rtmp://`, `rtmps://`, `http://`, `https://` or `rtsp://` URL.
pub fn parse(url: &str) -> Result<RelayUrl, UrlError> {
    if url.starts_with("rtsp://") {
        return Ok(RelayUrl::Rtsp(RtspUrl::parse(url)?));
    }
    if let Some((rest, tls)) = url
        .strip_prefix("rtmp://")
        .map(|r| (r, false))
        .or_else(|| url.strip_prefix("rtmps://").map(|r| (r, true)))
    {
        let default_port = if tls { HTTPS_PORT } else { RTMP_PORT };
        let (host, port, path) = split_authority(rest, default_port)?;
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let path = path.trim_matches('/');
        let (app, stream) = path.split_once('/').unwrap_or((path, ""));
        if app.is_empty() {
            return Err(UrlError::MissingApp);
        }
        let mut stream = stream.to_owned();
        if let (Some(q), false) = (query, stream.is_empty()) {
            stream = format!("{stream}?{q}");
        }
        let host_part = bracket(&host);
        let scheme = if tls { "rtmps" } else { "rtmp" };
        Ok(RelayUrl::Rtmp(RtmpUrl {
            tc_url: format!("{scheme}://{host_part}:{port}/{app}"),
            host,
            port,
            app: app.to_owned(),
            stream,
            tls,
        }))
    } else if let Some((rest, tls)) = url
        .strip_prefix("http://")
        .map(|r| (r, false))
        .or_else(|| url.strip_prefix("https://").map(|r| (r, true)))
    {
        let default_port = if tls { HTTPS_PORT } else { HTTP_PORT };
        let (host, port, path) = split_authority(rest, default_port)?;
        let target = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let authority = if port == default_port {
            bracket(&host)
        } else {
            format!("{}:{port}", bracket(&host))
        };
        Ok(RelayUrl::HttpFlv(HttpUrl {
            host,
            port,
            target,
            authority,
            tls,
        }))
    } else {
        Err(UrlError::UnsupportedScheme)
    }
}

/// `url` as logs and the API show it: an `rtsp://` URL without its credentials, any other with
/// them hidden ([`hide_credentials`]).
pub fn redact(url: &str) -> String {
    match parse(url) {
        Ok(u @ RelayUrl::Rtsp(_)) => u.to_string(),
        _ => hide_credentials(url, url),
    }
}

/// `text` (a URL, or an error about one) with the credentials of `url`'s authority shown as the
/// API shows them (`user:<redacted>@`, or `<redacted>@` for a lone token): the relay dials an
/// authority as it is written, so an error about it (`resolve user:pass@host: …`) carries them.
pub fn hide_credentials(text: &str, url: &str) -> String {
    let Some((_, rest)) = url.split_once("://") else {
        return text.to_owned();
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return text.to_owned();
    };
    let userinfo = &authority[..=at];
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:<redacted>@"),
        None => "<redacted>@".to_owned(),
    };
    text.replace(userinfo, &shown)
}

/// `rtmp://origin/app` plus a stream name: the URL an edge pulls `stream` from.
pub fn join_stream(base: &str, stream: &str) -> String {
    let (base, query) = match base.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (base, None),
    };
    let mut url = format!("{}/{stream}", base.trim_end_matches('/'));
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Splits `host[:port]/rest` (IPv6 hosts in brackets) into host, port and `/rest`.
fn split_authority(rest: &str, default_port: u16) -> Result<(String, u16, &str), UrlError> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::Credentials);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(UrlError::MissingHost)?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| UrlError::InvalidPort(p.to_owned()))?,
    };
    Ok((host.to_owned(), port, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtmp(url: &str) -> RtmpUrl {
        match parse(url).unwrap() {
            RelayUrl::Rtmp(u) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rtmp_urls() {
        let u = rtmp("rtmp://origin.example:1936/live/cam1?token=x");
        assert_eq!((u.host.as_str(), u.port), ("origin.example", 1936));
        assert_eq!(u.app, "live");
        assert_eq!(u.stream, "cam1?token=x");
        assert_eq!(u.tc_url, "rtmp://origin.example:1936/live");
        let u = rtmp("rtmp://127.0.0.1/live");
        assert_eq!(
            (u.port, u.app.as_str(), u.stream.as_str()),
            (1935, "live", "")
        );
        let u = rtmp("rtmp://[::1]:2000/app/a/b");
        assert_eq!((u.host.as_str(), u.port), ("::1", 2000));
        assert_eq!(u.stream, "a/b");
        assert_eq!(u.tc_url, "rtmp://[::1]:2000/app");
        assert_eq!(
            parse("rtmp://h/live/s").unwrap().to_string(),
            "rtmp://h:1935/live/s"
        );
        assert!(!u.tls);
    }

    #[test]
    fn rtmps_urls() {
        let u = rtmp("rtmps://live-api-s.facebook.com/rtmp/KEY?s=1");
        assert_eq!(
            (u.host.as_str(), u.port, u.tls),
            ("live-api-s.facebook.com", 443, true)
        );
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("rtmp", "KEY?s=1"));
        assert_eq!(u.tc_url, "rtmps://live-api-s.facebook.com:443/rtmp");
        let u = rtmp("rtmps://127.0.0.1:8443/live/s");
        assert_eq!((u.port, u.tls), (8443, true));
        assert_eq!(
            parse("rtmps://127.0.0.1:8443/live/s").unwrap().to_string(),
            "rtmps://127.0.0.1:8443/live/s"
        );
    }

    #[test]
    fn http_urls() {
        let RelayUrl::HttpFlv(u) = parse("http://o:8080/live/a.flv?k=1").unwrap() else {
            panic!()
        };
        assert_eq!((u.host.as_str(), u.port), ("o", 8080));
        assert_eq!(u.target, "/live/a.flv?k=1");
        assert_eq!(u.authority, "o:8080");
        assert!(!u.is_hls());
        // Every other HTTP URL is a playlist, `.m3u8` or not (MediaMTX's hlsSource).
        for playlist in ["http://o/live/a/index.m3u8", "http://o:1234/mypath?x=a.flv"] {
            let RelayUrl::HttpFlv(u) = parse(playlist).unwrap() else {
                panic!()
            };
            assert!(u.is_hls(), "{playlist}");
        }
        let RelayUrl::HttpFlv(u) = parse("http://o/a.flv").unwrap() else {
            panic!()
        };
        assert_eq!((u.port, u.authority.as_str()), (80, "o"));
        assert!(!u.tls);
        let RelayUrl::HttpFlv(u) = parse("https://o/live/a.flv").unwrap() else {
            panic!()
        };
        assert_eq!((u.port, u.authority.as_str(), u.tls), (443, "o", true));
        let url = parse("https://127.0.0.1:8443/live/a.flv").unwrap();
        assert_eq!(url.to_string(), "https://127.0.0.1:8443/live/a.flv");
    }

    #[test]
    fn bad_urls() {
        assert_eq!(parse("rtsps://x/y"), Err(UrlError::UnsupportedScheme));
        assert_eq!(
            parse("rtsp://u:p@cam:8554/s").unwrap().to_string(),
            "rtsp://cam:8554/s"
        );
        assert_eq!(parse("rtmp:///live/s"), Err(UrlError::MissingHost));
        assert_eq!(parse("rtmp://u:p@h/live/s"), Err(UrlError::Credentials));
        assert_eq!(parse("https://tok@h/s.flv"), Err(UrlError::Credentials));
        assert_eq!(parse("rtmp://h/"), Err(UrlError::MissingApp));
        assert_eq!(
            parse("rtmp://h:99999/live"),
            Err(UrlError::InvalidPort("99999".into()))
        );
        assert_eq!(
            parse("rtmp://h:0/live"),
            Err(UrlError::InvalidPort("0".into()))
        );
    }

    #[test]
    fn edge_urls_append_the_stream() {
        assert_eq!(join_stream("rtmp://o1/live", "s"), "rtmp://o1/live/s");
        assert_eq!(join_stream("rtmp://o1/live/", "s"), "rtmp://o1/live/s");
        assert_eq!(
            join_stream("rtmp://o1/live?k=v", "s"),
            "rtmp://o1/live/s?k=v"
        );
    }

    #[test]
    fn credentials_are_hidden_wherever_they_are_shown() {
        let dest = "rtmp://pusher:s3cret@127.0.0.1:1935/app";
        assert_eq!(
            hide_credentials(dest, dest),
            "rtmp://pusher:<redacted>@127.0.0.1:1935/app"
        );
        assert_eq!(
            hide_credentials("resolve pusher:s3cret@127.0.0.1: no address", dest),
            "resolve pusher:<redacted>@127.0.0.1: no address"
        );
        // A lone token; a short one is replaced only where it stands before the `@`.
        let token = "rtmp://a@cdn/app";
        assert_eq!(
            hide_credentials("resolve a@cdn: a failure", token),
            "resolve <redacted>@cdn: a failure"
        );
        // No userinfo: nothing changes (an `@` in the path is not one).
        assert_eq!(hide_credentials("x@y", "rtmp://cdn/app@x"), "x@y");
    }
}
