use bytes::Bytes;

use super::query::{parse_query, percent_decode_path};
use super::HttpError;

/// Upper bound on [`Limits::max_headers`]: the size of the parser's header array on the stack.
const HEADER_ARRAY: usize = 128;

/// Limits a parser enforces on what a peer sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line (or status line) plus headers, in bytes.
    pub max_head_bytes: usize,
    /// Header fields; at most 128.
    pub max_headers: usize,
    /// `Content-Length` bodies (the control API's JSON); larger ones are refused with 413.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// A parse over a buffer: the message and how many bytes it took, or a request for more input.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Complete { message: T, consumed: usize },
    NeedMore,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// From the minor version httparse read (it accepts `HTTP/1.0` and `HTTP/1.1` only).
    pub(super) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    /// Any other token, as sent (methods are case-sensitive).
    Other(String),
}

impl Method {
    fn from_token(m: &str) -> Self {
        match m {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other(m) => m,
        }
    }
}

/// One header field; the name as sent (compare it case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A complete request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The request target exactly as sent (URL signatures are computed over it).
    pub target: String,
    /// The percent-decoded path: `/live/cam1.flv`. `*` for `OPTIONS *`; for an absolute-form
    /// target, the path part.
    pub path: String,
    /// The raw query after `?`, not decoded (empty if none); see [`Request::query_pairs`].
    pub query: String,
    pub version: Version,
    pub headers: Vec<Header>,
    /// Whether the connection may carry another request after this one's response: HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// The `Content-Length` body, empty if none.
    pub body: Bytes,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The decoded query pairs ([`parse_query`]).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(&self.query)
    }
}

pub(super) fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Whether any `Connection` header lists `token`.
pub(super) fn connection_has(headers: &[Header], token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(super) fn keep_alive(version: Version, headers: &[Header]) -> bool {
    if connection_has(headers, "close") {
        return false;
    }
    version == Version::Http11 || connection_has(headers, "keep-alive")
}

pub(super) fn convert_headers(raw: &[httparse::Header<'_>]) -> Result<Vec<Header>, HttpError> {
    raw.iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value).map_err(|_| HttpError::InvalidHeaderValue)?;
            Ok(Header {
                name: h.name.to_owned(),
                value: value.to_owned(),
            })
        })
        .collect()
}

/// The `Content-Length` of a message: `None` if absent; repeated values must agree.
pub(super) fn content_length(headers: &[Header]) -> Result<Option<u64>, HttpError> {
    let mut length = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        for v in h.value.split(',') {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::InvalidContentLength);
            }
            let n: u64 = v.parse().map_err(|_| HttpError::InvalidContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::InvalidContentLength);
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// httparse's verdict on a head (request or response) at the front of `buf`, with
/// `max_head_bytes` applied: the head's length once it is complete, `None` while it is partial
/// and may still fit.
pub(super) fn head_len(
    parsed: httparse::Result<usize>,
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<usize>, HttpError> {
    let too_large = || HttpError::HeadTooLarge {
        limit: limits.max_head_bytes,
    };
    match parsed {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head_bytes => Err(too_large()),
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => Err(too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(map_error(e, buf, limits)),
    }
}

fn map_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HttpError {
    match e {
        httparse::Error::HeaderName => HttpError::InvalidHeaderName,
        httparse::Error::HeaderValue => HttpError::InvalidHeaderValue,
        httparse::Error::NewLine => HttpError::InvalidNewline,
        httparse::Error::Status => HttpError::InvalidStatus,
        httparse::Error::Token => HttpError::InvalidToken,
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders {
            limit: limits.max_headers.min(HEADER_ARRAY),
        },
        httparse::Error::Version => {
            // "HTTP/2.0" is a version we do not speak (505); anything else is malformed (400).
            let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
            let line = &buf[..line_end];
            let looks_http = line.windows(5).any(|w| w == b"HTTP/");
            if looks_http {
                HttpError::UnsupportedVersion
            } else {
                HttpError::InvalidVersion
            }
        }
    }
}

fn split_target(target: &str) -> Result<(&str, &str), HttpError> {
    let path_and_query = if target.starts_with('/') || target == "*" {
        target
    } else {
        // absolute-form: scheme "://" authority path
        let after_scheme = target
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or(HttpError::InvalidTarget)?;
        match after_scheme.find(['/', '?']) {
            Some(i) if after_scheme.as_bytes()[i] == b'/' => &after_scheme[i..],
            Some(i) => return Ok(("/", &after_scheme[i + 1..])),
            None => "/",
        }
    };
    Ok(match path_and_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_and_query, ""),
    })
}

