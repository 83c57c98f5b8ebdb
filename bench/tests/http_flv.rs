//! `corestream-bench play` over HTTP-FLV against a small HTTP-FLV server made here (the engine's
//! HTTP listener is not served on this branch): a chunked FLV body of the synthetic stream, paced
//! in real time, stamped like a publisher stamps it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use corestream::protocol::flv::{encode_header, encode_tag};
use corestream::protocol::http::encode_chunk;
use corestream_bench::source::{Synthetic, SyntheticSpec};
use corestream_bench::stamp::{now_us, Stamper};

const BENCH: &str = env!("CARGO_BIN_EXE_corestream-bench");
/// The server stops streaming after this long whatever happens.
const SERVE_FOR: Duration = Duration::from_secs(5);

fn serve(mut conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    if !head.starts_with("GET /live/s.flv HTTP/1.1\r\n") {
        let _ = conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    let mut out = BytesMut::new();
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let mut body = BytesMut::new();
    encode_header(&mut body, true, true);
    encode_chunk(&mut out, &body);
    if conn.write_all(&out).is_err() {
        return;
    }
    let mut source = Synthetic::new(SyntheticSpec::new(500_000, Duration::from_secs(1)));
    let mut stamper = Stamper::new(0);
    let start = Instant::now();
    while start.elapsed() < SERVE_FOR {
        let due = start + Duration::from_millis(u64::from(source.next_ts()));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let frame = source.next_frame(&mut stamper, now_us());
        body.clear();
        out.clear();
        encode_tag(&mut body, &frame).expect("small frame");
        encode_chunk(&mut out, &body);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

#[test]
fn http_flv_players_parse_the_stream() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(3).flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
    let dir = tests::TempDir::new("bench-http");
    let json = dir.path.join("report.json");
    let out = Command::new(BENCH)
        .args([
            "play",
            "--url",
            &format!("http://127.0.0.1:{port}/live/s.flv"),
        ])
        .args(["--players", "2", "--duration", "2", "-q", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run the bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.signal_is_sigterm() {
        eprintln!("the bench got SIGTERM from outside (pkill corestream?); not judged");
        return;
    }
    assert!(out.status.success(), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json");
    let p = &r["players"];
    assert_eq!(p["started"], 2, "{r:#}");
    assert_eq!(p["with_frames"], 2, "{r:#}");
    assert_eq!(p["frames_lost"], 0, "{r:#}");
    assert_eq!(p["frames_unstamped"], 0, "{r:#}");
    assert!(p["video_frames"].as_u64().unwrap_or(0) >= 2 * 40, "{r:#}");
    let latency_max = p["latency_ms"]["max"].as_f64().unwrap_or(-1.0);
    assert!(latency_max > 0.0 && latency_max < 1000.0, "{r:#}");
    // A path the server does not have: refused with its status.
    let out = Command::new(BENCH)
        .args([
            "play",
            "--url",
            &format!("http://127.0.0.1:{port}/live/x.flv"),
        ])
        .args(["--players", "1", "--duration", "1", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("run the bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.signal_is_sigterm() {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("server answered 404 Not Found"), "{stdout}");
}

trait SigtermExt {
    fn signal_is_sigterm(&self) -> bool;
}

impl SigtermExt for std::process::ExitStatus {
    fn signal_is_sigterm(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal() == Some(15)
    }
}
