//! The RTMP chunk stream: splitting messages into chunks and putting them back together.
//!
//! [`ChunkDecoder`] reads all four chunk header types (fmt 0: full header, 1: no stream id,
//! 2: timestamp delta only, 3: nothing), extended timestamps (also on fmt 3 continuation
//! chunks, where ffmpeg repeats them and some other encoders do not), and applies the two
//! protocol control messages that change how the chunk stream itself is read: Set Chunk Size and
//! Abort. Memory is bounded: by a limit on the message length, on the number of chunk streams,
//! and on the bytes of all partial messages together.
//!
//! The encoder is deliberately stateless ([`encode_message`], [`encode_media`]): the first chunk
//! of every message carries a full fmt 0 header and continuations are fmt 3, so one encoding of a
//! media frame can be shared by every player on a core, whatever each player received before.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::media::{Frame, MediaKind};

/// Chunk size of both directions until a Set Chunk Size says otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// The chunk size every server session announces right after `connect`, so that one encoding of
/// a frame fits every player on a core.
pub const OUT_CHUNK_SIZE: usize = 4096;
/// Largest chunk size the specification allows (the top bit must be clear).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Default cap on the length of one message: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 16 * 1024 * 1024;
/// Default cap on the chunk streams a peer may use at once.
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;
/// Default cap on the bytes held in partial messages, all chunk streams together.
pub const DEFAULT_MAX_PARTIAL_BYTES: usize = 32 * 1024 * 1024;

/// Largest message length a chunk header can carry (3 bytes).
pub const MAX_WIRE_MESSAGE_LEN: usize = 0xFF_FFFF;
/// Timestamp field value that announces a 4-byte extended timestamp.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// Chunk stream ids we send on.
pub mod csid {
    /// Protocol control and user control messages.
    pub const CONTROL: u32 = 2;
    /// Connection-level commands (`connect`, `createStream`, their results).
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    /// Script data, and stream-level commands (`onStatus`, `publish`, `play`).
    pub const DATA: u32 = 5;
    pub const VIDEO: u32 = 6;
}

/// Message type ids the chunk layer itself acts on.
const TYPE_SET_CHUNK_SIZE: u8 = 1;
const TYPE_ABORT: u8 = 2;

/// Ways a peer's chunk stream can be unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkError {
    #[error("chunk size {size} is larger than 0x7fffffff")]
    ChunkSizeTooLarge { size: u32 },
    #[error("chunk size 0 is invalid")]
    ChunkSizeZero,
    #[error("message of {length} bytes exceeds the limit of {limit}")]
    MessageTooLarge { length: usize, limit: usize },
    #[error("chunk header type {fmt} on chunk stream {csid} with no previous header")]
    MissingHeader { csid: u32, fmt: u8 },
    #[error("more than {limit} chunk streams in use")]
    TooManyChunkStreams { limit: usize },
    #[error("partial messages exceed {limit} bytes")]
    PartialBytesExceeded { limit: usize },
    #[error("protocol control message type {type_id} too short: {length} bytes")]
    TruncatedControl { type_id: u8, length: usize },
}

/// One whole message of the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub type_id: u8,
    /// Message stream id (0 for the connection itself).
    pub stream_id: u32,
    /// Absolute timestamp in milliseconds (32-bit, wrapping).
    pub timestamp: u32,
    pub payload: Bytes,
}

impl RawMessage {
    pub fn new(type_id: u8, stream_id: u32, timestamp: u32, payload: Bytes) -> Self {
        Self {
            type_id,
            stream_id,
            timestamp,
            payload,
        }
    }
}

/// Resource caps of a [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Longest message accepted; longer ones are [`ChunkError::MessageTooLarge`].
    pub max_message_len: usize,
    /// Most chunk streams a peer may have used; more is [`ChunkError::TooManyChunkStreams`].
    pub max_chunk_streams: usize,
    /// Most bytes held in unfinished messages, all chunk streams together.
    pub max_partial_bytes: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            max_partial_bytes: DEFAULT_MAX_PARTIAL_BYTES,
        }
    }
}

