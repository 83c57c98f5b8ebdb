#!/usr/bin/env bash
# HLS viewers' cost to the server, per hlsVariant, in one run: the release engine (cores: 1,
# pinned to --server-core) muxes one 2.5 Mbit/s ffmpeg stream (testsrc2 + sine, x264) and
# --viewers viewers (perf-scripts/hls-viewers.py, on --bench-core) follow its playlist for
# --duration seconds; prints the server's user and system CPU, requests, bytes and errors.
#   perf-scripts/hls-load.sh [--viewers 100] [--duration 30] [--variants lowLatency,mpegts]
#                            [--server-core 1] [--bench-core 0]
# Everything listens on 127.0.0.1 and is stopped at the end; CORESTREAM_BIN names a prebuilt
# engine (otherwise `cargo build --release -p engine` is run).
set -euo pipefail
cd "$(dirname "$0")/.."
viewers=100 duration=30 variants=lowLatency,mpegts server_core=1 bench_core=0
while (($#)); do
    case "$1" in
        --viewers) viewers=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --variants) variants=$2; shift 2 ;;
        --server-core) server_core=$2; shift 2 ;;
        --bench-core) bench_core=$2; shift 2 ;;
        *) echo "hls-load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "${CORESTREAM_BIN:-}" ]; then
    cargo build --release -q -p engine
fi
bin=${CORESTREAM_BIN:-target/release/corestream}
tck=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/corestream-hls-load.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }

echo "| hlsVariant | viewers | server user CPU (s) | server system CPU (s) | requests | MB served | Mbit/s served per CPU-second | errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for variant in ${variants//,/ }; do
    port=$((20000 + RANDOM % 10000)); http=$((port + 1))
    cat > "$work/c.yaml" <<EOC
cores: 1
logLevel: warn
api: false
metrics: false
rtmpAddress: 127.0.0.1:$port
httpAddress: 127.0.0.1:$http
hlsVariant: $variant
hlsAlwaysRemux: true
EOC
    taskset -c "$server_core" "$bin" --config "$work/c.yaml" 2>"$work/log" &
    engine=$!
    sleep 1
    taskset -c "$bench_core" timeout $((duration + 20)) ffmpeg -nostdin -loglevel error -re \
        -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 \
        -c:v libx264 -preset ultrafast -tune zerolatency -b:v 2400k -g 25 -c:a aac -b:a 96k \
        -f flv "rtmp://127.0.0.1:$port/live/load" 2>/dev/null &
    sleep 6
    read -r u0 s0 < <(cpu "$engine")
    out=$(taskset -c "$bench_core" timeout $((duration + 30)) \
        python3 perf-scripts/hls-viewers.py "http://127.0.0.1:$http/live/load.m3u8" "$viewers" "$duration")
    read -r u1 s1 < <(cpu "$engine")
    kill "$engine" 2>/dev/null || true
    wait "$engine" 2>/dev/null || true
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    python3 - "$variant" "$viewers" "$out" "$u0" "$s0" "$u1" "$s1" "$tck" <<'PY'
import json, sys
variant, viewers, out = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
u0, s0, u1, s1, tck = (float(x) for x in sys.argv[4:9])
user, system = (u1 - u0) / tck, (s1 - s0) / tck
mb = out["bytes"] / 1e6
rate = out["bytes"] * 8 / 1e6 / max(user + system, 1e-9)
print(f"| {variant} | {viewers} | {user:.2f} | {system:.2f} | {out['requests']} | {mb:.0f} | {rate:.0f} | {out['errors']} |")
PY
done
