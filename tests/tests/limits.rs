//! Every configured limit, hit on purpose against the real binary: the connection is closed (or
//! the request refused), and `/metrics` counts it under the limit's key.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corestream::protocol::rtmp::ClientMode;
use tests::rtmp_client::{tcp_connect, wait_closed, RtmpClient};
use tests::{eventually, http, Engine};

fn connect(port: u16) -> TcpStream {
    tcp_connect(SocketAddr::from(([127, 0, 0, 1], port)), None).expect("connect")
}

/// Sends `bytes` one at a time, `every` apart, until they run out or the server closes; returns
/// how long after the first byte the connection was closed, if it was.
fn trickle(tcp: &mut TcpStream, bytes: &[u8], every: Duration) -> Option<Duration> {
    let start = Instant::now();
    for b in bytes {
        if tcp.write_all(&[*b]).is_err() {
            return Some(start.elapsed());
        }
        let mut probe = tcp.try_clone().expect("clone");
        if wait_closed(&mut probe, every).is_some() {
            return Some(start.elapsed());
        }
    }
    None
}

/// A client trickling its RTMP handshake a byte at a time never lets `readTimeout` expire, but
/// is cut at `handshakeTimeout` from the accept; likewise an HTTP client trickling its first
/// request head.
#[test]
fn trickled_handshake_and_head_are_cut_at_handshake_timeout() {
    let engine = Engine::start("handshakeTimeout: 1s\nreadTimeout: 10s\n");
    let mut rtmp = connect(engine.rtmp_port);
    let c0c1 = vec![3u8; 1537];
    let cut = trickle(&mut rtmp, &c0c1, Duration::from_millis(200))
        .expect("the RTMP handshake was never cut");
    assert!(cut < Duration::from_millis(2500), "cut after {cut:?}");

    let mut web = connect(engine.http_port);
    let head =
        b"GET /live/x.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let cut =
        trickle(&mut web, head, Duration::from_millis(200)).expect("the HTTP head was never cut");
    assert!(cut < Duration::from_millis(2500), "cut after {cut:?}");

    assert_eq!(engine.limit_hits("handshakeTimeout"), 2);
    assert_eq!(engine.count_log("within handshakeTimeout"), 2);
}

/// Beyond `maxConnectionsPerCore` a connection is closed as soon as it is accepted; the ones
/// already served are untouched.
#[test]
fn connections_beyond_the_per_core_limit_are_closed_at_once() {
    let engine = Engine::start("maxConnectionsPerCore: 2\n");
    // Two cores of two: at most four are kept, whichever way the kernel spreads them.
    let mut held: Vec<TcpStream> = (0..10).map(|_| connect(engine.rtmp_port)).collect();
    let mut closed = 0;
    for t in &mut held {
        if wait_closed(t, Duration::from_millis(300)).is_some() {
            closed += 1;
        }
    }
    assert!(closed >= 6, "only {closed} of 10 closed");
    assert!(
        eventually(Duration::from_secs(2), || engine
            .limit_hits("maxConnectionsPerCore")
            >= 6),
        "{}",
        engine.limit_hits("maxConnectionsPerCore")
    );
    drop(held);
    // Once they are gone, a player gets in again.
    assert!(eventually(Duration::from_secs(3), || engine
        .open_connections()
        == 0));
    let mut player = RtmpClient::connect(engine.rtmp_port, "live", "x", ClientMode::Play)
        .expect("connect after the limit");
    assert!(player
        .wait_for(Duration::from_secs(5), |e| {
            matches!(e, corestream::protocol::rtmp::ClientEvent::Connected).then_some(())
        })
        .is_ok());
}