/// What one chunk stream remembers between chunks.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta applied when a fmt 3 chunk starts a new message (after fmt 0: its timestamp).
    delta: u32,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The extended timestamp of the last fmt 0/1/2 header, if it had one: fmt 3 chunks of
    /// the same message may repeat it.
    extended: Option<u32>,
    /// The message being assembled; empty between messages.
    partial: BytesMut,
    /// Whether a message is half-read (the next fmt 3 chunk continues it).
    in_progress: bool,
}

/// A chunk header read from the input but not yet acted upon.
#[derive(Debug)]
struct Header {
    csid: u32,
    fmt: u8,
    /// Bytes of basic header, message header and extended timestamp.
    header_len: usize,
    /// For fmt 0: the absolute timestamp; fmt 1/2: the delta; fmt 3: the extended value read
    /// when it starts a message.
    timestamp: Option<u32>,
    length: Option<usize>,
    type_id: Option<u8>,
    stream_id: Option<u32>,
    extended: bool,
    payload_len: usize,
}

/// Reassembles messages from chunks. Feed it the input buffer; it consumes whole chunks only.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    limits: ChunkLimits,
    streams: HashMap<u32, ChunkStream>,
    partial_bytes: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

impl ChunkDecoder {
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            streams: HashMap::new(),
            partial_bytes: 0,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Applies a chunk size the peer announced (normally done by [`ChunkDecoder::decode`]).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 {
            return Err(ChunkError::ChunkSizeZero);
        }
        if size > MAX_CHUNK_SIZE {
            return Err(ChunkError::ChunkSizeTooLarge { size });
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Drops the partial message of a chunk stream (an Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(st) = self.streams.get_mut(&csid) {
            self.partial_bytes -= st.partial.len();
            st.partial = BytesMut::new();
            st.in_progress = false;
        }
    }

    /// Bytes held in unfinished messages.
    pub fn partial_bytes(&self) -> usize {
        self.partial_bytes
    }

    /// Reads chunks from the front of `input` until a message is complete. Returns `None` when
    /// `input` holds no further whole chunk (what is left of it is a chunk's beginning).
    ///
    /// Set Chunk Size and Abort are applied before they are returned.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(header) = self.parse_header(input)? else {
                return Ok(None);
            };
            input.advance(header.header_len);
            let data = input.split_to(header.payload_len);
            if let Some(msg) = self.commit(header, data)? {
                self.apply_control(&msg)?;
                return Ok(Some(msg));
            }
        }
    }

    fn apply_control(&mut self, msg: &RawMessage) -> Result<(), ChunkError> {
        if msg.type_id != TYPE_SET_CHUNK_SIZE && msg.type_id != TYPE_ABORT {
            return Ok(());
        }
        let Some(bytes) = msg.payload.get(..4) else {
            return Err(ChunkError::TruncatedControl {
                type_id: msg.type_id,
                length: msg.payload.len(),
            });
        };
        let value = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if msg.type_id == TYPE_SET_CHUNK_SIZE {
            self.set_chunk_size(value)
        } else {
            self.abort(value);
            Ok(())
        }
    }

    /// Reads one chunk header from `buf` without consuming anything; `None` if `buf` does not
    /// hold the header and payload of a whole chunk yet.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, ChunkError> {
        let Some(&b0) = buf.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let prev = self.streams.get(&csid);
        if fmt != 0 && prev.is_none() {
            return Err(ChunkError::MissingHeader { csid, fmt });
        }
        if prev.is_none() && self.streams.len() >= self.limits.max_chunk_streams {
            return Err(ChunkError::TooManyChunkStreams {
                limit: self.limits.max_chunk_streams,
            });
        }
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = buf.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let u24 = |b: &[u8]| u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let mut header = Header {
            csid,
            fmt,
            header_len: 0,
            timestamp: None,
            length: None,
            type_id: None,
            stream_id: None,
            extended: false,
            payload_len: 0,
        };
        if fmt <= 2 {
            header.timestamp = Some(u24(&h[0..3]));
        }
        if fmt <= 1 {
            header.length = Some(u24(&h[3..6]) as usize);
            header.type_id = Some(h[6]);
        }
        if fmt == 0 {
            header.stream_id = Some(u32::from_le_bytes([h[7], h[8], h[9], h[10]]));
        }
        let read_u32 = |pos: usize| {
            buf.get(pos..pos + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let continuation = fmt == 3 && prev.is_some_and(|p| p.in_progress);
        if header.timestamp == Some(EXTENDED_TIMESTAMP) {
            let Some(ext) = read_u32(pos) else {
                return Ok(None);
            };
            header.timestamp = Some(ext);
            header.extended = true;
            pos += 4;
        } else if fmt == 3 {
            if let Some(ext) = prev.and_then(|p| p.extended) {
                let Some(value) = read_u32(pos) else {
                    // Fewer than 4 bytes: wait only if they could be the start of the repeat.
                    let have = &buf[pos..];
                    if continuation && !ext.to_be_bytes().starts_with(have) {
                        return self.finish_header(header, buf, pos, prev);
                    }
                    return Ok(None);
                };
                // A new message's fmt 3 header must carry it. On a continuation it is optional
                // in practice: take it only when it repeats the value of the message header.
                if !continuation || value == ext {
                    header.timestamp = (!continuation).then_some(value);
                    header.extended = true;
                    pos += 4;
                }
            }
        }
        self.finish_header(header, buf, pos, prev)
    }

    /// Completes a header whose fixed fields and extended timestamp end at `pos`.
    fn finish_header(
        &self,
        mut header: Header,
        buf: &[u8],
        pos: usize,
        prev: Option<&ChunkStream>,
    ) -> Result<Option<Header>, ChunkError> {
        let (csid, fmt) = (header.csid, header.fmt);
        let continuation = fmt == 3 && prev.is_some_and(|p| p.in_progress);
        let (length, received) = match (header.length, prev) {
            (Some(length), _) => (length, 0),
            (None, Some(p)) if continuation => (p.length, p.partial.len()),
            (None, Some(p)) => (p.length, 0),
            (None, None) => return Err(ChunkError::MissingHeader { csid, fmt }),
        };
        if length > self.limits.max_message_len {
            return Err(ChunkError::MessageTooLarge {
                length,
                limit: self.limits.max_message_len,
            });
        }
        header.header_len = pos;
        header.payload_len = (length - received).min(self.chunk_size);
        if buf.len() < pos + header.payload_len {
            return Ok(None);
        }
        Ok(Some(header))
    }

    /// Applies a parsed header and its payload to the chunk stream state.
    fn commit(&mut self, h: Header, data: BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        let st = self.streams.entry(h.csid).or_default();
        if !(h.fmt == 3 && st.in_progress) {
            // This chunk starts a message.
            if let Some(length) = h.length {
                st.length = length;
            }
            if let Some(type_id) = h.type_id {
                st.type_id = type_id;
            }
            if let Some(stream_id) = h.stream_id {
                st.stream_id = stream_id;
            }
            match (h.fmt, h.timestamp) {
                (0, Some(ts)) => {
                    st.timestamp = ts;
                    st.delta = ts;
                }
                (_, Some(delta)) => {
                    st.delta = delta;
                    st.timestamp = st.timestamp.wrapping_add(delta);
                }
                (_, None) => st.timestamp = st.timestamp.wrapping_add(st.delta),
            }
            if h.fmt <= 2 {
                st.extended = h.extended.then_some(h.timestamp.unwrap_or(0));
            }
            // A partial message cut short by a new fmt 0/1/2 header is dropped.
            self.partial_bytes -= st.partial.len();
            st.partial = BytesMut::new();
            if data.len() == st.length {
                // Whole message in one chunk: no copy.
                st.in_progress = false;
                return Ok(Some(RawMessage::new(
                    st.type_id,
                    st.stream_id,
                    st.timestamp,
                    data.freeze(),
                )));
            }
            st.in_progress = true;
            // Grow with the data actually received, not with the length the peer claims.
            st.partial.reserve(st.length.min(64 * 1024));
        }
        let held = st.partial.len();
        if held + data.len() == st.length {
            st.partial.extend_from_slice(&data);
            self.partial_bytes -= held;
            st.in_progress = false;
            let payload = std::mem::take(&mut st.partial).freeze();
            return Ok(Some(RawMessage::new(
                st.type_id,
                st.stream_id,
                st.timestamp,
                payload,
            )));
        }
        if self.partial_bytes + data.len() > self.limits.max_partial_bytes {
            return Err(ChunkError::PartialBytesExceeded {
                limit: self.limits.max_partial_bytes,
            });
        }
        self.partial_bytes += data.len();
        st.partial.extend_from_slice(&data);
        Ok(None)
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let csid = csid.clamp(2, 65599);
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// Appends one message as chunks: a fmt 0 first chunk, fmt 3 continuations (repeating the
/// extended timestamp when the timestamp is at least 0xFFFFFF, as ffmpeg does).
///
/// `chunk_size` must be what the peer was told with Set Chunk Size (0 is treated as 1). A
/// payload longer than a chunk header can describe (0xFFFFFF bytes) is not written.
pub fn encode_message(out: &mut BytesMut, csid: u32, msg: &RawMessage, chunk_size: usize) {
    encode_parts(
        out,
        csid,
        msg.type_id,
        msg.stream_id,
        msg.timestamp,
        &msg.payload,
        chunk_size,
    );
}

/// Appends a media frame as one message on chunk stream 4 (audio), 6 (video) or 5 (data),
/// type 8, 9 or 18. The result depends only on the arguments: share it between players.
pub fn encode_media(out: &mut BytesMut, frame: &Frame, stream_id: u32, chunk_size: usize) {
    let csid = match frame.kind {
        MediaKind::Audio => csid::AUDIO,
        MediaKind::Video => csid::VIDEO,
        MediaKind::Script => csid::DATA,
    };
    encode_parts(
        out,
        csid,
        frame.kind as u8,
        stream_id,
        frame.timestamp,
        &frame.payload,
        chunk_size,
    );
}

/// [`encode_message`] on borrowed parts.
pub(crate) fn encode_parts(
    out: &mut BytesMut,
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    payload: &[u8],
    chunk_size: usize,
) {
    if payload.len() > MAX_WIRE_MESSAGE_LEN {
        tracing::warn!(
            len = payload.len(),
            type_id,
            "message too long for a chunk header, not sent"
        );
        return;
    }
    let chunk_size = chunk_size.max(1);
    let extended = timestamp >= EXTENDED_TIMESTAMP;
    let chunks = payload.len().div_ceil(chunk_size).max(1);
    out.reserve(payload.len() + 16 + (chunks - 1) * (3 + if extended { 4 } else { 0 }));
    put_basic_header(out, 0, csid);
    put_u24(out, timestamp.min(EXTENDED_TIMESTAMP));
    put_u24(out, payload.len() as u32);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    let mut rest = payload;
    loop {
        let n = rest.len().min(chunk_size);
        out.put_slice(&rest[..n]);
        rest = &rest[n..];
        if rest.is_empty() {
            break;
        }
        put_basic_header(out, 3, csid);
        if extended {
            out.put_u32(timestamp);
        }
    }
}

/// Acknowledgement bookkeeping: the peer announces a window (Window Acknowledgement Size) and
/// expects an Acknowledgement each time that many bytes have arrived since the last one.
#[derive(Debug, Default, Clone)]
pub struct AckWindow {
    /// The peer's window; 0 until announced, and no acknowledgements are due then.
    window: u32,
    received: u64,
    last_ack: u64,
}

impl AckWindow {
    pub fn set_window(&mut self, window: u32) {
        self.window = window;
    }

    pub fn window(&self) -> u32 {
        self.window
    }

    /// Bytes received so far (wrapping into the 32-bit sequence number of the protocol).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Counts `n` received bytes; returns the sequence number to acknowledge, if one is due.
    #[must_use]
    pub fn on_received(&mut self, n: usize) -> Option<u32> {
        self.received += n as u64;
        if self.window > 0 && self.received - self.last_ack >= u64::from(self.window) {
            self.last_ack = self.received;
            return Some(self.received as u32);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> BytesMut {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .as_slice()
            .into()
    }

    fn decode_all(dec: &mut ChunkDecoder, input: &mut BytesMut) -> Vec<RawMessage> {
        let mut out = Vec::new();
        while let Some(m) = dec.decode(input).unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn fmt0_then_1_2_3_headers() {
        let mut dec = ChunkDecoder::default();
        let mut input = hex(concat!(
            // fmt 0, csid 4: ts 1000, len 2, audio, stream 1
            "04 0003e8 000002 08 01000000 af01",
            // fmt 1, csid 4: delta 20, len 3, audio
            "44 000014 000003 08 af0102",
            // fmt 2, csid 4: delta 23 (same length and type)
            "84 000017 aabbcc",
            // fmt 3, csid 4: new message, delta 23 again
            "c4 ddeeff",
        ));
        let msgs = decode_all(&mut dec, &mut input);
        assert!(input.is_empty());
        let got: Vec<_> = msgs
            .iter()
            .map(|m| (m.type_id, m.stream_id, m.timestamp, m.payload.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (8, 1, 1000, vec![0xaf, 0x01]),
                (8, 1, 1020, vec![0xaf, 0x01, 0x02]),
                (8, 1, 1043, vec![0xaa, 0xbb, 0xcc]),
                (8, 1, 1066, vec![0xdd, 0xee, 0xff]),
            ]
        );
    }

    #[test]
    fn fmt3_after_fmt0_uses_its_timestamp_as_delta() {
        let mut dec = ChunkDecoder::default();
        let mut input = hex("05 000028 000001 12 01000000 aa c5 bb");
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(msgs[0].timestamp, 40);
        assert_eq!(msgs[1].timestamp, 80);
    }

    #[test]
    fn continuation_chunks_and_two_byte_basic_header() {
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(2).unwrap();
        // csid 70 (two-byte basic header: 0, 70 - 64 = 6), 5-byte message in 3 chunks
        let mut input = hex("00 06 000010 000005 09 01000000 1701 c0 06 0203 c0 06 04");
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(msgs.len(), 1);
        assert_eq!(&msgs[0].payload[..], &[0x17, 1, 2, 3, 4]);
        assert_eq!(msgs[0].timestamp, 16);
    }

    #[test]
    fn extended_timestamp_repeated_on_fmt3_continuations() {
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(2).unwrap();
        let mut input = hex(concat!(
            "06 ffffff 000004 09 01000000 01000000 1701",
            "c6 01000000 0203",
        ));
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].timestamp, 0x0100_0000);
        assert_eq!(&msgs[0].payload[..], &[0x17, 1, 2, 3]);
    }

    #[test]
    fn extended_timestamp_absent_on_fmt3_continuation_is_tolerated() {
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(2).unwrap();
        let mut input = hex("06 ffffff 000006 09 01000000 01000000 1701 c6 0203 c6 0405");
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(&msgs[0].payload[..], &[0x17, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn extended_delta_on_fmt1_and_fmt3_new_message() {
        let mut dec = ChunkDecoder::default();
        let mut input = hex(concat!(
            "04 000001 000001 08 01000000 aa",
            // fmt 1 with extended delta 0x01000000
            "44 ffffff 000001 08 01000000 bb",
            // fmt 3 starting a new message carries the extended delta again
            "c4 01000000 cc",
        ));
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(msgs[1].timestamp, 0x0100_0001);
        assert_eq!(msgs[2].timestamp, 0x0200_0001);
    }

    #[test]
    fn partial_input_waits() {
        let mut dec = ChunkDecoder::default();
        let full = hex("04 0003e8 000002 08 01000000 af01");
        let mut input = BytesMut::new();
        for (i, b) in full.iter().enumerate() {
            input.put_u8(*b);
            let m = dec.decode(&mut input).unwrap();
            assert_eq!(m.is_some(), i == full.len() - 1);
        }
    }

    #[test]
    fn set_chunk_size_applies_to_following_chunks() {
        let mut dec = ChunkDecoder::default();
        let mut input =
            hex("02 000000 000004 01 00000000 00000003 04 000000 000004 08 01000000 010203 c4 04");
        let msgs = decode_all(&mut dec, &mut input);
        assert_eq!(dec.chunk_size(), 3);
        assert_eq!(&msgs[1].payload[..], &[1, 2, 3, 4]);
    }

    #[test]
    fn bad_chunk_sizes() {
        let mut dec = ChunkDecoder::default();
        let mut input = hex("02 000000 000004 01 00000000 00000000");
        assert_eq!(dec.decode(&mut input), Err(ChunkError::ChunkSizeZero));
        let mut input = hex("02 000000 000004 01 00000000 80000000");
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::ChunkSizeTooLarge { size: 0x8000_0000 })
        );
    }

    #[test]
    fn message_too_large() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_message_len: 1000,
            ..ChunkLimits::default()
        });
        let mut input = hex("04 000000 0003e9 08 01000000");
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::MessageTooLarge {
                length: 1001,
                limit: 1000
            })
        );
    }

    #[test]
    fn missing_header_and_too_many_streams() {
        let mut dec = ChunkDecoder::default();
        assert_eq!(
            dec.decode(&mut hex("47 000000 000001 08 00")),
            Err(ChunkError::MissingHeader { csid: 7, fmt: 1 })
        );
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_chunk_streams: 2,
            ..ChunkLimits::default()
        });
        let mut input = hex("04 000000 000001 08 01000000 00 05 000000 000001 08 01000000 00 06 000000 000001 08 01000000 00");
        assert!(dec.decode(&mut input).unwrap().is_some());
        assert!(dec.decode(&mut input).unwrap().is_some());
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::TooManyChunkStreams { limit: 2 })
        );
    }

    #[test]
    fn partial_bytes_are_bounded_and_abort_frees_them() {
        let mut dec = ChunkDecoder::new(ChunkLimits {
            max_partial_bytes: 3,
            ..ChunkLimits::default()
        });
        dec.set_chunk_size(2).unwrap();
        let mut input = hex("04 000000 000004 08 01000000 0102");
        assert_eq!(dec.decode(&mut input), Ok(None));
        assert_eq!(dec.partial_bytes(), 2);
        // Abort csid 4
        dec.set_chunk_size(4).unwrap();
        let mut input = hex("02 000000 000004 02 00000000 00000004");
        assert!(dec.decode(&mut input).unwrap().is_some());
        dec.set_chunk_size(2).unwrap();
        assert_eq!(dec.partial_bytes(), 0);
        let mut input = hex("04 000000 000004 08 01000000 0102 05 000000 000004 08 01000000 0102");
        assert_eq!(
            dec.decode(&mut input),
            Err(ChunkError::PartialBytesExceeded { limit: 3 })
        );
    }

    #[test]
    fn encoder_writes_fmt0_then_fmt3() {
        let mut out = BytesMut::new();
        let msg = RawMessage::new(9, 1, 0x10, Bytes::from_static(&[1, 2, 3, 4, 5]));
        encode_message(&mut out, 6, &msg, 2);
        assert_eq!(out, hex("06 000010 000005 09 01000000 0102 c6 0304 c6 05"));
    }

    #[test]
    fn encoder_repeats_extended_timestamp() {
        let mut out = BytesMut::new();
        let frame = Frame::new(
            MediaKind::Video,
            0x0123_4567,
            Bytes::from_static(&[1, 2, 3]),
        );
        encode_media(&mut out, &frame, 1, 2);
        assert_eq!(
            out,
            hex("06 ffffff 000003 09 01000000 01234567 0102 c6 01234567 03")
        );
        let mut dec = ChunkDecoder::default();
        dec.set_chunk_size(2).unwrap();
        let m = dec.decode(&mut out).unwrap().unwrap();
        assert_eq!(
            (m.timestamp, &m.payload[..]),
            (0x0123_4567, &[1u8, 2, 3][..])
        );
    }

    #[test]
    fn encoder_three_byte_basic_header_round_trips() {
        let mut out = BytesMut::new();
        let msg = RawMessage::new(20, 0, 0, Bytes::from_static(b"x"));
        encode_message(&mut out, 400, &msg, 128);
        assert_eq!(&out[..3], &[0x01, 0x50, 0x01]);
        let m = ChunkDecoder::default().decode(&mut out).unwrap().unwrap();
        assert_eq!(m, msg);
    }

    #[test]
    fn ack_window() {
        let mut ack = AckWindow::default();
        assert_eq!(ack.on_received(10_000), None, "no window announced yet");
        let mut ack = AckWindow::default();
        ack.set_window(100);
        assert_eq!(ack.on_received(50), None);
        assert_eq!(ack.on_received(60), Some(110));
        assert_eq!(ack.on_received(99), None);
        assert_eq!(ack.on_received(1), Some(210));
    }
}
