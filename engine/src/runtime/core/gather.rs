//! The data core's side of the control API: reporting its connections, kicking one, and closing
//! the sessions a configuration change leaves without a path. Kept apart from the media path in
//! `core.rs`; everything here runs on the core's own thread, answering messages from the control
//! core.

use std::collections::HashMap;

use tracing::info;

use super::{Core, Notice};
use crate::config::Snapshot;
use crate::media::{AudioCodec, VideoCodec};
use crate::registry::Upstream;
use crate::runtime::{ConnUuid, CoreView, SessionId};

impl Core {
    /// This core's counters and connections, publishers with their tracks.
    pub(super) fn gather_view(&self) -> CoreView {
        let mut tracks: HashMap<SessionId, Vec<&'static str>> = HashMap::new();
        for stream in self.streams.borrow().values() {
            let s = stream.borrow();
            if let Upstream::Publisher(session) = s.upstream {
                let (video, audio) = s.codecs();
                let names = video
                    .map(video_track)
                    .into_iter()
                    .chain(audio.map(audio_track))
                    .collect();
                tracks.insert(session, names);
            }
        }
        let conns = self
            .sessions
            .borrow()
            .iter()
            .map(|(id, control)| {
                let mut view = control.info.view(self.id.0);
                if let Some(t) = tracks.remove(id) {
                    view.tracks = t;
                }
                view
            })
            .collect();
        CoreView {
            stats: self.stats(),
            conns,
        }
    }

    /// Tells the connection `id` to close; false if it is not on this core.
    pub(super) fn kick_conn(&self, id: ConnUuid) -> bool {
        let found = self
            .sessions
            .borrow()
            .iter()
            .find(|(_, c)| c.info.uuid == id)
            .map(|(s, c)| (*s, c.clone()));
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
        let sessions: Vec<_> = self
            .sessions
            .borrow()
            .iter()
            .map(|(s, c)| (*s, c.clone()))
            .collect();
        for (session, control) in sessions {
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

/// MediaMTX's track names.
fn video_track(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "H264",
        VideoCodec::H265 => "H265",
        VideoCodec::Av1 => "AV1",
        VideoCodec::Vp9 => "VP9",
        VideoCodec::Other(_) => "Generic",
    }
}

fn audio_track(codec: AudioCodec) -> &'static str {
    match codec {
        AudioCodec::Aac => "MPEG-4 Audio",
        AudioCodec::Mp3 => "MPEG-1/2 Audio",
        AudioCodec::G711ALaw | AudioCodec::G711MuLaw => "G711",
        AudioCodec::Other(_) => "Generic",
    }
}
