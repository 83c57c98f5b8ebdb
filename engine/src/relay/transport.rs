//! What an RTMP or HTTP-FLV link runs on: the connection itself, or TLS over it (`rtmps://`,
//! `https://`). Reads and writes go through the connection's plumbing ([`Conn`]) either way; with
//! TLS, what is queued for the socket is records.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::error::RelayError;
use super::link::{self, READ_BUFFER};
use super::status::LinkStatus;
use super::tls::{TlsClient, TlsError, TlsInput};
use crate::delivery::MAX_IOVECS;
use crate::delivery::{wait_for_items, PlayerQueue};
use crate::protocol::rtmp::ClientSession;
use crate::server::conn::Conn;
use crate::server::net::NetReader;

/// How often the media pump of a TLS push looks whether the socket's queue drained.
const ROOM_POLL: Duration = Duration::from_millis(10);

pub(super) enum Transport {
    Plain,
    /// Shared with a push's media pump ([`encrypt_media`]), on the same executor.
    Tls(Rc<RefCell<TlsClient>>),
}

impl Transport {
    /// TLS to `host` when `tls` (`fingerprint` pins its certificate instead of the public
    /// roots), plain TCP otherwise.
    pub(super) fn new(
        tls: bool,
        host: &str,
        fingerprint: Option<&str>,
    ) -> Result<Transport, RelayError> {
        if !tls {
            return Ok(Transport::Plain);
        }
        let client = TlsClient::new(host, fingerprint)?;
        Ok(Transport::Tls(Rc::new(RefCell::new(client))))
    }

    /// Sends (and empties) `out`.
    pub(super) fn send(&mut self, conn: &Conn, out: &mut BytesMut) -> Result<(), RelayError> {
        match self {
            Transport::Plain => link::send(conn, out),
            Transport::Tls(tls) => {
                let mut tls = tls.borrow_mut();
                tls.write_plain(out)?;
                out.clear();
                let mut records = BytesMut::new();
                tls.poll_transmit(&mut records);
                link::send(conn, &mut records);
            }
        }
        Ok(())
    }

    /// Reads from the connection until some payload (decrypted for TLS) is appended to
    /// `input`; a TLS handshake runs on the way.
    pub(super) async fn read(
        &mut self,
        conn: &Conn,
        reader: &mut NetReader,
        buf: &mut [u8],
        status: &LinkStatus,
        input: &mut BytesMut,
    ) -> Result<(), RelayError> {
        match self {
            Transport::Plain => {
                let n = link::read(conn, reader, buf, status).await?;
                input.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Transport::Tls(tls) => {
                let before = input.len();
                loop {
                    let n = match link::read(conn, reader, buf, status).await {
                        Ok(n) => n,
                        Err(RelayError::Closed) if tls.borrow().is_handshaking() => {
                            return Err(TlsError::ClosedInHandshake.into())
                        }
                        Err(e) => return Err(e),
                    };
                    let mut tls = tls.borrow_mut();
                    let got = tls.handle_input(&buf[..n], input);
                    // Handshake replies, the request held until now, or an alert.
                    let mut records = BytesMut::new();
                    tls.poll_transmit(&mut records);
                    link::send(conn, &mut records);
                    let state = got?;
                    if input.len() > before {
                        return Ok(());
                    }
                    if state == TlsInput::PeerClosed {
                        return Err(RelayError::Closed);
                    }
                }
            }
        }
    }
}

/// An RTMP client's end of a relay link, pull (play) or push (publish): what the client queued
/// goes out, then what one read brings in goes to the client.
pub(super) struct RtmpLink {
    transport: Transport,
    out: BytesMut,
    input: BytesMut,
    buf: Vec<u8>,
}

impl RtmpLink {
    pub(super) fn new(transport: Transport) -> RtmpLink {
        RtmpLink {
            transport,
            out: BytesMut::new(),
            input: BytesMut::new(),
            buf: vec![0u8; READ_BUFFER],
        }
    }

    pub(super) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Sends what `client` has queued.
    pub(super) fn flush(
        &mut self,
        client: &mut ClientSession,
        conn: &Conn,
    ) -> Result<(), RelayError> {
        client.poll_transmit(&mut self.out);
        self.transport.send(conn, &mut self.out)
    }

    /// Sends what `client` has queued, then reads once and feeds the client what arrived; its
    /// events are then ready to poll.
    pub(super) async fn turn(
        &mut self,
        client: &mut ClientSession,
        conn: &Conn,
        reader: &mut NetReader,
        status: &LinkStatus,
    ) -> Result<(), RelayError> {
        self.flush(client, conn)?;
        self.transport
            .read(conn, reader, &mut self.buf, status, &mut self.input)
            .await?;
        let fed = client.handle_input(&self.input);
        self.input.clear();
        Ok(fed?)
    }
}

/// The media of a push over TLS: the stream's fan-out fills `media` (a player's queue, with its
/// skip-to-keyframe and slow-player rules) with chunked frames; this encrypts them, whole
/// messages in order, and queues the records for the socket. It takes more only while the
/// socket's queue is at most half full, so a slow target backs up into `media`, where frames are
/// dropped, and never into unbounded records. Ends when `media` is closed and drained, or the
/// socket's queue closes.
pub(super) async fn encrypt_media(
    media: Rc<RefCell<PlayerQueue>>,
    tls: Rc<RefCell<TlsClient>>,
    socket: Rc<RefCell<PlayerQueue>>,
    room: usize,
) {
    let mut batch: Vec<Bytes> = Vec::with_capacity(MAX_IOVECS);
    loop {
        let more = wait_for_items(&media).await;
        if !more {
            return;
        }
        loop {
            let (closed, full) = {
                let s = socket.borrow();
                (s.is_closed(), s.queued_bytes() > room)
            };
            if closed {
                return;
            }
            if !full {
                break;
            }
            glommio::timer::sleep(ROOM_POLL).await;
        }
        media.borrow_mut().take_batch(&mut batch, MAX_IOVECS);
        let mut records = BytesMut::new();
        {
            let mut tls = tls.borrow_mut();
            for buf in batch.drain(..) {
                if tls.write_plain(&buf).is_err() {
                    return;
                }
            }
            tls.poll_transmit(&mut records);
        }
        if !records.is_empty() {
            socket.borrow_mut().push_control(records.freeze());
        }
    }
}
