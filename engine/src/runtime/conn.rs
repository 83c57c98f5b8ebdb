//! What a core knows about each of its connections for the control API: a UUID, the peer, what
//! it does and on which path, and its byte counters. Plain cells on the connection's core; the
//! control core reads them only through [`CoreMessage::GatherView`](super::CoreMessage).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;

use crate::delivery::PlayerQueue;

use super::CoreStats;

/// A connection's public id (MediaMTX ids connections with random v4 UUIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnUuid(pub [u8; 16]);

impl ConnUuid {
    /// A random (version 4, RFC 4122 variant) UUID.
    pub fn new_v4() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        ConnUuid(b)
    }

    /// The canonical 8-4-4-4-12 hex form, either case.
    pub fn parse_canonical(text: &[u8]) -> Option<Self> {
        if text.len() != 36 || [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
            return None;
        }
        Self::from_hex_pairs(
            text,
            &[0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34],
        )
    }

    /// 32 hex digits with no dashes, either case.
    pub fn parse_bare(text: &[u8]) -> Option<Self> {
        if text.len() != 32 {
            return None;
        }
        Self::from_hex_pairs(
            text,
            &[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30],
        )
    }

    /// The 16 bytes whose two hex digits start at each of `starts`.
    fn from_hex_pairs(text: &[u8], starts: &[usize; 16]) -> Option<Self> {
        let digit = |c: u8| (c as char).to_digit(16);
        let mut out = [0u8; 16];
        for (byte, &at) in out.iter_mut().zip(starts) {
            *byte = ((digit(text[at])? << 4) | digit(text[at + 1])?) as u8;
        }
        Some(ConnUuid(out))
    }
}

impl fmt::Display for ConnUuid {
    /// The 8-4-4-4-12 lowercase hex form, written at once: the API writes one per connection it
    /// lists, on every request.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 36];
        let mut at = 0;
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text[at] = b'-';
                at += 1;
            }
            text[at] = HEX[usize::from(b >> 4)];
            text[at + 1] = HEX[usize::from(b & 0x0f)];
            at += 2;
        }
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for ConnUuid {
    type Err = ();
    /// The canonical 8-4-4-4-12 hex form, either case.
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::parse_canonical(s.as_bytes()).ok_or(())
    }
}

/// What a connection is doing, as MediaMTX names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnState {
    #[default]
    Idle,
    Read,
    Publish,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Idle => "idle",
            ConnState::Read => "read",
            ConnState::Publish => "publish",
        }
    }
}

/// Which listener or link a connection belongs to: MediaMTX lists each kind apart
/// (`/v3/rtmpconns` holds RTMP clients only, not HTTP viewers nor the relay's own links).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnProtocol {
    /// A client of the RTMP listener.
    Rtmp,
    /// A client of the HTTP listener (HTTP-FLV, HLS, pages).
    Http,
    /// A pull or push of the relay; until a driver says otherwise.
    #[default]
    Relay,
}

/// A publisher's track as MediaMTX's `tracks2` shows it: the codec and what its configuration
/// record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackView {
    /// MediaMTX's codec label (`H264`, `MPEG-4 Audio`).
    pub codec: &'static str,
    pub props: TrackProps,
}

/// What a track's configuration record says (MediaMTX's `codecProps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackProps {
    /// A codec whose configuration is not read here: `codecProps` is `null`.
    Unread,
    /// H.264 or H.265: `profile_idc` and `level_idc` of the record; the size from the SPS
    /// (H.264) or `None` where it is not parsed (H.265).
    Video {
        profile: u8,
        level: u8,
        size: Option<(u16, u16)>,
    },
    /// AAC: the AudioSpecificConfig's sample rate and channel configuration.
    Aac { sample_rate: u32, channels: u16 },
}

/// A connection's descriptive state, kept beside its [`SessionControl`](super::SessionControl).
#[derive(Debug)]
pub struct ConnInfo {
    pub uuid: ConnUuid,
    /// Unix milliseconds at accept.
    pub created_ms: u64,
    protocol: Cell<ConnProtocol>,
    /// What the client says it is (RTMP `flashVer`, HTTP `User-Agent`). Shared, not copied, by
    /// each gather's view: it is set once and read on every API request.
    user_agent: RefCell<Arc<str>>,
    remote: Cell<Option<SocketAddr>>,
    role: RefCell<Role>,
    bytes_in: Cell<u64>,
    /// The send queue, for bytes sent and frames discarded.
    queue: RefCell<Option<Rc<RefCell<PlayerQueue>>>>,
}

#[derive(Debug, Default, Clone)]
struct Role {
    state: ConnState,
    path: String,
    query: String,
    /// The user the request authenticated as (MediaMTX's `user`), empty when anonymous.
    user: String,
    /// Unix milliseconds the publish or play started.
    since_ms: u64,
}

