use bytes::{Buf, BytesMut};

use super::{FlvError, HEADER_LEN, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};
use crate::media::{Frame, MediaKind};

/// Default limit on one tag body: generous for 4K keyframes, small enough to bound a bad peer.
pub const DEFAULT_MAX_TAG_SIZE: usize = 8 * 1024 * 1024;

/// The header's filter bit: the tag body is encrypted (FLV 10.1 annex E.4.1).
const FILTER_BIT: u8 = 0x20;
/// A header `DataOffset` beyond this is treated as corrupt rather than skipped.
const MAX_DATA_OFFSET: u32 = 64 * 1024;

/// What the FLV file header announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

#[derive(Debug)]
enum State {
    /// The 9-byte file header comes next.
    ExpectHeader,
    /// Bytes of an over-long header (`DataOffset` > 9) still to skip.
    SkipHeaderExtra { remaining: usize },
    /// A `PreviousTagSize` comes next; it must equal `expected`.
    ExpectPreviousTagSize { expected: u32 },
    /// An 11-byte tag header (and its body) comes next.
    ExpectTag,
    /// A previous error: the stream cannot be resynchronised, every poll returns it again.
    Failed(FlvError),
}

/// Sans-IO FLV demuxer.
///
/// Call order: [`feed`](Self::feed) bytes as they arrive, then [`poll_frame`](Self::poll_frame)
/// until it returns `Ok(None)` (more input needed). At end of input, [`finish`](Self::finish) says
/// whether the stream stopped cleanly at a tag boundary. A frame is returned as soon as its body is
/// complete; its trailing `PreviousTagSize` is checked before the next tag. Errors are final: the
/// reader returns the same error from every later poll.
///
/// Tags with a type other than audio, video or script data, and encrypted tags, are errors rather
/// than skipped: they mean the input is not a stream this server produces or relays.
#[derive(Debug)]
pub struct FlvReader {
    buf: BytesMut,
    state: State,
    header: Option<FlvHeader>,
    /// Largest tag body accepted, so a corrupt size cannot make the reader buffer without bound.
    max_tag_size: usize,
    /// Some encoders write wrong `PreviousTagSize` values; players may want to accept them.
    check_previous_tag_size: bool,
}

