#!/usr/bin/env bash
# Slow-viewer isolation: the healthy players' latency with and without slow players.
#
# Starts the release engine (`cores: 1`, pinned to --server-core) and runs, --rounds times, the
# same `corestream-bench run` of --players healthy RTMP players of one --bitrate stream (pinned
# to --bench-core) without slow players ("base") and with --slow-players reading at
# --slow-read-fraction of the bitrate ("slow"). Prints each run's healthy-player latency and the
# reports' paths (JSON beside them, under --out, default target/slow-viewers).
#
# Usage: perf-scripts/slow-viewers.sh [--players 500] [--slow-players 50]
#          [--slow-read-fraction 0.1] [--bitrate 2500k] [--duration 20] [--rounds 2] [--port 23935]
#          [--server-core 0] [--bench-core 1] [--out DIR]
# Build first: cargo build --release -p engine -p bench
set -euo pipefail
cd "$(dirname "$0")/.."

players=500 slow=50 fraction=0.1 bitrate=2500k duration=20 rounds=2 port=23935 server_core=0 bench_core=1
out=target/slow-viewers
while (($#)); do
    case "$1" in
    --players) players=$2; shift 2 ;;
    --slow-players) slow=$2; shift 2 ;;
    --slow-read-fraction) fraction=$2; shift 2 ;;
    --bitrate) bitrate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --server-core) server_core=$2; shift 2 ;;
    --bench-core) bench_core=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "slow-viewers.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
cat >"$out/corestream.yaml" <<YAML
cores: 1
logLevel: warn
rtmpAddress: 127.0.0.1:$port
httpAddress: 127.0.0.1:$((port + 1))
apiAddress: 127.0.0.1:$((port + 2))
metricsAddress: 127.0.0.1:$((port + 3))
YAML
taskset -c "$server_core" target/release/corestream --config "$out/corestream.yaml" 2>"$out/engine.log" &
engine=$!
trap 'kill $engine 2>/dev/null; wait $engine 2>/dev/null || true' EXIT
sleep 1
for round in $(seq 1 "$rounds"); do
    for kind in base slow; do
        extra=()
        [ "$kind" = slow ] && extra=(--slow-players "$slow" --slow-read-fraction "$fraction")
        taskset -c "$bench_core" target/release/corestream-bench run \
            --url "rtmp://127.0.0.1:$port/live/iso" --players "$players" --duration "$duration" \
            --bitrate "$bitrate" --gop 2s --cores "$bench_core" --server-pid "$engine" --quiet \
            --label "$kind-$round" --json "$out/$kind-$round.json" "${extra[@]}" >"$out/$kind-$round.txt"
        grep -E "^  latency|slow players" "$out/$kind-$round.txt" | sed "s/^/$kind-$round: /"
        sleep 2
    done
done
