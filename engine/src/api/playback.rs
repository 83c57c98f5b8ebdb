//! The playback server (MediaMTX's): recordings served back by time range on
//! `playbackAddress`, on the control executor, for clients with the `playback` permission of
//! the path (internal users, or the HTTP auth service).
//!
//! - `GET /list?path=&start=&end=`: the spans of recording (segments that follow each other
//!   with the same tracks make one), each with `start`, `duration` (seconds) and the `url` of
//!   its `/get`.
//! - `GET /get?path=&start=&duration=&format=fmp4|mp4`: the range, stitched across segments
//!   and cut at keyframes (from the last keyframe at or before `start`), streamed from the
//!   files part by part with glommio's file API: the answer's length is known from the parts'
//!   headers before any media is read, and no segment is held in memory.
//!
//! Only fMP4 recordings are served, as in MediaMTX.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use serde_json::{json, Value};
use tracing::{debug, info, warn};

use super::auth;
use super::store::Store;
use crate::auth::Action;
use crate::config::RecordFormat;
use crate::protocol::http::{
    parse_head, BodyFraming, Head, Limits, Method, Parsed, Request, ResponseHead, Version,
};
use crate::record::path::{parse_rfc3339, rfc3339_us};
use crate::record::playback::{self, Piece, SegmentScan};
use crate::record::reader::SegmentFile;
use crate::record::store::{self, Segment};
use crate::runtime::StartError;

/// Media is streamed in reads of this size.
const CHUNK: usize = 256 * 1024;
/// Segments whose parts are kept (a 1 h segment of 1 s parts is a few MB of sample tables);
/// beyond, the cache starts again.
const MAX_SCANS: usize = 32;
/// Segments whose header is kept for `/list` (their init segments shared).
const MAX_HEADS: usize = 100_000;

/// A segment's length when read, its init segment and its duration in µs.
type SegmentHead = (u64, Rc<playback::Init>, u64);

/// The playback server's state: the live configuration and what it read of segment files,
/// kept while a file's length is unchanged (a finished segment is read once).
pub struct Playback {
    store: Rc<Store>,
    scans: RefCell<HashMap<PathBuf, (u64, Rc<SegmentScan>)>>,
    /// What `/list` needs of a segment: its tracks and duration (µs).
    heads: RefCell<HashMap<PathBuf, SegmentHead>>,
    /// Init segments seen lately: segments with the same tracks share one.
    inits: RefCell<Vec<Rc<playback::Init>>>,
}

