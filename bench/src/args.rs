//! Parsing of the command line's values: bitrates, durations, core lists and target URLs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A value on the command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgError {
    #[error("bad bitrate {0:?}: expected a number of bits per second with an optional k, M or G suffix (2500k, 2.5M)")]
    Bitrate(String),
    #[error("bad duration {0:?}: expected a number with ms, s, m or h (500ms, 2s, 1m30s); a bare number is seconds")]
    Duration(String),
    #[error("bad core list {0:?}: expected CPU numbers and ranges, e.g. 1 or 0,2-3")]
    Cores(String),
    #[error("bad url {url:?}: {reason}")]
    Url { url: String, reason: &'static str },
    #[error("cannot resolve {host}:{port}")]
    Resolve { host: String, port: u16 },
}

/// Parses `2500k`, `2.5M`, `250000` (bits per second).
pub fn parse_bitrate(s: &str) -> Result<u64, ArgError> {
    let err = || ArgError::Bitrate(s.to_owned());
    let t = s.trim();
    let t = t
        .strip_suffix("bps")
        .or_else(|| t.strip_suffix("b"))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'm' | 'M')) => (&t[..i], 1e6),
        Some((i, 'g' | 'G')) => (&t[..i], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| err())?;
    let bps = v * mult;
    if !bps.is_finite() || !(1000.0..=1e11).contains(&bps) {
        return Err(err());
    }
    Ok(bps.round() as u64)
}

/// Parses `500ms`, `2s`, `1m30s`, `1h`, or a bare number of seconds (`3`, `0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, ArgError> {
    let err = || ArgError::Duration(s.to_owned());
    let t = s.trim();
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| err());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if digits == 0 {
            return Err(err());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

/// Parses a CPU list as `taskset -c` writes it: `1`, `0,2`, `0-3`, `0,2-3`.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, ArgError> {
    let err = || ArgError::Cores(s.to_owned());
    let mut cores = Vec::new();
    for part in s.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| err())?;
                let b: usize = b.trim().parse().map_err(|_| err())?;
                if a > b || b - a > 4096 {
                    return Err(err());
                }
                cores.extend(a..=b);
            }
            None => cores.push(part.parse().map_err(|_| err())?),
        }
    }
    cores.sort_unstable();
    cores.dedup();
    if cores.is_empty() {
        return Err(err());
    }
    Ok(cores)
}

/// How players (or publishers) reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    Rtmp,
    HttpFlv,
}

/// A parsed `rtmp://host[:port]/app/stream[?query]` or `http://host[:port]/app/stream.flv[?query]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Everything between the host and the last path segment (`live`, or `a/b`).
    pub app: String,
    /// The last path segment, without `.flv` for HTTP-FLV.
    pub stream: String,
    /// The query string, without `?`, if any.
    pub query: Option<String>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, ArgError> {
        let bad = |reason| ArgError::Url {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest, default_port) = if let Some(r) = url.strip_prefix("rtmp://") {
            (Scheme::Rtmp, r, 1935)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::HttpFlv, r, 80)
        } else {
            return Err(bad("only rtmp:// and http:// (HTTP-FLV) are supported"));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no /app/stream path"))?;
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = port.unwrap_or(default_port);
        let (app, stream) = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .ok_or_else(|| bad("the path must be /app/stream"))?;
        if app.is_empty() || stream.is_empty() {
            return Err(bad("the path must be /app/stream"));
        }
        let stream = match scheme {
            Scheme::Rtmp => stream,
            Scheme::HttpFlv => stream
                .strip_suffix(".flv")
                .ok_or_else(|| bad("an HTTP-FLV url ends in .flv"))?,
        };
        Ok(Target {
            scheme,
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
            query,
        })
    }

    /// The stream name for stream `index` of `count`: the name itself when there is one stream,
    /// `name-INDEX` otherwise.
    pub fn stream_name(&self, index: usize, count: usize) -> String {
        if count <= 1 {
            self.stream.clone()
        } else {
            format!("{}-{index}", self.stream)
        }
    }

    /// The RTMP `tcUrl`: `rtmp://host:port/app`.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}:{}/{}", self.host_for_url(), self.port, self.app)
    }

    /// The stream name with the query (what RTMP `play`/`publish` carry).
    pub fn stream_with_query(&self, name: &str) -> String {
        match &self.query {
            Some(q) => format!("{name}?{q}"),
            None => name.to_owned(),
        }
    }

    /// The HTTP request target for stream `name`: `/app/name.flv[?query]`.
    pub fn http_path(&self, name: &str) -> String {
        match &self.query {
            Some(q) => format!("/{}/{name}.flv?{q}", self.app),
            None => format!("/{}/{name}.flv", self.app),
        }
    }

    /// `Host` header value.
    pub fn host_header(&self) -> String {
        format!("{}:{}", self.host_for_url(), self.port)
    }

    fn host_for_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// Resolves the host; the bench only ever talks to the loopback, so this must be local.
    pub fn resolve(&self) -> Result<SocketAddr, ArgError> {
        let resolve_err = || ArgError::Resolve {
            host: self.host.clone(),
            port: self.port,
        };
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|_| resolve_err())?
            .next()
            .ok_or_else(resolve_err)
    }
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h, Some(p.parse().ok()?))),
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("2500k").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("2.5M").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("250000").unwrap(), 250_000);
        assert_eq!(parse_bitrate("250kbps").unwrap(), 250_000);
        assert_eq!(parse_bitrate("1g").unwrap(), 1_000_000_000);
        for bad in ["", "k", "fast", "-5k", "10", "1.5x"] {
            assert!(parse_bitrate(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "2 parsecs", "-1", "1d", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("1").unwrap(), vec![1]);
        assert_eq!(parse_cores("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cores("3,1,1").unwrap(), vec![1, 3]);
        for bad in ["", "a", "3-1", "1,", "-"] {
            assert!(parse_cores(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rtmp_urls() {
        let t = Target::parse("rtmp://127.0.0.1:1936/live/cam?token=x").unwrap();
        assert_eq!(t.scheme, Scheme::Rtmp);
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 1936));
        assert_eq!((t.app.as_str(), t.stream.as_str()), ("live", "cam"));
        assert_eq!(t.query.as_deref(), Some("token=x"));
        assert_eq!(t.tc_url(), "rtmp://127.0.0.1:1936/live");
        assert_eq!(t.stream_with_query("cam-1"), "cam-1?token=x");
        assert_eq!(t.stream_name(0, 1), "cam");
        assert_eq!(t.stream_name(3, 4), "cam-3");
        let t = Target::parse("rtmp://localhost/a/b/c").unwrap();
        assert_eq!(
            (t.port, t.app.as_str(), t.stream.as_str()),
            (1935, "a/b", "c")
        );
        let t = Target::parse("rtmp://[::1]:19350/live/s").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 19350));
        assert_eq!(t.tc_url(), "rtmp://[::1]:19350/live");
    }

    #[test]
    fn http_flv_urls() {
        let t = Target::parse("http://127.0.0.1:8080/live/cam.flv").unwrap();
        assert_eq!(t.scheme, Scheme::HttpFlv);
        assert_eq!(t.stream, "cam");
        assert_eq!(t.http_path("cam-2"), "/live/cam-2.flv");
        assert_eq!(t.host_header(), "127.0.0.1:8080");
        assert!(Target::parse("http://127.0.0.1/live/cam").is_err());
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "srt://h/a/b",
            "rtmp://h",
            "rtmp://h/stream",
            "rtmp://:1935/a/b",
            "rtmp://h:port/a/b",
            "rtmp://h:99999/a/b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
