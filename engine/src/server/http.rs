//! The HTTP driver: HTTP-FLV and HLS for viewers, on every data core, over the sans-IO HTTP codec.

use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, Instrument};

use super::accept::accept_loop;
use super::auth_hook;
use super::conn::{Conn, ReadOutcome};
use super::net::NetReader;
use super::pages::{self, PlayerKind};
use super::rtmp::unix_now;
use super::shed::Handshake;
use crate::auth::{Action, AuthRequest, Protocol};
use crate::delivery::{Player, SinkFormat};
use crate::protocol::http::{
    basic_credentials, parse_request, BodyFraming, HttpError, Limits, Method, Parsed, Request,
    ResponseHead, Version, LAST_CHUNK,
};
use crate::registry::{parse_media_name, HlsName, StreamKey, DEFAULT_VHOST};
use crate::runtime::hls_session::{self, HlsSessionCheck, HlsSessionOpening, HlsSessionRef};
use crate::runtime::{
    ConnProtocol, ConnUuid, Core, HlsAnswer, HlsQuery, HlsSessionOpened, Limit, Notice, PlayHandle,
    ReaderSlot, Via,
};

/// Most bytes of requests taken in one read.
const READ_BUFFER: usize = 16 * 1024;
/// How often a playlist request asks again while the first segment is being made.
const PLAYLIST_POLL: Duration = Duration::from_millis(100);

/// Accepts HTTP connections on this core until shutdown.
pub async fn serve_http(core: Rc<Core>, listener: TcpListener) {
    accept_loop(core, listener, "http", serve_connection).await;
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Flv {
        app: String,
        stream: String,
    },
    Playlist {
        app: String,
        stream: String,
        /// Asked as MediaMTX's `/{path}/index.m3u8`: segment URIs go one level up.
        nested: bool,
    },
    /// The player page of a stream (`/{app}/{stream}`, no extension).
    Page {
        app: String,
        stream: String,
    },
    /// The stream list page (`/`).
    Index,
    /// A vendored player script or its licence (`/_player/{name}`).
    Asset(String),
    /// A segment, part or init segment of an HLS muxer.
    Media {
        app: String,
        stream: String,
        instance: u32,
        name: HlsName,
    },
}

impl Route {
    /// `/{app}/{stream}.flv`, `/{app}/{stream}.m3u8`, `/{app}/{stream}-{instance}-{name}` (HLS
    /// media: `{seq}.ts`, `{seq}.mp4`, `p{part}.mp4`, `init{version}.mp4`), the player page
    /// `/{app}/{stream}`; for a path without a stream name (`rtmp://host/mystream`) `/{app}.flv`,
    /// `/{app}.m3u8`, `/{app}-{instance}-{name}` and the page `/{app}`; MediaMTX's
    /// `/{path}/index.m3u8`, where the path is split as RTMP splits it (`cam/1`: app `cam`,
    /// stream `1`; `mystream`: app only); the stream list `/`; the players' scripts `/_player/…`.
    fn parse(path: &str) -> Option<Route> {
        if path == "/" {
            return Some(Route::Index);
        }
        if let Some(name) = path.strip_prefix(super::pages::ASSET_PREFIX) {
            return Some(Route::Asset(name.to_owned()));
        }
        let path = path.strip_prefix('/')?;
        if let Some(mtx_path) = path.strip_suffix("/index.m3u8") {
            if mtx_path.is_empty() || mtx_path.split('/').any(str::is_empty) {
                return None;
            }
            let (app, stream) = mtx_path.rsplit_once('/').unwrap_or((mtx_path, ""));
            return Some(Route::Playlist {
                app: app.to_owned(),
                stream: stream.to_owned(),
                nested: true,
            });
        }
        let (app, file) = match path.rsplit_once('/') {
            Some((app, file)) => (Some(app), file),
            None => (None, path),
        };
        if app.is_some_and(|app| app.is_empty() || app.split('/').any(str::is_empty)) {
            return None;
        }
        // `/{app}.flv` names the app-only path: the file's stem is the app.
        let path_of = |stem: &str| match app {
            Some(app) => (app.to_owned(), stem.to_owned()),
            None => (stem.to_owned(), String::new()),
        };
        if let Some(stem) = file.strip_suffix(".flv").filter(|s| !s.is_empty()) {
            let (app, stream) = path_of(stem);
            return Some(Route::Flv { app, stream });
        }
        if let Some(stem) = file.strip_suffix(".m3u8").filter(|s| !s.is_empty()) {
            let (app, stream) = path_of(stem);
            return Some(Route::Playlist {
                app,
                stream,
                nested: false,
            });
        }
        if !file.is_empty() && !file.contains('.') {
            let (app, stream) = path_of(file);
            return Some(Route::Page { app, stream });
        }
        let (stem, instance, name) = parse_media_name(file)?;
        let (app, stream) = path_of(stem);
        Some(Route::Media {
            app,
            stream,
            instance,
            name,
        })
    }

