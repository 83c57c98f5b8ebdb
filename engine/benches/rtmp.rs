//! `cargo bench -p engine --bench rtmp`: the RTMP protocol code on the media path, on one core,
//! without sockets (the sessions are sans-IO), so a change to them shows as a throughput figure.
//!
//! The stream is 10 s of a 2.5 Mbit/s H.264 + AAC publish: 25 video frames a second (a keyframe
//! every 2 s, five times the size of the others) and 43 AAC frames a second, timestamps in
//! milliseconds as encoders send them.
//!
//! Cases:
//! - **ingest**: a [`ServerSession`] reads what an encoder sends (handshake, `connect`,
//!   `publish`, then the media) in 16 KiB reads, as the server's socket loop does, answering the
//!   publish request and draining its events and acknowledgements.
//! - **encode**: [`encode_media`] chunks every frame at [`OUT_CHUNK_SIZE`], which the server
//!   does once per frame per core for all the players there.
//! - **play**: a [`ClientSession`] in play mode reads what the server sends a player (the
//!   handshake, the answers, then the chunked media) in 16 KiB reads, as the bench's players do.
//!
//! No criterion: a plain `main`, one thread pinned to one core, a warm-up and a bounded time per
//! measurement. Pass a word to run only the cases whose name contains it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use corestream::media::{Frame, MediaKind};
use corestream::protocol::rtmp::{
    encode_media, ClientConfig, ClientEvent, ClientMode, ClientSession, ServerEvent, ServerSession,
    SessionConfig, OUT_CHUNK_SIZE,
};

// The engine binary runs on mimalloc; measure with the same allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARM_UP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_secs(2);
/// What one socket read hands the session.
const READ_SIZE: usize = 16 * 1024;
const SECONDS: u32 = 10;
const VIDEO_BITRATE: usize = 2_500_000;
const FPS: u32 = 25;
const AUDIO_FRAMES_PER_S: u32 = 43;

/// Deterministic filler, so no run compresses or caches differently from another.
fn filler(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The publish, in send order (interleaved by timestamp).
fn frames() -> Vec<Frame> {
    let gop = 2 * FPS;
    // A keyframe weighs five of the others: (gop - 1) + 5 units per GOP.
    let unit = VIDEO_BITRATE / 8 * 2 / (gop as usize + 4);
    let mut out = vec![
        Frame::new(
            MediaKind::Video,
            0,
            Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0]),
        ),
        Frame::new(
            MediaKind::Audio,
            0,
            Bytes::from_static(&[0xaf, 0, 0x12, 0x10]),
        ),
    ];
    let mut media = Vec::new();
    for i in 0..SECONDS * FPS {
        let key = i % gop == 0;
        let mut payload = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        payload.extend(filler(if key { unit * 5 } else { unit }, i));
        media.push(Frame::new(MediaKind::Video, i * 1000 / FPS, payload.into()));
    }
    for i in 0..SECONDS * AUDIO_FRAMES_PER_S {
        let mut payload = vec![0xaf, 1];
        payload.extend(filler(180, i + 1_000_000));
        let ts = i * 1000 / AUDIO_FRAMES_PER_S;
        media.push(Frame::new(MediaKind::Audio, ts, payload.into()));
    }
    media.sort_by_key(|f| f.timestamp);
    out.extend(media);
    out
}

