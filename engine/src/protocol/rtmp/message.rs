//! RTMP messages: protocol control (types 1-6), user control (4), commands (20, 17), data (18,
//! 15), audio (8), video (9) and aggregates (22), parsed from and written to message payloads.
#![forbid(unsafe_code)]

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::amf0::{self, Amf0Error, Amf0Value};
use super::chunk::RawMessage;
use crate::media::{Frame, MediaKind};

/// Message type ids.
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Ways a message payload can be unusable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageError {
    #[error("message type {type_id} too short: {length} bytes, needs {expected}")]
    Truncated {
        type_id: u8,
        length: usize,
        expected: usize,
    },
    #[error("malformed amf0 in message: {0}")]
    Amf0(#[from] Amf0Error),
    #[error("command message without a command name")]
    MissingCommandName,
    #[error("invalid peer bandwidth limit type {limit}")]
    InvalidBandwidthLimit { limit: u8 },
    #[error("malformed aggregate message")]
    MalformedAggregate,
}

/// Limit type of Set Peer Bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BandwidthLimit {
    Hard = 0,
    Soft = 1,
    Dynamic = 2,
}

/// User control events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin {
        stream_id: u32,
    },
    StreamEof {
        stream_id: u32,
    },
    StreamDry {
        stream_id: u32,
    },
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded {
        stream_id: u32,
    },
    PingRequest {
        timestamp: u32,
    },
    PingResponse {
        timestamp: u32,
    },
    /// An event type we do not act on, kept as it came.
    Other {
        event_type: u16,
        data: Bytes,
    },
}

/// An AMF0 command: name, transaction id, command object, arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub transaction_id: f64,
    /// The command object (`Null` for most commands but `connect`).
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

impl Command {
    pub fn new(
        name: impl Into<String>,
        transaction_id: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
    ) -> Self {
        Self {
            name: name.into(),
            transaction_id,
            object,
            args,
        }
    }

    /// String argument `i` (after the command object), if it is one.
    pub fn arg_str(&self, i: usize) -> Option<&str> {
        self.args.get(i).and_then(Amf0Value::as_str)
    }

    pub fn arg_number(&self, i: usize) -> Option<f64> {
        self.args.get(i).and_then(Amf0Value::as_number)
    }

