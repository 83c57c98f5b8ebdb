//! Soak and fault test: the real binary under hostile churn, bounded in time.
//!
//! For `CORESTREAM_SOAK_SECS` seconds (default 10, the CI form; e.g. `CORESTREAM_SOAK_SECS=600`
//! by hand), all at once: thousands of connections opened and dropped abruptly (RST through
//! `SO_LINGER 0`, half-open ones that go silent, FIN-only ones), slowloris clients trickling the
//! RTMP handshake and HTTP heads, publishers that vanish mid-message, players that stop reading,
//! a republish storm on one stream key, and API writes. A steady publisher and healthy players
//! (four RTMP, two HTTP-FLV) run throughout. Afterwards the engine must serve a fresh player within a second, every
//! healthy player must have seen monotonic timestamps, and once everyone left the engine's RSS
//! must be back within a few MiB of where it was after a warm-up round, with exactly the file
//! descriptors it had then.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corestream::media::{Frame, MediaKind};
use corestream::protocol::rtmp::{ClientEvent, ClientMode};
use tests::rtmp_client::{tcp_connect, ClientError as TestClientError, RtmpClient};
use tests::{eventually, Engine};

/// RSS may differ from the warmed-up baseline by this much (allocator caches, lazily grown
/// per-core tables).
const RSS_SLACK_KIB: u64 = 4 * 1024;

const CONFIG: &str = "handshakeTimeout: 2s\nreadTimeout: 3s\nslowPlayerTimeout: 1s\n\
playerMaxQueueBytes: 65536\nplayWaitTimeout: 1s\nhttpIdleTimeout: 2s\n\
paths:\n  live/storm:\n    overridePublisher: true\n  all_others: {}\n";

fn soak_duration() -> Duration {
    let secs = std::env::var("CORESTREAM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    Duration::from_secs(secs)
}

/// What every load thread shares.
#[derive(Clone)]
struct Load {
    rtmp: u16,
    http: u16,
    stop: Arc<AtomicBool>,
    /// Connections opened by the load, all kinds together.
    opened: Arc<AtomicU64>,
}

impl Load {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn tcp(&self, port: u16) -> Option<TcpStream> {
        let t = tcp_connect(SocketAddr::from(([127, 0, 0, 1], port)), None).ok()?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Some(t)
    }

    fn rtmp_client(
        &self,
        stream: &str,
        mode: ClientMode,
        rcvbuf: Option<usize>,
    ) -> Option<RtmpClient> {
        let c = RtmpClient::connect_with(self.rtmp, "live", stream, mode, rcvbuf).ok()?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Some(c)
    }

    fn spawn(&self, name: &str, f: impl FnOnce(Load) + Send + 'static) -> JoinHandle<()> {
        let load = self.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || f(load))
            .expect("spawn load thread")
    }
}

/// Closes with a reset instead of a FIN.
fn reset(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}

/// FLV AVC video: a sequence header, a keyframe every 25 frames, 40 ms apart.
fn video(i: u32, size: usize) -> Frame {
    let keyframe = i.is_multiple_of(25);
    let mut body = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    body.resize(if keyframe { size * 8 } else { size }, i as u8);
    Frame::new(MediaKind::Video, i * 40, Bytes::from(body))
}

fn sequence_header() -> Frame {
    Frame::new(
        MediaKind::Video,
        0,
        Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff]),
    )
}

/// Publishes `stream` in real time (25 fps, ~2 KB frames) until `stop`.
fn steady_publisher(load: &Load, stream: &str, stop: &AtomicBool) -> Result<u32, String> {
    let mut p = load
        .rtmp_client(stream, ClientMode::Publish, None)
        .ok_or("publisher cannot connect")?;
    p.wait_publish_started(Duration::from_secs(10))?;
    p.send_media(&sequence_header())
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        p.send_media(&video(i, 2000))
            .map_err(|e| format!("frame {i}: {e}"))?;
        i += 1;
        let due = start + Duration::from_millis(u64::from(i) * 40);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    p.goodbye().map_err(|e| e.to_string())?;
    Ok(i)
}

/// What a healthy player saw.
#[derive(Debug, Default)]
struct Played {
    frames: u64,
    /// Timestamps that went backwards (video, sequence headers aside).
    backwards: Vec<(u32, u32)>,
}

