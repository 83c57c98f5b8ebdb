#!/usr/bin/env bash
# Single-figure measurements quoted in the issues' closing notes, each bounded in time and on
# loopback only. Engine (release build, `cores: 1` unless said) pinned to CPU 0, bench to CPU 1.
#
#   perf-scripts/measure.sh players N [rtmp|flv]  players of one 2.5 Mbit/s stream one data core serves
#   perf-scripts/measure.sh idle N                engine RSS and descriptors with N idle RTMP players
#   perf-scripts/measure.sh hls                   time from a first HLS request to a playlist with a segment
#   perf-scripts/measure.sh api                   API requests/s while a stream plays, and the players'
#                                                 figures with and without that load (cores: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p engine -p bench
bin=target/release
work=$(mktemp -d /tmp/corestream-measure.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rtmp=$(free_port); http=$(free_port); api=$(free_port); metrics=$(free_port)

start_engine() { # cores
    cat > "$work/c.yaml" <<YAML
cores: $1
logLevel: warn
rtmpAddress: 127.0.0.1:$rtmp
httpAddress: 127.0.0.1:$http
apiAddress: 127.0.0.1:$api
metricsAddress: 127.0.0.1:$metrics
playWaitTimeout: 60s
YAML
    # One CPU per data core from CPU 0 (`cores: 2` needs two: the engine refuses more cores
    # than its affinity allows).
    taskset -c "0-$(( $1 - 1 ))" "$bin/corestream" --config "$work/c.yaml" 2>"$work/engine.log" &
    engine=$!
    for _ in $(seq 50); do (echo > /dev/tcp/127.0.0.1/$rtmp) 2>/dev/null && return; sleep 0.1; done
    echo "engine did not start: $(cat "$work/engine.log")" >&2; exit 1
}
stop_engine() { kill "$engine"; wait "$engine" 2>/dev/null || true; }
bench() { taskset -c 1 "$bin/corestream-bench" "$@"; }
rss() { grep VmRSS "/proc/$engine/status" | awk '{print $2 " KiB"}'; }
fds() { ls "/proc/$engine/fd" | wc -l; }

case "${1:-}" in
players)
    n=${2:?players N [rtmp|flv]}; proto=${3:-rtmp}
    play=(); [ "$proto" = flv ] && play=(--play-url "http://127.0.0.1:$http/live/s.flv")
    start_engine 1
    bench run --url "rtmp://127.0.0.1:$rtmp/live/s" "${play[@]}" --players "$n" --duration 15 \
        --bitrate 2500k --gop 2s --cores 1 --server-pid "$engine" -q
    stop_engine ;;
idle)
    n=${2:?idle N}
    start_engine 1; sleep 0.5
    echo "before: RSS $(rss), $(fds) descriptors"
    bench play --url "rtmp://127.0.0.1:$rtmp/live/idle" --players "$n" --duration 6 -q > /dev/null 2>&1 &
    sleep 4
    echo "$n idle players: RSS $(rss), $(fds) descriptors"
    wait %1 || true; sleep 1
    echo "after they left: RSS $(rss), $(fds) descriptors"
    stop_engine ;;
hls)
    start_engine 1
    bench publish --url "rtmp://127.0.0.1:$rtmp/live/h" --streams 5 --duration 30 --bitrate 2500k --gop 1s -q > /dev/null 2>&1 &
    sleep 2
    for i in 0 1 2 3 4; do
        sleep 1.3
        # -L: the first request is redirected to the viewer's HLS session, as a player follows.
        curl -s -L -o /dev/null -w "live/h-$i: first playlist %{http_code} after %{time_total} s\n" "http://127.0.0.1:$http/live/h-$i.m3u8"
    done
    stop_engine ;;
api)
    for load in none api; do
        start_engine 2
        bench run --url "rtmp://127.0.0.1:$rtmp/live/a" --players 100 --duration 12 --bitrate 2500k -q > "$work/$load.txt" 2>&1 &
        players=$!
        sleep 3
        if [ "$load" = api ]; then
            python3 - "$api" <<'PY'
import http.client, sys, time
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
n, start = 8000, time.time()
for _ in range(n):
    c.request("GET", "/v3/paths/list"); r = c.getresponse(); r.read(); assert r.status == 200
print(f"API: {n} GET /v3/paths/list in {time.time() - start:.2f} s: {n / (time.time() - start):.0f} req/s")
PY
        fi
        # The players' run, by its pid: `%1` would be the engine, started first.
        wait "$players" || true
        echo "players, API load: $load"; grep -E "players:|frames:|latency " "$work/$load.txt" || cat "$work/$load.txt"
        stop_engine; sleep 3
    done ;;
*) sed -n '2,10p' "$0"; exit 2 ;;
esac
