//! Live media playlist rendering (RFC 8216 section 4).

use std::fmt::Write;

use super::Segmenter;

/// Renders the playlist of `seg`'s window. `#EXT-X-TARGETDURATION` is fixed for the life of the
/// playlist (see [`Segmenter::target_seconds`]).
pub(super) fn render(seg: &Segmenter) -> String {
    let target = seg.target_seconds();
    let mut out = String::with_capacity(128 + seg.config().window * 64);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        seg.media_sequence()
    );
    let discontinuity_sequence = seg.discontinuity_sequence();
    if discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
        );
    }
    for s in seg.listed() {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = write!(
            out,
            "#EXTINF:{}.{:03},\n{}\n",
            s.duration_ms / 1000,
            s.duration_ms % 1000,
            seg.segment_uri(s.sequence)
        );
    }
    out
}
