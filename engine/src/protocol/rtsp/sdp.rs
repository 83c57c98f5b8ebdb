//! The parts of an SDP (RFC 8866) a pulling client needs: each media's type, payload type,
//! `rtpmap`, `fmtp` and `control`, and the session-level `control`.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("the sdp is not utf-8")]
    NotUtf8,
    #[error("malformed media line '{0}'")]
    MediaLine(String),
    #[error("the sdp has no media")]
    NoMedia,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// `video`, `audio`, `application`, …
    pub media: String,
    pub payload_type: u8,
    /// The `rtpmap` encoding name, upper-cased (`H264`, `MPEG4-GENERIC`); for static payload
    /// types without `rtpmap`, their RFC 3551 name (`PCMU`, `PCMA`).
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
    /// `fmtp` parameters, names lower-cased.
    pub fmtp: HashMap<String, String>,
    /// The `control` attribute, as written.
    pub control: Option<String>,
}

impl Track {
    pub fn fmtp(&self, name: &str) -> Option<&str> {
        self.fmtp.get(name).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    /// The session-level `control` attribute.
    pub control: Option<String>,
    pub tracks: Vec<Track>,
}

impl Sdp {
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut sdp = Sdp {
            control: None,
            tracks: Vec::new(),
        };
        for line in text.lines() {
            let line = line.trim_end();
            if let Some(m) = line.strip_prefix("m=") {
                let parts: Vec<&str> = m.split_whitespace().collect();
                let pt = parts
                    .get(3)
                    .and_then(|p| p.parse::<u8>().ok())
                    .ok_or_else(|| SdpError::MediaLine(line.to_owned()))?;
                let (encoding, clock_rate, channels) = match pt {
                    0 => ("PCMU", 8000, Some(1)),
                    8 => ("PCMA", 8000, Some(1)),
                    _ => ("", 0, None),
                };
                sdp.tracks.push(Track {
                    media: parts[0].to_owned(),
                    payload_type: pt,
                    encoding: encoding.to_owned(),
                    clock_rate,
                    channels,
                    fmtp: HashMap::new(),
                    control: None,
                });
                continue;
            }
            let Some(attr) = line.strip_prefix("a=") else {
                continue;
            };
            let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
            let Some(track) = sdp.tracks.last_mut() else {
                if name == "control" {
                    sdp.control = Some(value.to_owned());
                }
                continue;
            };
            match name {
                "control" => track.control = Some(value.to_owned()),
                "rtpmap" => {
                    let Some((pt, map)) = value.split_once(' ') else {
                        continue;
                    };
                    if pt.parse::<u8>().ok() != Some(track.payload_type) {
                        continue;
                    }
                    let mut it = map.trim().split('/');
                    track.encoding = it.next().unwrap_or_default().to_ascii_uppercase();
                    track.clock_rate = it.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                    track.channels = it.next().and_then(|c| c.parse().ok());
                }
                "fmtp" => {
                    let Some((pt, params)) = value.split_once(' ') else {
                        continue;
                    };
                    if pt.parse::<u8>().ok() != Some(track.payload_type) {
                        continue;
                    }
                    for p in params.split(';') {
                        let p = p.trim();
                        if p.is_empty() {
                            continue;
                        }
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        track
                            .fmtp
                            .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                _ => {}
            }
        }
        if sdp.tracks.is_empty() {
            return Err(SdpError::NoMedia);
        }
        Ok(sdp)
    }
}

/// The URL a `control` attribute names, relative to `base` (RFC 2326 C.1.1).
pub fn resolve_control(base: &str, control: Option<&str>) -> String {
    match control {
        None | Some("*") | Some("") => base.to_owned(),
        Some(c) if c.to_ascii_lowercase().starts_with("rtsp://") => c.to_owned(),
        Some(c) => {
            // A base with a query keeps it after the control path is added.
            let (path, query) = match base.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (base, None),
            };
            let mut url = if path.ends_with('/') {
                format!("{path}{c}")
            } else {
                format!("{path}/{c}")
            };
            if let Some(q) = query {
                url = format!("{url}?{q}");
            }
            url
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like what GStreamer's rtsp-server answers for x264enc + avenc_aac, plus a static
    /// payload type without rtpmap.
    pub(crate) const GST_SDP: &str = "v=0\r\n\
o=- 1188340656180883 1 IN IP4 127.0.0.1\r\n\
s=Session streamed with GStreamer\r\n\
i=rtsp-server\r\n\
t=0 0\r\n\
a=tool:GStreamer\r\n\
a=type:broadcast\r\n\
a=control:*\r\n\
a=range:npt=now-\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:2000\r\n\
a=rtpmap:96 H264/90000\r\n\
a=framerate:30\r\n\
a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z2QAFqzZQUH7ARAAAAMAEAAAAwPI8WLZYA==,aOvjyyLA;profile-level-id=640016;level-asymmetry-allowed=1\r\n\
a=control:stream=0\r\n\
m=audio 0 RTP/AVP 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 streamtype=5;profile-level-id=2;mode=AAC-hbr;config=1210;sizelength=13;indexlength=3;indexdeltalength=3\r\n\
a=control:stream=1\r\n\
m=audio 0 RTP/AVP 0\r\n\
a=control:trackID=3\r\n";

    #[test]
    fn gstreamer_sdp() {
        let sdp = Sdp::parse(GST_SDP.as_bytes()).unwrap();
        assert_eq!(sdp.control.as_deref(), Some("*"));
        assert_eq!(sdp.tracks.len(), 3);
        let v = &sdp.tracks[0];
        assert_eq!((v.media.as_str(), v.payload_type), ("video", 96));
        assert_eq!((v.encoding.as_str(), v.clock_rate), ("H264", 90000));
        assert_eq!(v.fmtp("packetization-mode"), Some("1"));
        assert_eq!(v.control.as_deref(), Some("stream=0"));
        let a = &sdp.tracks[1];
        assert_eq!(
            (a.encoding.as_str(), a.clock_rate, a.channels),
            ("MPEG4-GENERIC", 44100, Some(2))
        );
        assert_eq!(a.fmtp("config"), Some("1210"));
        assert_eq!(a.fmtp("sizelength"), Some("13"));
        let g = &sdp.tracks[2];
        assert_eq!((g.encoding.as_str(), g.clock_rate), ("PCMU", 8000));
        assert_eq!(Sdp::parse(b"v=0\r\n"), Err(SdpError::NoMedia));
    }

    #[test]
    fn control_urls() {
        let base = "rtsp://cam:8554/test";
        assert_eq!(
            resolve_control(base, Some("stream=0")),
            "rtsp://cam:8554/test/stream=0"
        );
        assert_eq!(
            resolve_control("rtsp://cam/test/", Some("trackID=1")),
            "rtsp://cam/test/trackID=1"
        );
        assert_eq!(resolve_control(base, Some("*")), base);
        assert_eq!(resolve_control(base, None), base);
        assert_eq!(
            resolve_control(base, Some("rtsp://other/x")),
            "rtsp://other/x"
        );
        assert_eq!(
            resolve_control("rtsp://c/s?a=1", Some("t=1")),
            "rtsp://c/s/t=1?a=1"
        );
    }
}
