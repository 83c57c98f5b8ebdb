//! AMF0, the value encoding of RTMP commands and script data.
//!
//! The decoder is bounded: nesting depth is capped ([`MAX_DEPTH`]), and no length read from the
//! wire is trusted for an allocation beyond what the input actually holds. Markers the RTMP
//! dialect never needs (references, movie clips, record sets, XML, typed objects, AMF3 switches)
//! are refused with a precise error rather than guessed at.
#![forbid(unsafe_code)]

use bytes::{BufMut, BytesMut};
use thiserror::Error;

/// Deepest nesting of objects and arrays the decoder and encoder accept.
pub const MAX_DEPTH: usize = 32;

/// Type markers (AMF0 specification, section 2.1).
pub mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0a;
    pub const DATE: u8 = 0x0b;
    pub const LONG_STRING: u8 = 0x0c;
    pub const UNSUPPORTED: u8 = 0x0d;
    pub const RECORDSET: u8 = 0x0e;
    pub const XML_DOCUMENT: u8 = 0x0f;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// Ways AMF0 input (or a value to encode) can be unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Amf0Error {
    #[error("amf0 value truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("amf0 references (marker 0x07) are not supported")]
    ReferenceNotSupported,
    #[error("unsupported amf0 marker 0x{marker:02x}")]
    UnsupportedMarker { marker: u8 },
    #[error("unexpected amf0 object-end marker outside an object")]
    UnexpectedObjectEnd,
    #[error("amf0 string is not valid utf-8")]
    InvalidUtf8,
    #[error("amf0 nesting deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("amf0 object key of {length} bytes exceeds 65535")]
    KeyTooLong { length: usize },
    #[error("amf0 strict array of {count} elements exceeds the input")]
    ArrayTooLong { count: u32 },
}

/// One AMF0 value. Objects and ECMA arrays keep their properties in wire order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// Encoded as a short string (marker 0x02) when it fits 65535 bytes, otherwise as a long string.
    String(String),
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the Unix epoch; the time zone is reserved and should be 0.
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
}

impl Amf0Value {
    /// Shorthand for an object from `(&str, value)` pairs.
    pub fn object<'a>(props: impl IntoIterator<Item = (&'a str, Amf0Value)>) -> Self {
        Self::Object(props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn string(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) | Self::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Self::Object(p) | Self::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Decodes every value in `input`.
pub fn decode_all(input: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut cursor = input;
    let mut values = Vec::new();
    while !cursor.is_empty() {
        values.push(decode_value(&mut cursor)?);
    }
    Ok(values)
}

/// Decodes one value from the front of `cursor` and advances it past the value.
pub fn decode_value(cursor: &mut &[u8]) -> Result<Amf0Value, Amf0Error> {
    decode_at(cursor, 0)
}

fn take<'a>(cursor: &mut &'a [u8], n: usize) -> Result<&'a [u8], Amf0Error> {
    if cursor.len() < n {
        return Err(Amf0Error::Truncated {
            needed: n - cursor.len(),
        });
    }
    let (head, tail) = cursor.split_at(n);
    *cursor = tail;
    Ok(head)
}

fn take_u8(cursor: &mut &[u8]) -> Result<u8, Amf0Error> {
    Ok(take(cursor, 1)?[0])
}