    /// Parses an AMF0 command payload.
    pub fn decode(payload: &[u8]) -> Result<Self, MessageError> {
        let mut cursor = payload;
        let name = match amf0::decode_value(&mut cursor)? {
            Amf0Value::String(s) | Amf0Value::LongString(s) => s,
            _ => return Err(MessageError::MissingCommandName),
        };
        // Some encoders stop after the name or the transaction id (e.g. `onStatus` sent as
        // data): missing values read as 0 and Null.
        let transaction_id = if cursor.is_empty() {
            0.0
        } else {
            match amf0::decode_value(&mut cursor)? {
                Amf0Value::Number(n) => n,
                _ => 0.0,
            }
        };
        let object = if cursor.is_empty() {
            Amf0Value::Null
        } else {
            amf0::decode_value(&mut cursor)?
        };
        let args = amf0::decode_all(cursor)?;
        Ok(Self {
            name,
            transaction_id,
            object,
            args,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Amf0Error> {
        amf0::encode(out, &Amf0Value::String(self.name.clone()))?;
        amf0::encode(out, &Amf0Value::Number(self.transaction_id))?;
        amf0::encode(out, &self.object)?;
        amf0::encode_all(out, &self.args)
    }
}

/// The info object of an `onStatus`/`_result`/`_error`: `{ level, code, description }`.
pub fn status_object(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// One parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort {
        csid: u32,
    },
    Acknowledgement {
        sequence: u32,
    },
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: BandwidthLimit,
    },
    Audio(Bytes),
    Video(Bytes),
    /// AMF0 data message payload (for type 15, the leading AMF3 format byte is stripped).
    Data(Bytes),
    /// AMF0 command (for type 17, the leading AMF3 format byte is stripped).
    Command(Command),
    /// Aggregate payload: FLV tags, see [`split_aggregate`].
    Aggregate(Bytes),
    /// Shared objects and anything unknown.
    Other {
        type_id: u8,
        payload: Bytes,
    },
}

fn be_u32(payload: &[u8], at: usize, type_id: u8) -> Result<u32, MessageError> {
    payload
        .get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(MessageError::Truncated {
            type_id,
            length: payload.len(),
            expected: at + 4,
        })
}

/// Strips the format byte AMF3-flavoured messages (15, 17) start with; they then carry AMF0.
fn strip_amf3_prefix(payload: &Bytes) -> Bytes {
    if payload.first() == Some(&0) {
        payload.slice(1..)
    } else {
        payload.clone()
    }
}

impl Message {
    pub fn decode(raw: &RawMessage) -> Result<Self, MessageError> {
        let p = &raw.payload;
        let t = raw.type_id;
        Ok(match t {
            type_id::SET_CHUNK_SIZE => Self::SetChunkSize(be_u32(p, 0, t)?),
            type_id::ABORT => Self::Abort {
                csid: be_u32(p, 0, t)?,
            },
            type_id::ACKNOWLEDGEMENT => Self::Acknowledgement {
                sequence: be_u32(p, 0, t)?,
            },
            type_id::WINDOW_ACK_SIZE => Self::WindowAckSize(be_u32(p, 0, t)?),
            type_id::SET_PEER_BANDWIDTH => {
                let size = be_u32(p, 0, t)?;
                let limit = match p.get(4) {
                    Some(0) => BandwidthLimit::Hard,
                    Some(1) => BandwidthLimit::Soft,
                    Some(2) => BandwidthLimit::Dynamic,
                    Some(&limit) => return Err(MessageError::InvalidBandwidthLimit { limit }),
                    None => {
                        return Err(MessageError::Truncated {
                            type_id: t,
                            length: p.len(),
                            expected: 5,
                        })
                    }
                };
                Self::SetPeerBandwidth { size, limit }
            }
            type_id::USER_CONTROL => Self::UserControl(decode_user_control(p)?),
            type_id::AUDIO => Self::Audio(p.clone()),
            type_id::VIDEO => Self::Video(p.clone()),
            type_id::DATA_AMF0 => Self::Data(p.clone()),
            type_id::DATA_AMF3 => Self::Data(strip_amf3_prefix(p)),
            type_id::COMMAND_AMF0 => Self::Command(Command::decode(p)?),
            type_id::COMMAND_AMF3 => Self::Command(Command::decode(&strip_amf3_prefix(p))?),
            type_id::AGGREGATE => Self::Aggregate(p.clone()),
            _ => Self::Other {
                type_id: t,
                payload: p.clone(),
            },
        })
    }

    pub fn type_id(&self) -> u8 {
        match self {
            Self::SetChunkSize(_) => type_id::SET_CHUNK_SIZE,
            Self::Abort { .. } => type_id::ABORT,
            Self::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Self::UserControl(_) => type_id::USER_CONTROL,
            Self::WindowAckSize(_) => type_id::WINDOW_ACK_SIZE,
            Self::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Self::Audio(_) => type_id::AUDIO,
            Self::Video(_) => type_id::VIDEO,
            Self::Data(_) => type_id::DATA_AMF0,
            Self::Command(_) => type_id::COMMAND_AMF0,
            Self::Aggregate(_) => type_id::AGGREGATE,
            Self::Other { type_id, .. } => *type_id,
        }
    }