/// A request head: the request with an empty body, and how long its `Content-Length` body is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The request; its `body` is empty.
    pub request: Request,
    /// Bytes of body that follow the head.
    pub body_len: usize,
}

/// Parses one request head from the front of `buf`, without waiting for its body.
///
/// `NeedMore` until the head is complete; then the head and the bytes the head used. A caller
/// that must decide before buffering a body (the control API checks credentials first) parses
/// the head, decides, and only then reads `body_len` more bytes. Limits as [`parse_request`].
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Parsed<Head>, HttpError> {
    let mut storage = [httparse::EMPTY_HEADER; HEADER_ARRAY];
    let max_headers = limits.max_headers.min(HEADER_ARRAY);
    let mut req = httparse::Request::new(&mut storage[..max_headers]);
    let Some(head_len) = head_len(req.parse(buf), buf, limits)? else {
        return Ok(Parsed::NeedMore);
    };
    // httparse fills every field of a complete request.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::InvalidToken);
    };
    let version = Version::from_minor(minor);
    let headers = convert_headers(req.headers)?;
    if version == Version::Http11 && find_header(&headers, "host").is_none() {
        return Err(HttpError::MissingHost);
    }
    if find_header(&headers, "transfer-encoding").is_some() {
        return Err(HttpError::UnsupportedTransferEncoding);
    }
    let body_len = match content_length(&headers)? {
        Some(n) if n > limits.max_body_bytes as u64 => {
            return Err(HttpError::BodyTooLarge {
                length: n,
                limit: limits.max_body_bytes,
            })
        }
        Some(n) => n as usize,
        None => 0,
    };
    let (raw_path, query) = split_target(target)?;
    let path = if raw_path == "*" {
        raw_path.to_owned()
    } else {
        percent_decode_path(raw_path)?
    };
    let keep_alive = keep_alive(version, &headers);
    Ok(Parsed::Complete {
        message: Head {
            request: Request {
                method: Method::from_token(method),
                target: target.to_owned(),
                path,
                query: query.to_owned(),
                version,
                headers,
                keep_alive,
                body: Bytes::new(),
            },
            body_len,
        },
        consumed: head_len,
    })
}

