//! Player pages on the HTTP port: `GET /{path}` plays a stream in the browser (LL-HLS with
//! hls.js, or HTTP-FLV with mpegts.js, by `?type=`), `GET /` lists the live streams. The players
//! are vendored from their npm packages (see `engine/assets/player/VENDORED.md`) and served from
//! the binary, so a page needs nothing but this server.

/// hls.js 1.7.4, `dist/hls.min.js` (Apache-2.0).
const HLS_JS: &[u8] = include_bytes!("../../assets/player/hls.min.js");
/// mpegts.js 1.8.0, `dist/mpegts.js` (Apache-2.0).
const MPEGTS_JS: &[u8] = include_bytes!("../../assets/player/mpegts.js");
const HLS_JS_LICENSE: &[u8] = include_bytes!("../../assets/player/hls.js.LICENSE");
const MPEGTS_JS_LICENSE: &[u8] = include_bytes!("../../assets/player/mpegts.js.LICENSE");

/// Where the vendored files are served; a leading `_` keeps it apart from `{app}/{stream}`.
pub(super) const ASSET_PREFIX: &str = "/_player/";

/// A vendored file by its name under [`ASSET_PREFIX`]: (content type, bytes).
pub(super) fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    match name {
        "hls.min.js" => Some(("text/javascript; charset=utf-8", HLS_JS)),
        "mpegts.js" => Some(("text/javascript; charset=utf-8", MPEGTS_JS)),
        "hls.js.LICENSE" => Some(("text/plain; charset=utf-8", HLS_JS_LICENSE)),
        "mpegts.js.LICENSE" => Some(("text/plain; charset=utf-8", MPEGTS_JS_LICENSE)),
        _ => None,
    }
}

/// Which player a page uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PlayerKind {
    /// hls.js (low-latency mode) on `/{path}.m3u8`; native HLS where MSE is missing (iOS).
    Hls,
    /// mpegts.js on `/{path}.flv`.
    Flv,
}

impl PlayerKind {
    /// `?type=flv` picks HTTP-FLV; anything else (or nothing) HLS.
    pub(super) fn from_query(query: &str) -> PlayerKind {
        let flv = query.split('&').any(|p| p.eq_ignore_ascii_case("type=flv"));
        if flv {
            PlayerKind::Flv
        } else {
            PlayerKind::Hls
        }
    }
}