    /// Appends the payload of this message (AMF0 flavour for data and commands).
    pub fn encode_payload(&self, out: &mut BytesMut) -> Result<(), Amf0Error> {
        match self {
            Self::SetChunkSize(v) | Self::WindowAckSize(v) => out.put_u32(*v),
            Self::Abort { csid } => out.put_u32(*csid),
            Self::Acknowledgement { sequence } => out.put_u32(*sequence),
            Self::SetPeerBandwidth { size, limit } => {
                out.put_u32(*size);
                out.put_u8(*limit as u8);
            }
            Self::UserControl(uc) => encode_user_control(out, uc),
            Self::Audio(p) | Self::Video(p) | Self::Data(p) | Self::Aggregate(p) => {
                out.put_slice(p)
            }
            Self::Other { payload, .. } => out.put_slice(payload),
            Self::Command(c) => c.encode(out)?,
        }
        Ok(())
    }

    /// This message as a [`RawMessage`] on `stream_id` at `timestamp`.
    pub fn to_raw(&self, stream_id: u32, timestamp: u32) -> Result<RawMessage, Amf0Error> {
        let mut payload = BytesMut::new();
        self.encode_payload(&mut payload)?;
        Ok(RawMessage::new(
            self.type_id(),
            stream_id,
            timestamp,
            payload.freeze(),
        ))
    }
}

fn decode_user_control(p: &Bytes) -> Result<UserControl, MessageError> {
    let t = type_id::USER_CONTROL;
    let Some(head) = p.get(..2) else {
        return Err(MessageError::Truncated {
            type_id: t,
            length: p.len(),
            expected: 2,
        });
    };
    let event_type = u16::from_be_bytes([head[0], head[1]]);
    Ok(match event_type {
        0 => UserControl::StreamBegin {
            stream_id: be_u32(p, 2, t)?,
        },
        1 => UserControl::StreamEof {
            stream_id: be_u32(p, 2, t)?,
        },
        2 => UserControl::StreamDry {
            stream_id: be_u32(p, 2, t)?,
        },
        3 => UserControl::SetBufferLength {
            stream_id: be_u32(p, 2, t)?,
            buffer_ms: be_u32(p, 6, t)?,
        },
        4 => UserControl::StreamIsRecorded {
            stream_id: be_u32(p, 2, t)?,
        },
        6 => UserControl::PingRequest {
            timestamp: be_u32(p, 2, t)?,
        },
        7 => UserControl::PingResponse {
            timestamp: be_u32(p, 2, t)?,
        },
        _ => UserControl::Other {
            event_type,
            data: p.slice(2..),
        },
    })
}

fn encode_user_control(out: &mut BytesMut, uc: &UserControl) {
    let (event, a, b) = match uc {
        UserControl::StreamBegin { stream_id } => (0, *stream_id, None),
        UserControl::StreamEof { stream_id } => (1, *stream_id, None),
        UserControl::StreamDry { stream_id } => (2, *stream_id, None),
        UserControl::SetBufferLength {
            stream_id,
            buffer_ms,
        } => (3, *stream_id, Some(*buffer_ms)),
        UserControl::StreamIsRecorded { stream_id } => (4, *stream_id, None),
        UserControl::PingRequest { timestamp } => (6, *timestamp, None),
        UserControl::PingResponse { timestamp } => (7, *timestamp, None),
        UserControl::Other { event_type, data } => {
            out.put_u16(*event_type);
            out.put_slice(data);
            return;
        }
    };
    out.put_u16(event);
    out.put_u32(a);
    if let Some(b) = b {
        out.put_u32(b);
    }
}

/// Name of the `@setDataFrame` wrapper publishers put around `onMetaData`.
pub const SET_DATA_FRAME: &str = "@setDataFrame";

/// Splits an AMF0 data payload into its handler name (`onMetaData`, ...) and the payload a
/// player or FLV file wants: the handler name and its values, without any `@setDataFrame`
/// wrapper. The returned payload is a slice of the input, byte for byte.
pub fn unwrap_data(payload: &Bytes) -> Result<(String, Bytes), MessageError> {
    let mut cursor = &payload[..];
    let first = amf0::decode_value(&mut cursor)?;
    let (name, body) = match first.as_str() {
        Some(SET_DATA_FRAME) => {
            let offset = payload.len() - cursor.len();
            let body = payload.slice(offset..);
            let mut rest = &body[..];
            let name = amf0::decode_value(&mut rest)?;
            (name.as_str().unwrap_or_default().to_owned(), body)
        }
        Some(name) => (name.to_owned(), payload.clone()),
        None => (String::new(), payload.clone()),
    };
    Ok((name, body))
}

/// Prefixes an AMF0 data payload (`onMetaData`, ...) with the `@setDataFrame` wrapper.
pub fn wrap_set_data_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 16);
    out.put_u8(amf0::marker::STRING);
    out.put_u16(SET_DATA_FRAME.len() as u16);
    out.put_slice(SET_DATA_FRAME.as_bytes());
    out.put_slice(payload);
    out.freeze()
}