/// Binds `playbackAddress` and serves it, when `playback` is on.
pub fn start(store: Rc<Store>) -> Result<(), StartError> {
    let config = &store.snapshot().config;
    if !config.playback {
        return Ok(());
    }
    let addr = config.playback_address.0;
    let listener = super::server::bind(addr).map_err(|reason| StartError::Listen {
        what: "playback",
        addr,
        reason,
    })?;
    info!(address = %addr, "playback listener ready");
    let playback = Rc::new(Playback {
        store,
        scans: RefCell::default(),
        heads: RefCell::default(),
        inits: RefCell::default(),
    });
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    glommio::spawn_local(connection(stream, playback.clone())).detach();
                }
                Err(e) => {
                    warn!("playback accept failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
    .detach();
    Ok(())
}

/// What a request gets.
enum Answer {
    Json(u16, Value, Vec<(&'static str, String)>),
    Media {
        content_type: &'static str,
        segments: Vec<Rc<SegmentScan>>,
        files: Vec<PathBuf>,
        pieces: Vec<Piece>,
        answer_start_us: u64,
    },
}

fn error(status: u16, text: impl std::fmt::Display) -> Answer {
    Answer::Json(
        status,
        json!({"status": "error", "error": text.to_string()}),
        Vec::new(),
    )
}

async fn connection(mut stream: TcpStream, playback: Rc<Playback>) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let limits = Limits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: 0,
    };
    let mut buf = BytesMut::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    loop {
        let timeout = playback.store.snapshot().config.read_timeout.duration();
        let deadline = Instant::now() + timeout;
        let request = loop {
            match parse_head(&buf, &limits) {
                Ok(Parsed::Complete {
                    message: Head { request, .. },
                    consumed,
                }) => {
                    buf.advance(consumed);
                    break request;
                }
                Ok(Parsed::NeedMore) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let read =
                        glommio::timer::timeout(left, async { Ok(stream.read(&mut chunk).await) })
                            .await;
                    match read {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                Err(e) => {
                    debug!(peer = %peer, "bad playback request: {e}");
                    let answer = error(e.status(), e);
                    let _ = write(&mut stream, answer, Version::Http11, false, false).await;
                    return;
                }
            }
        };
        let head_only = request.method == Method::Head;
        let answer = playback.answer(&request, peer).await;
        let keep = request.keep_alive;
        if !write(&mut stream, answer, request.version, keep, head_only).await || !keep {
            return;
        }
    }
}

impl Playback {
    async fn answer(&self, req: &Request, peer: SocketAddr) -> Answer {
        if req.method == Method::Options {
            return Answer::Json(
                204,
                Value::Null,
                vec![
                    ("Access-Control-Allow-Methods", "OPTIONS, GET".to_owned()),
                    ("Access-Control-Allow-Headers", "Authorization".to_owned()),
                ],
            );
        }
        if req.method != Method::Get && req.method != Method::Head {
            return error(405, "method not allowed");
        }
        let query = req.query_pairs();
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let path = get("path").unwrap_or_default();
        if !store::is_valid_path_name(path) {
            return error(400, format!("invalid path name: {path}"));
        }
        let snapshot = self.store.snapshot();
        let client = auth::requester_ip(&snapshot.config, peer.ip(), req);
        let credentials = auth::basic_credentials(req.header("authorization"));
        if let Err(e) = auth::authorize_path(
            &snapshot.auth,
            Action::Playback,
            path,
            client,
            credentials.as_ref(),
            &req.query,
            crate::runtime::unix_ms() / 1000,
        )
        .await
        {
            let mut headers = Vec::new();
            if credentials.is_none() {
                headers.push(("WWW-Authenticate", "Basic realm=\"mediamtx\"".to_owned()));
            }
            return Answer::Json(
                401,
                json!({"status": "error", "error": e.to_string()}),
                headers,
            );
        }
        let config = &snapshot.config;
        let conf = config.path_conf(path);
        if conf
            .as_ref()
            .is_some_and(|c| c.record_format != RecordFormat::Fmp4)
        {
            return error(400, "MPEG-TS format is not supported yet");
        }
        let template = store::template_of(config, path).for_path(path);
        match req.path.as_str() {
            "/list" => {
                self.list(req, path, &template, get("start"), get("end"))
                    .await
            }
            "/get" => {
                self.get(
                    path,
                    &template,
                    get("start"),
                    get("duration"),
                    get("format"),
                )
                .await
            }
            _ => error(404, "not found"),
        }
    }

    /// A segment's scan, from the cache while the file's length is unchanged.
    async fn scan(&self, segment: &Segment) -> std::io::Result<Rc<SegmentScan>> {
        let file = SegmentFile::open(&segment.file).await?;
        let cached = self
            .scans
            .borrow()
            .get(&segment.file)
            .filter(|(len, _)| *len == file.len)
            .map(|(_, s)| s.clone());
        let scan = match cached {
            Some(s) => s,
            None => {
                let s = Rc::new(file.scan(segment.start_us).await?);
                let mut scans = self.scans.borrow_mut();
                if scans.len() >= MAX_SCANS {
                    scans.clear();
                }
                scans.insert(segment.file.clone(), (file.len, s.clone()));
                s
            }
        };
        file.close().await;
        Ok(scan)
    }

    /// A segment's tracks and duration (µs) for `/list`: from its header when the recorder
    /// wrote the duration there (a completed segment), else from its parts.
    async fn head(&self, segment: &Segment) -> std::io::Result<(Rc<playback::Init>, u64)> {
        let cached = self
            .heads
            .borrow()
            .get(&segment.file)
            .filter(|(len, _, _)| *len == segment.len)
            .map(|(_, init, d)| (init.clone(), *d));
        if let Some(head) = cached {
            return Ok(head);
        }
        let file = SegmentFile::open_with_len(&segment.file, segment.len).await?;
        let head = match file.init().await {
            Ok(init) if init.duration_ms > 0 => {
                let d = init.duration_ms * 1000;
                Ok((self.intern(init), d))
            }
            Ok(_) => match file.scan(segment.start_us).await {
                Ok(scan) if !scan.parts.is_empty() => {
                    Ok((self.intern(scan.init.clone()), scan.duration_us()))
                }
                Ok(_) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Ok((init, d)) = &head {
            let mut heads = self.heads.borrow_mut();
            if heads.len() >= MAX_HEADS {
                heads.clear();
            }
            heads.insert(segment.file.clone(), (file.len, init.clone(), *d));
        }
        file.close().await;
        head
    }

    /// Reads the headers `/list` lacks in one batch on glommio's blocking pool (plain reads of
    /// a few KiB, several times cheaper per file than a ring round trip each for open, read
    /// and close); segments without a duration in their header are left to [`Self::head`].
    async fn prefetch_heads(&self, segments: &[Segment]) {
        let missing: Vec<(PathBuf, u64)> = {
            let heads = self.heads.borrow();
            segments
                .iter()
                .filter(|s| heads.get(&s.file).is_none_or(|(len, _, _)| *len != s.len))
                .map(|s| (s.file.clone(), s.len))
                .collect()
        };
        if missing.len() < 16 {
            return;
        }
        let read = glommio::executor()
            .spawn_blocking(move || {
                missing
                    .into_iter()
                    .filter_map(|(file, len)| {
                        let init = read_init_blocking(&file)?;
                        Some((file, len, init))
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        for (file, len, init) in read {
            if init.duration_ms == 0 {
                continue;
            }
            let d = init.duration_ms * 1000;
            let init = self.intern(init);
            let mut heads = self.heads.borrow_mut();
            if heads.len() >= MAX_HEADS {
                heads.clear();
            }
            heads.insert(file, (len, init, d));
        }
    }

    /// One shared copy of each init segment (the tracks of a path rarely change).
    fn intern(&self, init: playback::Init) -> Rc<playback::Init> {
        let mut inits = self.inits.borrow_mut();
        if let Some(known) = inits.iter().find(|i| i.bytes == init.bytes) {
            return known.clone();
        }
        let init = Rc::new(init);
        if inits.len() >= 16 {
            inits.remove(0);
        }
        inits.push(init.clone());
        init
    }

    /// The segments of `[start, end]` (MediaMTX's `FindSegments`): those starting before
    /// `end`, from the one that holds `start`.
    fn segments(
        template: &crate::record::Template,
        start: Option<u64>,
        end: Option<u64>,
    ) -> Vec<Segment> {
        let mut segments: Vec<Segment> = store::find_path_sized(template)
            .into_iter()
            .filter(|s| end.is_none_or(|e| s.start_us <= e))
            .collect();
        if let Some(start) = start {
            if let Some(i) = segments.iter().rposition(|s| s.start_us <= start) {
                segments.drain(..i);
            }
        }
        segments
    }

    async fn list(
        &self,
        req: &Request,
        path: &str,
        template: &crate::record::Template,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Answer {
        let parse = |v: Option<&str>, what: &str| match v {
            None | Some("") => Ok(None),
            Some(t) => parse_rfc3339(t)
                .map(Some)
                .ok_or_else(|| error(400, format!("invalid {what}: {t}"))),
        };
        let (start, end) = match (parse(start, "start"), parse(end, "end")) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(a), _) | (_, Err(a)) => return a,
        };
        let segments = Self::segments(template, start, end);
        self.prefetch_heads(&segments).await;
        // (start, end, tracks of the last segment)
        let mut spans: Vec<(u64, u64, Rc<playback::Init>)> = Vec::new();
        for segment in &segments {
            let (init, duration_us) = match self.head(segment).await {
                Ok(h) => h,
                Err(e) => {
                    debug!(file = %segment.file.display(), "unreadable segment skipped: {e}");
                    continue;
                }
            };
            let seg_end = segment.start_us + duration_us;
            match spans.last_mut() {
                Some((_, prev_end, prev))
                    if prev.same_tracks(&init)
                        && segment.start_us.abs_diff(*prev_end) <= 1_000_000 =>
                {
                    *prev_end = seg_end;
                    *prev = init;
                }
                _ => spans.push((segment.start_us, seg_end, init)),
            }
        }
        if let Some(start) = start {
            if spans.first().is_some_and(|(_, e, _)| *e < start) {
                spans.remove(0);
            } else if let Some(first) = spans.first_mut() {
                first.0 = first.0.max(start);
            }
        }
        if let (Some(end), Some(last)) = (end, spans.last_mut()) {
            last.1 = last.1.min(end).max(last.0);
        }
        if spans.is_empty() {
            return error(404, "no recording segments found");
        }
        let host = req.header("host").unwrap_or("localhost");
        let items: Vec<Value> = spans
            .iter()
            .map(|(s, e, _)| {
                let duration = (e - s) as f64 / 1e6;
                let start = rfc3339_us(*s);
                let url = format!(
                    "http://{host}/get?duration={}&path={}&start={}",
                    duration,
                    encode(path),
                    encode(&start)
                );
                json!({"start": start, "duration": duration, "url": url})
            })
            .collect();
        Answer::Json(200, Value::Array(items), Vec::new())
    }

    async fn get(
        &self,
        path: &str,
        template: &crate::record::Template,
        start: Option<&str>,
        duration: Option<&str>,
        format: Option<&str>,
    ) -> Answer {
        let Some(start) = start.and_then(parse_rfc3339) else {
            return error(400, format!("invalid start: {}", start.unwrap_or_default()));
        };
        let Some(duration_us) = duration.and_then(parse_duration_us) else {
            return error(
                400,
                format!("invalid duration: {}", duration.unwrap_or_default()),
            );
        };
        let mp4 = match format.unwrap_or("fmp4") {
            "" | "fmp4" => false,
            "mp4" => true,
            other => return error(400, format!("invalid format: {other}")),
        };
        let segments = Self::segments(template, Some(start), Some(start + duration_us));
        let mut scans = Vec::with_capacity(segments.len());
        let mut files = Vec::with_capacity(segments.len());
        for segment in &segments {
            match self.scan(segment).await {
                Ok(s) => {
                    scans.push(s);
                    files.push(segment.file.clone());
                }
                Err(e) => return error(400, format!("{}: {e}", segment.file.display())),
            }
        }
        let selected = playback::select(&scans, start, duration_us);
        if selected.is_empty() {
            return error(404, "no recording segments found");
        }
        let answer_start_us = playback::answer_start_us(&scans, &selected);
        let pieces = if mp4 {
            match playback::plan_mp4(&scans, &selected) {
                Some((head, mut media)) => {
                    media.insert(0, Piece::Bytes(head));
                    media
                }
                None => return error(404, "no recording segments found"),
            }
        } else {
            playback::plan_fmp4(&scans, &selected)
        };
        info!(path = %path, start = %rfc3339_us(answer_start_us), parts = selected.len(), format = if mp4 { "mp4" } else { "fmp4" }, "playback");
        Answer::Media {
            content_type: "video/mp4",
            segments: scans,
            files,
            pieces,
            answer_start_us,
        }
    }
}

/// A segment's init segment, read with plain file reads (on the blocking pool only).
fn read_init_blocking(file: &std::path::Path) -> Option<playback::Init> {
    use std::io::Read;
    let mut f = std::fs::File::open(file).ok()?;
    let mut head = vec![0u8; 4096];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return None,
        }
    }
    head.truncate(got);
    playback::parse_init(&head)
}

/// MediaMTX's durations: seconds as a decimal number (`12.5`), or Go's (`1m30s`).
fn parse_duration_us(text: &str) -> Option<u64> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some((secs * 1e6) as u64);
    }
    text.parse::<crate::config::Millis>()
        .ok()
        .map(|m| m.0 * 1000)
}

/// Percent-encodes a query value (everything but unreserved characters, as Go's
/// `url.QueryEscape` does, `/` and `:` included).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes an answer; false when the connection must close.
async fn write(
    stream: &mut TcpStream,
    answer: Answer,
    version: Version,
    keep_alive: bool,
    head_only: bool,
) -> bool {
    let mut out = BytesMut::with_capacity(1024);
    match answer {
        Answer::Json(status, body, headers) => {
            let body = if status == 204 {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            };
            let mut head = ResponseHead::new(status)
                .with_header("Content-Type", "application/json; charset=utf-8")
                .with_header("Access-Control-Allow-Origin", "*");
            for (n, v) in headers {
                head = head.with_header(n, v);
            }
            let Ok(keep) = head.encode(
                version,
                BodyFraming::Length(body.len() as u64),
                keep_alive,
                &mut out,
            ) else {
                return false;
            };
            if !head_only {
                out.extend_from_slice(&body);
            }
            stream.write_all(&out).await.is_ok() && stream.flush().await.is_ok() && keep
        }
        Answer::Media {
            content_type,
            segments,
            files,
            pieces,
            answer_start_us,
        } => {
            let len = playback::answer_len(&segments, &pieces);
            let head = ResponseHead::new(200)
                .with_header("Content-Type", content_type)
                .with_header("Accept-Ranges", "none")
                .with_header("Access-Control-Allow-Origin", "*");
            let Ok(keep) = head.encode(version, BodyFraming::Length(len), keep_alive, &mut out)
            else {
                return false;
            };
            if stream.write_all(&out).await.is_err() {
                return false;
            }
            if head_only {
                return keep;
            }
            match stream_pieces(stream, &segments, &files, &pieces, answer_start_us).await {
                Ok(()) => stream.flush().await.is_ok() && keep,
                Err(e) => {
                    debug!("playback answer cut: {e}");
                    false
                }
            }
        }
    }
}

/// Streams the pieces: segment files are opened one at a time and read in chunks.
async fn stream_pieces(
    stream: &mut TcpStream,
    segments: &[Rc<SegmentScan>],
    files: &[PathBuf],
    pieces: &[Piece],
    answer_start_us: u64,
) -> std::io::Result<()> {
    let mut open: Option<(usize, SegmentFile)> = None;
    for piece in pieces {
        let segment = match piece {
            Piece::Bytes(b) => {
                stream.write_all(b).await?;
                continue;
            }
            Piece::Moof { segment, .. } | Piece::File { segment, .. } => *segment,
        };
        if open.as_ref().is_none_or(|(s, _)| *s != segment) {
            if let Some((_, f)) = open.take() {
                f.close().await;
            }
            open = Some((segment, SegmentFile::open(&files[segment]).await?));
        }
        let Some((_, file)) = &open else {
            continue;
        };
        match piece {
            Piece::Moof {
                segment,
                part,
                sequence,
            } => {
                let seg = &segments[*segment];
                let p = &seg.parts[*part];
                let mut moof = file.read(p.offset, p.moof_len as usize).await?.to_vec();
                if moof.len() as u64 != p.moof_len {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                playback::patch_moof(&mut moof, seg, p, answer_start_us, *sequence);
                stream.write_all(&moof).await?;
            }
            Piece::File { offset, len, .. } => {
                let mut at = *offset;
                let end = offset + len;
                while at < end {
                    let want = ((end - at) as usize).min(CHUNK);
                    let data = file.read(at, want).await?;
                    if data.is_empty() {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    stream.write_all(&data).await?;
                    at += data.len() as u64;
                }
            }
            Piece::Bytes(_) => {}
        }
    }
    if let Some((_, f)) = open.take() {
        f.close().await;
    }
    Ok(())
}
