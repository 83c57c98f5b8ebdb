//! `rtsp://[user[:password]@]host[:port]/path[?query]`.

use std::fmt;

/// The default RTSP port.
pub const RTSP_PORT: u16 = 554;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtspUrlError {
    #[error("not an rtsp:// url")]
    Scheme,
    #[error("no host")]
    MissingHost,
    #[error("invalid port '{0}'")]
    InvalidPort(String),
}

/// A parsed RTSP URL. Credentials are kept apart: they never appear in requests or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspUrl {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RtspUrl({self})")
    }
}

impl RtspUrl {
    /// Parses `url`; percent-escapes in the credentials are decoded.
    pub fn parse(url: &str) -> Result<RtspUrl, RtspUrlError> {
        let rest = url
            .strip_prefix("rtsp://")
            .or_else(|| url.strip_prefix("RTSP://"))
            .ok_or(RtspUrlError::Scheme)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(unescape(n)), Some(unescape(p))),
                None => (Some(unescape(u)), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or(RtspUrlError::MissingHost)?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(RtspUrlError::MissingHost);
        }
        let port = match port {
            None => RTSP_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| RtspUrlError::InvalidPort(p.to_owned()))?,
        };
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        Ok(RtspUrl {
            host: host.to_owned(),
            port,
            target,
            user,
            password,
        })
    }

    /// The URL requests carry: no credentials.
    pub fn request_uri(&self) -> String {
        self.to_string()
    }

    /// Whether `url` names the same server (a redirect to another host needs a new connection).
    pub fn same_server(&self, other: &RtspUrl) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl fmt::Display for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == RTSP_PORT {
            write!(f, "rtsp://{host}{}", self.target)
        } else {
            write!(f, "rtsp://{host}:{}{}", self.port, self.target)
        }
    }
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_credentials_and_port() {
        let u = RtspUrl::parse("rtsp://admin:p%40ss@cam.local:8554/live/ch1?x=1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("cam.local", 8554));
        assert_eq!(u.target, "/live/ch1?x=1");
        assert_eq!(u.user.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.request_uri(), "rtsp://cam.local:8554/live/ch1?x=1");
        let u = RtspUrl::parse("rtsp://10.0.0.1/s").unwrap();
        assert_eq!((u.port, u.user.is_none()), (554, true));
        assert_eq!(u.to_string(), "rtsp://10.0.0.1/s");
        assert_eq!(format!("{u:?}"), "RtspUrl(rtsp://10.0.0.1/s)");
        let u = RtspUrl::parse("rtsp://[::1]:9000").unwrap();
        assert_eq!((u.host.as_str(), u.target.as_str()), ("::1", "/"));
        assert_eq!(RtspUrl::parse("rtmp://x/y"), Err(RtspUrlError::Scheme));
        assert_eq!(
            RtspUrl::parse("rtsp://:1/y"),
            Err(RtspUrlError::MissingHost)
        );
        assert_eq!(
            RtspUrl::parse("rtsp://h:0/y"),
            Err(RtspUrlError::InvalidPort("0".into()))
        );
    }
}