    /// The stream the route names, if it names one.
    fn app_stream(&self) -> Option<(&str, &str)> {
        match self {
            Route::Flv { app, stream }
            | Route::Playlist { app, stream, .. }
            | Route::Page { app, stream }
            | Route::Media { app, stream, .. } => Some((app, stream)),
            Route::Index | Route::Asset(_) => None,
        }
    }
}

/// What the connection does after a response.
enum Next {
    KeepAlive,
    Close,
    /// Streaming HTTP-FLV until the stream or the viewer ends.
    Streaming {
        handle: PlayHandle,
        chunked: bool,
        /// The viewer's place under the path's `maxReaders`, held while it streams.
        _slot: ReaderSlot,
    },
}

/// One HTTP connection's task, from accept to close. Allocated whole for every connection as
/// long as it lives: `server::tests::connection_tasks_stay_small` keeps it small.
pub(super) async fn serve_connection(core: Rc<Core>, stream: TcpStream, handshake: Handshake) {
    let Some((conn, reader)) = Conn::open(&core, stream, ConnProtocol::Http) else {
        return;
    };
    let span = tracing::info_span!("http", core = %core.id, conn = %conn.guard.id);
    async move {
        debug!(peer = ?conn.peer, "connection accepted");
        match serve_requests(&conn, reader, handshake).await {
            Close::Now => conn.close(false).await,
            Close::Flush => conn.close(true).await,
            Close::Linger(reader) => conn.close_lingering(reader).await,
        }
    }
    .instrument(span)
    .await
}

/// How a connection ends.
enum Close {
    Now,
    /// Let the queued output out first.
    Flush,
    /// An error response to a client that may still be sending: flush, then drain its input.
    Linger(NetReader),
}

/// Serves requests until the connection ends.
async fn serve_requests(conn: &Conn, mut reader: NetReader, handshake: Handshake) -> Close {
    let config = HttpSettings::from_config(&conn.core.snapshot().config);
    // Request bytes not parsed yet; empty (and unallocated) between requests.
    let mut buf = BytesMut::new();
    // The first request head must be whole within handshakeTimeout of the accept; a later one
    // within readTimeout of its first byte. Both are absolute: trickled bytes do not extend them.
    let mut head_deadline = Some((
        Instant::now() + config.handshake_timeout,
        Limit::HandshakeTimeout,
    ));
    loop {
        if !conn.wait_for_room().await {
            conn.core.hit_limit(Limit::PlayerQueueBytes);
            info!(peer = ?conn.peer, "closing connection: it left more than playerMaxQueueBytes of responses unread for slowPlayerTimeout");
            return Close::Now;
        }
        let request = match parse_request(&buf, &config.limits) {
            Ok(Parsed::Complete { message, consumed }) => {
                buf.advance(consumed);
                if buf.is_empty() {
                    // A viewer that streams from now on keeps no request buffer.
                    buf = BytesMut::new();
                }
                head_deadline = None;
                handshake.done();
                message
            }
            Ok(Parsed::NeedMore) => {
                if head_deadline.is_none() && !buf.is_empty() {
                    head_deadline =
                        Some((Instant::now() + config.header_timeout, Limit::ReadTimeout));
                }
                // Between requests the idle timeout applies.
                let timeout = match head_deadline {
                    Some((deadline, _)) => deadline.saturating_duration_since(Instant::now()),
                    None => config.idle_timeout,
                };
                let outcome = if timeout.is_zero() {
                    ReadOutcome::TimedOut
                } else {
                    conn.read_with(&mut reader, READ_BUFFER, Some(timeout), |data| {
                        buf.extend_from_slice(data)
                    })
                    .await
                };
                match outcome {
                    ReadOutcome::Data(()) => continue,
                    ReadOutcome::TimedOut if head_deadline.is_some() => {
                        let limit = head_deadline.map_or(Limit::ReadTimeout, |(_, l)| l);
                        conn.core.hit_limit(limit);
                        info!(peer = ?conn.peer, "closing connection: request head not received within {}", limit.key());
                        if buf.is_empty() {
                            return Close::Now;
                        }
                        respond_error(conn, 408, Version::Http11);
                        return Close::Linger(reader);
                    }
                    ReadOutcome::TimedOut | ReadOutcome::Closed | ReadOutcome::Notice(_) => {
                        return Close::Now
                    }
                    ReadOutcome::Failed(e) => {
                        debug!("read failed: {e}");
                        return Close::Now;
                    }
                }
            }
            Err(e) => {
                if matches!(e, HttpError::HeadTooLarge { .. }) {
                    conn.core.hit_limit(Limit::HttpHeaderBytes);
                }
                info!(peer = ?conn.peer, status = e.status(), "closing connection: bad request: {e}");
                respond_error(conn, e.status(), Version::Http11);
                return Close::Linger(reader);
            }
        };
        // Boxed: a request's handling (auth, HLS from the home core, waiting for a stream) would
        // otherwise size the task of every connection, streaming viewers included.
        match Box::pin(handle(conn, &request, &reader)).await {
            Next::KeepAlive => continue,
            Next::Close => return Close::Flush,
            Next::Streaming {
                handle, chunked, ..
            } => {
                return if stream_flv(conn, &mut reader, handle, chunked).await {
                    Close::Flush
                } else {
                    Close::Now
                };
            }
        }
    }
}

