//! Entry points for the fuzz targets in `fuzz/` (see README.md, "Fuzzing"); not an API.
//!
//! Each function takes the fuzzer's bytes, drives one parser the way the server drives it (fed in
//! pieces, every output drained) and returns nothing: the only outcomes that matter are a panic,
//! a hang or unbounded memory. Keeping the driving code here, in the crate, keeps each fuzz
//! target a one-line call and lets regression tests replay a crash input without `cargo fuzz`.
//!
//! Several targets read a few leading bytes as knobs (how to split the input, whether to prepend
//! a valid handshake); each function's doc says which.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::auth::dsl::compile::{compile, CheckSource, ParamSource};
use crate::auth::dsl::vm::{Env, Vm};
use crate::auth::dsl::{Position, SourceMap};
use crate::auth::query::Query;
use crate::auth::{Action, AuthRequest, AuthSettings, Authenticator, Protocol};
use crate::media::{Frame, MediaKind};
use crate::protocol::flv::FlvReader;
use crate::protocol::hls::{PartSegmenter, PartsConfig, Segmenter, SegmenterConfig};
use crate::protocol::http::{
    parse_query, parse_request, parse_response_head, percent_decode_path, ChunkedDecoder,
    ChunkedEvent, Limits, Parsed,
};
use crate::protocol::rtmp::amf0;
use crate::protocol::rtmp::chunk::{ChunkDecoder, ChunkLimits};
use crate::protocol::rtmp::handshake::{ServerHandshake, HANDSHAKE_SIZE, RTMP_VERSION};
use crate::protocol::rtmp::message::Message;
use crate::protocol::rtmp::{HandshakeProgress, ServerEvent, ServerSession, SessionConfig};

/// Splits `data` into pieces of `step` bytes (the last one shorter); `step == 0` means whole.
fn pieces(data: &[u8], step: usize) -> impl Iterator<Item = &[u8]> {
    let step = if step == 0 { data.len().max(1) } else { step };
    data.chunks(step)
}

/// First byte: piece size (0: all at once, else 1..=255 bytes); the rest is fed to a fresh
/// [`ServerHandshake`] piece by piece until it completes or fails.
pub fn fuzz_handshake(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let mut hs = ServerHandshake::new(&mut StdRng::seed_from_u64(0));
    for piece in pieces(data, usize::from(step)) {
        match hs.handle_input(piece) {
            Ok(HandshakeProgress::InProgress { .. }) => {}
            Ok(HandshakeProgress::Completed { .. }) | Err(_) => return,
        }
    }
}

/// The whole input is one chunk stream (after the handshake): decoded with the default limits,
/// and each message decoded as an RTMP message.
pub fn fuzz_chunk_stream(data: &[u8]) {
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    let mut input = BytesMut::from(data);
    while let Ok(Some(raw)) = decoder.decode(&mut input) {
        let _ = Message::decode(&raw);
    }
}

/// AMF0 values, decoded; whatever decodes must encode and decode back to the same values
/// (NaN aside).
pub fn fuzz_amf0(data: &[u8]) {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut out = BytesMut::new();
    if amf0::encode_all(&mut out, &values).is_ok() {
        let again = amf0::decode_all(&out);
        // NaN != NaN; compare the encodings instead.
        let mut out2 = BytesMut::new();
        let ok = again.is_ok_and(|v| amf0::encode_all(&mut out2, &v).is_ok() && out2 == out);
        assert!(ok, "amf0 round trip changed the values");
    }
}

/// A valid C0+C1+C2 (simple handshake, zero filler) for [`fuzz_rtmp_session`].
fn canned_handshake() -> Vec<u8> {
    let mut v = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
    v[0] = RTMP_VERSION;
    v
}

/// A whole [`ServerSession`] fed hostile bytes, the way `server::rtmp` drives it.
///
/// First byte: bit 7 set prepends a valid handshake (so most inputs reach the chunk stream);
/// bits 0..7 are the piece size (0: all at once). Every publish and play request is accepted, and
/// output and events are drained after each piece.
pub fn fuzz_rtmp_session(data: &[u8]) {
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    let input: Vec<u8> = if knobs & 0x80 != 0 {
        let mut v = canned_handshake();
        v.extend_from_slice(data);
        v
    } else {
        data.to_vec()
    };
    let mut session = ServerSession::new(SessionConfig::default());
    let mut out = BytesMut::new();
    for piece in pieces(&input, usize::from(knobs & 0x7f)) {
        if session.handle_input(piece).is_err() {
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::PublishRequested { request, .. } => {
                    let _ = session.accept_publish(request);
                }
                ServerEvent::PlayRequested { request, .. } => {
                    let _ = session.accept_play(request);
                }
                _ => {}
            }
        }
        let _ = session.poll_transmit(&mut out);
        out.clear();
    }
    session.stream_eof();
    session.goodbye();
    let _ = session.poll_transmit(&mut out);
}

