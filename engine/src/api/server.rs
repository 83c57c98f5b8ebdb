//! The glommio driver of the API and metrics listeners: accepts connections on the control
//! executor, reads requests through the sans-IO parser ([`parse_request`]) with size and time
//! limits, and writes each answer. Keep-alive and pipelining are the parser's: a request is
//! answered as soon as it is complete, in order.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use super::{Api, Listener, Response};
use crate::protocol::http::{
    parse_request, BodyFraming, HttpError, Limits, Parsed, ResponseHead, Version,
};
use crate::runtime::Limit;

/// A whole request, from its first byte (or the silence before the next one on a kept-alive
/// connection), may take this long: a client trickling bytes is cut off too.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Heads of 8 KiB and 64 headers at most; bodies of `apiMaxBodyBytes`.
fn limits(api: &Api) -> Limits {
    Limits {
        max_head_bytes: 8 * 1024,
        max_headers: 64,
        max_body_bytes: api.max_body_bytes(),
    }
}

/// Accepts connections until the executor stops.
pub(super) async fn serve(listener: TcpListener, api: Rc<Api>, kind: Listener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let api = api.clone();
                glommio::spawn_local(async move { connection(stream, api, kind).await }).detach();
            }
            Err(e) => {
                warn!("{} accept failed: {e}", kind.name());
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, api: Rc<Api>, kind: Listener) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    if let Err(e) = stream.set_nodelay(true) {
        debug!("cannot set TCP_NODELAY: {e}");
    }
    let mut buf = BytesMut::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut out = BytesMut::with_capacity(4096);
    let mut deadline = Instant::now() + REQUEST_TIMEOUT;
    let limits = limits(&api);
    loop {
        let (response, version, keep_alive) = match parse_request(&buf, &limits) {
            Ok(Parsed::Complete { message, consumed }) => {
                buf.advance(consumed);
                let response = api.handle(&message, peer, kind).await;
                deadline = Instant::now() + REQUEST_TIMEOUT;
                (response, message.version, message.keep_alive)
            }
            Ok(Parsed::NeedMore) => {
                match read_some(&mut stream, &mut chunk, deadline).await {
                    Some(n) => buf.extend_from_slice(&chunk[..n]),
                    None => return,
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
        if !write_response(&mut stream, &response, version, keep_alive, &mut out).await {
            return;
        }
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
