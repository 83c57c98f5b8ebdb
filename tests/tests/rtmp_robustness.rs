//! End-to-end robustness: slow players, hostile input, and our own RTMP client, against the real
//! binary on two data cores.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corestream::media::{Frame, MediaKind};
use corestream::protocol::rtmp::message::type_id;
use corestream::protocol::rtmp::{ClientEvent, ClientMode};
use tests::ff::{self, parse_probe, wait_with_timeout};
use tests::rtmp_client::{chunked, raw_after_handshake, tcp_connect, wait_closed, RtmpClient};
use tests::Engine;

/// testsrc2 runs at 25 fps.
const FPS: u64 = 25;

fn assert_success(engine: &Engine, out: &std::process::Output, what: &str) {
    engine.assert_not_stopped_by_someone_else();
    assert!(
        out.status.success(),
        "{what} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A player that stops reading (with a tiny receive buffer) is cut off once it has been behind
/// for `slowPlayerTimeout`; a healthy player of the same stream still gets every frame and the
/// publisher never notices.
///
/// "Behind" starts when the engine's queue for the player overflows, which is only after the
/// kernel's send buffer for its socket is full: Linux autotunes that up to `tcp_wmem`'s maximum
/// (4 MiB by default), about 6 s of this stream. Hence a 12 s stream, so that the cut happens
/// well before the end.
#[test]
fn slow_player_is_cut_off_while_others_get_every_frame() {
    const SECONDS: u32 = 12;
    let mut engine =
        Engine::start("playerMaxQueueBytes: 65536\nslowPlayerTimeout: 1s\nplayWaitTimeout: 10s\n");
    let url = engine.rtmp_url("live/slow");

    let probe = ff::spawn_probe(&url);
    let mut slow = RtmpClient::connect_with(
        engine.rtmp_port,
        "live",
        "slow",
        ClientMode::Play,
        Some(4096),
    )
    .expect("slow player connects");
    // Our client is driven by its reads: read until the stream starts, then never again.
    let slow = std::thread::spawn(move || {
        slow.wait_play_started(Duration::from_secs(20))
            .map(|()| slow)
    });
    engine.wait_for_log_count("play requested", 2, Duration::from_secs(10));

    // ~20 KB per frame: 64 KiB of queue is three frames.
    let publisher = ff::publish_sized(&url, SECONDS, "640x480", &["-b:v", "4M"]);
    let slow = slow
        .join()
        .expect("slow player thread")
        .expect("slow player starts");
    engine.wait_for_log_count("player started", 2, Duration::from_secs(10));

    engine.wait_for_log("player too slow", Duration::from_secs(SECONDS as u64));
    assert!(
        engine.count_log("publish stopped") == 0,
        "the stream ended before the slow player was cut"
    );
    let mut tcp = slow.tcp().try_clone().expect("clone socket");
    assert!(
        wait_closed(&mut tcp, Duration::from_secs(5)).is_some(),
        "the engine kept the slow player's connection open"
    );
    engine.wait_for_log("notice=TooSlow", Duration::from_secs(2));

    let out = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert_success(&engine, &out, "publisher");
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(20),
        "ffprobe",
    ))
    .unwrap();
    assert_eq!((p.width, p.height), (640, 480));
    assert_eq!(
        p.video_frames,
        FPS * SECONDS as u64,
        "healthy player: {p:?}"
    );
    // One player was cut, and reported and counted once, however many frames it was offered
    // between its notice and the close.
    assert_eq!(engine.count_log("notice=TooSlow"), 1);
    assert_eq!(
        engine.count_log("player too slow"),
        1,
        "{:#?}",
        engine.log()
    );
    let (status, _) = engine.terminate();
    assert!(status.success());
    let too_slow: u64 = engine
        .log()
        .iter()
        .filter(|l| l.contains("core stopped"))
        .filter_map(|l| {
            let rest = &l[l.find("players_too_slow=")? + "players_too_slow=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(too_slow, 1, "{:#?}", engine.log());
}

/// A raw TCP connection that sends `bytes` and must then be closed by the engine within
/// `within`, with `log` appearing in the engine's log.
fn expect_closed(engine: &Engine, mut tcp: TcpStream, bytes: &[u8], within: Duration, log: &str) {
    tcp.write_all(bytes).expect("write garbage");
    let took = wait_closed(&mut tcp, within);
    assert!(
        took.is_some(),
        "connection sending {log:?}-worthy input still open after {within:?}"
    );
    engine.wait_for_log(log, Duration::from_secs(2));
}

/// Hostile and broken clients are each closed with a log line saying why, while a live stream
/// and its player are untouched and the engine keeps accepting players.
#[test]
fn garbage_input_closes_only_that_connection() {
    const SECONDS: u32 = 10;
    let engine = Engine::start("readTimeout: 1s\nmaxMessageSize: 1048576\nplayWaitTimeout: 10s\n");
    let port = engine.rtmp_port;
    let url = engine.rtmp_url("live/steady");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let probe = ff::spawn_probe(&url);
    engine.wait_for_log("play requested", Duration::from_secs(10));
    let publisher = ff::publish(&url, SECONDS);
    engine.wait_for_log("player started", Duration::from_secs(10));
    let started = Instant::now();

    // (a) Wrong version byte at the handshake (6 is RTMPE).
    let mut c0c1 = vec![0x5a; 1 + 1536];
    c0c1[0] = 6;
    expect_closed(
        &engine,
        tcp_connect(addr, None).unwrap(),
        &c0c1,
        Duration::from_secs(3),
        "unsupported rtmp version 6",
    );
    // And bytes that are no handshake at all.
    expect_closed(
        &engine,
        tcp_connect(addr, None).unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
        "unsupported rtmp version 71",
    );

    // (b) Impossible chunk sizes after a valid handshake.
    expect_closed(
        &engine,
        raw_after_handshake(port).unwrap(),
        &chunked(2, type_id::SET_CHUNK_SIZE, 0, &0u32.to_be_bytes()),
        Duration::from_secs(3),
        "chunk size 0 is invalid",
    );
    expect_closed(
        &engine,
        raw_after_handshake(port).unwrap(),
        &chunked(2, type_id::SET_CHUNK_SIZE, 0, &0xFFFF_FFFFu32.to_be_bytes()),
        Duration::from_secs(3),
        "chunk size 4294967295 is larger than 0x7fffffff",
    );

    // (c) A message header announcing 2 MB with maxMessageSize at 1 MiB: refused on the header,
    // before any of the payload is buffered.
    let len: u32 = 2_000_000;
    let mut header = vec![0x03, 0, 0, 0];
    header.extend_from_slice(&len.to_be_bytes()[1..]);
    header.push(type_id::COMMAND_AMF0);
    header.extend_from_slice(&0u32.to_le_bytes());
    expect_closed(
        &engine,
        raw_after_handshake(port).unwrap(),
        &header,
        Duration::from_secs(3),
        "message of 2000000 bytes exceeds the limit of 1048576",
    );

    // (d) `connect` whose command object holds a string claiming more bytes than there are.
    let mut amf = vec![0x02, 0x00, 0x07];
    amf.extend_from_slice(b"connect");
    amf.push(0x00);
    amf.extend_from_slice(&1f64.to_be_bytes());
    amf.extend_from_slice(&[0x03, 0x00, 0x03]);
    amf.extend_from_slice(b"app");
    amf.extend_from_slice(&[0x02, 0x00, 0x40]);
    amf.extend_from_slice(b"li");
    expect_closed(
        &engine,
        raw_after_handshake(port).unwrap(),
        &chunked(3, type_id::COMMAND_AMF0, 0, &amf),
        Duration::from_secs(3),
        "amf0 value truncated",
    );

    // (e) Connects and says nothing: cut after readTimeout (1 s).
    let silent = tcp_connect(addr, None).unwrap();
    let t = Instant::now();
    expect_closed(
        &engine,
        silent,
        &[],
        Duration::from_secs(4),
        "no data for readTimeout",
    );
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "silent client cut after {:?}, before readTimeout",
        t.elapsed()
    );
    // Every bad connection was reported as such.
    assert!(
        engine.count_log("protocol error") >= 6,
        "{:#?}",
        engine.log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(SECONDS as u64 - 2),
        "the garbage took too long to check while the stream was live: {:?}",
        started.elapsed()
    );

    // The stream is still live and a fresh player gets it.
    let mut fresh = RtmpClient::connect(port, "live", "steady", ClientMode::Play).unwrap();
    fresh
        .wait_play_started(Duration::from_secs(5))
        .expect("fresh player starts");
    fresh
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Media(f) if f.kind == MediaKind::Video && f.is_keyframe() => Some(()),
            _ => None,
        })
        .map_err(|(e, seen)| format!("{e}: {seen:?}"))
        .expect("fresh player gets a keyframe");
    drop(fresh);

    let out = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert_success(&engine, &out, "publisher");
    let p = parse_probe(&wait_with_timeout(
        probe,
        Duration::from_secs(20),
        "ffprobe",
    ))
    .unwrap();
    assert_eq!(p.video_frames, FPS * SECONDS as u64, "live player: {p:?}");
}

/// What one of our players saw of a whole stream.
#[derive(Debug, Default)]
struct Played {
    /// Coded video frames (AVC NAL units), sequence headers and end-of-sequence excluded.
    video_frames: u64,
    audio_frames: u64,
    events: Vec<String>,
}

/// Checks the order of a played H.264/AAC stream and counts its frames.
fn check_played(events: &[ClientEvent]) -> Result<Played, String> {
    let mut played = Played::default();
    let mut last = [None::<u32>; 2];
    let mut first_video = Vec::new();
    for e in events {
        let ClientEvent::Media(f) = e else {
            played.events.push(format!("{e:?}"));
            continue;
        };
        let slot = match f.kind {
            MediaKind::Video => 0,
            MediaKind::Audio => 1,
            MediaKind::Script => continue,
        };
        if let Some(prev) = last[slot] {
            if f.timestamp < prev {
                return Err(format!(
                    "{:?} timestamp went back from {prev} to {}",
                    f.kind, f.timestamp
                ));
            }
        }
        last[slot] = Some(f.timestamp);
        match f.kind {
            MediaKind::Video => {
                // FLV AVC: byte 0 = frame type << 4 | codec 7; byte 1 = packet type
                // (0 sequence header, 1 NAL units, 2 end of sequence).
                if first_video.len() < 2 {
                    first_video.push((f.is_sequence_header(), f.is_keyframe()));
                }
                if f.payload.get(1) == Some(&1) {
                    played.video_frames += 1;
                }
            }
            MediaKind::Audio if !f.is_sequence_header() => played.audio_frames += 1,
            _ => {}
        }
    }
    if first_video != [(true, true), (false, true)] {
        return Err(format!(
            "video did not start with the sequence header then a keyframe: {first_video:?}"
        ));
    }
    Ok(played)
}

/// Several of our own clients play one ffmpeg stream, at least one across cores: each gets the
/// AVC sequence header first, then a keyframe, monotonic timestamps, and every frame.
#[test]
fn our_clients_play_across_cores() {
    const SECONDS: u32 = 5;
    let engine = Engine::start("playWaitTimeout: 20s\n");
    let url = engine.rtmp_url("live/ours");

    // Players wait for the stream before it starts, so each must get it from its first frame.
    // The kernel spreads them over the cores: add players until both cores hold one, so one is
    // remote from the publisher's core, wherever that lands.
    let mut players = Vec::new();
    for i in 0..16 {
        players
            .push(RtmpClient::connect(engine.rtmp_port, "live", "ours", ClientMode::Play).unwrap());
        engine.wait_for_log_count("connection accepted", i + 1, Duration::from_secs(5));
        if i >= 2 && engine.cores_with_connections().len() == 2 {
            break;
        }
    }
    assert_eq!(
        engine.cores_with_connections().len(),
        2,
        "16 players landed on one core"
    );
    let n = players.len();
    let readers: Vec<_> = players
        .into_iter()
        .map(|mut c| {
            std::thread::spawn(move || {
                c.wait_play_started(Duration::from_secs(20))?;
                let (events, ended) = c.collect_until_end(Duration::from_secs(30));
                if !ended {
                    return Err(format!("stream never ended; {} events", events.len()));
                }
                Ok(events)
            })
        })
        .collect();
    engine.wait_for_log_count("play requested", n, Duration::from_secs(10));

    let publisher = ff::publish(&url, SECONDS);
    engine.wait_for_log_count("player started", n, Duration::from_secs(10));
    assert!(
        engine.count_log("via=\"remote\"") >= 1,
        "no player was served across cores"
    );
    let out = wait_with_timeout(publisher, Duration::from_secs(30), "publisher");
    assert_success(&engine, &out, "publisher");

    for (i, r) in readers.into_iter().enumerate() {
        let events = r.join().expect("reader thread").unwrap();
        let played = check_played(&events).unwrap_or_else(|e| panic!("player {i}: {e}"));
        assert_eq!(
            played.video_frames,
            FPS * SECONDS as u64,
            "player {i}: {played:?}"
        );
        assert!(played.audio_frames > 0, "player {i}: {played:?}");
    }
}

/// Our client gets the right `onStatus` codes: StreamNotFound for a stream nobody publishes
/// (after `playWaitTimeout`), BadName for a second publisher of a live stream.
#[test]
fn missing_stream_and_duplicate_publisher_status() {
    let engine = Engine::start("playWaitTimeout: 1s\n");
    let port = engine.rtmp_port;

    let t = Instant::now();
    let mut player = RtmpClient::connect(port, "live", "nobody", ClientMode::Play).unwrap();
    let (code, seen) = player
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Status { code, .. } if code.starts_with("NetStream.Play.") => {
                Some(code.clone())
            }
            _ => None,
        })
        .map_err(|(e, seen)| format!("{e}: {seen:?}"))
        .unwrap();
    assert_eq!(code, "NetStream.Play.StreamNotFound", "after {seen:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "answered before playWaitTimeout: {:?}",
        t.elapsed()
    );

    let url = engine.rtmp_url("live/taken");
    let publisher = ff::publish(&url, 4);
    engine.wait_for_log("publish started", Duration::from_secs(10));
    let mut second = RtmpClient::connect(port, "live", "taken", ClientMode::Publish).unwrap();
    let (code, seen) = second
        .wait_for(Duration::from_secs(5), |e| match e {
            ClientEvent::Status { code, .. } if code.starts_with("NetStream.Publish.") => {
                Some(code.clone())
            }
            ClientEvent::PublishStarted { .. } => Some("PublishStarted".to_owned()),
            _ => None,
        })
        .map_err(|(e, seen)| format!("{e}: {seen:?}"))
        .unwrap();
    assert_eq!(code, "NetStream.Publish.BadName", "after {seen:?}");
    engine.wait_for_log(
        "publish refused: stream is already being published",
        Duration::from_secs(2),
    );
    let out = wait_with_timeout(publisher, Duration::from_secs(20), "publisher");
    assert_success(&engine, &out, "first publisher");
}

