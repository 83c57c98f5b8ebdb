//! TLS links: engine B pulls `https://…/live/s.flv` from engine A behind nginx as a TLS
//! terminator, pulls `rtmps://…/live/s` and pushes to `rtmps://…/pushed` through engine A behind
//! a TLS terminator of Python's ssl module (OpenSSL), each with a self-signed certificate pinned
//! with `sourceFingerprint` (a forward's `fingerprint`); a wrong pin and a missing one show the
//! exact certificate error in the API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::{free_port, Engine, TempDir};

/// A self-signed certificate for 127.0.0.1 in `dir`; returns its fingerprint as MediaMTX wants
/// it (`openssl x509 -noout -fingerprint -sha256`, colons removed).
fn self_signed(dir: &Path) -> String {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
        .args(["-subj", "/CN=127.0.0.1", "-days", "1"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl req failed");
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let (_, fp) = text.trim().split_once('=').expect("a fingerprint line");
    fp.replace(':', "")
}

/// nginx terminating TLS on `port` for the HTTP server on `upstream`; killed when dropped.
struct Nginx(Child);

impl Nginx {
    fn start(dir: &Path, port: u16, upstream: u16) -> Nginx {
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nerror_log stderr;\npid {d}/nginx.pid;\n\
             events {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
             \x20 fastcgi_temp_path {d};\n  uwsgi_temp_path {d};\n  scgi_temp_path {d};\n\
             \x20 server {{\n    listen 127.0.0.1:{port} ssl;\n\
             \x20   ssl_certificate {d}/cert.pem;\n    ssl_certificate_key {d}/key.pem;\n\
             \x20   location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n\
             \x20     proxy_buffering off;\n      proxy_http_version 1.1;\n    }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx runs (tests/run.sh installs it)");
        let up = tests::eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "nginx never listened on {port}");
        Nginx(child)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tests/scripts/tls_proxy.py`: TLS on `port` (the certificate of `dir`) in front of the plain
/// TCP server on `upstream`; killed when dropped.
struct TlsProxy(Child);

impl TlsProxy {
    fn start(dir: &Path, port: u16, upstream: u16) -> TlsProxy {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tls_proxy.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(upstream.to_string())
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 runs");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "listening", "tls_proxy.py did not start");
        TlsProxy(child)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Engine B with three paths pulling `url`: `live/s` pinned to `fingerprint`, `live/wrong`
/// pinned to another certificate and `live/unpinned`; checks that the last two fail on the
/// certificate and say exactly why.
fn puller_of(url: &str, fingerprint: &str) -> Engine {
    let wrong = "ab".repeat(32);
    let b = Engine::start(&format!(
        "paths:\n  live/s:\n    source: {url}\n    sourceFingerprint: {fingerprint}\n\
         \x20 live/wrong:\n    source: {url}\n    sourceFingerprint: \"{wrong}\"\n\
         \x20 live/unpinned:\n    source: {url}\n"
    ));
    let item = b.wait_source_state("live/wrong", "error", Duration::from_secs(15));
    assert_eq!(
        item["sourceError"],
        format!(
            "source fingerprint does not match: expected {wrong}, got {}",
            fingerprint.to_ascii_lowercase()
        ),
        "{item}"
    );
    let item = b.wait_source_state("live/unpinned", "error", Duration::from_secs(15));
    assert_eq!(
        item["sourceError"],
        "tls: certificate signed by unknown authority (self-signed: pin it with sourceFingerprint)",
        "{item}"
    );
    b
}

/// A reader of three seconds of `url` (started now: it waits for the stream as long as the
/// engine lets it).
fn probe_3s(url: &str) -> Child {
    ff::spawn_probe_with(url, &["-read_intervals", "%+3"])
}

/// What `probe` read decodes as H.264 with more than 25 frames.
fn assert_h264(probe: Child, what: &str) {
    let out = wait_with_timeout(probe, Duration::from_secs(60), what);
    let p = parse_probe(&out).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(p.video_codec, "h264", "{what}");
    assert!(p.video_frames > 25, "{what}: {p:?}");
}

#[test]
fn rtmps_source_pinned_by_fingerprint() {
    let dir = TempDir::new("relay-rtmps");
    let fingerprint = self_signed(&dir.path);
    let a = Engine::start("");
    let tls_port = free_port();
    let _proxy = TlsProxy::start(&dir.path, tls_port, a.rtmp_port);
    let url = format!("rtmps://127.0.0.1:{tls_port}/live/s");
    let b = puller_of(&url, &fingerprint);

    // The pinned one plays: RTMP inside TLS, through OpenSSL on the other end.
    let mut publisher = ff::publish(&a.rtmp_url("live/s"), 20);
    a.wait_for_log("publish started", Duration::from_secs(10));
    let item = b.wait_source_state("live/s", "ready", Duration::from_secs(30));
    assert_eq!(item["source"]["type"], "rtmpSource", "{item}");
    assert_eq!(item["sourceUrl"], url);
    assert!(item["sourceBytesReceived"].as_u64() > Some(0), "{item}");
    assert_h264(probe_3s(&b.rtmp_url("live/s")), "reader of the rtmps pull");
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn rtmps_forward_pinned_by_fingerprint() {
    let dir = TempDir::new("relay-rtmps-push");
    let fingerprint = self_signed(&dir.path);
    let a = Engine::start("playWaitTimeout: 20s\n");
    let tls_port = free_port();
    let _proxy = TlsProxy::start(&dir.path, tls_port, a.rtmp_port);
    let dest = format!("rtmps://127.0.0.1:{tls_port}/pushed");
    let b = Engine::start(&format!(
        "paths:\n  live/p:\n    forward:\n      - dest: {dest}\n        fingerprint: {fingerprint}\n\
         \x20 live/w:\n    forward:\n      - dest: {dest}\n        fingerprint: \"{}\"\n",
        "cd".repeat(32)
    ));

    let probe = probe_3s(&a.rtmp_url("pushed/p"));
    let mut publisher = ff::publish(&b.rtmp_url("live/p"), 20);
    let mut wrong = ff::publish(&b.rtmp_url("live/w"), 20);
    a.wait_for_log("publish started", Duration::from_secs(15));
    let mut item = serde_json::Value::Null;
    assert!(
        tests::eventually(Duration::from_secs(10), || {
            item = b.path_item("live/p");
            item["forwards"][0]["state"] == "live"
                && item["forwards"][0]["bytesSent"].as_u64() > Some(0)
        }),
        "{item}"
    );
    assert_eq!(item["forwards"][0]["dest"], dest);
    assert_h264(probe, "reader of the rtmps push");

    // The wrongly pinned push never gets through, and says why.
    let expected = format!(
        "forward fingerprint does not match: expected {}, got {}",
        "cd".repeat(32),
        fingerprint.to_ascii_lowercase()
    );
    assert!(
        tests::eventually(Duration::from_secs(10), || {
            item = b.path_item("live/w");
            item["forwards"][0]["error"] == expected.as_str()
        }),
        "{item}"
    );
    assert_ne!(item["forwards"][0]["state"], "live", "{item}");
    assert_eq!(
        a.count_log("publish started"),
        1,
        "only the pinned push reached A"
    );
    for p in [&mut publisher, &mut wrong] {
        let _ = p.kill();
        let _ = p.wait();
    }
}

#[test]
fn https_source_pinned_by_fingerprint() {
    let dir = TempDir::new("relay-tls");
    let fingerprint = self_signed(&dir.path);
    assert_eq!(fingerprint.len(), 64, "{fingerprint}");

    let a = Engine::start("");
    let tls_port = free_port();
    let _nginx = Nginx::start(&dir.path, tls_port, a.http_port);
    let url = format!("https://127.0.0.1:{tls_port}/live/s.flv");
    let b = puller_of(&url, &fingerprint);

    // The pinned one plays.
    let publisher = ff::publish(&a.rtmp_url("live/s"), 20);
    a.wait_for_log("publish started", Duration::from_secs(10));
    let item = b.wait_source_state("live/s", "ready", Duration::from_secs(30));
    assert_eq!(item["source"]["type"], "httpFlvSource");
    assert_eq!(item["sourceUrl"], url);
    assert!(item["sourceBytesReceived"].as_u64() > Some(0), "{item}");
    assert_h264(probe_3s(&b.rtmp_url("live/s")), "reader of the https pull");

    // The wrong pin never got through.
    let item = b.path_item("live/wrong");
    assert_ne!(item["sourceState"], "ready", "{item}");
    let mut publisher = publisher;
    let _ = publisher.kill();
    let _ = publisher.wait();
}
