//! ffmpeg and ffprobe, the clients nobody here wrote.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Test media: `seconds` of 320x240 testsrc2 at 25 fps (H.264, a keyframe every 25 frames) with a
/// 1 kHz sine (AAC), published in real time over RTMP.
pub fn publish(url: &str, seconds: u32) -> Child {
    publish_with(url, seconds, &[])
}

/// Like [`publish`], with extra output options (e.g. a higher bitrate).
pub fn publish_with(url: &str, seconds: u32, extra: &[&str]) -> Child {
    publish_sized(url, seconds, "320x240", extra)
}

/// Like [`publish_with`], with the picture size (`WxH`) too.
pub fn publish_sized(url: &str, seconds: u32, size: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=25:duration={seconds}"),
        ])
        // `-re` is per input: the sine is read in real time too, so an audio-only publish
        // (`-vn`) is as long as the others.
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=1000:sample_rate=44100:duration={seconds}"),
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(extra)
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn()
        .expect("ffmpeg is installed (tests/run.sh installs it)")
}

/// What ffprobe found in a stream read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub video_codec: String,
    pub width: u32,
    pub height: u32,
    pub video_frames: u64,
    pub audio_codec: String,
}

/// Starts ffprobe counting every frame of `url` until the stream ends.
pub fn spawn_probe(url: &str) -> Child {
    spawn_probe_with(url, &[])
}

/// Like [`spawn_probe`], with extra input options (e.g. HLS demuxer options).
pub fn spawn_probe_with(url: &str, input_options: &[&str]) -> Child {
    Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-rw_timeout", "15000000"])
        .args(input_options)
        .args([
            "-show_entries",
            "stream=codec_type,codec_name,width,height,nb_read_frames",
        ])
        .args(["-of", "default=noprint_wrappers=1", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffprobe is installed (tests/run.sh installs it)")
}

/// ffprobe of a live HLS playlist that ends when the playlist stops growing (the publisher left,
/// `-m3u8_hold_counters 2`), waited for up to 40 s.
pub fn probe_live_hls(url: &str) -> Probe {
    let probe = spawn_probe_with(url, &["-m3u8_hold_counters", "2"]);
    parse_probe(&wait_with_timeout(
        probe,
        std::time::Duration::from_secs(40),
        "ffprobe hls",
    ))
    .unwrap_or_else(|e| panic!("ffprobe {url}: {e}"))
}

/// Parses ffprobe's `key=value` output of [`spawn_probe`].
pub fn parse_probe(out: &Output) -> Result<Probe, String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut probe = Probe {
        video_codec: String::new(),
        width: 0,
        height: 0,
        video_frames: 0,
        audio_codec: String::new(),
    };
    let mut kind = "";
    let mut codec = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "codec_name" => codec = v.to_owned(),
            "codec_type" => {
                kind = if v == "video" { "video" } else { "audio" };
                if kind == "video" {
                    probe.video_codec = codec.clone();
                } else {
                    probe.audio_codec = codec.clone();
                }
            }
            "width" if kind == "video" || probe.width == 0 => probe.width = v.parse().unwrap_or(0),
            "height" if kind == "video" || probe.height == 0 => {
                probe.height = v.parse().unwrap_or(0)
            }
            "nb_read_frames" if kind == "video" => probe.video_frames = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    if probe.video_codec.is_empty() {
        return Err(format!(
            "ffprobe found no video (status {:?}): stdout {text:?}, stderr {:?}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(probe)
}

/// Starts ffmpeg decoding `url` to nothing, so its frame count can be read at the end.
pub fn spawn_decoder(url: &str) -> Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "info",
            "-rw_timeout",
            "15000000",
            "-i",
            url,
        ])
        .args(["-map", "0:v", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg is installed (tests/run.sh installs it)")
}

/// The number of video frames an ffmpeg decode reported at its end (`frame=  N`).
pub fn decoded_frames(out: &Output) -> Option<u64> {
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text.rsplit("frame=").next()?;
    last.split_whitespace().next()?.parse().ok()
}

/// Waits for `child` with a deadline; kills it and panics if it runs over.
pub fn wait_with_timeout(mut child: Child, timeout: Duration, what: &str) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect child output"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect child output");
                panic!(
                    "{what} did not finish within {timeout:?}; stderr:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