/// First byte: piece size (0: all at once); the rest is an FLV file read with [`FlvReader`].
/// [`FlvReader::finish`] is asked after every piece too, before polling: a reader may learn
/// that its input ended at any moment.
pub fn fuzz_flv(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let mut reader = FlvReader::new();
    for piece in pieces(data, usize::from(step)) {
        reader.feed(piece);
        let _ = reader.finish();
        loop {
            match reader.poll_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = reader.finish();
}

/// HTTP requests on one connection, as `server::http` parses them: each complete request is
/// taken off the buffer and its path, query and headers are interpreted.
pub fn fuzz_http_request(data: &[u8]) {
    let limits = Limits::default();
    let mut buf = data;
    while let Ok(Parsed::Complete { message, consumed }) = parse_request(buf, &limits) {
        let _ = message.query_pairs();
        crate::server::http::fuzz_request(&message);
        if consumed == 0 {
            return;
        }
        buf = &buf[consumed.min(buf.len())..];
    }
}

/// An HTTP response from an origin: the head, then a chunked body.
pub fn fuzz_http_response(data: &[u8]) {
    let rest = match parse_response_head(data, &Limits::default()) {
        Ok(Parsed::Complete { consumed, .. }) => &data[consumed.min(data.len())..],
        Ok(Parsed::NeedMore) => return,
        // Still try the body decoder on everything.
        Err(_) => data,
    };
    let mut decoder = ChunkedDecoder::new();
    let mut buf = BytesMut::from(rest);
    while let Ok(ChunkedEvent::Data(_)) = decoder.decode(&mut buf) {}
}

/// Query strings and paths through every decoder a request's URL meets.
pub fn fuzz_query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_query(&text);
    let _ = percent_decode_path(&text);
    let query = Query::parse(&text);
    let _ = query.get(b"sign");
}

fn source_map(text: &str, line: u32) -> SourceMap {
    SourceMap::single_line(text, Position::new(line, 1))
}

/// The auth expression language: lines of the input are params (`name=expression`, names
/// `p0`, `p1`, ... when there is no `=`) until a line `---`, then checks. What compiles is run
/// against a request whose query is the last line.
pub fn fuzz_auth_dsl(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut params = Vec::new();
    let mut checks = Vec::new();
    let mut in_checks = false;
    let mut last = "";
    for (i, line) in text.lines().enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        last = line;
        if line == "---" {
            in_checks = true;
        } else if in_checks {
            checks.push(CheckSource {
                text: line.to_owned(),
                map: source_map(line, line_no),
            });
        } else {
            let (name, expr) = line
                .split_once('=')
                .map_or((format!("p{i}"), line), |(n, e)| (n.to_owned(), e));
            let column = u32::try_from(line.len() - expr.len() + 1).unwrap_or(u32::MAX);
            params.push(ParamSource {
                name,
                text: expr.to_owned(),
                map: SourceMap::single_line(expr, Position::new(line_no, column)),
            });
        }
    }
    let Ok(program) = compile(&params, &checks) else {
        return;
    };
    let query = Query::parse(last);
    let headers = [("X-Token".to_owned(), last.to_owned())];
    let env = Env {
        domain: "example.com",
        app: "live",
        stream_name: "cam",
        stream_type: "rtmp",
        query: &query,
        headers: &headers,
        now_unix: 1_700_000_000,
    };
    let mut vm = Vm::new(&program);
    for i in 0..program.checks.len() {
        let _ = vm.run_check(i, &env);
    }
    for p in &params {
        let _ = vm.param_value(&p.name, &env);
    }
}

/// A domain file (YAML, rules and expressions), as `Authenticator::load` reads each file.
pub fn fuzz_auth_domain(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::auth::domain::load_file(Path::new("fuzz.yaml"), &text);
}