impl Default for ConnInfo {
    fn default() -> Self {
        ConnInfo {
            uuid: ConnUuid::new_v4(),
            created_ms: unix_ms(),
            protocol: Cell::new(ConnProtocol::default()),
            user_agent: RefCell::new(Arc::from("")),
            remote: Cell::new(None),
            role: RefCell::default(),
            bytes_in: Cell::new(0),
            queue: RefCell::new(None),
        }
    }
}

impl ConnInfo {
    pub fn set_remote(&self, peer: Option<SocketAddr>) {
        self.remote.set(peer);
    }

    pub fn set_protocol(&self, protocol: ConnProtocol) {
        self.protocol.set(protocol);
    }

    pub fn set_user_agent(&self, agent: &str) {
        *self.user_agent.borrow_mut() = Arc::from(agent);
    }

    pub fn set_queue(&self, queue: Rc<RefCell<PlayerQueue>>) {
        *self.queue.borrow_mut() = Some(queue);
    }

    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.set(self.bytes_in.get() + n);
    }

    /// The connection started publishing or reading `path` (MediaMTX's path name), as `user`
    /// (empty: anonymous).
    pub fn set_role(&self, state: ConnState, path: String, query: &str, user: &str) {
        *self.role.borrow_mut() = Role {
            state,
            path,
            query: query.to_owned(),
            user: user.to_owned(),
            since_ms: unix_ms(),
        };
    }

    pub fn set_idle(&self) {
        *self.role.borrow_mut() = Role::default();
    }

    pub fn state(&self) -> ConnState {
        self.role.borrow().state
    }

    pub fn path(&self) -> Option<String> {
        let r = self.role.borrow();
        (r.state != ConnState::Idle).then(|| r.path.clone())
    }

    /// A copy for the control core, tagged with the connection's core.
    pub fn view(&self, core: u16) -> ConnView {
        let role = self.role.borrow().clone();
        let (bytes_out, frames_discarded) = match &*self.queue.borrow() {
            Some(q) => {
                let q = q.borrow();
                (q.sent_bytes(), q.dropped_frames())
            }
            None => (0, 0),
        };
        ConnView {
            id: self.uuid,
            core,
            protocol: self.protocol.get(),
            created_ms: self.created_ms,
            remote: self.remote.get(),
            state: role.state,
            path: role.path,
            query: role.query,
            user: role.user,
            user_agent: Arc::clone(&self.user_agent.borrow()),
            since_ms: role.since_ms,
            bytes_in: self.bytes_in.get(),
            bytes_out,
            frames_discarded,
            tracks: Vec::new(),
        }
    }
}

/// One connection as the control core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnView {
    pub id: ConnUuid,
    pub core: u16,
    pub protocol: ConnProtocol,
    pub created_ms: u64,
    pub remote: Option<SocketAddr>,
    pub state: ConnState,
    pub path: String,
    pub query: String,
    pub user: String,
    pub user_agent: Arc<str>,
    /// When the publish or read started (Unix ms).
    pub since_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_discarded: u64,
    /// A publisher's tracks, once its stream has their configuration.
    pub tracks: Vec<TrackView>,
}

/// Everything one data core reports to a gather: its counters and its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreView {
    pub stats: CoreStats,
    pub conns: Vec<ConnView>,
    /// The HLS muxers of the keys whose home is this core.
    pub hls_muxers: Vec<HlsMuxerView>,
    /// The HLS sessions of the keys whose home is this core.
    pub hls_sessions: Vec<super::HlsSessionView>,
    /// The pulled sources of the keys whose home is this core.
    pub sources: Vec<super::SourceView>,
    /// The pushes of the streams this core owns.
    pub forwards: Vec<super::ForwardView>,
    /// Recording counters per path name, of the streams this core owned.
    pub recordings: Vec<(String, crate::record::RecordStats)>,
}

/// One HLS muxer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsMuxerView {
    pub path: String,
    pub created_ms: u64,
    pub last_request_ms: u64,
    pub bytes_sent: u64,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_v4_and_round_trips() {
        let u = ConnUuid::new_v4();
        let text = u.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4", "{text}");
        assert!("89ab".contains(&text[19..20]), "{text}");
        assert_eq!(text.parse::<ConnUuid>(), Ok(u));
        assert_eq!(text.to_uppercase().parse::<ConnUuid>(), Ok(u));
        assert_ne!(ConnUuid::new_v4(), u);
        let fixed = ConnUuid([
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x42, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
            0x40, 0x0f,
        ]);
        assert_eq!(fixed.to_string(), "123e4567-e89b-42d3-a456-42661417400f");
        for bad in ["", "x", "0000000000000000000000000000000000-0", &text[1..]] {
            assert!(bad.parse::<ConnUuid>().is_err(), "{bad}");
        }
    }
}
