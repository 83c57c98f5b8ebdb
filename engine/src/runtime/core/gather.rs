//! The data core's side of the control API: reporting its connections, kicking one, and closing
//! the sessions a configuration change leaves without a path. Kept apart from the media path in
//! `core.rs`; everything here runs on the core's own thread, answering messages from the control
//! core.

use std::collections::HashMap;
use std::rc::Rc;

use tracing::info;

use super::{Core, Notice};
use crate::config::Snapshot;
use crate::media::{AudioCodec, Frame, VideoCodec};
use crate::protocol::fmp4;
use crate::registry::{home_core, StreamKey, Upstream};
use crate::runtime::{
    ConnUuid, CoreMessage, CoreView, HlsMuxerView, Reply, SessionId, TrackProps, TrackView,
};

/// A reader counted at its key's home core against `maxReaders`; released when dropped.
pub struct ReaderSlot {
    core: Rc<Core>,
    key: StreamKey,
    session: SessionId,
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.core.send(
            home_core(&self.key, self.core.data_cores),
            CoreMessage::ReleaseReader {
                key: self.key.clone(),
                session: self.session,
            },
        );
    }
}

impl Core {
    /// Counts `session` as a reader of `key` at the key's home core, if fewer than `max` (0: no
    /// limit) read it already. `None`: the path is full, or the home core did not answer.
    pub async fn claim_reader(
        self: &Rc<Self>,
        key: &StreamKey,
        session: SessionId,
        max: u32,
    ) -> Option<ReaderSlot> {
        let home = home_core(key, self.data_cores);
        let reply = self
            .request(home, |reply| CoreMessage::ClaimReader {
                key: key.clone(),
                session,
                max,
                reply,
            })
            .await;
        matches!(reply, Some(Reply::ReaderClaim(true))).then(|| ReaderSlot {
            core: self.clone(),
            key: key.clone(),
            session,
        })
    }

    pub(super) fn admit_reader(&self, key: StreamKey, session: SessionId, max: u32) -> bool {
        if self.path_is_full(&key, max) {
            return false;
        }
        self.readers
            .borrow_mut()
            .entry(key)
            .or_default()
            .insert(session);
        true
    }

    /// Whether `key` has `max` readers (0: no limit), its connections and its HLS viewers
    /// together: what `maxReaders` counts.
    pub(super) fn path_is_full(&self, key: &StreamKey, max: u32) -> bool {
        let readers = self.reader_count(key) + self.hls_sessions.borrow().count(key);
        max != 0 && readers >= max as usize
    }

    pub(super) fn release_reader(&self, key: &StreamKey, session: SessionId) {
        let mut readers = self.readers.borrow_mut();
        if let Some(set) = readers.get_mut(key) {
            set.remove(&session);
            if set.is_empty() {
                readers.remove(key);
            }
        }
    }

    /// This core's counters and connections, publishers with their tracks.
    pub(super) fn gather_view(&self) -> CoreView {
        let mut tracks: HashMap<SessionId, Vec<TrackView>> = HashMap::new();
        for (_, stream) in self.streams.entries() {
            let s = stream.borrow();
            if let Upstream::Publisher(session) = s.upstream {
                let (video, audio) = s.headers();
                let views = video
                    .and_then(video_track)
                    .into_iter()
                    .chain(audio.and_then(audio_track))
                    .collect();
                tracks.insert(session, views);
            }
        }
        let conns = self
            .sessions
            .all()
            .iter()
            .map(|(id, control)| {
                let mut view = control.info.view(self.id.0);
                if let Some(t) = tracks.remove(id) {
                    view.tracks = t;
                }
                view
            })
            .collect();
        let hls_muxers = self
            .hls
            .borrow()
            .iter()
            .map(|(key, m)| {
                let (created_ms, last_request_ms, bytes_sent) = m.borrow().usage();
                HlsMuxerView {
                    path: key.path(),
                    created_ms,
                    last_request_ms,
                    bytes_sent,
                }
            })
            .collect();
        let (sources, forwards) = self.links.views();
        CoreView {
            stats: self.stats(),
            conns,
            hls_muxers,
            hls_sessions: self.hls_sessions.borrow().views(),
            sources,
            forwards,
            recordings: self.record_views(),
        }
    }

    /// Tells the connection `id` to close; false if it is not on this core.
    pub(super) fn kick_conn(&self, id: ConnUuid) -> bool {
        let found = self
            .sessions
            .all()
            .into_iter()
            .find(|(_, c)| c.info.uuid == id);
        match found {
            Some((session, control)) => {
                info!(core = %self.id, conn = %session, id = %id, "connection kicked through the API");
                control.notify(Notice::Kicked);
                true
            }
            None => false,
        }
    }

    /// After a configuration change: closes the sessions whose path no entry matches any more,
    /// or whose entry changed name or source. Every other session keeps running.
    pub(super) fn close_unconfigured(&self, old: &Snapshot, new: &Snapshot) {
        for (session, control) in self.sessions.all() {
            let Some(path) = control.info.path() else {
                continue;
            };
            let before = old.config.path_conf(&path);
            let after = new.config.path_conf(&path);
            let keep = match (&before, &after) {
                (Some(b), Some(a)) => a.name == b.name && a.source == b.source,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if !keep {
                info!(core = %self.id, conn = %session, path, "closing: its path configuration was removed or changed");
                control.notify(Notice::PathRemoved);
            }
        }
    }
}

/// A video sequence header's track: MediaMTX's codec label and what the record says. The
/// record follows the 5-byte tag header in both the legacy and the enhanced form.
fn video_track(header: &Frame) -> Option<TrackView> {
    let record = header.payload.get(5..).unwrap_or_default();
    let (codec, props) = match header.video_codec()? {
        VideoCodec::H264 => (
            "H264",
            fmp4::avc_record_props(record).map(|p| TrackProps::Video {
                profile: p.profile_idc,
                level: p.level_idc,
                size: p.size,
            }),
        ),
        VideoCodec::H265 => (
            "H265",
            fmp4::hevc_record_props(record).map(|(profile, level)| TrackProps::Video {
                profile,
                level,
                size: None,
            }),
        ),
        VideoCodec::Av1 => ("AV1", None),
        VideoCodec::Vp9 => ("VP9", None),
        VideoCodec::Other(_) => ("Generic", None),
    };
    Some(TrackView {
        codec,
        props: props.unwrap_or(TrackProps::Unread),
    })
}

/// An audio sequence header's track (an AAC AudioSpecificConfig follows 2 bytes of tag header).
fn audio_track(header: &Frame) -> Option<TrackView> {
    let (codec, props) = match header.audio_codec()? {
        AudioCodec::Aac => (
            "MPEG-4 Audio",
            header
                .payload
                .get(2..)
                .and_then(fmp4::aac_config_props)
                .map(|(sample_rate, channels)| TrackProps::Aac {
                    sample_rate,
                    channels,
                }),
        ),
        AudioCodec::Mp3 => ("MPEG-1/2 Audio", None),
        AudioCodec::G711ALaw | AudioCodec::G711MuLaw => ("G711", None),
        AudioCodec::Other(_) => ("Generic", None),
    };
    Some(TrackView {
        codec,
        props: props.unwrap_or(TrackProps::Unread),
    })
}