/// Domain files for [`fuzz_auth_check`]: every URL signature type and expression checks.
const AUTH_DOMAINS: [(&str, &str); 3] = [
    (
        "a.yaml",
        "type: publish\nname: a.example.com\nurl_auth: { type: A, sign_param: auth_key, \
         primary_key: k1, backup_key: k2 }\napps:\n  - name: live\n    publish_auth_check:\n      \
         params:\n        t: add(${url_params[t]}, 60)\n        h: md5_lower(string(${app}${params[t]}))\n      \
         checks:\n        - ${url_params[h]} == ${params[h]}\n        - ${params[t]} > get_time()\n",
    ),
    (
        "b.yaml",
        "type: play\nname: b.example.com\npublish_domain: a.example.com\nurl_auth: { type: B, \
         sign_param: sign, time_param: t, primary_key: k }\napps:\n  - name: live\n    \
         play_auth_check:\n      params:\n        key: base64(hmac_sha1(k, ${stream_name}))\n      \
         checks:\n        - ${header_params[X-Key]} == ${params[key]}\n",
    ),
    (
        "c.yaml",
        "type: play\nname: c.example.com\npublish_domain: a.example.com\nurl_auth: { type: C, \
         sign_param: sign, time_param: t, primary_key: k }\napps:\n  - name: live\n",
    ),
];

/// The authenticator of [`fuzz_auth_check`], loaded once per process from a scratch directory.
fn fuzz_authenticator() -> Option<&'static Authenticator> {
    static AUTH: OnceLock<Option<Authenticator>> = OnceLock::new();
    AUTH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("corestream-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("domains")).ok()?;
        for (name, text) in AUTH_DOMAINS {
            std::fs::write(dir.join("domains").join(name), text).ok()?;
        }
        let settings = AuthSettings {
            domains_dir: Some("domains".into()),
            ..AuthSettings::default()
        };
        let auth = Authenticator::load(&settings, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        Some(auth.expect("fuzz domain files load"))
    })
    .as_ref()
}

/// One request through [`Authenticator::check`] and [`Authenticator::explain`], against
/// domains with URL signatures of every type and expression checks. The input's lines are the
/// vhost, app, stream, raw query, an `X-Key` header, user and password; the first byte picks
/// the action and protocol.
pub fn fuzz_auth_check(data: &[u8]) {
    let Some(auth) = fuzz_authenticator() else {
        return;
    };
    let Some((&knobs, data)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or_default();
    let (vhost, app, stream, query, key) = (next(), next(), next(), next(), next());
    let (user, pass) = (next(), next());
    let headers = [("x-key".to_owned(), key.to_owned())];
    let request = AuthRequest {
        action: [Action::Publish, Action::Read, Action::Playback][usize::from(knobs % 3)],
        protocol: [Protocol::Rtmp, Protocol::Flv, Protocol::Hls][usize::from(knobs / 3 % 3)],
        vhost,
        app,
        stream,
        query,
        headers: &headers,
        peer: IpAddr::from([203, 0, 113, 7]),
        user: (!user.is_empty()).then_some(user),
        pass: (!pass.is_empty()).then_some(pass),
        now_unix: 1_700_000_000,
    };
    let _ = auth.check(&request);
    let _ = auth.explain(&request);
}

/// The engine's config file.
pub fn fuzz_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::config::Config::parse(&text, "fuzz.yaml");
}