/// With `maxStreamsPerCore: 1` on two cores, a third stream cannot be placed: its publish is
/// refused and counted.
#[test]
fn publishes_beyond_the_per_core_stream_limit_are_refused() {
    let engine = Engine::start("maxStreamsPerCore: 1\n");
    let mut live = Vec::new();
    let mut refused = 0;
    for i in 0..6 {
        let mut p = RtmpClient::connect(
            engine.rtmp_port,
            "live",
            &format!("s{i}"),
            ClientMode::Publish,
        )
        .expect("connect");
        match p.wait_status(Duration::from_secs(5)) {
            Ok(code) if code == "NetStream.Publish.Start" => live.push(p),
            Ok(code) => {
                assert_eq!(code, "NetStream.Publish.BadName");
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(live.len() <= 2, "{} streams live on two cores", live.len());
    assert_eq!(refused, 6 - live.len());
    assert_eq!(engine.limit_hits("maxStreamsPerCore"), refused as u64);
    assert!(engine.count_log("maxStreamsPerCore") >= refused);
}

/// An API body over `apiMaxBodyBytes` gets a 413, counted on the control core.
#[test]
fn api_body_over_the_limit_is_refused() {
    let engine = Engine::start("apiMaxBodyBytes: 1024\n");
    let big = format!("{{\"maxReaders\": 1, \"x\": \"{}\"}}", "a".repeat(2000));
    let r = engine.api("POST", "/v3/config/paths/add/live/big", Some(&big));
    assert_eq!(r.status, 413, "{}", r.text());
    let ok = engine.api(
        "POST",
        "/v3/config/paths/add/live/ok",
        Some("{\"maxReaders\": 1}"),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let scrape = http::get(engine.metrics_port, "/metrics", &[]).text();
    assert!(
        scrape
            .contains("corestream_limit_hits_total{core=\"control\",limit=\"apiMaxBodyBytes\"} 1"),
        "{scrape}"
    );
}

/// A request head over `httpMaxHeaderBytes` gets a 431 and counts.
#[test]
fn http_head_over_the_limit_is_refused_and_counted() {
    let engine = Engine::start("httpMaxHeaderBytes: 1024\n");
    let head = format!(
        "GET /live/x.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2000)
    );
    assert_eq!(http::raw_status(engine.http_port, head.as_bytes()), 431);
    assert!(eventually(Duration::from_secs(2), || engine
        .limit_hits("httpMaxHeaderBytes")
        == 1));
}

/// A client that pipelines requests and never reads the answers is not read any further once
/// its unread answers pass `playerMaxQueueBytes`, and is closed after `slowPlayerTimeout`:
/// answers (never dropped, unlike media) no longer pile up in memory without bound.
#[test]
fn pipelining_without_reading_is_stopped_and_cut() {
    let engine = Engine::start("playerMaxQueueBytes: 65536\nslowPlayerTimeout: 1s\n");
    let tcp = tcp_connect(
        SocketAddr::from(([127, 0, 0, 1], engine.http_port)),
        Some(4096),
    )
    .expect("connect");
    let mut writer = tcp.try_clone().expect("clone");
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    // 50 000 requests of 40 bytes: 2 MB in, about 8 MB of 404s out if all were answered.
    let sender = std::thread::spawn(move || {
        let request = b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        let mut sent = 0usize;
        for _ in 0..50_000 {
            if writer.write_all(request).is_err() {
                break;
            }
            sent += request.len();
        }
        sent
    });
    assert!(
        eventually(Duration::from_secs(10), || engine
            .limit_hits("playerMaxQueueBytes")
            == 1),
        "never cut: {:?}",
        engine.log().iter().rev().take(5).collect::<Vec<_>>()
    );
    let sent = sender.join().expect("sender");
    assert!(sent < 2_000_000, "the engine read all {sent} bytes");
    assert_eq!(
        engine.count_log("of responses unread for slowPlayerTimeout"),
        1
    );
}

/// `maxMessageSize`, `readTimeout` and `gopCacheMaxBytes` are counted under their keys too.
#[test]
fn message_size_read_timeout_and_gop_cache_are_counted() {
    use bytes::Bytes;
    use corestream::media::{Frame, MediaKind};
    use tests::rtmp_client::raw_after_handshake;

    let engine = Engine::start(
        "maxMessageSize: 1048576\nreadTimeout: 1s\nhandshakeTimeout: 10s\ngopCacheMaxBytes: 100000\n",
    );
    // A message header announcing 2 MB.
    let mut big = raw_after_handshake(engine.rtmp_port).expect("handshake");
    let mut header = vec![0x03, 0, 0, 0];
    header.extend_from_slice(&2_000_000u32.to_be_bytes()[1..]);
    header.push(20);
    header.extend_from_slice(&0u32.to_le_bytes());
    big.write_all(&header).expect("send header");
    assert!(wait_closed(&mut big, Duration::from_secs(3)).is_some());

    // Silent after the handshake, well within handshakeTimeout: readTimeout cuts it.
    let mut silent = raw_after_handshake(engine.rtmp_port).expect("handshake");
    assert!(wait_closed(&mut silent, Duration::from_secs(3)).is_some());
    assert_eq!(engine.limit_hits("maxMessageSize"), 1);
    assert_eq!(engine.limit_hits("readTimeout"), 1);
    assert_eq!(engine.limit_hits("handshakeTimeout"), 0);

    // A GOP of 30 frames of 5 KB outgrows a 100 000-byte cache once.
    let mut publisher =
        RtmpClient::connect(engine.rtmp_port, "live", "gop", ClientMode::Publish).expect("connect");
    publisher
        .wait_publish_started(Duration::from_secs(5))
        .expect("publish");
    for i in 0..30u32 {
        let mut body = vec![if i == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.resize(5000, 0);
        publisher
            .send_media(&Frame::new(MediaKind::Video, i * 40, Bytes::from(body)))
            .expect("send");
    }
    assert!(
        eventually(Duration::from_secs(3), || engine
            .limit_hits("gopCacheMaxBytes")
            == 1),
        "{}",
        engine.limit_hits("gopCacheMaxBytes")
    );
    drop(publisher);
}
