//! Reading an HLS playlist (RFC 8216 section 4), for pulling an HLS origin: a multivariant
//! playlist's variants, or a media playlist's segments. Pure: text in, a description out.

/// What a playlist says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playlist {
    /// `#EXT-X-STREAM-INF` entries: the variants' URIs, in order.
    Multivariant {
        variants: Vec<String>,
    },
    Media(MediaPlaylist),
}

/// A media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// `#EXT-X-TARGETDURATION`, in milliseconds.
    pub target_duration_ms: u64,
    /// `#EXT-X-MEDIA-SEQUENCE`: the number of the first segment listed.
    pub media_sequence: u64,
    /// The segments, oldest first; the n-th is number `media_sequence + n`.
    pub segments: Vec<MediaSegment>,
    /// `#EXT-X-ENDLIST`: no segment will be added.
    pub ended: bool,
    /// `#EXT-X-MAP`: fMP4 segments (with an initialization section), not MPEG-TS.
    pub fmp4: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSegment {
    pub uri: String,
    /// `#EXTINF`, in milliseconds.
    pub duration_ms: u64,
    /// The `URI` of the `#EXT-X-MAP` in effect: its fMP4 init segment.
    pub map_uri: Option<String>,
}

/// Why a playlist cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum M3u8Error {
    #[error("not an m3u8 playlist (no #EXTM3U first line)")]
    NotAPlaylist,
    #[error("playlist line {line}: {tag} has no valid value")]
    BadTag { line: usize, tag: &'static str },
    #[error("playlist line {line}: a segment URI without #EXTINF")]
    UriWithoutDuration { line: usize },
    #[error("a multivariant playlist without variants")]
    NoVariant,
    #[error("playlist line {line}: #EXT-X-MAP without a URI attribute")]
    MapWithoutUri { line: usize },
}

/// Parses a playlist.
pub fn parse(text: &str) -> Result<Playlist, M3u8Error> {
    let mut lines = text.lines().map(str::trim).enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_start_matches('\u{feff}') == "#EXTM3U" => {}
        _ => return Err(M3u8Error::NotAPlaylist),
    }
    let mut variants = Vec::new();
    let mut multivariant = false;
    let mut expect_variant = false;
    let mut media = MediaPlaylist {
        target_duration_ms: 0,
        media_sequence: 0,
        segments: Vec::new(),
        ended: false,
        fmp4: false,
    };
    let mut duration: Option<u64> = None;
    let mut map_uri: Option<String> = None;
    for (i, line) in lines {
        let number = i + 1;
        if line.is_empty() {
            continue;
        }
        if let Some(tag) = line.strip_prefix('#') {
            let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
            match name {
                "EXT-X-STREAM-INF" => {
                    multivariant = true;
                    expect_variant = true;
                }
                "EXT-X-TARGETDURATION" => {
                    let secs: u64 = value.parse().map_err(|_| M3u8Error::BadTag {
                        line: number,
                        tag: "#EXT-X-TARGETDURATION",
                    })?;
                    media.target_duration_ms = secs.saturating_mul(1000);
                }
                "EXT-X-MEDIA-SEQUENCE" => {
                    media.media_sequence = value.parse().map_err(|_| M3u8Error::BadTag {
                        line: number,
                        tag: "#EXT-X-MEDIA-SEQUENCE",
                    })?;
                }
                "EXTINF" => {
                    let secs = value.split(',').next().unwrap_or_default();
                    let secs: f64 = secs
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or(M3u8Error::BadTag {
                            line: number,
                            tag: "#EXTINF",
                        })?;
                    duration = Some((secs * 1000.0).round() as u64);
                }
                "EXT-X-ENDLIST" => media.ended = true,
                "EXT-X-MAP" => {
                    media.fmp4 = true;
                    let uri = value
                        .split_once("URI=\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .map(|(uri, _)| uri.to_owned())
                        .ok_or(M3u8Error::MapWithoutUri { line: number })?;
                    map_uri = Some(uri);
                }
                _ => {}
            }
            continue;
        }
        if expect_variant {
            variants.push(line.to_owned());
            expect_variant = false;
        } else if !multivariant {
            let duration_ms = duration
                .take()
                .ok_or(M3u8Error::UriWithoutDuration { line: number })?;
            media.segments.push(MediaSegment {
                uri: line.to_owned(),
                duration_ms,
                map_uri: map_uri.clone(),
            });
        }
    }
    if multivariant {
        if variants.is_empty() {
            return Err(M3u8Error::NoVariant);
        }
        return Ok(Playlist::Multivariant { variants });
    }
    Ok(Playlist::Media(media))
}

/// Resolves `uri` against the path of the playlist it came from (`base`, a request target such
/// as `/live/s/index.m3u8?x=1`): the request target to ask for, or `None` when it names another
/// server (`http://other/...`), which a pull on one connection cannot follow.
pub fn resolve(base: &str, uri: &str, authority: &str) -> Option<String> {
    if let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    {
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        return (host == authority).then(|| {
            if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            }
        });
    }
    if uri.starts_with('/') {
        return Some(uri.to_owned());
    }
    let base_path = base.split('?').next().unwrap_or_default();
    let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
    let mut segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    for part in path.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                segments.pop();
            }
            p => segments.push(p),
        }
    }
    let mut target = format!("/{}", segments.join("/"));
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_and_multivariant_playlists() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:2.000,\n../s-1-41.ts\n#EXTINF:1.96,\ns-1-42.ts?t=1\n";
        let Playlist::Media(m) = parse(text).unwrap() else {
            panic!()
        };
        assert_eq!((m.target_duration_ms, m.media_sequence), (2000, 41));
        assert_eq!(m.segments.len(), 2);
        assert_eq!(m.segments[1].duration_ms, 1960);
        assert!(!m.ended && !m.fmp4);
        let text =
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.42c01e\"\nstream.m3u8\n";
        assert_eq!(
            parse(text).unwrap(),
            Playlist::Multivariant {
                variants: vec!["stream.m3u8".into()]
            }
        );
        assert_eq!(parse("hello"), Err(M3u8Error::NotAPlaylist));
        assert_eq!(
            parse("#EXTM3U\nseg.ts\n"),
            Err(M3u8Error::UriWithoutDuration { line: 2 })
        );
        let Playlist::Media(m) =
            parse("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1,\na.mp4\n#EXT-X-ENDLIST\n")
                .unwrap()
        else {
            panic!()
        };
        assert!(m.fmp4 && m.ended);
        assert_eq!(m.segments[0].map_uri.as_deref(), Some("init.mp4"));
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n"),
            Err(M3u8Error::MapWithoutUri { line: 2 })
        );
    }

    #[test]
    fn uris_resolve_against_the_playlist() {
        let base = "/live/s/index.m3u8?token=x";
        assert_eq!(
            resolve(base, "../s-1-3.ts", "h:80").as_deref(),
            Some("/live/s-1-3.ts")
        );
        assert_eq!(
            resolve(base, "seg.ts?a=1", "h:80").as_deref(),
            Some("/live/s/seg.ts?a=1")
        );
        assert_eq!(resolve(base, "/x.ts", "h:80").as_deref(), Some("/x.ts"));
        assert_eq!(
            resolve(base, "http://h:80/y.ts", "h:80").as_deref(),
            Some("/y.ts")
        );
        assert_eq!(resolve(base, "http://other/y.ts", "h:80"), None);
    }
}
