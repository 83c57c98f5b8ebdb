#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the real clients the end-to-end tests drive
# (ffmpeg/ffprobe, nginx, openssl, GStreamer's RTSP server, from Debian) when they are missing,
# runs every test of the workspace, then a CI-sized comparison run against nginx-rtmp.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
# The HTTPS pull test terminates TLS with nginx in front of an engine (certificate from openssl).
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The RTSP source tests run GStreamer's RTSP server (tests/scripts/rtsp_server.py) with the
# system python3: H.264 from x264enc (plugins-ugly), AAC from avenc_aac (libav).
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' >/dev/null 2>&1 ||
    missing+=(gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-base
        gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# The relay and network-link tests build network namespaces of their own (veth links, MTU 1500).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The cluster tests run a real Redis (and Redis Sentinel) and read with rtmpdump and curl; the
# MediaMTX API tests read HTTP-FLV with curl beside an RTMP publisher.
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v rtmpdump >/dev/null 2>&1 || missing+=(rtmpdump)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The browser tests drive headless Debian chromium over the DevTools protocol.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]} (Debian packages)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The end-to-end tests start target/debug/corestream; build it first so a partial run
# (`tests/run.sh -p tests`) never tests a stale binary.
cargo build -p engine --bin corestream
cargo test --workspace "$@"

# The side-by-side comparison against nginx-rtmp, CI-sized (installs nginx + libnginx-mod-rtmp
# when missing): it must finish and print both columns.
perf-scripts/ci-smoke.sh