/// Escapes text for HTML (element content and double-quoted attributes).
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page that plays `path` (`app/stream`). Its script derives the media URL from its own
/// location (path plus `.m3u8` or `.flv`, and its query without `type`), so a signed page URL
/// plays with the same signature. It records what a test (or an operator's console) wants to
/// know in `window.corestream`: errors, stalls after the first frame, when playback started.
pub(super) fn player_page(path: &str, kind: PlayerKind) -> String {
    let title = html_escape(path);
    let (script, other, other_label) = match kind {
        PlayerKind::Hls => ("hls.min.js", "flv", "HTTP-FLV"),
        PlayerKind::Flv => ("mpegts.js", "hls", "LL-HLS"),
    };
    let kind_js = match kind {
        PlayerKind::Hls => "hls",
        PlayerKind::Flv => "flv",
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>html,body{{margin:0;background:#111;color:#ddd;font:14px sans-serif}}video{{display:block;width:100%;max-height:90vh;background:#000}}p{{margin:.5em}}a{{color:#8cf}}</style>
</head><body>
<video id="video" muted autoplay playsinline controls></video>
<p>{title} &middot; <a id="other" href="?type={other}">{other_label}</a> &middot; <a href="/">streams</a> &middot; <span id="status"></span></p>
<script src="/_player/{script}"></script>
<script>
"use strict";
(function () {{
  var kind = "{kind_js}";
  var video = document.getElementById("video");
  var statusEl = document.getElementById("status");
  var state = window.corestream = {{ kind: kind, errors: [], warnings: [], stalls: 0, playing: false,
    loadedAt: performance.now(), firstFrameAt: null }};
  function status(s) {{ statusEl.textContent = s; }}
  // The page's own query (a signature, a token) goes on to the media, without `type`.
  var params = new URLSearchParams(location.search);
  params.delete("type");
  var query = params.toString();
  var other = new URLSearchParams(query);
  other.set("type", kind === "hls" ? "flv" : "hls");
  document.getElementById("other").href = "?" + other.toString();
  var src = location.pathname.replace(/\/+$/, "") + (kind === "hls" ? ".m3u8" : ".flv") + (query ? "?" + query : "");
  video.addEventListener("playing", function () {{
    if (state.firstFrameAt === null) {{ state.firstFrameAt = performance.now(); }}
    state.playing = true;
    status("playing");
  }});
  // How much media is buffered past the playhead, in the range that holds it.
  function ahead() {{
    var b = video.buffered;
    for (var i = 0; i < b.length; i++) {{
      if (b.start(i) <= video.currentTime + 0.05 && video.currentTime < b.end(i)) {{ return b.end(i) - video.currentTime; }}
    }}
    return 0;
  }}
  video.addEventListener("waiting", function () {{
    if (state.firstFrameAt === null) {{ return; }}
    // A stall is playback running out of media. A seek (the player moving to its live position,
    // or over a gap) waits too, and so does the decoder for a moment with media in hand: those
    // are counted apart.
    var kind = video.seeking ? "seek" : ahead() < 0.1 ? "stall" : "wait";
    if (kind === "seek") {{ state.seeks = (state.seeks || 0) + 1; }}
    else if (kind === "wait") {{ state.waits = (state.waits || 0) + 1; }}
    else {{ state.stalls += 1; }}
    // When, where and with how much buffered: what a stall is diagnosed from.
    var b = video.buffered, ranges = [];
    for (var i = 0; i < b.length; i++) {{ ranges.push([b.start(i), b.end(i)]); }}
    state.stallLog = (state.stallLog || []).concat([{{ kind: kind, at: Math.round(performance.now() - state.firstFrameAt),
      t: video.currentTime, buffered: ranges, rate: video.playbackRate,
      recent: (state.recent || []).slice(-6) }}]).slice(-10);
    status("buffering");
  }});
  function fail(what) {{ state.errors.push(String(what)); status("error: " + what); }}
  video.addEventListener("error", function () {{ fail("video: " + (video.error && video.error.message)); }});
  if (kind === "hls") {{
    if (window.Hls && Hls.isSupported()) {{
      // Catch up (at up to 1.25x) when behind the target latency, rather than stay behind.
      var hls = new Hls({{ lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.25 }});
      state.player = hls;
      hls.on(Hls.Events.ERROR, function (_, d) {{
        if (d.fatal) {{ fail(d.type + ": " + d.details); }} else {{ state.warnings.push(d.details); }}
      }});
      hls.on(Hls.Events.FRAG_BUFFERED, function (_, d) {{
        var f = d.part || d.frag;
        state.recent = (state.recent || []).concat([[d.frag.type, d.frag.sn, d.part ? d.part.index : -1,
          +f.start.toFixed(3), +f.duration.toFixed(3)]]).slice(-12);
      }});
      hls.loadSource(src);
      hls.attachMedia(video);
    }} else if (video.canPlayType("application/vnd.apple.mpegurl")) {{
      video.src = src;
    }} else {{
      fail("this browser plays neither HLS nor Media Source Extensions");
    }}
  }} else {{
    if (window.mpegts && mpegts.getFeatureList().mseLivePlayback) {{
      // The FLV header fixes the tracks mpegts.js makes buffers for: when the stream ends (or a
      // track it did not announce breaks the player), start again with a fresh header.
      var start = function () {{
        var player = mpegts.createPlayer({{ type: "flv", isLive: true, url: new URL(src, location.href).href }},
          {{ enableStashBuffer: false, liveSync: true }});
        state.player = player;
        var again = function () {{
          player.destroy();
          state.restarts = (state.restarts || 0) + 1;
          setTimeout(start, 1000);
        }};
        player.on(mpegts.Events.ERROR, function (type, detail) {{ fail(type + ": " + detail); again(); }});
        player.on(mpegts.Events.LOADING_COMPLETE, again);
        player.attachMediaElement(video);
        player.load();
        playWhenBuffered();
      }};
      // HTTP-FLV starts at the stream's last keyframe, which may be only a frame ago: start once
      // 0.3 s is buffered, not at the very edge, where any jitter stalls the picture.
      var playWhenBuffered = function () {{
        var b = video.buffered, last = b.length - 1;
        if (last >= 0 && b.end(last) - Math.max(b.start(last), video.currentTime) >= 0.3) {{
          var p = video.play();
          if (p && p.catch) {{ p.catch(function (e) {{ state.warnings.push("play: " + e); }}); }}
        }} else {{
          setTimeout(playWhenBuffered, 50);
        }}
      }};
      video.autoplay = false;
      start();
    }} else {{
      fail("this browser has no Media Source Extensions for HTTP-FLV");
    }}
  }}
  if (kind === "hls") {{
    var p = video.play();
    if (p && p.catch) {{ p.catch(function (e) {{ state.warnings.push("play: " + e); }}); }}
  }}
}})();
</script>
</body></html>
"#
    )
}

/// The page listing live streams (`app/stream` paths), each linking to its player.
pub(super) fn index_page(paths: &[String]) -> String {
    let mut items = String::new();
    for p in paths {
        let p = html_escape(p);
        items.push_str(&format!(
            "<li><a href=\"/{p}\">{p}</a> (<a href=\"/{p}?type=flv\">HTTP-FLV</a>)</li>\n"
        ));
    }
    if items.is_empty() {
        items.push_str("<li>no live streams</li>\n");
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>corestream</title>
<style>body{{font:14px sans-serif;margin:2em}}</style></head><body>
<h1>Live streams</h1>
<ul id="streams">
{items}</ul>
<p><small>Players: <a href="/_player/hls.js.LICENSE">hls.js</a>, <a href="/_player/mpegts.js.LICENSE">mpegts.js</a> (Apache-2.0)</small></p>
</body></html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_assets_and_escaping() {
        assert_eq!(PlayerKind::from_query(""), PlayerKind::Hls);
        assert_eq!(PlayerKind::from_query("a=b&type=flv"), PlayerKind::Flv);
        assert_eq!(PlayerKind::from_query("type=hls"), PlayerKind::Hls);
        assert!(asset("hls.min.js").is_some_and(|(_, b)| b.starts_with(b"!function")));
        assert!(asset("mpegts.js").is_some());
        assert!(asset("x.js").is_none());
        let page = player_page("live/<cam>", PlayerKind::Flv);
        assert!(page.contains("<title>live/&lt;cam&gt;</title>"));
        assert!(page.contains("src=\"/_player/mpegts.js\""));
        let index = index_page(&["live/a\"b".to_owned()]);
        assert!(index.contains("href=\"/live/a&quot;b\""));
        assert!(index_page(&[]).contains("no live streams"));
    }
}
