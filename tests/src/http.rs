//! A tiny blocking HTTP/1.1 client on `std::net`, for the engine's HTTP side and control API: one
//! request per connection, many on a kept-alive [`Client`] (for load loops), or raw bytes
//! (malformed requests included).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// The `error` text of an error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// A kept-alive connection to `127.0.0.1:port`.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the engine");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        let _ = stream.set_nodelay(true);
        Client {
            reader: BufReader::new(stream.try_clone().expect("clone stream")),
            writer: stream,
        }
    }

    /// Sends one request and reads its response. `Host: 127.0.0.1` is added unless `headers`
    /// has a Host.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            req.push_str("Host: 127.0.0.1\r\n");
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "OPTIONS") {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.writer.write_all(req.as_bytes()).expect("send request");
        self.read_response(method == "HEAD")
    }

    /// Sends raw bytes and reads one response.
    pub fn raw(&mut self, bytes: &[u8]) -> Response {
        self.writer.write_all(bytes).expect("send");
        self.read_response(false)
    }

    /// Reads one response; its body is framed by `Content-Length` (none for HEAD, 1xx, 204, 304).
    pub fn read_response(&mut self, head_only: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let no_body = head_only || status < 200 || status == 204 || status == 304;
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; if no_body { 0 } else { len }];
        self.reader.read_exact(&mut body).expect("body");
        Response {
            status,
            headers,
            body,
        }
    }
}

/// One request on a new connection.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    Client::connect(port).request(method, path, body, headers)
}

/// `GET path` on a new connection, following redirects on the same server as players do (an
/// HLS playlist's first request is redirected to the viewer's session); [`request`] does not.
pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut response = request(port, "GET", path, None, headers);
    for _ in 0..5 {
        let location = match response.header("Location") {
            Some(l) if (301..=308).contains(&response.status) && l.starts_with('/') => l.to_owned(),
            _ => break,
        };
        response = request(port, "GET", &location, None, headers);
    }
    response
}

/// Sends raw bytes on a new connection and reads the answer (for malformed requests).
pub fn raw_request(port: u16, bytes: &[u8]) -> Response {
    Client::connect(port).raw(bytes)
}

/// The status of the answer to raw bytes.
pub fn raw_status(port: u16, bytes: &[u8]) -> u16 {
    raw_request(port, bytes).status
}

/// An operator's auth backend (`authMethod: http`), run by the test on a free loopback port:
/// 200 when the JSON's `user` is `good`, 401 otherwise; keeps every body.
pub fn auth_service() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let ok = json["user"] == "good";
            log.lock().unwrap().push(json);
            let status = if ok { "200 OK" } else { "401 Unauthorized" };
            let _ = (&conn)
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    (port, seen)
}
