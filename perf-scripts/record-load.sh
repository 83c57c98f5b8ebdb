#!/usr/bin/env bash
# What recording costs the engine, in one run: the release engine (cores: 1, pinned to
# --server-core) takes --streams synthetic 2.5 Mbit/s H.264/AAC publishers (corestream-bench, on
# --bench-core) for 2 x --window seconds; recording is off for the first window and turned on
# through the API (PATCH pathdefaults, `record: true`) for the second, the same publishers going
# on. Prints the engine's CPU (user + system) per window, and what the recording wrote.
#   perf-scripts/record-load.sh [--streams 50] [--window 20] [--server-core 1] [--bench-core 0]
#                               [--dir /var/tmp/corestream-record-load]
# Everything listens on 127.0.0.1 and is stopped at the end; the recordings are deleted.
# CORESTREAM_BIN / BENCH_BIN name prebuilt binaries (otherwise `cargo build --release` is run).
set -euo pipefail
cd "$(dirname "$0")/.."
streams=50 window=20 server_core=1 bench_core=0 dir=/var/tmp/corestream-record-load
while (($#)); do
    case "$1" in
        --streams) streams=$2; shift 2 ;;
        --window) window=$2; shift 2 ;;
        --server-core) server_core=$2; shift 2 ;;
        --bench-core) bench_core=$2; shift 2 ;;
        --dir) dir=$2; shift 2 ;;
        *) echo "record-load.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
if [ -z "${CORESTREAM_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
    cargo build --release -q -p engine -p bench
fi
bin=${CORESTREAM_BIN:-target/release/corestream}
bench=${BENCH_BIN:-target/release/corestream-bench}
tck=$(getconf CLK_TCK)
work=$(mktemp -d /tmp/corestream-record-load.XXXXXX)
rm -rf "$dir"; mkdir -p "$dir"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work" "$dir"' EXIT

port=$((20000 + RANDOM % 10000))
rtmp=$port api=$((port + 1)) metrics=$((port + 2)) http=$((port + 3))
cat > "$work/c.yaml" <<EOC
cores: 1
logLevel: warn
rtmpAddress: 127.0.0.1:$rtmp
httpAddress: 127.0.0.1:$http
apiAddress: 127.0.0.1:$api
metricsAddress: 127.0.0.1:$metrics
apiStateFile: $work/state.yaml
pathDefaults:
  record: false
  recordPath: $dir/%path/%Y-%m-%d_%H-%M-%S-%f
  recordSegmentDuration: 1h
  recordDeleteAfter: 0s
EOC
taskset -c "$server_core" "$bin" run --config "$work/c.yaml" > "$work/engine.log" 2>&1 &
engine=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$api/v3/info" > /dev/null && break
    sleep 0.1
done
total=$((2 * window + 4))
"$bench" publish --url "rtmp://127.0.0.1:$rtmp/live/s" --streams "$streams" --duration "${total}s" \
    --cores "$bench_core" --quiet > "$work/bench.txt" 2>&1 &
cpu() { awk '{print $14 + $15}' "/proc/$engine/stat"; }
written() {
    curl -sf "http://127.0.0.1:$metrics/metrics" |
        awk '/^corestream_record_bytes_written_total/ {s += $2} END {print s + 0}'
}
sleep 2
c0=$(cpu)
sleep "$window"
c1=$(cpu)
curl -sf -X PATCH -H 'Content-Type: application/json' -d '{"record": true}' \
    "http://127.0.0.1:$api/v3/config/pathdefaults/patch" > /dev/null
sleep 1
c2=$(cpu); w2=$(written)
sleep "$window"
c3=$(cpu); w3=$(written)
files=$(find "$dir" -name '*.mp4' | wc -l)
wait %2 || true
awk -v s="$streams" -v w="$window" -v tck="$tck" -v off=$((c1 - c0)) -v on=$((c3 - c2)) \
    -v bytes=$((w3 - w2)) -v files="$files" 'BEGIN {
    printf "| streams x 2.5 Mbit/s | recording | engine CPU (%% of one core) | written (MB/s) | segments |\n"
    printf "| ---: | --- | ---: | ---: | ---: |\n"
    printf "| %d | off | %.1f | 0 | 0 |\n", s, 100 * off / tck / w
    printf "| %d | on | %.1f | %.2f | %d |\n", s, 100 * on / tck / w, bytes / w / 1e6, files
}'
grep -iE "error|warn" "$work/engine.log" | head -5 || true