/// A keyframe larger than the whole `playerMaxQueueBytes` still reaches a player that keeps up:
/// the bound is on how far behind a player may fall, not on the size of one frame. Our own
/// client publishes, so the frame sizes are exact: 100 KB keyframes, 2 KB inter frames, paced
/// at 25 fps, against a 64 KiB queue.
#[test]
fn keyframes_larger_than_the_player_queue_still_play() {
    const FRAMES: u32 = 100;
    const QUEUE: usize = 65536;
    let engine = Engine::start(&format!(
        "playerMaxQueueBytes: {QUEUE}\nslowPlayerTimeout: 1s\nplayWaitTimeout: 10s\n"
    ));
    let port = engine.rtmp_port;
    let mut player = RtmpClient::connect(port, "live", "big", ClientMode::Play).unwrap();
    let reader = std::thread::spawn(move || {
        player.wait_play_started(Duration::from_secs(20))?;
        let (events, ended) = player.collect_until_end(Duration::from_secs(30));
        if !ended {
            return Err(format!("stream never ended; {} events", events.len()));
        }
        Ok(events)
    });
    engine.wait_for_log("play requested", Duration::from_secs(10));

    let mut publisher = RtmpClient::connect(port, "live", "big", ClientMode::Publish).unwrap();
    publisher
        .wait_publish_started(Duration::from_secs(10))
        .unwrap();
    // FLV AVC video bodies: frame type << 4 | codec 7, packet type (0 sequence header, 1 NAL
    // units), composition time 0, then the (opaque) data.
    let video = |keyframe: bool, packet_type: u8, len: usize, ts: u32| {
        let mut body = vec![if keyframe { 0x17 } else { 0x27 }, packet_type, 0, 0, 0];
        body.resize(len, ts as u8);
        Frame::new(MediaKind::Video, ts, body.into())
    };
    publisher.send_media(&video(true, 0, 40, 0)).unwrap();
    // Media starts once the player is attached, so that it gets every frame live, one by one.
    // (A player that joins later gets the GOP cache in one burst, and a keyframe bigger than its
    // queue fills the queue: the rest of that first GOP is skipped.)
    engine.wait_for_log("player started", Duration::from_secs(5));
    let start = Instant::now();
    for i in 0..FRAMES {
        let keyframe = i % 25 == 0;
        let len = if keyframe { 100_000 } else { 2_000 };
        let ts = i * 40;
        publisher.send_media(&video(keyframe, 1, len, ts)).unwrap();
        // Real-time pacing, as an encoder would; not an assertion.
        let due = start + Duration::from_millis(u64::from(ts) + 40);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    publisher.goodbye().unwrap();

    let events = reader.join().expect("reader thread").unwrap();
    let played = check_played(&events).unwrap();
    assert_eq!(
        engine.count_log("player too slow"),
        0,
        "{:#?}",
        engine.log()
    );
    assert_eq!(played.video_frames, u64::from(FRAMES), "{played:?}");
    let keyframes = events
        .iter()
        .filter(|e| {
            matches!(e, ClientEvent::Media(f) if f.is_keyframe() && !f.is_sequence_header() && f.payload.len() == 100_000)
        })
        .count();
    assert_eq!(keyframes, 4);
}

/// Codecs the engine does not parse (enhanced-RTMP HEVC here) pass through byte for byte, and the
/// GOP logic still finds their keyframes from the frame-type bits.
#[test]
fn enhanced_rtmp_hevc_passes_through_untouched() {
    let engine = Engine::start("playWaitTimeout: 10s\n");
    let mut player =
        RtmpClient::connect(engine.rtmp_port, "live", "hevc", ClientMode::Play).unwrap();
    let mut publisher =
        RtmpClient::connect(engine.rtmp_port, "live", "hevc", ClientMode::Publish).unwrap();
    publisher
        .wait_publish_started(Duration::from_secs(10))
        .unwrap();
    // The sequence start goes first so the player can attach before the rest is sent.
    publisher
        .send_media(&Frame::new(
            MediaKind::Video,
            0,
            bytes::Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 0xAA]),
        ))
        .unwrap();
    player.wait_play_started(Duration::from_secs(10)).unwrap();

    // isExHeader | frame type (1 key, 2 inter) << 4 | packet type (0 SequenceStart, 1 CodedFrames),
    // then the FourCC and opaque codec bytes.
    let frame = |ts: u32, first: u8, fill: u8, len: usize| {
        let mut body = vec![first, b'h', b'v', b'c', b'1'];
        body.extend(std::iter::repeat_n(fill, len));
        Frame::new(MediaKind::Video, ts, bytes::Bytes::from(body))
    };
    let mut sent = vec![frame(0, 0x90, 0xAA, 1)];
    for i in 0..50u32 {
        let first = if i % 25 == 0 { 0x91 } else { 0xA1 };
        sent.push(frame(i * 40, first, i as u8, 300 + i as usize));
    }
    for f in &sent[1..] {
        publisher.send_media(f).unwrap();
    }
    publisher.goodbye().unwrap();
    let (events, ended) = player.collect_until_end(Duration::from_secs(10));
    assert!(ended, "the player's stream never ended");
    let received: Vec<Frame> = events
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Media(f) if f.kind == MediaKind::Video => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), sent.len());
    for (got, want) in received.iter().zip(&sent) {
        assert_eq!(
            got.payload, want.payload,
            "payload changed at ts {}",
            want.timestamp
        );
        assert_eq!(got.timestamp, want.timestamp);
    }
}
