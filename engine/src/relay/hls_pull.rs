//! Pulling an HLS origin (`http(s)://…/index.m3u8`, MediaMTX's `hlsSource`): the playlist is
//! read and reloaded, each new segment fetched on the same keep-alive connection and demuxed
//! (MPEG-TS by [`TsDemuxer`], fMP4 by [`Fmp4Demuxer`] after the `#EXT-X-MAP` init segment, both
//! sans-IO), and its frames delivered at the pace of their timestamps, so players downstream get
//! a live stream rather than a burst per segment. A multivariant playlist's first variant is
//! followed. Low-Latency HLS playlists are read as plain ones: whole segments, no parts.

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tracing::{debug, info};

use super::error::RelayError;
use super::link::READ_BUFFER;
use super::pull::Feed;
use super::transport::Transport;
use super::url::HttpUrl;
use crate::media::Frame;
use crate::protocol::fmp4::demux::Fmp4Demuxer;
use crate::protocol::hls::m3u8::{self, Playlist};
use crate::protocol::http::{
    encode_request_head, parse_response_head, BodyFraming, ChunkedDecoder, ChunkedEvent, Limits,
    Parsed,
};
use crate::protocol::ts::TsDemuxer;
use crate::server::net::NetReader;

/// A playlist or a segment larger than this is refused.
const MAX_BODY_BYTES: usize = 64 << 20;
/// How many multivariant hops are followed.
const MAX_VARIANT_HOPS: usize = 3;
/// How many redirects one request follows (an origin redirects a new viewer to its session:
/// MediaMTX once or twice, Corestream once).
const MAX_REDIRECTS: usize = 5;

/// What one request brought back.
enum Answer {
    Body(Bytes),
    /// A redirect to this `Location`.
    Redirect(String),
}

/// The HTTP side of an HLS pull: one connection, requests one after the other.
struct Client<'a> {
    transport: Transport,
    reader: &'a mut NetReader,
    authority: String,
    input: BytesMut,
    buf: Vec<u8>,
}

