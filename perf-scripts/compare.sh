#!/usr/bin/env bash
# Corestream against nginx-rtmp, side by side, with the same corestream-bench load.
#
# Starts each server in turn (one worker / one data core, pinned with taskset), runs the same
# `corestream-bench run` against it (the bench pinned to another core), and prints a Markdown
# table per profile with the ratio Corestream / nginx-rtmp for every figure:
#   A: many players of one 2.5 Mbit/s stream     (--players N, default 200)
#   B: many 250 kbit/s streams, few players each (--streams N, --few-players N; default 50 x 2)
# The tables also go to --out (default target/compare/compare.md).
#
# nginx and libnginx-mod-rtmp (Debian) are installed with apt-get when missing. Corestream is
# built with `cargo build --release` unless --debug (CI smoke runs use the debug build that
# `cargo test --workspace` left behind).
#
# Usage: perf-scripts/compare.sh [--players N] [--streams N] [--few-players N] [--duration S]
#          [--profiles A,B] [--server-core N] [--bench-core N] [--debug] [--out FILE]
set -euo pipefail

players=200
streams=50
few_players=2
duration=15
profiles="A,B"
server_core=0
bench_core=1
build=release
out=""
extra_bench_args=()

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while (($#)); do
    case "$1" in
    --players) players="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --few-players) few_players="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --profiles) profiles="$2"; shift 2 ;;
    --server-core | --engine-core) server_core="$2"; shift 2 ;;
    --bench-core) bench_core="$2"; shift 2 ;;
    --debug) build=debug; shift ;;
    --out) out="$2"; shift 2 ;;
    --bench-arg) extra_bench_args+=("$2"); shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

cd "$(dirname "$0")/.."
root=$(pwd)
say() { echo "compare.sh: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in taskset cargo; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and not installed"
done
ncpu=$(nproc)
if ((server_core >= ncpu || bench_core >= ncpu)); then
    die "--server-core $server_core / --bench-core $bench_core: this machine has $ncpu CPUs"
fi
[ "$server_core" != "$bench_core" ] || say "warning: server and bench share CPU $server_core; figures will be skewed"

# --- nginx-rtmp --------------------------------------------------------------------------------
rtmp_module=""
find_module() {
    for m in /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/share/nginx/modules/ngx_rtmp_module.so; do
        [ -f "$m" ] && { rtmp_module="$m"; return 0; }
    done
    return 1
}
if ! command -v nginx >/dev/null 2>&1 || ! find_module; then
    say "installing nginx and libnginx-mod-rtmp (Debian packages)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx libnginx-mod-rtmp >&2
    find_module || die "libnginx-mod-rtmp installed but ngx_rtmp_module.so not found"
fi
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')

# --- binaries ----------------------------------------------------------------------------------
if [ "$build" = release ]; then
    say "building Corestream and corestream-bench (release)"
    cargo build --release -q -p engine -p bench
else
    cargo build -q -p engine -p bench
fi
engine_bin="${CORESTREAM_BIN:-$root/target/$build/corestream}"
bench_bin="${CORESTREAM_BENCH_BIN:-$root/target/$build/corestream-bench}"
[ -x "$engine_bin" ] || die "$engine_bin not found"
[ -x "$bench_bin" ] || die "$bench_bin not found"

# --- scratch space and cleanup -----------------------------------------------------------------
work=$(mktemp -d /tmp/corestream-compare.XXXXXX)
server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Many players need many descriptors: raise the soft limit to the hard one for everything started here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the kernel's ephemeral range (32768 and up): a port picked there may be the local end of
# some outgoing connection, which a connect test does not see but a bind does.
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 12000))
        port_in_use "$p" || { echo "$p"; return 0; }
    done
    die "no free port found"
}
wait_port() {
    for _ in $(seq 100); do
        port_in_use "$1" && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_corestream() {
    local port=$1 dir="$work/corestream"
    mkdir -p "$dir"
    cat >"$dir/corestream.yaml" <<EOF
cores: 1
logLevel: warn
rtmpAddress: 127.0.0.1:$port
httpAddress: 127.0.0.1:$(free_port)
apiAddress: 127.0.0.1:$(free_port)
metricsAddress: 127.0.0.1:$(free_port)
playWaitTimeout: 10s
EOF
    taskset -c "$server_core" "$engine_bin" --config "$dir/corestream.yaml" 2>"$dir/stderr.log" &
    server_pid=$!
    wait_port "$port" || { cat "$dir/stderr.log" >&2; die "Corestream did not start"; }
    sampled_pids=$server_pid
}

start_nginx() {
    local port=$1 conns=$2 dir="$work/nginx"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
load_module $rtmp_module;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((conns + 1024));
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections $((conns + 512)); }
rtmp {
    server {
        listen 127.0.0.1:$port;
        chunk_size 4096;
        application live {
            live on;
            record off;
        }
    }
}
EOF
    taskset -c "$server_core" nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" &
    server_pid=$!
    wait_port "$port" || { cat "$dir/logs/error.log" >&2; die "nginx-rtmp did not start"; }
    # CPU and memory are the worker's (the master only supervises).
    sampled_pids=$(pgrep -P "$server_pid" | paste -sd, -)
    [ -n "$sampled_pids" ] || sampled_pids=$server_pid
}