/// Moves bytes between a client and a server until neither has anything to send, answering
/// publish and play requests; returns what each side sent.
fn shuttle(client: &mut ClientSession, server: &mut ServerSession, wire: &mut Wire) {
    loop {
        let mut moved = false;
        let mut buf = BytesMut::new();
        if client.poll_transmit(&mut buf) {
            moved = true;
            wire.to_server.extend_from_slice(&buf);
            server
                .handle_input(&buf)
                .expect("server refused the client");
        }
        while let Some(e) = server.poll_event() {
            match e {
                ServerEvent::PublishRequested { request, .. } => {
                    server.accept_publish(request);
                }
                ServerEvent::PlayRequested { request, .. } => {
                    server.accept_play(request);
                }
                _ => {}
            }
        }
        let mut buf = BytesMut::new();
        if server.poll_transmit(&mut buf) {
            moved = true;
            wire.to_client.extend_from_slice(&buf);
            client
                .handle_input(&buf)
                .expect("client refused the server");
        }
        while client.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

#[derive(Default)]
struct Wire {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

const SERVER_SEED: u64 = 7;
const CLIENT_SEED: u64 = 11;

fn server() -> ServerSession {
    ServerSession::new(SessionConfig {
        handshake_seed: SERVER_SEED,
        ..SessionConfig::default()
    })
}

fn client(mode: ClientMode) -> ClientSession {
    let mut config = ClientConfig::new("live", "rtmp://127.0.0.1/live", "bench", mode);
    config.handshake_seed = CLIENT_SEED;
    ClientSession::new(config)
}

/// What an encoder sends to publish `frames`. The handshake's random bytes come from fixed
/// seeds, so a fresh server session with the same seed accepts the recording.
fn publish_recording(frames: &[Frame]) -> Vec<u8> {
    let (mut c, mut s, mut wire) = (client(ClientMode::Publish), server(), Wire::default());
    shuttle(&mut c, &mut s, &mut wire);
    for f in frames {
        c.send_media(f);
    }
    let mut buf = BytesMut::new();
    c.poll_transmit(&mut buf);
    wire.to_server.extend_from_slice(&buf);
    wire.to_server
}

/// What the server sends a player of `frames`: the session's own answers, then the media as the
/// engine encodes it for every player.
fn play_recording(frames: &[Frame]) -> (Vec<u8>, usize) {
    let (mut c, mut s, mut wire) = (client(ClientMode::Play), server(), Wire::default());
    shuttle(&mut c, &mut s, &mut wire);
    let mut media = BytesMut::new();
    for f in frames {
        encode_media(&mut media, f, 1, OUT_CHUNK_SIZE);
    }
    let setup = wire.to_client.len();
    wire.to_client.extend_from_slice(&media);
    (wire.to_client, setup)
}

/// Runs `once` (which handles `bytes` bytes and `frames` frames) for the measuring time.
fn measure(name: &str, bytes: usize, frames: usize, mut once: impl FnMut() -> usize) {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        black_box(once());
    }
    let (mut runs, mut seen) = (0u64, 0usize);
    let start = Instant::now();
    while start.elapsed() < MEASURE {
        seen = once();
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(seen, frames, "{name}: frames lost");
    let mb_s = (bytes as f64 * runs as f64) / secs / 1e6;
    let frames_s = (frames as f64 * runs as f64) / secs;
    // Each run is SECONDS of the stream: how many such streams one core could keep up with.
    let streams = runs as f64 * f64::from(SECONDS) / secs;
    println!(
        "| {name} | {mb_s:.0} | {:.2} | {streams:.0} |",
        frames_s / 1e6
    );
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let wanted = |name: &str| only.as_deref().is_none_or(|w| name.contains(w));
    if let Some(core) = core_affinity::get_core_ids().and_then(|ids| ids.last().copied()) {
        core_affinity::set_for_current(core);
    }
    let frames = frames();
    let media_frames = frames.len();
    println!("| case | MB/s | Mframes/s | streams of 2.5 Mbit/s per core |");
    println!("|---|---:|---:|---:|");

    if wanted("ingest") {
        let wire = publish_recording(&frames);
        measure("ingest (ServerSession)", wire.len(), media_frames, || {
            let mut s = server();
            let mut out = BytesMut::new();
            let mut n = 0;
            for piece in wire.chunks(READ_SIZE) {
                s.handle_input(piece).expect("recording refused");
                while let Some(e) = s.poll_event() {
                    match e {
                        ServerEvent::PublishRequested { request, .. } => {
                            s.accept_publish(request);
                        }
                        ServerEvent::Media(f) => {
                            black_box(&f);
                            n += 1;
                        }
                        _ => {}
                    }
                }
                s.poll_transmit(&mut out);
                out.clear();
            }
            n
        });
    }

    if wanted("encode") {
        let bytes: usize = frames.iter().map(|f| f.payload.len()).sum();
        let mut out = BytesMut::with_capacity(bytes * 2);
        measure("encode (encode_media)", bytes, media_frames, || {
            out.clear();
            for f in &frames {
                encode_media(&mut out, f, 1, OUT_CHUNK_SIZE);
            }
            black_box(&out);
            frames.len()
        });
    }

    if wanted("play") {
        let (wire, _) = play_recording(&frames);
        measure("play (ClientSession)", wire.len(), media_frames, || {
            let mut c = client(ClientMode::Play);
            let mut out = BytesMut::new();
            let mut n = 0;
            c.poll_transmit(&mut out);
            for piece in wire.chunks(READ_SIZE) {
                c.handle_input(piece).expect("recording refused");
                while let Some(e) = c.poll_event() {
                    if let ClientEvent::Media(f) = e {
                        black_box(&f);
                        n += 1;
                    }
                }
                out.clear();
                c.poll_transmit(&mut out);
            }
            n
        });
    }
}
