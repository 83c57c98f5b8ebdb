#!/usr/bin/python3
"""GStreamer's RTSP server for the RTSP source tests: a 320x240 25 fps H.264 test pattern and a
stereo 44.1 kHz AAC tone on rtsp://127.0.0.1:PORT/MOUNT, optionally behind Digest auth.

usage: rtsp_server.py PORT MOUNT [USER:PASSWORD]   (prints "ready" once it listens)

It serves RTP over UDP and over TCP (interleaved); with RTSP_TCP_ONLY=1 in the environment it
refuses UDP (SETUP answers 461 Unsupported Transport), as some cameras and NATed servers do.
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

# RTSP_SIZE (WIDTHxHEIGHT) and RTSP_KBPS change the video for measurements; the tests use the
# defaults.
WIDTH, HEIGHT = os.environ.get("RTSP_SIZE", "320x240").split("x")
KBPS = os.environ.get("RTSP_KBPS")
PIPELINE = (
    f"( videotestsrc is-live=true ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=25/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
    + (f"bitrate={KBPS} " if KBPS else "")
    + "! rtph264pay name=pay0 pt=96 "
    "audiotestsrc is-live=true ! audioconvert ! audioresample "
    "! audio/x-raw,rate=44100,channels=2 ! avenc_aac ! rtpmp4gpay name=pay1 pt=97 )"
)


def main():
    Gst.init(None)
    port, mount = sys.argv[1], sys.argv[2]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    tcp_only = os.environ.get("RTSP_TCP_ONLY") == "1"
    # A shared media whose UDP SETUP was refused stays unprepared for a while (DESCRIBE answers
    # 503): with UDP refused, every client gets a media of its own.
    factory.set_shared(not tcp_only)
    if tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if len(sys.argv) > 3:
        user, password = sys.argv[3].split(":", 1)
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_digest(user, password, token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print("cannot listen", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


main()