impl Default for FlvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvReader {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            state: State::ExpectHeader,
            header: None,
            max_tag_size: DEFAULT_MAX_TAG_SIZE,
            check_previous_tag_size: true,
        }
    }

    /// Sets the largest tag body accepted (default [`DEFAULT_MAX_TAG_SIZE`]).
    pub fn with_max_tag_size(mut self, limit: usize) -> Self {
        self.max_tag_size = limit;
        self
    }

    /// Whether a `PreviousTagSize` that does not match the tag before it is an error (default true).
    pub fn with_previous_tag_size_check(mut self, check: bool) -> Self {
        self.check_previous_tag_size = check;
        self
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Bytes fed but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends input.
    pub fn feed(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the next complete frame, `Ok(None)` when more input is needed, or the error that
    /// stopped the stream.
    pub fn poll_frame(&mut self) -> Result<Option<Frame>, FlvError> {
        loop {
            match self.step() {
                Ok(Step::Frame(frame)) => return Ok(Some(frame)),
                Ok(Step::Continue) => {}
                Ok(Step::NeedMore) => return Ok(None),
                Err(e) => {
                    self.buf.clear();
                    self.state = State::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Call at end of input: `Ok` if the stream stopped cleanly after a tag's `PreviousTagSize`
    /// (or after the last tag body, missing only that trailer, as live captures often do).
    ///
    /// Meant for after [`poll_frame`](Self::poll_frame) returned `Ok(None)`. Input fed but not
    /// polled yet is reported as a truncation of the element it starts (`missing: 0` when that
    /// element is whole), never as a clean end.
    pub fn finish(&self) -> Result<(), FlvError> {
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            State::ExpectHeader => Err(FlvError::Truncated {
                what: "file header",
                missing: HEADER_LEN.saturating_sub(self.buf.len()),
            }),
            State::SkipHeaderExtra { remaining } => Err(FlvError::Truncated {
                what: "file header",
                missing: remaining.saturating_sub(self.buf.len()),
            }),
            State::ExpectPreviousTagSize { .. } if self.buf.is_empty() => Ok(()),
            State::ExpectPreviousTagSize { .. } => Err(FlvError::Truncated {
                what: "previous tag size",
                missing: PREVIOUS_TAG_SIZE_LEN.saturating_sub(self.buf.len()),
            }),
            State::ExpectTag if self.buf.is_empty() => Ok(()),
            State::ExpectTag => Err(FlvError::Truncated {
                what: "tag",
                missing: self.tag_missing(),
            }),
        }
    }

    fn tag_missing(&self) -> usize {
        if self.buf.len() < TAG_HEADER_LEN {
            return TAG_HEADER_LEN - self.buf.len();
        }
        let size = u24(&self.buf[1..4]) as usize;
        (TAG_HEADER_LEN + size).saturating_sub(self.buf.len())
    }

    fn step(&mut self) -> Result<Step, FlvError> {
        match &mut self.state {
            State::Failed(e) => Err(e.clone()),
            State::ExpectHeader => {
                if self.buf.len() < HEADER_LEN {
                    return Ok(Step::NeedMore);
                }
                let signature = [self.buf[0], self.buf[1], self.buf[2]];
                if &signature != b"FLV" {
                    return Err(FlvError::BadSignature { found: signature });
                }
                let version = self.buf[3];
                if version != 1 {
                    return Err(FlvError::UnsupportedVersion { version });
                }
                let flags = self.buf[4];
                let offset =
                    u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                if offset < HEADER_LEN as u32 || offset > MAX_DATA_OFFSET {
                    return Err(FlvError::BadDataOffset { offset });
                }
                self.header = Some(FlvHeader {
                    version,
                    has_audio: flags & 0x04 != 0,
                    has_video: flags & 0x01 != 0,
                });
                self.buf.advance(HEADER_LEN);
                self.state = State::SkipHeaderExtra {
                    remaining: offset as usize - HEADER_LEN,
                };
                Ok(Step::Continue)
            }
            State::SkipHeaderExtra { remaining } => {
                let n = (*remaining).min(self.buf.len());
                self.buf.advance(n);
                *remaining -= n;
                if *remaining > 0 {
                    return Ok(Step::NeedMore);
                }
                self.state = State::ExpectPreviousTagSize { expected: 0 };
                Ok(Step::Continue)
            }
            State::ExpectPreviousTagSize { expected } => {
                if self.buf.len() < PREVIOUS_TAG_SIZE_LEN {
                    return Ok(Step::NeedMore);
                }
                let expected = *expected;
                let found = self.buf.get_u32();
                if expected == 0
                    && self.header.is_some()
                    && found != 0
                    && self.check_previous_tag_size
                {
                    // Only reachable for PreviousTagSize0: every tag has a size of at least 11.
                    return Err(FlvError::BadFirstPreviousTagSize { size: found });
                }
                if self.check_previous_tag_size && found != expected {
                    return Err(FlvError::PreviousTagSizeMismatch { expected, found });
                }
                self.state = State::ExpectTag;
                Ok(Step::Continue)
            }
            State::ExpectTag => {
                if self.buf.len() < TAG_HEADER_LEN {
                    return Ok(Step::NeedMore);
                }
                let type_byte = self.buf[0];
                if type_byte & FILTER_BIT != 0 {
                    return Err(FlvError::EncryptedTag);
                }
                let kind = match type_byte & 0x1f {
                    8 => MediaKind::Audio,
                    9 => MediaKind::Video,
                    18 => MediaKind::Script,
                    tag_type => return Err(FlvError::UnknownTagType { tag_type }),
                };
                let size = u24(&self.buf[1..4]) as usize;
                if size > self.max_tag_size {
                    return Err(FlvError::TagTooLarge {
                        size,
                        limit: self.max_tag_size,
                    });
                }
                if self.buf.len() < TAG_HEADER_LEN + size {
                    self.buf.reserve(TAG_HEADER_LEN + size - self.buf.len());
                    return Ok(Step::NeedMore);
                }
                let timestamp = u24(&self.buf[4..7]) | (u32::from(self.buf[7]) << 24);
                // Bytes 8..11 are the stream id, always 0 and of no use to a reader.
                self.buf.advance(TAG_HEADER_LEN);
                let payload = self.buf.split_to(size).freeze();
                self.state = State::ExpectPreviousTagSize {
                    expected: (TAG_HEADER_LEN + size) as u32,
                };
                Ok(Step::Frame(Frame::new(kind, timestamp, payload)))
            }
        }
    }
}

enum Step {
    Frame(Frame),
    Continue,
    NeedMore,
}

fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::super::{encode_header, encode_tag};
    use super::*;
    use bytes::Bytes;

    fn sample_frames() -> Vec<Frame> {
        vec![
            Frame::new(
                MediaKind::Script,
                0,
                Bytes::from_static(b"\x02\x00\x0aonMetaData"),
            ),
            Frame::new(
                MediaKind::Video,
                0,
                Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2]),
            ),
            Frame::new(
                MediaKind::Audio,
                23,
                Bytes::from_static(&[0xaf, 0x01, 0x21]),
            ),
            Frame::new(
                MediaKind::Video,
                0x0123_4567,
                Bytes::from_static(&[0x27, 1, 0, 0, 0]),
            ),
        ]
    }

    fn sample_stream() -> BytesMut {
        let mut out = BytesMut::new();
        encode_header(&mut out, true, true);
        for f in sample_frames() {
            encode_tag(&mut out, &f).unwrap();
        }
        out
    }

    fn read_all(reader: &mut FlvReader) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(f) = reader.poll_frame().unwrap() {
            frames.push(f);
        }
        frames
    }

    #[test]
    fn round_trip_in_one_piece() {
        let mut r = FlvReader::new();
        r.feed(&sample_stream());
        assert_eq!(read_all(&mut r), sample_frames());
        assert_eq!(
            r.header(),
            Some(FlvHeader {
                version: 1,
                has_audio: true,
                has_video: true
            })
        );
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut r = FlvReader::new();
        let mut frames = Vec::new();
        for b in sample_stream().iter() {
            r.feed(&[*b]);
            frames.extend(read_all(&mut r));
        }
        assert_eq!(frames, sample_frames());
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn header_errors() {
        let mut r = FlvReader::new();
        r.feed(b"FLX\x01\x05\x00\x00\x00\x09");
        assert_eq!(
            r.poll_frame(),
            Err(FlvError::BadSignature { found: *b"FLX" })
        );
        // Errors are sticky.
        r.feed(&sample_stream());
        assert!(r.poll_frame().is_err());

        let mut r = FlvReader::new();
        r.feed(b"FLV\x02\x05\x00\x00\x00\x09");
        assert_eq!(
            r.poll_frame(),
            Err(FlvError::UnsupportedVersion { version: 2 })
        );

        let mut r = FlvReader::new();
        r.feed(b"FLV\x01\x05\x00\x00\x00\x08");
        assert_eq!(r.poll_frame(), Err(FlvError::BadDataOffset { offset: 8 }));
    }

    #[test]
    fn longer_header_is_skipped() {
        let mut s = BytesMut::from(&b"FLV\x01\x01\x00\x00\x00\x0c\xaa\xbb\xcc\x00\x00\x00\x00"[..]);
        let f = Frame::new(MediaKind::Video, 5, Bytes::from_static(&[0x27, 1, 0, 0, 0]));
        encode_tag(&mut s, &f).unwrap();
        let mut r = FlvReader::new();
        r.feed(&s);
        assert_eq!(read_all(&mut r), vec![f]);
        assert!(!r.header().unwrap().has_audio);
    }

    #[test]
    fn tag_errors() {
        let mut base = BytesMut::new();
        encode_header(&mut base, true, true);

        let mut s = base.clone();
        s.extend_from_slice(&[7, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut r = FlvReader::new();
        r.feed(&s);
        assert_eq!(
            r.poll_frame(),
            Err(FlvError::UnknownTagType { tag_type: 7 })
        );

        let mut s = base.clone();
        s.extend_from_slice(&[0x29, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        let mut r = FlvReader::new();
        r.feed(&s);
        assert_eq!(r.poll_frame(), Err(FlvError::EncryptedTag));

        let mut s = base.clone();
        s.extend_from_slice(&[9, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let mut r = FlvReader::new().with_max_tag_size(1024 * 1024);
        r.feed(&s);
        assert_eq!(
            r.poll_frame(),
            Err(FlvError::TagTooLarge {
                size: 0x10_0001,
                limit: 1024 * 1024
            })
        );

        let mut s = base.clone();
        s.extend_from_slice(&[9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x27, 0, 0, 0, 13]);
        let mut r = FlvReader::new();
        r.feed(&s);
        assert!(r.poll_frame().unwrap().is_some());
        assert_eq!(
            r.poll_frame(),
            Err(FlvError::PreviousTagSizeMismatch {
                expected: 12,
                found: 13
            })
        );
        let mut r = FlvReader::new().with_previous_tag_size_check(false);
        r.feed(&s);
        assert!(r.poll_frame().unwrap().is_some());
        assert_eq!(r.poll_frame(), Ok(None));
    }

    #[test]
    fn truncation_is_reported_by_finish() {
        let s = sample_stream();
        let mut r = FlvReader::new();
        r.feed(&s[..s.len() - 6]);
        let _ = read_all(&mut r);
        assert_eq!(
            r.finish(),
            Err(FlvError::Truncated {
                what: "tag",
                missing: 2
            })
        );
        // A capture cut right after a tag body, before its PreviousTagSize, is still clean.
        let mut r = FlvReader::new();
        r.feed(&s[..s.len() - 4]);
        assert_eq!(read_all(&mut r).len(), 4);
        assert_eq!(r.finish(), Ok(()));

        let mut r = FlvReader::new();
        r.feed(b"FLV");
        assert_eq!(r.poll_frame(), Ok(None));
        assert_eq!(
            r.finish(),
            Err(FlvError::Truncated {
                what: "file header",
                missing: 6
            })
        );
    }

    /// Fuzz crash (`flv` target, fuzz/artifacts/flv/crash-191ef737…): `finish` after `feed`
    /// but before `poll_frame` subtracted the buffered length from what the current element
    /// needs, and overflowed once a whole element was buffered.
    #[test]
    fn finish_before_poll_does_not_overflow() {
        let stream = sample_stream();
        // Whole header buffered, nothing polled.
        let mut r = FlvReader::new();
        r.feed(&stream);
        assert_eq!(
            r.finish(),
            Err(FlvError::Truncated {
                what: "file header",
                missing: 0
            })
        );
        // A header announcing 4 extra bytes, followed by more than 4 bytes.
        let mut header = stream[..HEADER_LEN].to_vec();
        header[8] = (HEADER_LEN + 4) as u8;
        let mut r = FlvReader::new();
        r.feed(&header);
        assert_eq!(r.poll_frame(), Ok(None));
        r.feed(&[0; 16]);
        assert!(r.finish().is_err());
        // PreviousTagSize0 buffered twice over.
        let mut r = FlvReader::new();
        r.feed(&stream[..HEADER_LEN]);
        assert_eq!(r.poll_frame(), Ok(None));
        r.feed(&[0; 8]);
        assert!(r.finish().is_err());
        // The fuzzer's input replays cleanly.
        crate::fuzzing::fuzz_flv(include_bytes!("testdata/finish-before-poll.bin"));
    }
}