/// Plays `stream` until `stop`, checking that video timestamps never go backwards.
fn healthy_player(load: &Load, stream: &str, stop: &AtomicBool) -> Result<Played, String> {
    let mut p = load
        .rtmp_client(stream, ClientMode::Play, None)
        .ok_or("player cannot connect")?;
    p.wait_play_started(Duration::from_secs(10))?;
    let mut played = Played::default();
    let mut last: Option<u32> = None;
    while !stop.load(Ordering::Relaxed) {
        match p.next_event(Instant::now() + Duration::from_millis(200)) {
            Ok(ClientEvent::Media(f)) if f.kind == MediaKind::Video && !f.is_sequence_header() => {
                played.frames += 1;
                if let Some(prev) = last {
                    if f.timestamp < prev {
                        played.backwards.push((prev, f.timestamp));
                    }
                }
                last = Some(f.timestamp);
            }
            Ok(_) | Err(TestClientError::Timeout) => {}
            Err(e) => return Err(format!("healthy player lost its stream: {e}")),
        }
    }
    Ok(played)
}

/// Plays `stream` over HTTP-FLV (HTTP/1.0: the body is the bare FLV stream) until `stop`, checking
/// that video timestamps never go backwards.
fn healthy_flv_player(load: &Load, stream: &str, stop: &AtomicBool) -> Result<Played, String> {
    use std::io::Read;
    let mut tcp = load.tcp(load.http).ok_or("flv player cannot connect")?;
    tcp.write_all(format!("GET /live/{stream}.flv HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut flv = corestream::protocol::flv::FlvReader::new();
    let mut played = Played::default();
    let mut last: Option<u32> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match tcp.read(&mut buf) {
            // The steady publisher says goodbye once `stop` is set: the stream ends.
            Ok(0) if stop.load(Ordering::Relaxed) => break,
            Ok(0) => return Err("flv player: the engine closed the stream".into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("flv player: {e}")),
        };
        let mut body = &buf[..n];
        if last.is_none() && played.frames == 0 && !head.ends_with(b"\r\n\r\n") {
            // Still in the response head: split it off the first body bytes.
            head.extend_from_slice(body);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !head.starts_with(b"HTTP/1.0 200") && !head.starts_with(b"HTTP/1.1 200") {
                return Err(format!("flv player: {}", String::from_utf8_lossy(&head)));
            }
            let rest = head.split_off(end + 4);
            flv.feed(&rest);
            body = &[];
        }
        flv.feed(body);
        while let Some(f) = flv.poll_frame().map_err(|e| format!("flv player: {e}"))? {
            if f.kind == MediaKind::Video && !f.is_sequence_header() {
                played.frames += 1;
                if let Some(prev) = last {
                    if f.timestamp < prev {
                        played.backwards.push((prev, f.timestamp));
                    }
                }
                last = Some(f.timestamp);
            }
        }
    }
    Ok(played)
}

/// Connections opened and dropped abruptly, in every way a client can drop one.
fn churn(load: Load, seed: u64) {
    let mut n = seed;
    while load.running() {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        match (n >> 33) % 8 {
            // RTMP: a partial handshake, then a reset.
            0 => {
                if let Some(mut t) = load.tcp(load.rtmp) {
                    let _ = t.write_all(&[3; 700]);
                    reset(&t);
                }
            }
            // HTTP: a partial head, then a reset.
            1 => {
                if let Some(mut t) = load.tcp(load.http) {
                    let _ = t.write_all(b"GET /live/main.flv HTTP/1.1\r\nHost: x\r\n");
                    reset(&t);
                }
            }
            // Connect and reset at once.
            2 => {
                if let Some(t) = load.tcp(if n & 1 == 0 { load.rtmp } else { load.http }) {
                    reset(&t);
                }
            }
            // FIN-only half close: we stop sending and leave.
            3 => {
                if let Some(t) = load.tcp(load.rtmp) {
                    let _ = t.shutdown(Shutdown::Write);
                }
            }
            // An RTMP player of the live stream, reset right after it starts.
            4 => {
                if let Some(mut p) = load.rtmp_client("main", ClientMode::Play, None) {
                    let _ = p.wait_play_started(Duration::from_secs(3));
                    reset(p.tcp());
                }
            }
            // An HTTP-FLV viewer, reset after the first bytes.
            5 => {
                if let Some(mut t) = load.tcp(load.http) {
                    let _ = t.write_all(b"GET /live/main.flv HTTP/1.1\r\nHost: x\r\n\r\n");
                    let _ = t.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = std::io::Read::read(&mut t, &mut buf);
                    reset(&t);
                }
            }
            // Garbage where a handshake should be.
            6 => {
                if let Some(mut t) = load.tcp(load.rtmp) {
                    let _ = t.write_all(&[0xff; 1600]);
                    drop(t);
                }
            }
            // A keep-alive HTTP request, answered 404, then a FIN.
            _ => {
                if let Some(mut t) = load.tcp(load.http) {
                    let _ = t.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
                    let _ = t.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 1024];
                    let _ = std::io::Read::read(&mut t, &mut buf);
                }
            }
        }
    }
}