/// Publisher media through the HLS segmenters (and so the TS and fMP4 muxers), as
/// `registry::hls` feeds them. The input is a list of frames, each `[kind, dt_hi, dt_lo, len_hi, len_lo, payload...]`:
/// kind % 3 picks video, audio or script (kind 0xff marks a discontinuity instead); `dt` (i16) moves the timestamp, backwards too; the
/// wall clock advances by `|dt|`. Segments are small (64 KiB cap, window 3) so that cutting and
/// overflow are reached quickly.
pub fn fuzz_hls(data: &[u8]) {
    let config = SegmenterConfig {
        target_duration: Duration::from_millis(500),
        window: 3,
        retain_after_removal: 1,
        max_segment_bytes: 64 * 1024,
        ..SegmenterConfig::new("fuzz")
    };
    let mut segmenter = Segmenter::new(config);
    let mut parts = PartSegmenter::new(PartsConfig {
        segment_duration: Duration::from_millis(500),
        part_duration: Duration::from_millis(100),
        window: 3,
        retain_after_removal: 1,
        max_segment_bytes: 64 * 1024,
        ..PartsConfig::new("fuzz")
    });
    let start = Instant::now();
    let mut now = start;
    let mut timestamp: u32 = 0;
    let mut rest = data;
    while let [kind_byte, dt_hi, dt_lo, len_hi, len_lo, tail @ ..] = rest {
        let dt = i16::from_be_bytes([*dt_hi, *dt_lo]);
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        timestamp = timestamp.wrapping_add_signed(i32::from(dt));
        now += Duration::from_millis(u64::from(dt.unsigned_abs()));
        let kind = match kind_byte % 3 {
            0 => MediaKind::Video,
            1 => MediaKind::Audio,
            _ => MediaKind::Script,
        };
        if *kind_byte == 0xff {
            segmenter.mark_discontinuity();
            parts.mark_discontinuity();
            continue;
        }
        let frame = Frame::new(kind, timestamp, Bytes::copy_from_slice(payload));
        let _ = segmenter.push(now, &frame);
        let _ = parts.push(now, &frame);
        let _ = parts.has_part(parts.next_part_number() / 4, Some(1));
    }
    let _ = segmenter.flush();
    let _ = parts.flush();
    let _ = (parts.is_ready(), parts.playlist());
    for n in 0..parts.next_part_number() + 1 {
        let _ = (parts.part(n), parts.segment(n), parts.init(n as u32));
    }
    let playlist = segmenter.playlist();
    for uri in playlist.lines().filter(|l| !l.starts_with('#')) {
        if let Some(seq) = segmenter.sequence_from_uri(uri) {
            let _ = segmenter.segment(seq);
        }
    }
    let _ = segmenter.idle_for(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target over its committed corpus (`fuzz/corpus/<target>/`): the seeds and what the
    /// fuzzer kept must never panic. The crash inputs themselves are tested beside the code
    /// they broke.
    #[test]
    fn committed_corpus_replays() {
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 15] = [
            ("rtmp_handshake", fuzz_handshake),
            ("rtmp_chunk", fuzz_chunk_stream),
            ("amf0", fuzz_amf0),
            ("rtmp_session", fuzz_rtmp_session),
            ("flv", fuzz_flv),
            ("http_request", fuzz_http_request),
            ("http_response", fuzz_http_response),
            ("query", fuzz_query),
            ("auth_dsl", fuzz_auth_dsl),
            ("auth_domain", fuzz_auth_domain),
            ("auth_check", fuzz_auth_check),
            ("config", fuzz_config),
            ("hls", fuzz_hls),
            ("api_body", fuzz_api_body),
            ("url_sign_unique", fuzz_url_sign_unique),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        for (name, target) in targets {
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
            let mut n = 0;
            for entry in entries {
                let path = entry.unwrap().path();
                target(&std::fs::read(&path).unwrap());
                n += 1;
            }
            assert!(n > 0, "{name}: empty corpus");
        }
    }

    /// The `url_sign_unique` property over many random inputs, on every `cargo test`.
    #[test]
    fn url_signatures_accept_one_split_over_random_inputs() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let mut data = [0u8; 32];
        for _ in 0..5_000 {
            rng.fill(&mut data[..]);
            let len = rng.gen_range(12..data.len());
            fuzz_url_sign_unique(&data[..len]);
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        for data in [&b""[..], b"\x00", b"\x80", b"\xff\xff\xff\xff\xff\xff"] {
            fuzz_handshake(data);
            fuzz_chunk_stream(data);
            fuzz_amf0(data);
            fuzz_rtmp_session(data);
            fuzz_flv(data);
            fuzz_http_request(data);
            fuzz_http_response(data);
            fuzz_query(data);
            fuzz_auth_dsl(data);
            fuzz_auth_domain(data);
            fuzz_auth_check(data);
            fuzz_config(data);
            fuzz_hls(data);
            fuzz_url_sign_unique(data);
        }
    }
}

/// One URL signature signs one request: over random types, time formats, windows, clocks,
/// timestamps and stream names, a URL signed for `/live/{stream}` at `ts` is accepted for no other
/// split of the same signed bytes (type C's `stream + ts`, type B's, type A's `path-ts-rand-uid`).
/// Panics on a second accepted (stream, time) pair.
///
/// Clocks run from 2001-09-09 (the first 10-digit Unix second) to 2106 (the last 8-digit hex one),
/// the only clocks a running server reads.
pub fn fuzz_url_sign_unique(data: &[u8]) {
    use crate::auth::url_sign::{
        sign_url, SignType, SignedRequest, TimeFormat, UrlAuthConfig, MAX_CLOCK_SKEW_SECS,
        MAX_VALID_SECONDS,
    };
    let [kind, v0, v1, n0, n1, n2, n3, t0, t1, t2, t3, name @ ..] = data else {
        return;
    };
    let sign_type = match kind % 3 {
        0 => SignType::A,
        1 => SignType::B,
        _ => SignType::C,
    };
    let mut cfg = UrlAuthConfig::new(sign_type, "fuzzKey1");
    cfg.time_format = Some(if kind & 4 == 0 {
        TimeFormat::Decimal
    } else {
        TimeFormat::Hex
    });
    cfg.valid_seconds = u64::from(u16::from_be_bytes([*v0, *v1])) * 40 % (MAX_VALID_SECONDS + 1);
    let window = cfg.valid_seconds * 2 + MAX_CLOCK_SKEW_SECS;
    let first = 1_000_000_000 + window;
    let last = 0xffff_ffff - window;
    let now = first + u64::from(u32::from_be_bytes([*n0, *n1, *n2, *n3])) % (last - first);
    let offset = u64::from(u32::from_be_bytes([*t0, *t1, *t2, *t3])) % (window + 2);
    let ts = (now - cfg.valid_seconds - 1) + offset;
    // Stream names of the characters that matter: digits and hex letters (they can pass for a
    // timestamp) and `-` (type A's separator).
    let alphabet = b"0123456789abcdef-x";
    let stream: String = name
        .iter()
        .take(24)
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect();
    if stream.is_empty() || stream.starts_with('-') {
        return;
    }
    let Ok(url) = sign_url(&format!("rtmp://h/live/{stream}"), &cfg, ts, "r", "0") else {
        return;
    };
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let q = Query::parse(query);
    let accepts = |stream: &str, q: &Query| {
        cfg.verify(&SignedRequest {
            path: &format!("/live/{stream}"),
            app: "live",
            stream,
            query: q,
            now_unix: now,
        })
        .is_ok()
    };
    let original = accepts(&stream, &q);
    let sig = q
        .get(cfg.sign_param.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let sig = String::from_utf8_lossy(&sig).into_owned();
    let others: Vec<(String, String)> = match sign_type {
        SignType::A => {
            // Every other place the path could end in `/live/{stream}-{ts}-r-0`.
            let (signed, hash) = sig.rsplit_once('-').unwrap_or_default();
            let joined = format!("{stream}-{signed}");
            joined
                .match_indices('-')
                .map(|(i, _)| {
                    let q = format!("auth_key={}-{hash}", &joined[i + 1..]);
                    (joined[..i].to_string(), q)
                })
                .collect()
        }
        SignType::B | SignType::C => {
            let t = q.get(b"t").unwrap_or_default();
            let joined = format!("{stream}{}", String::from_utf8_lossy(t));
            (1..joined.len())
                .map(|i| {
                    let q = format!("sign={sig}&t={}", &joined[i..]);
                    (joined[..i].to_string(), q)
                })
                .collect()
        }
    };
    for (other, q2) in others {
        if other == stream {
            continue;
        }
        let q2 = Query::parse(&q2);
        assert!(
            !(original && accepts(&other, &q2)),
            "one signature accepted for {stream:?} and {other:?} ({query} / {q2:?}) at {now}"
        );
    }
}

/// A control API write body, validated and planned over the embedded configuration exactly as the
/// API does before it persists anything. The first byte picks the endpoint: global patch, path
/// defaults patch, or path add / patch / replace (of `live/fuzz`).
pub fn fuzz_api_body(data: &[u8]) {
    use crate::api::store::{parse_json, plan, Change};
    use crate::config::state::Overlay;
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let change = match which % 5 {
        0 => Change::global(body),
        1 => parse_json(body).map(Change::PathDefaults),
        2 => parse_json(body).map(|f| Change::Add("live/fuzz".into(), f)),
        3 => parse_json(body).map(|f| Change::Patch("all_others".into(), f)),
        _ => parse_json(body).map(|f| Change::Replace("live/fuzz".into(), f)),
    };
    if let (Ok(change), Some(config)) = (change, embedded_config()) {
        let _ = plan(config, &Overlay::new(), &change);
    }
}

fn embedded_config() -> Option<&'static crate::config::Config> {
    static CONFIG: OnceLock<Option<crate::config::Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| crate::config::Config::parse(crate::config::EMBEDDED, "embedded").ok())
        .as_ref()
}

#[cfg(test)]
mod api_body_tests {
    use super::fuzz_api_body;

    #[test]
    fn api_bodies_of_every_kind_run_through() {
        for body in [
            &b"\x00{\"readTimeout\":\"5s\"}"[..],
            b"\x01{\"maxReaders\":3}",
            b"\x02{\"source\":\"publisher\"}",
            b"\x03{\"bogus\":1}",
            b"\x04not json",
            b"",
        ] {
            fuzz_api_body(body);
        }
    }
}