/// The HTTP settings of a configuration, read once per connection.
struct HttpSettings {
    limits: Limits,
    handshake_timeout: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl HttpSettings {
    fn from_config(config: &crate::config::Config) -> Self {
        HttpSettings {
            limits: Limits {
                max_head_bytes: config.http_max_header_bytes,
                ..Limits::default()
            },
            handshake_timeout: config.handshake_timeout.duration(),
            header_timeout: config.read_timeout.duration(),
            idle_timeout: config.http_idle_timeout.duration(),
        }
    }
}

/// Keeps an HTTP-FLV response going until the viewer leaves or the stream ends.
async fn stream_flv(
    conn: &Conn,
    reader: &mut NetReader,
    handle: PlayHandle,
    chunked: bool,
) -> bool {
    let flush = loop {
        // A viewer sends nothing more; reading only tells us when it goes away.
        match conn.read_with(reader, usize::MAX, None, |_| ()).await {
            ReadOutcome::Data(_) => continue,
            ReadOutcome::Notice(Notice::StreamEnded) => {
                if chunked {
                    conn.queue
                        .borrow_mut()
                        .push_control(Bytes::from_static(LAST_CHUNK));
                }
                info!(stream = %handle.key, "flv viewer: stream ended");
                break true;
            }
            ReadOutcome::Notice(n) => {
                info!(stream = %handle.key, notice = ?n, "closing flv viewer");
                break n == Notice::Shutdown;
            }
            ReadOutcome::Closed | ReadOutcome::TimedOut | ReadOutcome::Failed(_) => {
                debug!(stream = %handle.key, "flv viewer left");
                break false;
            }
        }
    };
    drop(handle);
    flush
}

fn respond_error(conn: &Conn, status: u16, version: Version) {
    let head =
        with_cors(conn, ResponseHead::new(status), None).with_header("Content-Type", "text/plain");
    let body = format!(
        "{} {}\n",
        status,
        crate::protocol::http::reason_phrase(status)
    );
    send(conn, head, version, false, Some(Bytes::from(body)), true);
}

/// Queues a response head and body; returns whether the connection stays open.
fn send(
    conn: &Conn,
    head: ResponseHead,
    version: Version,
    keep_alive: bool,
    body: Option<Bytes>,
    with_body: bool,
) -> bool {
    let mut out = BytesMut::new();
    let framing = BodyFraming::Length(body.as_ref().map_or(0, |b| b.len() as u64));
    let open = match head.encode(version, framing, keep_alive, &mut out) {
        Ok(open) => open,
        Err(e) => {
            // Our own headers are fixed strings; this would be a bug, not a client's fault.
            tracing::error!("http response not encoded: {e}");
            return false;
        }
    };
    if let (Some(body), true) = (body, with_body) {
        out.extend_from_slice(&body);
    }
    conn.queue.borrow_mut().push_control(out.freeze());
    open
}

/// Adds the CORS headers the configuration allows for the request's `Origin`.
fn with_cors(conn: &Conn, head: ResponseHead, origin: Option<&str>) -> ResponseHead {
    let snapshot = conn.core.snapshot();
    let allowed = &snapshot.config.http_allow_origins;
    if allowed.iter().any(|o| o == "*") {
        return head.with_header("Access-Control-Allow-Origin", "*");
    }
    match origin {
        Some(o) if allowed.iter().any(|a| a == o) => head
            .with_header("Access-Control-Allow-Origin", o)
            .with_header("Vary", "Origin"),
        _ => head,
    }
}

async fn handle(conn: &Conn, req: &Request, reader: &NetReader) -> Next {
    let origin = req.header("Origin");
    let keep_alive = req.keep_alive;
    let version = req.version;
    let head_only = req.method == Method::Head;
    match req.method {
        Method::Get | Method::Head => {}
        Method::Options => {
            let head = with_cors(conn, ResponseHead::new(204), origin)
                .with_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
                .with_header(
                    "Access-Control-Allow-Headers",
                    req.header("Access-Control-Request-Headers").unwrap_or("*"),
                )
                .with_header("Access-Control-Max-Age", "86400");
            let mut out = BytesMut::new();
            return match head.encode(version, BodyFraming::None, keep_alive, &mut out) {
                Ok(open) => {
                    conn.queue.borrow_mut().push_control(out.freeze());
                    if open {
                        Next::KeepAlive
                    } else {
                        Next::Close
                    }
                }
                Err(_) => Next::Close,
            };
        }
        _ => {
            let head = with_cors(conn, ResponseHead::new(405), origin)
                .with_header("Allow", "GET, HEAD, OPTIONS");
            return reply(
                conn,
                head,
                req,
                Some(Bytes::from_static(b"405 Method Not Allowed\n")),
            );
        }
    }
    let Some(route) = Route::parse(&req.path) else {
        return not_found(conn, req);
    };
    let pages = conn.core.snapshot().config.http_player_pages;
    let Some((app, stream)) = route.app_stream() else {
        return match &route {
            Route::Index if pages => serve_index(conn, req).await,
            Route::Asset(name) if pages => match pages::asset(name) {
                Some((content_type, body)) => {
                    let head = with_cors(conn, ResponseHead::new(200), origin)
                        .with_header("Content-Type", content_type)
                        .with_header("Cache-Control", "public, max-age=3600");
                    reply(conn, head, req, Some(Bytes::from_static(body)))
                }
                None => not_found(conn, req),
            },
            _ => not_found(conn, req),
        };
    };
    if matches!(route, Route::Playlist { .. } | Route::Media { .. })
        && !conn.core.snapshot().config.hls
    {
        // `hls: false` (MediaMTX's switch): HLS is not served; HTTP-FLV and the pages still are.
        return not_found(conn, req);
    }
    let page = matches!(route, Route::Page { .. }).then(|| PlayerKind::from_query(&req.query));
    if page.is_some() && !pages {
        return not_found(conn, req);
    }
    // A page is checked as the media it plays, with the same query.
    let protocol = match (&route, page) {
        (Route::Flv { .. }, _) | (_, Some(PlayerKind::Flv)) => Protocol::Flv,
        _ => Protocol::Hls,
    };
    let Some(key) = authorize(conn, req, protocol, app, stream).await else {
        let head = with_cors(conn, ResponseHead::new(403), origin);
        return reply(
            conn,
            head,
            req,
            Some(Bytes::from_static(b"403 Forbidden\n")),
        );
    };
    if conn.core.snapshot().config.path_conf(&key.path()).is_none() {
        info!(path = %key.path(), peer = ?conn.peer, "refused: no paths entry matches the path");
        return not_found(conn, req);
    }
    match route {
        Route::Index | Route::Asset(_) => not_found(conn, req),
        Route::Page { .. } => {
            let kind = page.unwrap_or(PlayerKind::Hls);
            let body = pages::player_page(&key.path(), kind);
            let head = with_cors(conn, ResponseHead::new(200), origin)
                .with_header("Content-Type", "text/html; charset=utf-8")
                .with_header("Cache-Control", "no-cache");
            reply(conn, head, req, Some(Bytes::from(body)))
        }
        Route::Flv { .. } => serve_flv(conn, req, key, head_only, reader).await,
        Route::Playlist { nested, .. } => serve_playlist(conn, req, &key, nested).await,
        Route::Media { instance, name, .. } => {
            let session = asked_session(conn, req);
            let query = HlsQuery::Media {
                instance,
                name,
                session,
            };
            let answer = conn.core.hls_get(&key, query).await;
            match answer {
                Some(a) if a.session == HlsSessionCheck::Kicked => unauthorized(conn, req),
                Some(HlsAnswer {
                    body: Some(body),
                    session: check,
                    ..
                }) => {
                    count_session_bytes(conn, &key, session, check, &body);
                    let head = with_cors(conn, ResponseHead::new(200), origin)
                        .with_header("Content-Type", name.content_type())
                        // A media name is never reused (it carries its muxer's instance).
                        .with_header("Cache-Control", "public, max-age=86400, immutable");
                    reply(conn, head, req, Some(body))
                }
                _ => not_found(conn, req),
            }
        }
    }
}

/// The stream list page: the live streams of the request's host that it may read.
async fn serve_index(conn: &Conn, req: &Request) -> Next {
    let snapshot = conn.core.snapshot();
    let vhost = host_without_port(req.header("Host").unwrap_or_default());
    let vhost = snapshot.auth.stream_vhost(vhost).unwrap_or(DEFAULT_VHOST);
    let mut paths = Vec::new();
    for key in conn.core.live_streams().await {
        if key.vhost != vhost {
            continue;
        }
        if authorize(conn, req, Protocol::Hls, &key.app, &key.stream)
            .await
            .is_some()
        {
            paths.push(key.path());
        }
    }
    let head = with_cors(conn, ResponseHead::new(200), req.header("Origin"))
        .with_header("Content-Type", "text/html; charset=utf-8")
        .with_header("Cache-Control", "no-cache");
    reply(
        conn,
        head,
        req,
        Some(Bytes::from(pages::index_page(&paths))),
    )
}

/// Sends a response with a body (dropped for HEAD); the next step for the connection.
fn reply(conn: &Conn, head: ResponseHead, req: &Request, body: Option<Bytes>) -> Next {
    let with_body = req.method != Method::Head;
    if send(conn, head, req.version, req.keep_alive, body, with_body) {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn not_found(conn: &Conn, req: &Request) -> Next {
    plain_reply(conn, req, 404, b"404 Not Found\n")
}

/// A short plain-text answer to `req` (errors: the body says the status).
fn plain_reply(conn: &Conn, req: &Request, status: u16, body: &'static [u8]) -> Next {
    let head = with_cors(conn, ResponseHead::new(status), req.header("Origin"))
        .with_header("Content-Type", "text/plain");
    reply(conn, head, req, Some(Bytes::from_static(body)))
}

/// Runs the auth rules; on success the key of the stream the request names.
async fn authorize(
    conn: &Conn,
    req: &Request,
    protocol: Protocol,
    app: &str,
    stream: &str,
) -> Option<StreamKey> {
    let snapshot = conn.core.snapshot();
    let host = req.header("Host").unwrap_or_default();
    let vhost = host_without_port(host);
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let (user, pass) = basic_credentials(req.header("Authorization")).unzip();
    let request = AuthRequest {
        action: Action::Read,
        protocol,
        vhost,
        app,
        stream,
        query: &req.query,
        headers: &headers,
        peer: conn
            .peer
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.ip()),
        user: user.as_deref(),
        pass: pass.as_deref(),
        now_unix: unix_now(),
    };
    if let Err(denied) = snapshot.auth.check(&request) {
        info!(path = %req.path, vhost, peer = ?conn.peer, "refused: {denied}");
        return None;
    }
    if let Some((addr, ask)) = snapshot.auth.http_hook_request(&request, None) {
        if let Err(why) = auth_hook::ask(addr, ask).await {
            info!(path = %req.path, peer = ?conn.peer, "refused: {why}");
            return None;
        }
    }
    let vhost = snapshot.auth.stream_vhost(vhost).unwrap_or(DEFAULT_VHOST);
    Some(StreamKey::new(vhost, app, stream))
}

fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.split(':').next().unwrap_or_default()
}

/// What the server reads from a request before it touches any state: the route, the host and
/// the credentials. For the `http_request` fuzz target ([`crate::fuzzing`]).
pub(crate) fn fuzz_request(req: &Request) {
    let _ = Route::parse(&req.path).map(|r| r.app_stream().map(|(app, _)| app.len()));
    let _ = host_without_port(req.header("Host").unwrap_or_default());
    let _ = basic_credentials(req.header("Authorization"));
}

async fn serve_flv(
    conn: &Conn,
    req: &Request,
    key: StreamKey,
    head_only: bool,
    reader: &NetReader,
) -> Next {
    let snapshot = conn.core.snapshot();
    let max_readers = snapshot
        .config
        .path_conf(&key.path())
        .map_or(0, |p| p.max_readers);
    let Some(slot) = conn
        .core
        .claim_reader(&key, conn.guard.id, max_readers)
        .await
    else {
        info!(stream = %key, peer = ?conn.peer, max_readers, "flv refused: the path has maxReaders readers");
        return readers_full(conn, req);
    };
    let wait = snapshot.config.play_wait_timeout.duration();
    let found = conn
        .core
        .find_stream(&key, wait, &|| reader.peer_closed())
        .await;
    let Some(via) = found else {
        info!(stream = %key, peer = ?conn.peer, "flv refused: stream not found");
        return not_found(conn, req);
    };
    let chunked = req.version == Version::Http11;
    let head = with_cors(conn, ResponseHead::new(200), req.header("Origin"))
        .with_header("Content-Type", "video/x-flv")
        .with_header("Cache-Control", "no-cache");
    let framing = if head_only {
        BodyFraming::None
    } else if chunked {
        BodyFraming::Chunked
    } else {
        BodyFraming::UntilClose
    };
    let mut out = BytesMut::new();
    if head
        .encode(req.version, framing, !head_only && req.keep_alive, &mut out)
        .is_err()
    {
        return Next::Close;
    }
    if head_only {
        conn.queue.borrow_mut().push_control(out.freeze());
        return if req.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
    }
    // The head goes before the FLV header and tags the attach queues: the header is written
    // with the start-up frames, when the stream's tracks are known.
    conn.queue.borrow_mut().push_control(out.freeze());
    let player = Player {
        session: conn.guard.id,
        queue: conn.queue.clone(),
        format: SinkFormat::Flv { chunked },
    };
    match conn.core.attach_player(&key, player, via) {
        Some(handle) => {
            match handle.via {
                Via::Local => {
                    info!(stream = %key, peer = ?conn.peer, via = "local", "flv player started")
                }
                Via::Remote(owner) => {
                    info!(stream = %key, peer = ?conn.peer, via = "remote", owner_core = %owner, "flv player started")
                }
            }
            Next::Streaming {
                handle,
                chunked,
                _slot: slot,
            }
        }
        None => Next::Close,
    }
}

/// The blocking reload a playlist request asks for (`_HLS_msn`, `_HLS_part`); `Err` if they are
/// malformed (a part without a segment, non-numbers).
fn blocking_reload(query: &str) -> Result<Option<(u64, Option<u64>)>, ()> {
    let params = crate::protocol::http::parse_query(query);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |v: &str| v.parse::<u64>().map_err(|_| ());
    match (get("_HLS_msn"), get("_HLS_part")) {
        (None, None) => Ok(None),
        (Some(msn), part) => Ok(Some((number(msn)?, part.map(number).transpose()?))),
        (None, Some(_)) => Err(()),
    }
}

async fn serve_playlist(conn: &Conn, req: &Request, key: &StreamKey, nested: bool) -> Next {
    let config = &conn.core.snapshot().config;
    let Ok(block) = blocking_reload(&req.query) else {
        return bad_request(conn, req);
    };
    let Some(session) = asked_session(conn, req) else {
        // With no secret to open again, opening always answers the viewer (a redirect or a
        // refusal): `None` cannot come back.
        return open_session(conn, req, key, None)
            .await
            .unwrap_or(Next::Close);
    };
    // The first request starts the muxer; wait until the playlist holds enough media to start
    // at a safe distance from the live edge, rather than hand out one a player stalls on.
    // An on-demand source gets its start timeout on top.
    let start = crate::relay::start_timeout(config, key).unwrap_or_default();
    let deadline = Instant::now()
        + (config.hls_segment_duration.duration() * 6).max(Duration::from_secs(10))
        + start;
    let playlist = loop {
        let query = HlsQuery::Playlist {
            block,
            session: Some(session),
        };
        match conn.core.hls_get(key, query).await {
            Some(answer) if answer.session == HlsSessionCheck::Kicked => {
                return unauthorized(conn, req)
            }
            Some(answer) if answer.session == HlsSessionCheck::Unknown => {
                // Opened again under the same secret: ask again; else the viewer was answered.
                if let Some(next) = open_session(conn, req, key, Some(session.secret)).await {
                    return next;
                }
            }
            Some(answer) if answer.too_far => return bad_request(conn, req),
            Some(answer) if answer.body.is_some() => break answer.body,
            Some(answer) if (answer.live || answer.starting) && Instant::now() < deadline => {
                glommio::timer::sleep(PLAYLIST_POLL).await;
            }
            _ => break None,
        }
    };
    let Some(playlist) = playlist else {
        return not_found(conn, req);
    };
    let body = segment_uris(&playlist, &segment_prefix(key, nested), &req.query);
    count_session_bytes(conn, key, Some(session), HlsSessionCheck::Valid, &body);
    let head = with_cors(conn, ResponseHead::new(200), req.header("Origin"))
        .with_header("Content-Type", "application/vnd.apple.mpegurl")
        // A live playlist changes every segment: a CDN may hold it for a second at most; the
        // answer to a blocking reload is for this request only.
        .with_header(
            "Cache-Control",
            if block.is_some() {
                "no-cache"
            } else {
                "max-age=1"
            },
        );
    reply(conn, head, req, Some(body))
}

/// The session a request names (its `session` parameter or `hlsSession` cookie), from the
/// address it comes from.
fn asked_session(conn: &Conn, req: &Request) -> Option<HlsSessionRef> {
    let secret = hls_session::requested_secret(&req.query, req.header("Cookie"))?;
    let ip = conn
        .peer
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.ip());
    Some(HlsSessionRef { secret, ip })
}

