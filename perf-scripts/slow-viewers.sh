#!/usr/bin/env bash
# Slow-viewer isolation: the healthy players' latency with and without slow players.
#
# Starts the release engine (`cores: --engine-cores`, confined to the CPUs of --server-core) and
# runs, --rounds times, the same `corestream-bench run` of --players healthy RTMP players of one
# --bitrate stream (spread over the CPUs of --bench-core) without slow players ("base") and with
# --slow-players reading at --slow-read-fraction of the bitrate ("slow"). Base and slow runs
# alternate, so drift of the machine touches both alike. Prints each run's healthy-player
# latency, then a summary: per round the p99 difference (slow - base), and the medians over the
# rounds. Reports (text and JSON) stay under --out (default target/slow-viewers).
#
# --set 'key: value' (repeatable) adds a line to the engine's configuration, e.g.
# --set 'playerMaxQueueBytes: 1048576' --set 'slowPlayerTimeout: 5s'.
# --server-core and --bench-core take CPU lists ("0", "0-4", "6-15,17"); the engine needs
# --engine-cores data CPUs plus one for its control executor (shared with the last data core
# when the list is too short).
#
# Usage: perf-scripts/slow-viewers.sh [--players 500] [--slow-players 50]
#          [--slow-read-fraction 0.1] [--bitrate 2500k] [--duration 20] [--rounds 2] [--port 23935]
#          [--engine-cores 1] [--server-core 0] [--bench-core 1] [--set 'key: value']... [--out DIR]
# Build first: cargo build --release -p engine -p bench
# (--bin-dir DIR runs the binaries in DIR instead of target/release.)
set -euo pipefail
cd "$(dirname "$0")/.."

players=500 slow=50 fraction=0.1 bitrate=2500k duration=20 rounds=2 port=23935
engine_cores=1 server_core=0 bench_core=1
out=target/slow-viewers bin=target/release
settings=()
while (($#)); do
    case "$1" in
    --players) players=$2; shift 2 ;;
    --slow-players) slow=$2; shift 2 ;;
    --slow-read-fraction) fraction=$2; shift 2 ;;
    --bitrate) bitrate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --engine-cores) engine_cores=$2; shift 2 ;;
    --server-core) server_core=$2; shift 2 ;;
    --bench-core) bench_core=$2; shift 2 ;;
    --set) settings+=("$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --bin-dir) bin=$2; shift 2 ;;
    *) echo "slow-viewers.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
cat >"$out/corestream.yaml" <<YAML
cores: $engine_cores
logLevel: warn
rtmpAddress: 127.0.0.1:$port
httpAddress: 127.0.0.1:$((port + 1))
apiAddress: 127.0.0.1:$((port + 2))
metricsAddress: 127.0.0.1:$((port + 3))
YAML
for line in ${settings[@]+"${settings[@]}"}; do echo "$line" >>"$out/corestream.yaml"; done
taskset -c "$server_core" "$bin/corestream" --config "$out/corestream.yaml" 2>"$out/engine.log" &
engine=$!
trap 'kill $engine 2>/dev/null; wait $engine 2>/dev/null || true' EXIT
sleep 1
if ! kill -0 "$engine" 2>/dev/null; then
    echo "slow-viewers.sh: the engine did not start:" >&2
    cat "$out/engine.log" >&2
    exit 1
fi
for round in $(seq 1 "$rounds"); do
    for kind in base slow; do
        extra=()
        [ "$kind" = slow ] && extra=(--slow-players "$slow" --slow-read-fraction "$fraction")
        taskset -c "$bench_core" "$bin/corestream-bench" run \
            --url "rtmp://127.0.0.1:$port/live/iso" --players "$players" --duration "$duration" \
            --bitrate "$bitrate" --gop 2s --cores "$bench_core" --server-pid "$engine" --quiet \
            --label "$kind-$round" --json "$out/$kind-$round.json" "${extra[@]}" >"$out/$kind-$round.txt"
        grep -E "^  latency|slow players" "$out/$kind-$round.txt" | sed "s/^/$kind-$round: /"
        sleep 2
    done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(kind, r):
    with open(f"{out}/{kind}-{r}.json") as f:
        return json.load(f)
print("round  base p99  slow p99  slow-base  (ms)   base lost  slow lost  slow players cut")
base, slow, diff = [], [], []
for r in range(1, rounds + 1):
    b, s = load("base", r), load("slow", r)
    bp, sp = b["players"]["latency_ms"]["p99"], s["players"]["latency_ms"]["p99"]
    base.append(bp); slow.append(sp); diff.append(sp - bp)
    cut = (s.get("slow") or {}).get("cut_by_server", "-")
    print(f"{r:5}  {bp:8.2f}  {sp:8.2f}  {sp - bp:+9.2f}        "
          f"{b['players']['frames_lost']:9}  {s['players']['frames_lost']:9}  {cut}")
print(f"median {statistics.median(base):8.2f}  {statistics.median(slow):8.2f}  "
      f"{statistics.median(diff):+9.2f}")
PY