impl Client<'_> {
    /// GETs `target`, following the origin's redirects on the same server: the whole body, and
    /// the target that answered it (where a playlist is reloaded from: a redirect may have added
    /// the origin's session to the query).
    async fn get(&mut self, feed: &Feed<'_>, target: &str) -> Result<(Bytes, String), RelayError> {
        let mut target = target.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            match self.get_once(feed, &target).await? {
                Answer::Body(body) => return Ok((body, target)),
                Answer::Redirect(location) => {
                    target = m3u8::resolve(&target, &location, &self.authority)
                        .ok_or_else(|| other_server(&location))?;
                    debug!(stream = %feed.key, "hls source: redirected");
                }
            }
        }
        Err(RelayError::HlsBody(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// One GET of `target` (a non-200 answer other than a redirect is an error).
    async fn get_once(&mut self, feed: &Feed<'_>, target: &str) -> Result<Answer, RelayError> {
        let mut out = BytesMut::new();
        let headers = [("User-Agent", "corestream"), ("Accept", "*/*")];
        encode_request_head(&mut out, "GET", target, &self.authority, &headers)?;
        self.transport.send(feed.conn, &mut out)?;
        let limits = Limits::default();
        let head = loop {
            match parse_response_head(&self.input, &limits)? {
                Parsed::Complete { message, consumed } => {
                    self.input.advance(consumed);
                    break message;
                }
                Parsed::NeedMore => self.read(feed).await?,
            }
        };
        let body = match head.framing {
            BodyFraming::Length(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_BODY_BYTES {
                    return Err(RelayError::HlsBody(format!(
                        "{target}: {n} bytes, more than {MAX_BODY_BYTES}"
                    )));
                }
                while self.input.len() < n {
                    self.read(feed).await?;
                }
                self.input.split_to(n).freeze()
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = BytesMut::new();
                loop {
                    match decoder.decode(&mut self.input)? {
                        ChunkedEvent::Data(b) => {
                            body.extend_from_slice(&b);
                            if body.len() > MAX_BODY_BYTES {
                                return Err(RelayError::HlsBody(format!(
                                    "{target}: more than {MAX_BODY_BYTES} bytes"
                                )));
                            }
                        }
                        ChunkedEvent::NeedMore => self.read(feed).await?,
                        ChunkedEvent::End => break body.freeze(),
                    }
                }
            }
            BodyFraming::None => Bytes::new(),
            BodyFraming::UntilClose => {
                return Err(RelayError::HlsBody(format!(
                    "{target}: the origin answers without a length and closes; an hls pull needs keep-alive"
                )))
            }
        };
        let location = head.header("Location").map(str::to_owned);
        let redirect = matches!(head.status, 301 | 302 | 303 | 307 | 308);
        if head.status != 200 && !(redirect && location.is_some()) {
            return Err(RelayError::HttpStatus {
                status: head.status,
                reason: head.reason,
            });
        }
        if !head.keep_alive {
            return Err(RelayError::HlsBody(format!(
                "{target}: the origin closes the connection after each answer; an hls pull needs keep-alive"
            )));
        }
        Ok(match location {
            Some(location) if redirect => Answer::Redirect(location),
            _ => Answer::Body(body),
        })
    }

    async fn read(&mut self, feed: &Feed<'_>) -> Result<(), RelayError> {
        self.transport
            .read(
                feed.conn,
                self.reader,
                &mut self.buf,
                &feed.link.status,
                &mut self.input,
            )
            .await
    }
}

impl Feed<'_> {
    /// Pulls the HLS playlist `u` until the origin ends it or something fails.
    pub(super) async fn hls(
        &mut self,
        u: &HttpUrl,
        transport: Transport,
        reader: &mut NetReader,
    ) -> RelayError {
        let mut client = Client {
            transport,
            reader,
            authority: u.authority.clone(),
            input: BytesMut::new(),
            buf: vec![0u8; READ_BUFFER],
        };
        match self.hls_run(u, &mut client).await {
            Ok(()) => RelayError::Ended,
            Err(e) => e,
        }
    }

    async fn hls_run(&mut self, u: &HttpUrl, client: &mut Client<'_>) -> Result<(), RelayError> {
        // The media playlist: the given one, or a multivariant playlist's first variant.
        let mut target = u.target.clone();
        let mut hops = 0;
        let mut playlist = loop {
            let (body, answered) = client.get(self, &target).await?;
            target = answered;
            match parse_playlist(&body)? {
                Playlist::Multivariant { variants } if hops < MAX_VARIANT_HOPS => {
                    hops += 1;
                    target = m3u8::resolve(&target, &variants[0], &client.authority)
                        .ok_or_else(|| other_server(&variants[0]))?;
                    debug!(stream = %self.key, variant = target, "hls source: following the first variant");
                }
                Playlist::Multivariant { .. } => {
                    return Err(RelayError::HlsPlaylist("variants nest too deep".to_owned()))
                }
                Playlist::Media(m) => break m,
            }
        };
        // A live playlist starts at its newest segment (the least delay); an ended one from the
        // start.
        let mut next = if playlist.ended {
            playlist.media_sequence
        } else {
            playlist.media_sequence + playlist.segments.len().saturating_sub(1) as u64
        };
        let mut demux = if playlist.fmp4 {
            Demux::Fmp4 {
                demuxer: Fmp4Demuxer::new(),
                init_uri: None,
            }
        } else {
            Demux::Ts(TsDemuxer::new())
        };
        let mut pace: Option<(Instant, u32)> = None;
        loop {
            let mut took = false;
            let first = playlist.media_sequence;
            if next < first {
                info!(stream = %self.key, skipped = first - next, "hls source: segments expired before they were fetched");
                next = first;
            }
            for (i, segment) in playlist.segments.iter().enumerate() {
                let number = first + i as u64;
                if number < next {
                    continue;
                }
                let seg_target = m3u8::resolve(&target, &segment.uri, &client.authority)
                    .ok_or_else(|| other_server(&segment.uri))?;
                if let Demux::Fmp4 { demuxer, init_uri } = &mut demux {
                    let map = segment.map_uri.as_deref().ok_or_else(|| {
                        RelayError::HlsPlaylist("an fMP4 segment without #EXT-X-MAP".to_owned())
                    })?;
                    if init_uri.as_deref() != Some(map) {
                        let init_target = m3u8::resolve(&target, map, &client.authority)
                            .ok_or_else(|| other_server(map))?;
                        let (init, _) = client.get(self, &init_target).await?;
                        demuxer.init(&init)?;
                        *init_uri = Some(map.to_owned());
                    }
                }
                let (body, _) = client.get(self, &seg_target).await?;
                demux.feed_segment(&body)?;
                while let Some(frame) = demux.poll_frame() {
                    // Frames go out at the pace of their timestamps.
                    let (start, origin) = *pace.get_or_insert((Instant::now(), frame.timestamp));
                    let due = start
                        + Duration::from_millis(u64::from(frame.timestamp.wrapping_sub(origin)));
                    let now = Instant::now();
                    if due > now {
                        self.link.pause(self.core, due - now).await;
                        if self.link.is_stopped(self.core) {
                            return Err(RelayError::Stopped);
                        }
                    }
                    self.deliver(frame).await?;
                }
                next = number + 1;
                took = true;
            }
            if playlist.ended {
                return Ok(());
            }
            if !took {
                // Nothing new yet: look again after half a target duration (RFC 8216 6.3.4).
                let wait = Duration::from_millis((playlist.target_duration_ms / 2).max(100));
                self.link.pause(self.core, wait).await;
                if self.link.is_stopped(self.core) {
                    return Err(RelayError::Stopped);
                }
            }
            let (body, answered) = client.get(self, &target).await?;
            target = answered;
            playlist = match parse_playlist(&body)? {
                Playlist::Media(m) => m,
                Playlist::Multivariant { .. } => {
                    return Err(RelayError::HlsPlaylist(
                        "the media playlist became a multivariant one".to_owned(),
                    ))
                }
            };
        }
    }
}

/// The demuxer of the playlist's segments.
enum Demux {
    Ts(TsDemuxer),
    Fmp4 {
        demuxer: Fmp4Demuxer,
        /// The init segment it was given (the `#EXT-X-MAP` URI as the playlist writes it).
        init_uri: Option<String>,
    },
}

impl Demux {
    /// Reads one whole segment.
    fn feed_segment(&mut self, body: &[u8]) -> Result<(), RelayError> {
        match self {
            Demux::Ts(d) => {
                d.feed(body)?;
                d.end_of_input()?;
            }
            Demux::Fmp4 { demuxer, .. } => demuxer.feed_segment(body)?,
        }
        Ok(())
    }

    fn poll_frame(&mut self) -> Option<Frame> {
        match self {
            Demux::Ts(d) => d.poll_frame(),
            Demux::Fmp4 { demuxer, .. } => demuxer.poll_frame(),
        }
    }
}

fn parse_playlist(body: &[u8]) -> Result<Playlist, RelayError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| RelayError::HlsPlaylist("the playlist is not UTF-8 text".to_owned()))?;
    m3u8::parse(text).map_err(|e| RelayError::HlsPlaylist(e.to_string()))
}

fn other_server(uri: &str) -> RelayError {
    RelayError::HlsPlaylist(format!(
        "'{uri}' is on another server: an hls pull follows URIs of its origin only"
    ))
}