fn take_u16(cursor: &mut &[u8]) -> Result<u16, Amf0Error> {
    let b = take(cursor, 2)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn take_u32(cursor: &mut &[u8]) -> Result<u32, Amf0Error> {
    let b = take(cursor, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn take_f64(cursor: &mut &[u8]) -> Result<f64, Amf0Error> {
    let b = take(cursor, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(f64::from_be_bytes(a))
}

fn take_str(cursor: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    let bytes = take(cursor, len)?;
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| Amf0Error::InvalidUtf8)
}

fn decode_at(cursor: &mut &[u8], depth: usize) -> Result<Amf0Value, Amf0Error> {
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep { limit: MAX_DEPTH });
    }
    let m = take_u8(cursor)?;
    Ok(match m {
        marker::NUMBER => Amf0Value::Number(take_f64(cursor)?),
        marker::BOOLEAN => Amf0Value::Boolean(take_u8(cursor)? != 0),
        marker::STRING => {
            let len = usize::from(take_u16(cursor)?);
            Amf0Value::String(take_str(cursor, len)?)
        }
        marker::OBJECT => Amf0Value::Object(decode_properties(cursor, depth, false)?),
        marker::NULL => Amf0Value::Null,
        marker::UNDEFINED => Amf0Value::Undefined,
        marker::ECMA_ARRAY => {
            // The count is advisory: encoders disagree on it, the end marker is what counts.
            let _count = take_u32(cursor)?;
            Amf0Value::EcmaArray(decode_properties(cursor, depth, true)?)
        }
        marker::STRICT_ARRAY => {
            let count = take_u32(cursor)?;
            // Every element takes at least one byte: a larger count is a lie, not an allocation.
            if count as usize > cursor.len() {
                return Err(Amf0Error::ArrayTooLong { count });
            }
            let mut items = Vec::with_capacity(count as usize);
            for _ in 0..count {
                items.push(decode_at(cursor, depth + 1)?);
            }
            Amf0Value::StrictArray(items)
        }
        marker::DATE => {
            let millis = take_f64(cursor)?;
            let tz = take(cursor, 2)?;
            Amf0Value::Date {
                millis,
                timezone: i16::from_be_bytes([tz[0], tz[1]]),
            }
        }
        marker::LONG_STRING => {
            let len = take_u32(cursor)? as usize;
            Amf0Value::LongString(take_str(cursor, len)?)
        }
        marker::OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
        marker::REFERENCE => return Err(Amf0Error::ReferenceNotSupported),
        other => return Err(Amf0Error::UnsupportedMarker { marker: other }),
    })
}

/// Reads `key value` pairs up to the `00 00 09` end marker. `lenient_end` accepts input that
/// ends where a key is expected (some encoders omit the end of a trailing ECMA array).
fn decode_properties(
    cursor: &mut &[u8],
    depth: usize,
    lenient_end: bool,
) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        if lenient_end && cursor.is_empty() {
            return Ok(props);
        }
        let key_len = usize::from(take_u16(cursor)?);
        if key_len == 0 && cursor.first() == Some(&marker::OBJECT_END) {
            *cursor = &cursor[1..];
            return Ok(props);
        }
        let key = take_str(cursor, key_len)?;
        let value = decode_at(cursor, depth + 1)?;
        props.push((key, value));
    }
}

/// Appends the encoding of `value` to `out`.
pub fn encode(out: &mut BytesMut, value: &Amf0Value) -> Result<(), Amf0Error> {
    encode_at(out, value, 0)
}

/// Appends the encoding of each of `values` to `out`.
pub fn encode_all(out: &mut BytesMut, values: &[Amf0Value]) -> Result<(), Amf0Error> {
    values.iter().try_for_each(|v| encode(out, v))
}

fn encode_at(out: &mut BytesMut, value: &Amf0Value, depth: usize) -> Result<(), Amf0Error> {
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep { limit: MAX_DEPTH });
    }
    match value {
        Amf0Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Amf0Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Amf0Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.put_u8(marker::STRING);
                out.put_u16(len);
                out.put_slice(s.as_bytes());
            }
            Err(_) => encode_long_string(out, s),
        },
        Amf0Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            encode_properties(out, props, depth)?;
        }
        Amf0Value::Null => out.put_u8(marker::NULL),
        Amf0Value::Undefined => out.put_u8(marker::UNDEFINED),
        Amf0Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            encode_properties(out, props, depth)?;
        }
        Amf0Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(u32::try_from(items.len()).unwrap_or(u32::MAX));
            for item in items {
                encode_at(out, item, depth + 1)?;
            }
        }
        Amf0Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Amf0Value::LongString(s) => encode_long_string(out, s),
    }
    Ok(())
}

fn encode_long_string(out: &mut BytesMut, s: &str) {
    out.put_u8(marker::LONG_STRING);
    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.put_slice(s.as_bytes());
}

