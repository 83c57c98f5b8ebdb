//! Which tracks an FLV header announces.
//!
//! flv.js and mpegts.js create one Media Source buffer per track the header's `TypeFlagsAudio` /
//! `TypeFlagsVideo` announce and start playing only when every announced track has its codec
//! configuration: a header that claims audio on a video-only stream makes them wait forever. So
//! the flags must say what the stream has, from its metadata and sequence headers.

use crate::protocol::rtmp::amf0::{self, Amf0Value};

/// The tracks of a stream, as an FLV header flags them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tracks {
    pub audio: bool,
    pub video: bool,
}

impl Tracks {
    /// Both tracks: what a header says when nothing is known yet (players then wait for both
    /// rather than miss one).
    pub const BOTH: Tracks = Tracks {
        audio: true,
        video: true,
    };

    pub fn is_empty(self) -> bool {
        !self.audio && !self.video
    }

    /// Whether `self` announces every track `other` has.
    pub fn covers(self, other: Tracks) -> bool {
        (self.audio || !other.audio) && (self.video || !other.video)
    }

    pub fn union(self, other: Tracks) -> Tracks {
        Tracks {
            audio: self.audio || other.audio,
            video: self.video || other.video,
        }
    }
}

/// The tracks an `onMetaData` script payload (`"onMetaData"` then an object or ECMA array, as a
/// script frame carries it) says the stream has: `hasAudio`/`hasVideo` where the publisher sets
/// them, otherwise the presence of a non-zero `audiocodecid`/`videocodecid`. `None` if the payload
/// is not `onMetaData` or names neither track.
pub fn tracks_from_metadata(payload: &[u8]) -> Option<Tracks> {
    let values = amf0::decode_all(payload).ok()?;
    let mut values = values.iter();
    if values.next()?.as_str()? != "onMetaData" {
        return None;
    }
    let props = values.next()?;
    let says = |flag: &str, codec: &str| -> Option<bool> {
        if let Some(b) = props.get(flag).and_then(Amf0Value::as_bool) {
            return Some(b);
        }
        // ffmpeg writes codec ids as numbers, some encoders as strings ("avc1", "mp4a").
        match props.get(codec)? {
            Amf0Value::Number(n) => Some(*n != 0.0),
            Amf0Value::String(s) => Some(!s.is_empty()),
            _ => None,
        }
    };
    let audio = says("hasAudio", "audiocodecid");
    let video = says("hasVideo", "videocodecid");
    if audio.is_none() && video.is_none() {
        return None;
    }
    Some(Tracks {
        audio: audio.unwrap_or(false),
        video: video.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn metadata(props: &[(&str, Amf0Value)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        amf0::encode_all(
            &mut out,
            &[
                Amf0Value::string("onMetaData"),
                Amf0Value::EcmaArray(
                    props
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect(),
                ),
            ],
        )
        .unwrap();
        out.to_vec()
    }

    #[test]
    fn codec_ids_and_flags() {
        let video_only = metadata(&[
            ("width", Amf0Value::Number(640.0)),
            ("videocodecid", Amf0Value::Number(7.0)),
        ]);
        assert_eq!(
            tracks_from_metadata(&video_only),
            Some(Tracks {
                audio: false,
                video: true
            })
        );
        let audio_only = metadata(&[("audiocodecid", Amf0Value::Number(10.0))]);
        assert_eq!(
            tracks_from_metadata(&audio_only),
            Some(Tracks {
                audio: true,
                video: false
            })
        );
        let flags = metadata(&[
            ("hasAudio", Amf0Value::Boolean(false)),
            ("audiocodecid", Amf0Value::Number(10.0)),
            ("videocodecid", Amf0Value::string("avc1")),
        ]);
        assert_eq!(
            tracks_from_metadata(&flags),
            Some(Tracks {
                audio: false,
                video: true
            })
        );
        assert_eq!(tracks_from_metadata(&metadata(&[])), None);
        assert_eq!(tracks_from_metadata(b"\x02\x00\x03abc"), None);
        assert_eq!(tracks_from_metadata(b""), None);
    }

    #[test]
    fn covers() {
        let video = Tracks {
            audio: false,
            video: true,
        };
        assert!(Tracks::BOTH.covers(video));
        assert!(!video.covers(Tracks::BOTH));
        assert_eq!(video.union(Tracks::BOTH), Tracks::BOTH);
        assert!(Tracks::default().is_empty());
    }
}