# run_bench LABEL PORT STREAMS PLAYERS BITRATE JSON
run_bench() {
    local label=$1 port=$2 n=$3 m=$4 bitrate=$5 json=$6 rc=0
    say "$label: $n stream(s) x $m player(s) at $bitrate for ${duration}s"
    taskset -c "$bench_core" "$bench_bin" run \
        --url "rtmp://127.0.0.1:$port/live/bench" \
        --streams "$n" --players "$m" --duration "$duration" --bitrate "$bitrate" --gop 2s \
        --cores "$bench_core" --server-pid "$sampled_pids" --label "$label" \
        --json "$json" "${extra_bench_args[@]}" >"$json.txt" || rc=$?
    cat "$json.txt" >&2
    # 1: the run finished but nothing played, which the table shows; anything else is broken.
    ((rc <= 1)) || die "corestream-bench failed against $label (exit $rc)"
    [ -s "$json" ] || die "corestream-bench wrote no report for $label"
}

# profile NAME TITLE STREAMS PLAYERS BITRATE
profile() {
    local name=$1 title=$2 n=$3 m=$4 bitrate=$5
    local conns=$((n * m + n + 64))
    local port
    port=$(free_port)
    start_corestream "$port"
    run_bench Corestream "$port" "$n" "$m" "$bitrate" "$work/$name-corestream.json"
    stop_server
    port=$(free_port)
    start_nginx "$port" "$conns"
    run_bench nginx-rtmp "$port" "$n" "$m" "$bitrate" "$work/$name-nginx.json"
    stop_server
    {
        echo "### Profile $name: $title"
        echo
        echo "$n stream(s) x $m player(s), $bitrate, GOP 2 s, ${duration} s; server on CPU $server_core, bench on CPU $bench_core."
        echo
        "$bench_bin" table "Corestream=$work/$name-corestream.json" "nginx-rtmp=$work/$name-nginx.json"
        echo
    } >>"$work/tables.md"
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    echo "## Corestream vs nginx-rtmp"
    echo
    echo "- machine: ${cpu_model:-unknown CPU}, $ncpu CPUs, $(free -g 2>/dev/null | awk '/^Mem:/{print $2 " GiB"}'), Linux $(uname -r)"
    echo "- Corestream $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') ($build build, cores: 1); $nginx_version with ngx_rtmp_module, 1 worker"
    echo "- command: \`perf-scripts/compare.sh --players $players --streams $streams --few-players $few_players --duration $duration\`"
    echo "- $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
} >"$work/tables.md"

IFS=, read -ra wanted <<<"$profiles"
for p in "${wanted[@]}"; do
    case "$p" in
    A) profile A "many players of one 2.5 Mbit/s stream" 1 "$players" 2500k ;;
    B) profile B "many 250 kbit/s streams, few players each" "$streams" "$few_players" 250k ;;
    *) die "unknown profile $p (A or B)" ;;
    esac
done

cat "$work/tables.md"
out="${out:-$root/target/compare/compare.md}"
mkdir -p "$(dirname "$out")"
cp "$work/tables.md" "$out"
say "tables written to $out"