fn encode_properties(
    out: &mut BytesMut,
    props: &[(String, Amf0Value)],
    depth: usize,
) -> Result<(), Amf0Error> {
    for (key, value) in props {
        let len =
            u16::try_from(key.len()).map_err(|_| Amf0Error::KeyTooLong { length: key.len() })?;
        out.put_u16(len);
        out.put_slice(key.as_bytes());
        encode_at(out, value, depth + 1)?;
    }
    out.put_slice(&[0, 0, marker::OBJECT_END]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn round_trip(value: Amf0Value, wire: &str) {
        let wire = hex(wire);
        let mut out = BytesMut::new();
        encode(&mut out, &value).unwrap();
        assert_eq!(&out[..], &wire[..], "encoding of {value:?}");
        let mut cursor = &wire[..];
        assert_eq!(decode_value(&mut cursor).unwrap(), value);
        assert!(cursor.is_empty());
    }

    #[test]
    fn number() {
        round_trip(Amf0Value::Number(1.0), "00 3ff0000000000000");
        round_trip(Amf0Value::Number(-2.5), "00 c004000000000000");
    }

    #[test]
    fn boolean() {
        round_trip(Amf0Value::Boolean(true), "01 01");
        round_trip(Amf0Value::Boolean(false), "01 00");
    }

    #[test]
    fn string() {
        round_trip(Amf0Value::string("connect"), "02 0007 636f6e6e656374");
        round_trip(Amf0Value::string(""), "02 0000");
    }

    #[test]
    fn null_and_undefined() {
        round_trip(Amf0Value::Null, "05");
        round_trip(Amf0Value::Undefined, "06");
    }

    #[test]
    fn object() {
        round_trip(
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("fpad", Amf0Value::Boolean(false)),
            ]),
            "03 0003 617070 02 0004 6c697665 0004 66706164 01 00 000009",
        );
    }

    #[test]
    fn ecma_array() {
        round_trip(
            Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(1280.0))]),
            "08 00000001 0005 7769647468 00 4094000000000000 000009",
        );
    }

    #[test]
    fn ecma_array_without_end_marker_at_end_of_input() {
        let wire = hex("08 00000001 0001 61 05");
        let values = decode_all(&wire).unwrap();
        assert_eq!(
            values,
            vec![Amf0Value::EcmaArray(vec![("a".into(), Amf0Value::Null)])]
        );
    }

    #[test]
    fn strict_array() {
        round_trip(
            Amf0Value::StrictArray(vec![Amf0Value::Number(0.0), Amf0Value::Null]),
            "0a 00000002 00 0000000000000000 05",
        );
    }

    #[test]
    fn date() {
        round_trip(
            Amf0Value::Date {
                millis: 1.0,
                timezone: 0,
            },
            "0b 3ff0000000000000 0000",
        );
    }

    #[test]
    fn long_string() {
        round_trip(Amf0Value::LongString("ab".into()), "0c 00000002 6162");
        let big = "x".repeat(70_000);
        let mut out = BytesMut::new();
        encode(&mut out, &Amf0Value::String(big.clone())).unwrap();
        assert_eq!(out[0], marker::LONG_STRING);
        let mut cursor = &out[..];
        assert_eq!(
            decode_value(&mut cursor).unwrap(),
            Amf0Value::LongString(big)
        );
    }

    #[test]
    fn refuses_references_and_unsupported_markers() {
        assert_eq!(
            decode_all(&hex("07 0001")),
            Err(Amf0Error::ReferenceNotSupported)
        );
        assert_eq!(
            decode_all(&hex("11 00")),
            Err(Amf0Error::UnsupportedMarker { marker: 0x11 })
        );
        assert_eq!(decode_all(&hex("09")), Err(Amf0Error::UnexpectedObjectEnd));
    }

    #[test]
    fn truncation_and_lies() {
        assert_eq!(
            decode_all(&hex("02 0005 6162")),
            Err(Amf0Error::Truncated { needed: 3 })
        );
        assert_eq!(
            decode_all(&hex("0a ffffffff 05")),
            Err(Amf0Error::ArrayTooLong { count: u32::MAX })
        );
        assert_eq!(decode_all(&hex("02 0001 ff")), Err(Amf0Error::InvalidUtf8));
    }

    #[test]
    fn depth_is_bounded() {
        // 40 nested strict arrays of one element each.
        let mut wire = Vec::new();
        for _ in 0..40 {
            wire.extend_from_slice(&hex("0a 00000001"));
        }
        wire.push(marker::NULL);
        assert_eq!(
            decode_all(&wire),
            Err(Amf0Error::TooDeep { limit: MAX_DEPTH })
        );
    }
}