/// Parses one request from the front of `buf`.
///
/// `NeedMore` until the head (and a `Content-Length` body) is complete; then the request and the
/// bytes it used, so the caller advances its buffer past them and parses the next pipelined
/// request. A head beyond `limits.max_head_bytes` is an error even while incomplete, so a peer
/// cannot make the caller buffer without bound.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed<Request>, HttpError> {
    let Parsed::Complete {
        message: Head {
            mut request,
            body_len,
        },
        consumed: head_len,
    } = parse_head(buf, limits)?
    else {
        return Ok(Parsed::NeedMore);
    };
    let consumed = head_len + body_len;
    if buf.len() < consumed {
        return Ok(Parsed::NeedMore);
    }
    request.body = Bytes::copy_from_slice(&buf[head_len..consumed]);
    Ok(Parsed::Complete {
        message: request,
        consumed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse_request(buf, &Limits::default()).unwrap() {
            Parsed::Complete { message, consumed } => (message, consumed),
            Parsed::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn simple_get() {
        let raw = b"GET /live/cam%201.flv?token=a%2Bb&x=1 HTTP/1.1\r\nHost: example\r\nUser-Agent: ffplay\r\n\r\n";
        let (r, n) = complete(raw);
        assert_eq!(n, raw.len());
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/live/cam%201.flv?token=a%2Bb&x=1");
        assert_eq!(r.path, "/live/cam 1.flv");
        assert_eq!(r.query, "token=a%2Bb&x=1");
        assert_eq!(r.query_pairs()[0], ("token".to_owned(), "a+b".to_owned()));
        assert_eq!(r.version, Version::Http11);
        assert_eq!(r.header("user-agent"), Some("ffplay"));
        assert!(r.keep_alive);
        assert!(r.body.is_empty());
    }

    #[test]
    fn pipelined_requests_and_bodies() {
        let raw: &[u8] = b"POST /v3/config/global/patch HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
        let mut buf = raw;
        let mut seen = Vec::new();
        while let Parsed::Complete { message, consumed } =
            parse_request(buf, &Limits::default()).unwrap()
        {
            seen.push((
                message.path.clone(),
                message.body.clone(),
                message.keep_alive,
            ));
            buf = &buf[consumed..];
        }
        assert!(buf.is_empty());
        assert_eq!(
            seen,
            [
                (
                    "/v3/config/global/patch".to_owned(),
                    Bytes::from_static(b"hello"),
                    true
                ),
                ("/a".to_owned(), Bytes::new(), true),
                ("/b".to_owned(), Bytes::new(), false),
            ]
        );
    }

    #[test]
    fn partial_input() {
        let raw = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
        for cut in 0..raw.len() {
            assert_eq!(
                parse_request(&raw[..cut], &Limits::default()),
                Ok(Parsed::NeedMore),
                "cut at {cut}"
            );
        }
        assert_eq!(complete(raw).1, raw.len());
    }

    #[test]
    fn too_large_head() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let mut raw = b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: ".to_vec();
        raw.extend_from_slice(&[b'a'; 100]);
        // Still incomplete, but already over the limit.
        let err = parse_request(&raw, &limits).unwrap_err();
        assert_eq!(err, HttpError::HeadTooLarge { limit: 64 });
        assert_eq!(err.status(), 431);
        raw.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            parse_request(&raw, &limits),
            Err(HttpError::HeadTooLarge { limit: 64 })
        );

        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        let err = parse_request(raw, &limits).unwrap_err();
        assert_eq!(err, HttpError::TooManyHeaders { limit: 2 });
        assert_eq!(err.status(), 431);
    }

    #[test]
    fn bad_request_lines() {
        let bad = |raw: &[u8]| parse_request(raw, &Limits::default()).unwrap_err();
        assert_eq!(bad(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n").status(), 505);
        assert_eq!(bad(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n").status(), 400);
        assert_eq!(
            bad(b"GET / FOO/1.1\r\nHost: h\r\n\r\n"),
            HttpError::InvalidVersion
        );
        assert_eq!(bad(b"GET  HTTP/1.1\r\n\r\n").status(), 400);
        assert_eq!(
            bad(b"GET live HTTP/1.1\r\nHost: h\r\n\r\n"),
            HttpError::InvalidTarget
        );
        assert_eq!(
            bad(b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n"),
            HttpError::InvalidPercentEncoding
        );
        assert_eq!(bad(b"GET / HTTP/1.1\r\n\r\n"), HttpError::MissingHost);
        assert_eq!(
            bad(b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n").status(),
            400
        );
        let te = bad(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(te.status(), 501);
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            HttpError::InvalidContentLength
        );
        assert_eq!(
            bad(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"),
            HttpError::InvalidContentLength
        );
        let big = bad(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n");
        assert_eq!(big.status(), 413);
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |raw: &[u8]| complete(raw).0.keep_alive;
        assert!(ka(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
        ));
    }

    #[test]
    fn target_forms() {
        let (r, _) = complete(
            b"GET http://example.com:8080/live/a.m3u8?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        );
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/live/a.m3u8", "x=1"));
        let (r, _) = complete(b"GET http://example.com?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/", "x=1"));
        let (r, _) = complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.method, r.path.as_str()), (Method::Options, "*"));
        let (r, _) = complete(b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(r.method, Method::Other("BREW".to_owned()));
    }
}