/// Slowloris: connections trickling a byte now and then, at the RTMP handshake and in HTTP
/// heads, and half-open ones that go silent. Each must be cut at `handshakeTimeout` (2 s).
fn slowloris(load: Load, cut_late: Arc<AtomicU64>) {
    const HELD: usize = 40;
    let mut held: Vec<(TcpStream, Instant, usize)> = Vec::new();
    let http_head = b"GET /live/main.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n";
    let mut k = 0usize;
    while load.running() {
        while held.len() < HELD {
            k += 1;
            let port = if k.is_multiple_of(2) {
                load.rtmp
            } else {
                load.http
            };
            if let Some(t) = load.tcp(port) {
                let _ = t.set_nonblocking(true);
                held.push((t, Instant::now(), k));
            }
        }
        held.retain_mut(|(t, since, k)| {
            let mut buf = [0u8; 4096];
            let closed = match std::io::Read::read(t, &mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            if closed {
                if since.elapsed() > Duration::from_millis(3500) {
                    cut_late.fetch_add(1, Ordering::Relaxed);
                }
                return false;
            }
            // Every third one is half-open: silent after connecting.
            if *k % 3 != 0 {
                let byte = if *k % 2 == 0 {
                    3
                } else {
                    http_head[*k % http_head.len()]
                };
                let _ = t.write_all(&[byte]);
            }
            true
        });
        std::thread::sleep(Duration::from_millis(250));
    }
    for (t, _, _) in &held {
        reset(t);
    }
}

/// Publishers of their own streams that vanish in the middle of a message.
fn vanishing_publishers(load: Load) {
    let mut k = 0;
    while load.running() {
        k += 1;
        let Some(mut p) = load.rtmp_client(&format!("vanish{}", k % 7), ClientMode::Publish, None)
        else {
            continue;
        };
        if p.wait_publish_started(Duration::from_secs(3)).is_err() {
            continue;
        }
        let _ = p.send_media(&sequence_header());
        for i in 0..(k % 5) {
            let _ = p.send_media(&video(i, 3000));
        }
        // A type 0 chunk header for a 3000-byte video message on csid 6, and half its body.
        let mut partial = vec![0x06, 0, 0, 0, 0, 0x0b, 0xb8, 9, 1, 0, 0, 0];
        partial.extend_from_slice(&[0x27; 64]);
        let mut tcp = p.tcp().try_clone().expect("clone socket");
        let _ = tcp.write_all(&partial);
        if k % 2 == 0 {
            reset(&tcp);
        }
        drop(p);
    }
}

/// Players that stop reading: a small receive buffer, the play starts, then silence for 3 s, then
/// a reset. (Too short for the engine to cut them: the kernel's send buffer for each, autotuned
/// up to 4 MiB, takes the stream for longer than that before the queue even starts to overflow;
/// the cut itself is tested in `rtmp_robustness.rs`. Here it is their coming and going.)
fn stalled_players(load: Load) {
    while load.running() {
        let mut stalled = Vec::new();
        for _ in 0..4 {
            if let Some(mut p) = load.rtmp_client("main", ClientMode::Play, Some(4096)) {
                if p.wait_play_started(Duration::from_secs(3)).is_ok() {
                    stalled.push(p);
                }
            }
        }
        let until = Instant::now() + Duration::from_secs(3);
        while load.running() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
        for p in &stalled {
            reset(p.tcp());
        }
    }
}

/// Publishers on one key, each replacing the last (`overridePublisher` on that path), some
/// vanishing, some saying goodbye; and a player that keeps coming back to that key.
fn republish_storm(load: Load) {
    let mut k = 0u32;
    let mut live: Vec<RtmpClient> = Vec::new();
    while load.running() {
        k += 1;
        let Some(mut p) = load.rtmp_client("storm", ClientMode::Publish, None) else {
            continue;
        };
        if p.wait_publish_started(Duration::from_secs(3)).is_err() {
            continue;
        }
        let _ = p.send_media(&sequence_header());
        for i in 0..10 {
            let _ = p.send_media(&video(i, 1500));
        }
        match k % 3 {
            0 => reset(p.tcp()),
            1 => {
                let _ = p.goodbye();
                continue;
            }
            _ => {}
        }
        live.push(p);
        if live.len() > 3 {
            live.remove(0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn storm_player(load: Load, backwards: Arc<AtomicU64>) {
    while load.running() {
        let Some(mut p) = load.rtmp_client("storm", ClientMode::Play, None) else {
            continue;
        };
        if p.wait_play_started(Duration::from_secs(3)).is_err() {
            continue;
        }
        // One play session sees one publisher: its timestamps never go back.
        let mut last = None;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            match p.next_event(until) {
                Ok(ClientEvent::Media(f))
                    if f.kind == MediaKind::Video && !f.is_sequence_header() =>
                {
                    if last.is_some_and(|l| f.timestamp < l) {
                        backwards.fetch_add(1, Ordering::Relaxed);
                    }
                    last = Some(f.timestamp);
                }
                Ok(ClientEvent::StreamEof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        reset(p.tcp());
    }
}

/// API writes all along: paths added, patched and deleted.
fn api_writer(load: Load, api_port: u16, failures: Arc<AtomicU64>, writes: Arc<AtomicU64>) {
    let mut i = 0u32;
    while load.running() {
        i += 1;
        let name = format!("soak/p{}", i % 16);
        let (method, path, body) = match i % 3 {
            0 => (
                "POST",
                format!("/v3/config/paths/add/{name}"),
                Some("{\"maxReaders\": 5}"),
            ),
            1 => (
                "PATCH",
                format!("/v3/config/paths/patch/{name}"),
                Some("{\"maxReaders\": 7}"),
            ),
            _ => ("DELETE", format!("/v3/config/paths/delete/{name}"), None),
        };
        let r = tests::http::request(api_port, method, &path, body, &[]);
        // 400 (exists) and 404 (not there) are the API answering correctly to a blind writer.
        if !matches!(r.status, 200 | 400 | 404) {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        writes.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One round of everything for `duration`; returns the connections it opened.
fn round(engine: &Engine, duration: Duration, stats: &Stats) -> u64 {
    let load = Load {
        rtmp: engine.rtmp_port,
        http: engine.http_port,
        stop: Arc::new(AtomicBool::new(false)),
        opened: Arc::new(AtomicU64::new(0)),
    };
    let mut threads = vec![
        load.spawn("churn-a", |l| churn(l, 1)),
        load.spawn("churn-b", |l| churn(l, 2)),
        load.spawn("vanish", vanishing_publishers),
        load.spawn("stalled", stalled_players),
        load.spawn("storm", republish_storm),
    ];
    let (late, backwards) = (stats.slowloris_late.clone(), stats.storm_backwards.clone());
    threads.push(load.spawn("slowloris", move |l| slowloris(l, late)));
    threads.push(load.spawn("storm-player", move |l| storm_player(l, backwards)));
    let (api, failures, writes) = (
        engine.api_port,
        stats.api_failures.clone(),
        stats.api_writes.clone(),
    );
    threads.push(load.spawn("api", move |l| api_writer(l, api, failures, writes)));
    std::thread::sleep(duration);
    load.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("load thread panicked");
    }
    load.opened.load(Ordering::Relaxed)
}

#[derive(Default)]
struct Stats {
    slowloris_late: Arc<AtomicU64>,
    storm_backwards: Arc<AtomicU64>,
    api_failures: Arc<AtomicU64>,
    api_writes: Arc<AtomicU64>,
}

/// Waits until the engine serves nobody but `expected` connections, then a moment more for the
/// runtime to release what it holds.
fn settle(engine: &Engine, expected: u64) {
    assert!(
        eventually(Duration::from_secs(15), || engine.open_connections()
            == expected),
        "connections never went back to {expected}: {}",
        engine.open_connections()
    );
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn soak_under_hostile_churn() {
    let engine = Engine::start_logging(CONFIG, "info");
    let duration = soak_duration();
    let stats = Stats::default();

    // The steady stream and its healthy players run through warm-up and soak alike.
    let steady_stop = Arc::new(AtomicBool::new(false));
    let base = Load {
        rtmp: engine.rtmp_port,
        http: engine.http_port,
        stop: steady_stop.clone(),
        opened: Arc::new(AtomicU64::new(0)),
    };
    let publisher = {
        let (l, s) = (base.clone(), steady_stop.clone());
        std::thread::spawn(move || steady_publisher(&l, "main", &s))
    };
    assert!(eventually(Duration::from_secs(10), || engine
        .count_log("publish started")
        > 0));
    let players: Vec<_> = (0..6)
        .map(|i| {
            let (l, s) = (base.clone(), steady_stop.clone());
            std::thread::spawn(move || {
                if i < 4 {
                    healthy_player(&l, "main", &s)
                } else {
                    healthy_flv_player(&l, "main", &s)
                }
            })
        })
        .collect();
    let steady_conns = 7;

    // Warm-up: a short round so that lazily grown tables and allocator pools exist, then the
    // baseline with only the steady stream connected.
    round(&engine, Duration::from_secs(3), &stats);
    settle(&engine, steady_conns);
    let (rss_before, fds_before) = (engine.rss_kib(), engine.fd_count());

    let started = Instant::now();
    let opened = round(&engine, duration, &stats);
    let soak_time = started.elapsed();
    settle(&engine, steady_conns);
    // Same moment as the baseline: only the steady stream connected. The allocator hands freed
    // pages back lazily, so RSS is watched for a few seconds (its lowest value counts); a leak
    // never comes back down.
    let fds_after = engine.fd_count();
    let mut rss_after = engine.rss_kib();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rss_after > rss_before + RSS_SLACK_KIB && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        rss_after = rss_after.min(engine.rss_kib());
    }

    // A fresh player is served within a second, GOP cache first.
    let t0 = Instant::now();
    let mut fresh = RtmpClient::connect(engine.rtmp_port, "live", "main", ClientMode::Play)
        .expect("fresh player connects");
    let first = fresh.wait_for(Duration::from_secs(1), |e| match e {
        ClientEvent::Media(f) if f.kind == MediaKind::Video && f.is_keyframe() => Some(()),
        _ => None,
    });
    let first_frame = t0.elapsed();
    assert!(
        first.is_ok(),
        "no keyframe within a second: {:?}",
        first.err().map(|(e, _)| e.to_string())
    );
    drop(fresh);

    steady_stop.store(true, Ordering::Relaxed);
    let frames_sent = publisher
        .join()
        .expect("publisher thread")
        .expect("steady publisher");
    for p in players {
        let played = p.join().expect("player thread").expect("healthy player");
        assert!(
            played.backwards.is_empty(),
            "timestamps went back: {:?}",
            played.backwards
        );
        assert!(
            played.frames > u64::from(frames_sent) / 2,
            "{played:?} of {frames_sent}"
        );
    }
    settle(&engine, 0);
    // With nobody connected, each of the steady connections' descriptor is gone too.
    let fds_idle = engine.fd_count();

    let hits: Vec<String> = [
        "handshakeTimeout",
        "readTimeout",
        "playerMaxQueueBytes",
        "maxConnectionsPerCore",
    ]
    .iter()
    .map(|k| format!("{k}={}", engine.limit_hits(k)))
    .collect();
    eprintln!(
        "soak: {opened} connections in {:.1} s (+ warm-up); RSS {rss_before} KiB -> {rss_after} KiB; \
         fds {fds_before} -> {fds_after} ({fds_idle} with nobody connected); fresh player's first keyframe after {first_frame:?}; \
         {} API writes; limit hits {}",
        soak_time.as_secs_f64(),
        stats.api_writes.load(Ordering::Relaxed),
        hits.join(" ")
    );
    engine.assert_not_stopped_by_someone_else();
    assert!(opened >= 1000, "only {opened} connections");
    assert_eq!(
        stats.slowloris_late.load(Ordering::Relaxed),
        0,
        "slowloris clients held past handshakeTimeout"
    );
    assert_eq!(
        stats.storm_backwards.load(Ordering::Relaxed),
        0,
        "a storm player saw time go back"
    );
    assert_eq!(
        stats.api_failures.load(Ordering::Relaxed),
        0,
        "API writes failed"
    );
    assert!(
        engine.limit_hits("handshakeTimeout") > 0,
        "slowloris never cut"
    );
    assert_eq!(fds_after, fds_before, "file descriptors leaked");
    // One descriptor per connection: the socket, read and written through the same one.
    assert_eq!(
        fds_idle,
        fds_before - steady_conns as usize,
        "file descriptors leaked, or a connection holds more than one"
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Nothing panicked or was refused for want of resources.
    assert_eq!(engine.count_log("panicked"), 0);
    assert_eq!(engine.count_log("accept failed"), 0);
    // The state file took every write and still parses.
    let state = std::fs::read_to_string(engine.state_file()).expect("state file");
    assert!(state.contains("paths"), "{state}");
}
