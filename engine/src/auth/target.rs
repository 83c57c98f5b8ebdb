//! What a request URL names: protocol, vhost, app, stream and query. Used by the operator tools,
//! which take URLs as a client would send them.

use super::Protocol;

/// A request URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    pub protocol: Protocol,
    /// The host, without port.
    pub vhost: String,
    pub app: String,
    /// The stream name, without `.flv` / `.m3u8`.
    pub stream: String,
    /// The raw query, without `?`.
    pub query: String,
}

impl RequestTarget {
    /// Parses `rtmp://host[:port]/app/stream[?query]`, `http(s)://host[:port]/app/stream.flv[?query]`
    /// or `http(s)://host[:port]/app/stream.m3u8[?query]`.
    pub fn parse(url: &str) -> Result<RequestTarget, String> {
        let bad = |why: &str| format!("`{url}` is not a stream URL: {why}");
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (authority, path_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => return Err(bad("no path")),
        };
        let vhost = match authority.rsplit_once(':') {
            Some((h, port)) if !h.ends_with(']') || port.parse::<u16>().is_ok() => h,
            _ => authority,
        };
        let vhost = vhost.trim_start_matches('[').trim_end_matches(']');
        if vhost.is_empty() {
            return Err(bad("no host"));
        }
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let (app, last) = path[1..]
            .rsplit_once('/')
            .ok_or_else(|| bad("expected /app/stream"))?;
        let (protocol, stream) = match scheme {
            "rtmp" | "rtmps" => (Protocol::Rtmp, last),
            "http" | "https" => {
                if let Some(s) = last.strip_suffix(".flv") {
                    (Protocol::Flv, s)
                } else if let Some(s) = last.strip_suffix(".m3u8") {
                    (Protocol::Hls, s)
                } else {
                    return Err(bad("an HTTP stream URL ends in .flv or .m3u8"));
                }
            }
            other => return Err(bad(&format!("unsupported scheme `{other}`"))),
        };
        if app.is_empty() || stream.is_empty() {
            return Err(bad("expected /app/stream"));
        }
        Ok(RequestTarget {
            protocol,
            vhost: vhost.to_owned(),
            app: app.to_owned(),
            stream: stream.to_owned(),
            query: query.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_of_url() {
        let t = RequestTarget::parse("rtmp://a.com:1935/live/cam?token=1").unwrap();
        assert_eq!(
            (
                t.protocol,
                t.vhost.as_str(),
                t.app.as_str(),
                t.stream.as_str(),
                t.query.as_str()
            ),
            (Protocol::Rtmp, "a.com", "live", "cam", "token=1")
        );
        let t = RequestTarget::parse("http://[::1]:8080/live/test.flv").unwrap();
        assert_eq!(
            (t.protocol, t.vhost.as_str(), t.stream.as_str()),
            (Protocol::Flv, "::1", "test")
        );
        let t = RequestTarget::parse("https://b.com/app/x.m3u8?a=b").unwrap();
        assert_eq!((t.protocol, t.query.as_str()), (Protocol::Hls, "a=b"));
        assert!(RequestTarget::parse("http://b.com/app/x.mp4").is_err());
        assert!(RequestTarget::parse("rtmp://b.com/x").is_err());
        assert!(RequestTarget::parse("ftp://b.com/a/b").is_err());
    }
}