/// Tells the session's home core what its viewer was sent, when the request named a session
/// that the home core knows.
fn count_session_bytes(
    conn: &Conn,
    key: &StreamKey,
    session: Option<HlsSessionRef>,
    check: HlsSessionCheck,
    body: &[u8],
) {
    if let (Some(s), HlsSessionCheck::Valid) = (session, check) {
        conn.core.hls_session_sent(key, s.secret, body.len() as u64);
    }
}

/// A viewer's first playlist request (or one naming a session that is gone): opens an HLS
/// session and redirects the viewer to the same playlist with the session's secret in the query,
/// where every later request, and every media URI the playlist lists, carries it. MediaMTX sets a
/// cookie instead over HTTPS only; viewers here are served over plain HTTP. A request naming a
/// closed session (`reuse`, its secret) gets it opened again under that secret and no answer
/// here (`None`): the caller serves the playlist; the secret is not reused when another session
/// holds it or it was kicked.
async fn open_session(
    conn: &Conn,
    req: &Request,
    key: &StreamKey,
    reuse: Option<ConnUuid>,
) -> Option<Next> {
    let snapshot = conn.core.snapshot();
    let max_readers = snapshot
        .config
        .path_conf(&key.path())
        .map_or(0, |p| p.max_readers);
    let query = hls_session::query_without_session(&req.query);
    let user = basic_credentials(req.header("Authorization"))
        .map(|(user, _)| user)
        .or_else(|| {
            crate::protocol::http::parse_query(&query)
                .into_iter()
                .find_map(|(k, v)| (k == "user").then_some(v))
        })
        .unwrap_or_default();
    let opening = HlsSessionOpening {
        remote: conn.peer,
        query: query.clone(),
        user,
        user_agent: req.header("User-Agent").unwrap_or_default().to_owned(),
    };
    let opened = conn
        .core
        .hls_session_open_at_home(key, opening, reuse, max_readers)
        .await;
    Some(match opened {
        Some(HlsSessionOpened::Opened { secret }) if Some(secret) == reuse => return None,
        Some(HlsSessionOpened::Opened { secret }) => {
            let mut location = req.path.clone();
            location.push('?');
            if !query.is_empty() {
                location.push_str(&query);
                location.push('&');
            }
            location.push_str(hls_session::SESSION_QUERY_PARAM);
            location.push('=');
            location.push_str(&secret.to_string());
            let head = with_cors(conn, ResponseHead::new(302), req.header("Origin"))
                .with_header("Location", &location)
                // The redirect names one viewer's session: no cache may keep it.
                .with_header("Cache-Control", "no-store");
            reply(conn, head, req, None)
        }
        Some(HlsSessionOpened::Full) => {
            info!(stream = %key, peer = ?conn.peer, max_readers, "hls refused: the path has maxReaders readers");
            readers_full(conn, req)
        }
        Some(HlsSessionOpened::NoStream) => not_found(conn, req),
        None => {
            let head = with_cors(conn, ResponseHead::new(503), req.header("Origin"));
            reply(conn, head, req, None)
        }
    })
}

