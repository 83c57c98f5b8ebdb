//! The glommio driver of the API and metrics listeners: accepts connections on the control
//! executor (at most `apiMaxConnections` each), reads each request head through the sans-IO
//! parser ([`parse_head`]), lets [`Api::admit`] judge it (Host, Origin, credentials) before a body
//! is read, reads the body within the listener's `apiMaxBodyBytes` budget, and writes each
//! answer. A request must arrive whole within `readTimeout`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::{Api, Gate, Listener, Response};
use crate::protocol::http::{
    parse_head, BodyFraming, Head, HttpError, Limits, Parsed, ResponseHead, Version,
};
use crate::runtime::rlimit::{out_of_descriptors, SpareDescriptor};
use crate::runtime::{Limit, LocalSignal};

/// Heads of 8 KiB and 64 headers at most; bodies of `apiMaxBodyBytes`.
fn limits(api: &Api) -> Limits {
    Limits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: api.max_body_bytes(),
    }
}

/// Accepts connections until the executor stops or `closed` fires (the listener's switch was
/// turned off through the API); beyond `apiMaxConnections` a connection is closed as soon as it
/// is accepted.
pub(super) async fn serve(
    listener: TcpListener,
    api: Rc<Api>,
    kind: Listener,
    closed: LocalSignal,
) {
    let mut spare = SpareDescriptor::new();
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            closed.wait().await;
            None
        });
        let Some(accepted) = accepted.await else {
            info!(
                "{} listener closed: switched off through the API",
                kind.name()
            );
            return;
        };
        match accepted {
            Ok(stream) => {
                let Some(slot) = api.open_connection(kind) else {
                    info!(peer = ?stream.peer_addr().ok(), "{} connection refused: apiMaxConnections reached", kind.name());
                    continue;
                };
                let api = api.clone();
                let closed = closed.clone();
                glommio::spawn_local(async move {
                    connection(stream, api, kind, &closed).await;
                    drop(slot);
                })
                .detach();
            }
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning. Without
                // descriptors, the spare one lets the pending client be taken and closed.
                warn!("{} accept failed: {e}", kind.name());
                if out_of_descriptors(&e) {
                    api.hit_limit(Limit::Descriptors);
                    spare.release();
                    let one = glommio::timer::timeout(Duration::from_millis(1), async {
                        Ok(listener.accept().await)
                    });
                    if let Ok(Ok(stream)) = one.await {
                        drop(stream);
                    }
                    spare.refill();
                }
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one connection's requests; once `closed` fired, the answer in hand is the last.
async fn connection(mut stream: TcpStream, api: Rc<Api>, kind: Listener, closed: &LocalSignal) {
    let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    if let Err(e) = stream.set_nodelay(true) {
        debug!("cannot set TCP_NODELAY: {e}");
    }
    let mut buf = BytesMut::with_capacity(1024);
    let mut chunk = vec![0u8; 4 * 1024];
    let mut out = BytesMut::with_capacity(1024);
    let mut deadline = Instant::now() + api.read_timeout();
    let limits = limits(&api);
    loop {
        let (response, version, keep_alive) = match parse_head(&buf, &limits) {
            Ok(Parsed::Complete {
                message:
                    Head {
                        mut request,
                        body_len,
                    },
                consumed,
            }) => {
                // Credentials, Host and Origin are judged on the head: a client refused here
                // never gets a body buffered.
                let cors = match api.admit(&request, body_len, peer, local, kind).await {
                    Gate::Answer(r) => {
                        // The body (if any) is unread: the connection cannot carry on.
                        let keep = request.keep_alive && body_len == 0;
                        buf.advance(consumed.min(buf.len()));
                        if !write_response(&mut stream, &r, request.version, keep, &mut out).await {
                            return;
                        }
                        deadline = Instant::now() + api.read_timeout();
                        continue;
                    }
                    Gate::Proceed(cors) => cors,
                };
                let Some(reserved) = api.reserve_body(kind, body_len) else {
                    info!(peer = %peer, "{} request refused: other bodies fill apiMaxBodyBytes", kind.name());
                    let r = Response::error(503, "too many request bodies in flight");
                    let _ = write_response(&mut stream, &r, request.version, false, &mut out).await;
                    return;
                };
                while buf.len() < consumed + body_len {
                    match read_some(&mut stream, &mut chunk, deadline).await {
                        Some(n) => buf.extend_from_slice(&chunk[..n]),
                        None => {
                            timed_out(&api, kind, peer, deadline);
                            return;
                        }
                    }
                }
                buf.advance(consumed);
                request.body = buf.split_to(body_len).freeze();
                let response = api.serve(&request, kind, &cors).await;
                drop(reserved);
                deadline = Instant::now() + api.read_timeout();
                (response, request.version, request.keep_alive)
            }
            Ok(Parsed::NeedMore) => {
                // A connection waiting for its next request goes when the listener closes.
                let read =
                    futures_lite::future::or(read_some(&mut stream, &mut chunk, deadline), async {
                        closed.wait().await;
                        None
                    });
                match read.await {
                    Some(n) => buf.extend_from_slice(&chunk[..n]),
                    None => {
                        if !buf.is_empty() {
                            timed_out(&api, kind, peer, deadline);
                        }
                        return;
                    }
                }
                continue;
            }
            Err(e) => {
                match e {
                    HttpError::BodyTooLarge { .. } => {
                        api.hit_limit(Limit::ApiBodyBytes);
                        info!(peer = %peer, "{} request refused: body over apiMaxBodyBytes", kind.name());
                    }
                    HttpError::HeadTooLarge { .. } => {
                        api.hit_limit(Limit::HttpHeaderBytes);
                        info!(peer = %peer, "{} request refused: head too large", kind.name());
                    }
                    _ => debug!(peer = %peer, "bad {} request: {e}", kind.name()),
                }
                (
                    Response::error(e.status(), &e.to_string()),
                    Version::Http11,
                    false,
                )
            }
        };
        let keep_alive = keep_alive && !closed.is_fired();
        if !write_response(&mut stream, &response, version, keep_alive, &mut out).await {
            return;
        }
    }
}

/// A request that did not arrive whole within `readTimeout` (counted; the connection closes).
fn timed_out(api: &Api, kind: Listener, peer: std::net::SocketAddr, deadline: Instant) {
    if Instant::now() >= deadline {
        api.hit_limit(Limit::ReadTimeout);
        info!(peer = %peer, "{} request not whole within readTimeout: closed", kind.name());
    }
}

/// Reads what arrives before `deadline`; `None` at end of stream, error or timeout.
async fn read_some(stream: &mut TcpStream, chunk: &mut [u8], deadline: Instant) -> Option<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let read = glommio::timer::timeout(left, async { Ok(stream.read(chunk).await) });
    match read.await {
        Ok(Ok(n)) if n > 0 => Some(n),
        _ => None,
    }
}

/// Writes one response; false when the connection must close.
async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    version: Version,
    keep_alive: bool,
    out: &mut BytesMut,
) -> bool {
    out.clear();
    let mut head =
        ResponseHead::new(response.status).with_header("Content-Type", response.content_type);
    for (name, value) in &response.headers {
        head = head.with_header(*name, value.clone());
    }
    let keep = match head.encode(
        version,
        BodyFraming::Length(response.body.len() as u64),
        keep_alive,
        out,
    ) {
        Ok(keep) => keep,
        Err(e) => {
            warn!("cannot encode an API response head: {e}");
            return false;
        }
    };
    out.extend_from_slice(&response.body);
    if stream.write_all(out).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    keep
}

/// Binds `addr` on this executor (SO_REUSEADDR, no SO_REUSEPORT: one listener owns the port).
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    crate::server::net::listen_single(addr)
}