/// Splits an aggregate message into its sub-messages (FLV tags: type, 24-bit size, timestamp
/// and its high byte, 24-bit stream id, body, 32-bit back pointer). Timestamps are rebased so
/// that the first sub-message has the aggregate's timestamp.
pub fn split_aggregate(raw: &RawMessage) -> Result<Vec<RawMessage>, MessageError> {
    let p = &raw.payload;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut base: Option<u32> = None;
    while pos < p.len() {
        let h = p
            .get(pos..pos + 11)
            .ok_or(MessageError::MalformedAggregate)?;
        let u24 = |b: &[u8]| u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let size = u24(&h[1..4]) as usize;
        let ts = u24(&h[4..7]) | u32::from(h[7]) << 24;
        let start = pos + 11;
        let body = p
            .get(start..start + size)
            .ok_or(MessageError::MalformedAggregate)?;
        let first_ts = *base.get_or_insert(ts);
        out.push(RawMessage::new(
            h[0],
            raw.stream_id,
            raw.timestamp.wrapping_add(ts.wrapping_sub(first_ts)),
            p.slice_ref(body),
        ));
        // The back pointer may be missing after the last tag.
        pos = (start + size + 4).min(p.len());
    }
    Ok(out)
}

/// Hands the frames a media message from the peer carries to `on_frame`, in order: audio and
/// video as they are, a data message's `onMetaData` as a script frame without its
/// `@setDataFrame`, and the audio, video and AMF0 data parts of an aggregate alike. `msg` is
/// `raw` decoded; other messages carry no frames.
///
/// Nothing is handed over unless `wanted`, and data is only parsed then, so a malformed data
/// message the session would drop anyway cannot end it.
pub(crate) fn media_frames(
    raw: &RawMessage,
    msg: Message,
    wanted: bool,
    mut on_frame: impl FnMut(Frame),
) -> Result<(), MessageError> {
    let mut one = |kind: MediaKind, timestamp: u32, payload: Bytes| {
        if !wanted {
            return Ok(());
        }
        let payload = match kind {
            MediaKind::Script => match unwrap_data(&payload)? {
                (name, body) if name == "onMetaData" => body,
                (name, _) => {
                    tracing::debug!(name, "ignoring rtmp data message");
                    return Ok(());
                }
            },
            MediaKind::Audio | MediaKind::Video => payload,
        };
        on_frame(Frame::new(kind, timestamp, payload));
        Ok::<_, MessageError>(())
    };
    match msg {
        Message::Audio(payload) => one(MediaKind::Audio, raw.timestamp, payload),
        Message::Video(payload) => one(MediaKind::Video, raw.timestamp, payload),
        Message::Data(payload) => one(MediaKind::Script, raw.timestamp, payload),
        Message::Aggregate(_) => {
            for part in split_aggregate(raw)? {
                let kind = match part.type_id {
                    type_id::AUDIO => MediaKind::Audio,
                    type_id::VIDEO => MediaKind::Video,
                    type_id::DATA_AMF0 => MediaKind::Script,
                    _ => continue,
                };
                one(kind, part.timestamp, part.payload)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .into()
    }

    fn raw(type_id: u8, payload: &str) -> RawMessage {
        RawMessage::new(type_id, 0, 0, hex(payload))
    }

    #[test]
    fn protocol_control_round_trip() {
        for (msg, wire) in [
            (Message::SetChunkSize(4096), "00001000"),
            (Message::WindowAckSize(2_500_000), "002625a0"),
            (Message::Acknowledgement { sequence: 7 }, "00000007"),
            (
                Message::SetPeerBandwidth {
                    size: 2_500_000,
                    limit: BandwidthLimit::Dynamic,
                },
                "002625a0 02",
            ),
            (
                Message::UserControl(UserControl::StreamBegin { stream_id: 1 }),
                "0000 00000001",
            ),
            (
                Message::UserControl(UserControl::SetBufferLength {
                    stream_id: 1,
                    buffer_ms: 3000,
                }),
                "0003 00000001 00000bb8",
            ),
            (
                Message::UserControl(UserControl::PingRequest { timestamp: 9 }),
                "0006 00000009",
            ),
        ] {
            let r = msg.to_raw(0, 0).unwrap();
            assert_eq!(r.payload, hex(wire), "{msg:?}");
            assert_eq!(Message::decode(&r).unwrap(), msg);
        }
        assert_eq!(
            Message::decode(&raw(type_id::WINDOW_ACK_SIZE, "0026")),
            Err(MessageError::Truncated {
                type_id: 5,
                length: 2,
                expected: 4
            })
        );
    }

    #[test]
    fn command_round_trip_and_amf3_prefix() {
        let cmd = Command::new("createStream", 2.0, Amf0Value::Null, vec![]);
        let r = Message::Command(cmd.clone()).to_raw(0, 0).unwrap();
        assert_eq!(Message::decode(&r).unwrap(), Message::Command(cmd.clone()));
        let mut p = BytesMut::from(&[0u8][..]);
        p.extend_from_slice(&r.payload);
        let r3 = RawMessage::new(type_id::COMMAND_AMF3, 0, 0, p.freeze());
        assert_eq!(Message::decode(&r3).unwrap(), Message::Command(cmd));
    }

    #[test]
    fn malformed_command_is_an_error() {
        assert!(matches!(
            Message::decode(&raw(type_id::COMMAND_AMF0, "02 0007 636f6e6e")),
            Err(MessageError::Amf0(Amf0Error::Truncated { .. }))
        ));
        assert_eq!(
            Message::decode(&raw(type_id::COMMAND_AMF0, "05")),
            Err(MessageError::MissingCommandName)
        );
    }

    #[test]
    fn set_data_frame_is_unwrapped() {
        // "@setDataFrame" "onMetaData" {duration: 0}
        let body =
            "02 000a 6f6e4d65746144617461 03 0008 6475726174696f6e 00 0000000000000000 000009";
        let wrapped = hex(&format!("02 000d 40736574446174614672616d65 {body}"));
        let (name, payload) = unwrap_data(&wrapped).unwrap();
        assert_eq!(name, "onMetaData");
        assert_eq!(payload, hex(body));
        assert_eq!(wrap_set_data_frame(&payload), wrapped);
        let (name, plain) = unwrap_data(&hex(body)).unwrap();
        assert_eq!((name.as_str(), plain), ("onMetaData", hex(body)));
    }

    #[test]
    fn aggregate_is_split() {
        let agg = RawMessage::new(
            type_id::AGGREGATE,
            1,
            1000,
            hex(concat!(
                "08 000002 000064 00 000000 af01 0000000d",
                "09 000001 00006e 00 000000 17 0000000c",
            )),
        );
        let parts = split_aggregate(&agg).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].type_id, parts[0].timestamp), (8, 1000));
        assert_eq!((parts[1].type_id, parts[1].timestamp), (9, 1010));
        assert_eq!(&parts[1].payload[..], &[0x17]);
    }
}