/// A reader refused by the path's `maxReaders`.
fn readers_full(conn: &Conn, req: &Request) -> Next {
    let head = with_cors(conn, ResponseHead::new(503), req.header("Origin"));
    reply(
        conn,
        head,
        req,
        Some(Bytes::from_static(
            b"503 the path has its maximum number of readers\n",
        )),
    )
}

/// A request naming a kicked session.
fn unauthorized(conn: &Conn, req: &Request) -> Next {
    plain_reply(conn, req, 401, b"401 authentication error\n")
}

fn bad_request(conn: &Conn, req: &Request) -> Next {
    plain_reply(conn, req, 400, b"400 Bad Request\n")
}

/// What goes before a segment's name in the playlist, so that the URI, resolved against the
/// playlist's, is a segment route: `../` under MediaMTX's `/{path}/index.m3u8`, and the app's
/// name for a path without a stream name (whose muxer names segments `-{instance}-{seq}.ts`).
fn segment_prefix(key: &StreamKey, nested: bool) -> String {
    let mut prefix = String::new();
    if nested {
        prefix.push_str("../");
    }
    if key.stream.is_empty() {
        prefix.push_str(key.app.rsplit('/').next().unwrap_or_default());
    }
    prefix
}

/// Puts `prefix` before every media URI, the `URI="…"` attributes of `#EXT-X-MAP`,
/// `#EXT-X-PART` and `#EXT-X-PRELOAD-HINT` included, so media requests reach the media route, and
/// carries the playlist request's query (its signature, its token) onto them, so they pass the
/// same auth rules. The blocking-reload parameters stay behind.
fn segment_uris(playlist: &[u8], prefix: &str, query: &str) -> Bytes {
    let query: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("_HLS_"))
        .collect();
    if query.is_empty() && prefix.is_empty() {
        return Bytes::copy_from_slice(playlist);
    }
    let query = query.join("&");
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.lines() {
        if line.is_empty() {
        } else if !line.starts_with('#') {
            out.push_str(prefix);
            out.push_str(line);
            push_query(&mut out, &query);
        } else if let Some((before, rest)) = line.split_once("URI=\"") {
            let (uri, after) = rest.split_once('"').unwrap_or((rest, ""));
            out.push_str(before);
            out.push_str("URI=\"");
            out.push_str(prefix);
            out.push_str(uri);
            push_query(&mut out, &query);
            out.push('"');
            out.push_str(after);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Bytes::from(out)
}

fn push_query(out: &mut String, query: &str) {
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let playlist = |app: &str, stream: &str, nested| {
            Some(Route::Playlist {
                app: app.into(),
                stream: stream.into(),
                nested,
            })
        };
        assert_eq!(
            Route::parse("/live/cam.flv"),
            Some(Route::Flv {
                app: "live".into(),
                stream: "cam".into()
            })
        );
        assert_eq!(Route::parse("/a/b/cam.m3u8"), playlist("a/b", "cam", false));
        assert_eq!(
            Route::parse("/live/cam-1f-12.ts"),
            Some(Route::Media {
                app: "live".into(),
                stream: "cam".into(),
                instance: 0x1f,
                name: HlsName::TsSegment(12)
            })
        );
        // A path without a stream name (rtmp://host/cam).
        assert_eq!(
            Route::parse("/cam.flv"),
            Some(Route::Flv {
                app: "cam".into(),
                stream: String::new()
            })
        );
        assert_eq!(Route::parse("/cam.m3u8"), playlist("cam", "", false));
        assert_eq!(
            Route::parse("/cam-1f-12.ts"),
            Some(Route::Media {
                app: "cam".into(),
                stream: String::new(),
                instance: 0x1f,
                name: HlsName::TsSegment(12)
            })
        );
        // MediaMTX's form.
        assert_eq!(
            Route::parse("/mystream/index.m3u8"),
            playlist("mystream", "", true)
        );
        assert_eq!(
            Route::parse("/cam/1/index.m3u8"),
            playlist("cam", "1", true)
        );
        assert_eq!(
            Route::parse("/a/b/c/index.m3u8"),
            playlist("a/b", "c", true)
        );
        // MediaMTX's player page of a path without a stream name.
        assert_eq!(
            Route::parse("/mystream"),
            Some(Route::Page {
                app: "mystream".into(),
                stream: String::new()
            })
        );
        assert_eq!(
            Route::parse("/live/cam-1f-p3.mp4"),
            Some(Route::Media {
                app: "live".into(),
                stream: "cam".into(),
                instance: 0x1f,
                name: HlsName::Part(3)
            })
        );
        assert_eq!(
            Route::parse("/live/cam"),
            Some(Route::Page {
                app: "live".into(),
                stream: "cam".into()
            })
        );
        assert_eq!(Route::parse("/"), Some(Route::Index));
        assert_eq!(
            Route::parse("/_player/hls.min.js"),
            Some(Route::Asset("hls.min.js".into()))
        );
        for bad in [
            "/live/.flv",
            "//cam.flv",
            "/live/cam.mp4x",
            "/live/cam.ts",
            "live/cam.flv",
            "/.flv",
            "/index.m3u8/index.m3u8x",
            "//index.m3u8",
            "/a//b/index.m3u8",
            "/live/",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_goes_onto_segment_uris_only() {
        let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\ns-1-0.ts\n";
        let out = segment_uris(playlist, "", "token=a%20b");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.000,\ns-1-0.ts?token=a%20b\n"
        );
    }

    #[test]
    fn segment_uris_resolve_to_segment_routes() {
        let key = |app: &str, stream: &str| StreamKey::new(DEFAULT_VHOST, app, stream);
        // /cam/1/index.m3u8 + ../1-1f-0.ts = /cam/1-1f-0.ts
        assert_eq!(segment_prefix(&key("cam", "1"), true), "../");
        // /mystream/index.m3u8 + ../mystream-1f-0.ts = /mystream-1f-0.ts
        assert_eq!(segment_prefix(&key("mystream", ""), true), "../mystream");
        // /mystream.m3u8 + mystream-1f-0.ts
        assert_eq!(segment_prefix(&key("mystream", ""), false), "mystream");
        assert_eq!(segment_prefix(&key("live", "cam"), false), "");
        let out = segment_uris(b"#EXTINF:2.000,\n-1f-0.ts\n", "../mystream", "t=1");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXTINF:2.000,\n../mystream-1f-0.ts?t=1\n"
        );
        assert_eq!(
            Route::parse("/mystream-1f-0.ts"),
            Some(Route::Media {
                app: "mystream".into(),
                stream: String::new(),
                instance: 0x1f,
                name: HlsName::TsSegment(0)
            })
        );
    }

    #[test]
    fn query_goes_into_uri_attributes_without_blocking_parameters() {
        let playlist = b"#EXT-X-MAP:URI=\"s-1-init0.mp4\"\n#EXT-X-PART:DURATION=0.200,URI=\"s-1-p0.mp4\",INDEPENDENT=YES\n#EXTINF:1.000,\ns-1-0.mp4\n";
        let out = segment_uris(playlist, "", "_HLS_msn=3&sig=x&_HLS_part=1");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "#EXT-X-MAP:URI=\"s-1-init0.mp4?sig=x\"\n#EXT-X-PART:DURATION=0.200,URI=\"s-1-p0.mp4?sig=x\",INDEPENDENT=YES\n#EXTINF:1.000,\ns-1-0.mp4?sig=x\n"
        );
        assert_eq!(&segment_uris(playlist, "", "_HLS_msn=3")[..], &playlist[..]);
        assert_eq!(blocking_reload(""), Ok(None));
        assert_eq!(blocking_reload("_HLS_msn=4"), Ok(Some((4, None))));
        assert_eq!(
            blocking_reload("a=b&_HLS_msn=4&_HLS_part=2"),
            Ok(Some((4, Some(2))))
        );
        assert_eq!(blocking_reload("_HLS_part=2"), Err(()));
        assert_eq!(blocking_reload("_HLS_msn=x"), Err(()));
    }

    #[test]
    fn hosts_and_credentials() {
        assert_eq!(host_without_port("a.com:8080"), "a.com");
        assert_eq!(host_without_port("[::1]:8080"), "::1");
        assert_eq!(host_without_port("a.com"), "a.com");
        assert_eq!(
            basic_credentials(Some("Basic dXNlcjpwYXNz")),
            Some(("user".into(), "pass".into()))
        );
        assert_eq!(basic_credentials(Some("Bearer x")), None);
    }
}
