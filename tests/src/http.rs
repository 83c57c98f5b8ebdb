//! A minimal blocking HTTP/1.1 client over std sockets, for poking the engine's HTTP side with
//! exactly the bytes a test wants (malformed ones included).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `raw` as is and reads one response (body by Content-Length, or to the close).
pub fn raw_request(port: u16, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to engine http");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(raw).expect("send request");
    read_response(&mut stream)
}

/// `GET path` with `Connection: close` and any extra header lines.
pub fn get(port: u16, path: &str, extra_headers: &[&str]) -> Response {
    request(port, "GET", path, extra_headers)
}

pub fn request(port: u16, method: &str, path: &str, extra_headers: &[&str]) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !extra_headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        raw.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for h in extra_headers {
        raw.push_str(h);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    raw_request(port, raw.as_bytes())
}

/// Reads one response from `stream`.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("read response head");
        assert!(
            n > 0,
            "connection closed before a response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    match length {
        Some(len) => {
            while body.len() < len {
                let n = stream.read(&mut chunk).expect("read body");
                assert!(n > 0, "body cut short");
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(len);
        }
        None => {
            if status != 204 && status != 304 {
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            }
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
