#!/usr/bin/env python3
"""HLS viewers as a player fetches: N threads that follow one live playlist for a bounded time.

For Low-Latency HLS (a playlist with #EXT-X-PART) each viewer makes blocking playlist requests
(_HLS_msn/_HLS_part) and fetches every new part, as hls.js does in low-latency mode; otherwise it
reloads the playlist every half target duration and fetches every new segment. It prints one JSON
line: viewers, requests, bytes, errors. Used by perf-scripts/hls-load.sh; standard library only.

    hls-viewers.py URL VIEWERS SECONDS
"""
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request

TIMEOUT = 10


def fetch(url):
    """The body, and the URL that answered (after redirects)."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return r.read(), r.geturl()


def parse(text):
    """(media sequence, [(uri, is_part, msn, part_index)], next part index of the last msn)."""
    seq = 0
    items = []
    msn = None
    part = 0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(line.split(":", 1)[1])
            msn = seq
        elif line.startswith("#EXT-X-PART:"):
            m = re.search(r'URI="([^"]+)"', line)
            if m:
                items.append((m.group(1), True, msn, part))
                part += 1
        elif line and not line.startswith("#"):
            items.append((line, False, msn, None))
            msn += 1
            part = 0
    return seq, items, (msn, part)


def viewer(url, deadline, stats, lock):
    seen = set()
    requests = 0
    bytes_in = 0
    errors = 0
    low_latency = None
    next_msn = None
    while time.monotonic() < deadline:
        try:
            playlist_url = url
            if low_latency and next_msn is not None:
                q = urllib.parse.urlencode({"_HLS_msn": next_msn[0], "_HLS_part": next_msn[1]})
                playlist_url = f"{url}{'&' if '?' in url else '?'}{q}"
            body, answered = fetch(playlist_url)
            text = body.decode()
            requests += 1
            if next_msn is None:
                # As players do: reload from where the first request was redirected (the
                # server's HLS session is in its query), without the blocking-reload parameters.
                url = answered
            low_latency = "#EXT-X-PART:" in text
            _, items, next_msn = parse(text)
            for uri, is_part, _, _ in items:
                # Low-latency viewers take parts; others take whole segments.
                if is_part != bool(low_latency) or uri in seen:
                    continue
                seen.add(uri)
                if len(seen) > 2 * len(items):
                    seen = set(u for u, _, _, _ in items)
                if time.monotonic() >= deadline:
                    break
                bytes_in += len(fetch(urllib.parse.urljoin(url, uri))[0])
                requests += 1
            if not low_latency:
                target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", text)
                time.sleep(max(0.2, int(target.group(1)) / 2 if target else 1))
        except Exception:  # a failed request is counted, the viewer goes on
            errors += 1
            time.sleep(0.2)
    with lock:
        stats["requests"] += requests
        stats["bytes"] += bytes_in
        stats["errors"] += errors


def main():
    url, viewers, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    deadline = time.monotonic() + seconds
    stats = {"viewers": viewers, "requests": 0, "bytes": 0, "errors": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=viewer, args=(url, deadline, stats, lock), daemon=True)
        for _ in range(viewers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 2 * TIMEOUT)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
