#!/usr/bin/env bash
# Corestream against nginx-rtmp (and SRS), side by side, with the same loads.
#
# Starts each server in turn (one worker / one data core, pinned with taskset to --server-core),
# loads it from --bench-core, and prints Markdown tables. Profiles (--profiles):
#   A: many players of one 2.5 Mbit/s stream     (--players N, default 200), corestream-bench
#   B: many 250 kbit/s streams, few players each (--streams N, --few-players N; default 50 x 2)
#   L: equal latency budgets (issue 19; the default with --srs): one 2.5 Mbit/s stream, --players
#      players, played by corestream-bench over RTMP and HTTP-FLV and by independent clients
#      (rtmpdump for RTMP, curl for HTTP-FLV), against Corestream at each writeMergeLatency of
#      --windows (default 0ms, 350ms and its default), SRS with `min_latency on; tcp_nodelay on; mw_latency 0` and at its
#      default (mw_latency 350, mw_msgs 8), and nginx-rtmp. Figures per server: delivered Gbit (bytes the players
#      counted), user and system CPU seconds (/proc, every process of the server), Gbit per
#      CPU-second, the busy time of the server's CPU (softirq included) and of both CPUs (/proc/stat),
#      RSS and KiB per player, writes per second (perf stat on syscall tracepoints), data packets
#      per second sent from the server's CPU and from the others (perf stat -a on
#      net:net_dev_xmit), latency p50/p99 (corestream-bench's SEI stamps) and players lost. A last table sets every
#      server's latency (bench RTMP players) beside its Gbit per CPU-second and its ratio to
#      nginx-rtmp's, and names the Corestream window that is no slower than nginx-rtmp.
#   M: memory (issue 13; the default with --memory-players N): server RSS growth per player over
#      N corestream-bench players (RTMP and HTTP-FLV) of one live 64 kbit/s stream.
# Profile L's link (--link): over the loopback (the default), a sender's CPU does the receiver's
# TCP work too (queueing, waking the player), and a server's data that its players'
# acknowledgements release (Nagle) is sent from the players' CPU, outside the server's figures.
# --link veth puts the publisher and the players in a network namespace of this run's own behind
# a veth pair (MTU 1500, like Ethernet) and steers each side's receive work to its own CPU (RPS):
# two machines on one, so that the server's CPU, softirq included, holds the server's work and
# only that. It needs root (ip netns).
# The tables also go to --out (default target/compare/compare.md).
#
# nginx and libnginx-mod-rtmp (Debian) are installed with apt-get when missing; L and M also need
# jq, curl and rtmpdump (installed the same way) and use linux-perf when it works. SRS is never
# built here: pass its binary (objs/srs of an ossrs/srs build) with --srs. Corestream is built
# with `cargo build --release` unless --debug (CI smoke runs use the debug build that
# `cargo test --workspace` left behind).
#
# Usage: perf-scripts/compare.sh [--players N] [--streams N] [--few-players N] [--duration S]
#          [--profiles A,B,L,M] [--server-core N] [--bench-core N] [--debug] [--out FILE]
#          [--srs PATH] [--no-merge-key] [--clients bench-rtmp,bench-flv,rtmpdump,curl]
#          [--independent-players N] [--windows LIST] [--memory-players N] [--memory-ramp N]
#          [--bench-arg ARG] [--rounds N] [--link loopback|veth]
#   --server-core N          the CPU every server is pinned to (default 1)
#   --bench-core N           the CPU of corestream-bench and the players (default 0)
#   --srs PATH               SRS binary (objs/srs); adds SRS to profiles L and M
#   --no-merge-key           run Corestream without writeMergeLatency (engines that refuse the
#                            key); detected by `corestream check-config` when not given
#   --clients LIST           which players profile L runs (default all four)
#   --independent-players N  rtmpdump / curl processes per run (default: --players)
#   --windows LIST           Corestream's writeMergeLatency values in profile L, comma-separated
#                            (Ns or Nms; `default` leaves the key out; default 0ms,350ms,default).
#                            0ms is paired with SRS min_latency, 350ms and default with SRS's
#                            default; add small windows (5ms,10ms) to find the one whose latency
#                            matches nginx-rtmp's
#   --memory-players N       players of profile M (default 1000; selects M when --profiles is
#                            not given)
#   --memory-ramp N          new players per second in profile M (default 500)
#   --rounds N               profile L runs every server N times, one after the other in each
#                            round (default 1); its tables give each figure's median over the
#                            rounds, and a table gives each round's ratio to nginx-rtmp
#   --link loopback|veth     how profile L's players reach the servers (default loopback; above)
# COMPARE_KEEP=1 keeps the scratch directory (configs, logs, every run's raw figures).
set -euo pipefail

players=200
streams=50
few_players=2
duration=15
profiles=""
server_core=1
bench_core=0
build=release
out=""
srs_bin=""
merge_key=auto
clients="bench-rtmp,bench-flv,rtmpdump,curl"
independent_players=""
memory_players=""
memory_ramp=500
windows="0ms,350ms,default"
rounds=1
link=loopback
extra_bench_args=()
command_line="perf-scripts/compare.sh $*"

usage() {
    sed -n '2,/^set -euo pipefail/p' "$0" | sed -n 's/^# \{0,1\}//p'
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
    --srs) srs_bin="$2"; shift 2 ;;
    --no-merge-key) merge_key=off; shift ;;
    --clients) clients="$2"; shift 2 ;;
    --independent-players) independent_players="$2"; shift 2 ;;
    --windows) windows="$2"; shift 2 ;;
    --memory-players) memory_players="$2"; shift 2 ;;
    --memory-ramp) memory_ramp="$2"; shift 2 ;;
    --bench-arg) extra_bench_args+=("$2"); shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --link) link="$2"; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

if [ -z "$profiles" ]; then
    if [ -n "$memory_players" ]; then
        profiles=M
    elif [ -n "$srs_bin" ]; then
        profiles=L
    else
        profiles=A,B
    fi
fi
memory_players=${memory_players:-1000}
independent_players=${independent_players:-$players}

cd "$(dirname "$0")/.."
root=$(pwd)
say() { echo "compare.sh: $*" >&2; }
die() { say "$*"; exit 1; }

is_count() { [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 100000)); }
for v in "$players" "$streams" "$few_players" "$duration" "$independent_players" "$memory_players" "$memory_ramp"; do
    is_count "$v" || die "counts and --duration are whole numbers from 1 to 100000 (got $v)"
done
((duration <= 3600)) || die "--duration is at most 3600 s"
is_count "$rounds" && ((rounds <= 20)) || die "--rounds is a whole number from 1 to 20 (got $rounds)"
case "$link" in
loopback) ;;
veth)
    [[ $profiles == L ]] || die "--link veth is for profile L alone (--profiles L)"
    command -v ip >/dev/null 2>&1 || die "--link veth needs ip (Debian: iproute2)"
    ;;
*) die "--link is loopback or veth (got $link)" ;;
esac
IFS=, read -ra merge_windows <<<"$windows"
((${#merge_windows[@]})) || die "--windows: give at least one writeMergeLatency (e.g. 0ms,350ms,default)"
for w in "${merge_windows[@]}"; do
    [[ $w =~ ^([0-9]{1,5}(ms|s)|default)$ ]] || die "--windows: $w is not a duration (Nms or Ns) or default"
done
[[ $profiles =~ [LM] ]] && needs_clients=1 || needs_clients=0
if [ -n "$srs_bin" ]; then
    [ -x "$srs_bin" ] || die "--srs $srs_bin: not an executable (give the objs/srs of an SRS build)"
    srs_bin=$(cd "$(dirname "$srs_bin")" && pwd)/$(basename "$srs_bin")
fi

for tool in taskset cargo timeout; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed and not installed"
done
ncpu=$(nproc)
if ((server_core >= ncpu || bench_core >= ncpu)); then
    die "--server-core $server_core / --bench-core $bench_core: this machine has $ncpu CPUs"
fi
[ "$server_core" != "$bench_core" ] || say "warning: server and bench share CPU $server_core; figures will be skewed"

apt_install() {
    say "installing $* (Debian packages)"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

# --- nginx-rtmp --------------------------------------------------------------------------------
rtmp_module=""
find_module() {
    for m in /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/share/nginx/modules/ngx_rtmp_module.so; do
        [ -f "$m" ] && { rtmp_module="$m"; return 0; }
    done
    return 1
}
if ! command -v nginx >/dev/null 2>&1 || ! find_module; then
    apt_install nginx libnginx-mod-rtmp
    find_module || die "libnginx-mod-rtmp installed but ngx_rtmp_module.so not found"
fi
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')

# --- the independent clients and the figures' tools (profiles L and M) -------------------------
if ((needs_clients)); then
    missing=()
    command -v jq >/dev/null 2>&1 || missing+=(jq)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v rtmpdump >/dev/null 2>&1 || missing+=(rtmpdump)
    ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
fi

# --- binaries ----------------------------------------------------------------------------------
if [ -n "${CORESTREAM_BIN:-}" ] && [ -n "${CORESTREAM_BENCH_BIN:-}" ]; then
    say "using $CORESTREAM_BIN and $CORESTREAM_BENCH_BIN as given (not building)"
elif [ "$build" = release ]; then
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
helper_pids=()
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
    local p
    for p in "${helper_pids[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    stop_server
    [ -z "$link_ns" ] || ip netns del "$link_ns" 2>/dev/null || true
    if [ -n "${COMPARE_KEEP:-}" ]; then
        say "scratch directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- profile L's link (--link) -----------------------------------------------------------------
# Where the servers listen, and what runs a command on the players' side of the link.
server_ip=127.0.0.1
on_players_side=()
link_ns=""
link_note="over the loopback (a sender's CPU does its receiver's TCP work too)"
# setup_link: for --link veth, a namespace for the publisher and the players, a veth pair to it
# (the kernel's default MTU, 1500) addressed in 198.18.0.0/15 (RFC 2544's benchmarking block), and
# RPS on each end's receive queue: what reaches the servers is processed on --server-core, what
# reaches the players on --bench-core, as on two machines.
setup_link() {
    [ "$link" = veth ] || return 0
    local host_if="csb$$h" ns_if="csb$$n" n=$((($$ % 16000) * 4))
    # link_ns is set once the namespace is ours: cleanup deletes only what this run made.
    ip netns add "csbench$$" || die "--link veth: cannot create a network namespace (run as root)"
    link_ns="csbench$$"
    server_ip="198.18.$((n / 256)).$((n % 256 + 1))"
    local players_ip="198.18.$((n / 256)).$((n % 256 + 2))"
    ip link add "$host_if" type veth peer name "$ns_if" netns "$link_ns"
    ip addr add "$server_ip/30" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$link_ns" link set lo up
    ip -n "$link_ns" addr add "$players_ip/30" dev "$ns_if"
    ip -n "$link_ns" link set "$ns_if" up
    printf '%x\n' $((1 << server_core)) >"/sys/class/net/$host_if/queues/rx-0/rps_cpus"
    ip netns exec "$link_ns" sh -c "printf '%x\n' $((1 << bench_core)) >/sys/class/net/$ns_if/queues/rx-0/rps_cpus"
    on_players_side=(ip netns exec "$link_ns")
    link_note="over a veth link (MTU $(cat "/sys/class/net/$host_if/mtu")) from a network namespace, each side's receive work on its own CPU (RPS): the server's CPU, softirq included, is the server machine's work"
    say "link: servers on $server_ip, publisher and players in namespace $link_ns ($players_ip)"
}

# Many players need many descriptors: raise the soft limit to the hard one for everything started here.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

port_in_use() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }
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
        port_in_use "$1" "$server_ip" && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Every server start sets server_pid, rtmp_port, http_port ("" without HTTP-FLV) and
# sampled_pids (comma-separated: what CPU, RSS and syscalls are read from).
rtmp_port=""
http_port=""
sampled_pids=""

# start_corestream PORT [CONNS [WRITE_MERGE_LATENCY]]  (the latency "" leaves the key out)
start_corestream() {
    local port=$1 conns=${2:-1000} merge=${3:-} dir="$work/corestream"
    mkdir -p "$dir"
    rtmp_port=$port
    http_port=$(free_port)
    corestream_config "$dir/corestream.yaml" "$port" "$http_port" "$conns" "$merge"
    taskset -c "$server_core" "$engine_bin" --config "$dir/corestream.yaml" 2>"$dir/stderr.log" &
    server_pid=$!
    wait_port "$port" || { cat "$dir/stderr.log" >&2; die "Corestream did not start"; }
    sampled_pids=$server_pid
}

# corestream_config FILE RTMP_PORT HTTP_PORT CONNS MERGE
corestream_config() {
    cat >"$1" <<EOF
cores: 1
logLevel: warn
rtmpAddress: $server_ip:$2
httpAddress: $server_ip:$3
apiAddress: 127.0.0.1:$(free_port)
metricsAddress: 127.0.0.1:$(free_port)
playWaitTimeout: 10s
maxConnectionsPerCore: $(($4 + 1024))
EOF
    [ -z "$5" ] || echo "writeMergeLatency: $5" >>"$1"
}

# start_nginx PORT CONNS [MULTI_ACCEPT]: multi_accept on (profiles L and M) lets the one worker
# take every pending connection per wakeup, as the other servers do, rather than one.
start_nginx() {
    local port=$1 conns=$2 multi_accept=${3:-off} dir="$work/nginx"
    mkdir -p "$dir/logs"
    rtmp_port=$port
    http_port=""
    cat >"$dir/nginx.conf" <<EOF
load_module $rtmp_module;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $((conns + 1024));
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections $((conns + 512)); multi_accept $multi_accept; }
rtmp {
    server {
        listen $server_ip:$port;
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
    # CPU and memory are the master's and the worker's (the master listens before it forks).
    local workers=""
    for _ in $(seq 50); do
        workers=$(pgrep -P "$server_pid" | paste -sd, -) && [ -n "$workers" ] && break
        sleep 0.1
    done
    sampled_pids=$server_pid${workers:+,$workers}
}

# start_srs PORT CONNS MODE (default: SRS's own merged writes; min: min_latency on, mw_latency 0)
# Only loopback listeners: RTMP and the HTTP server (HTTP-FLV by http_remux); no HTTP API, no RTC.
start_srs() {
    local port=$1 conns=$2 mode=$3 dir="$work/srs-$3"
    mkdir -p "$dir/html"
    rtmp_port=$port
    http_port=$(free_port)
    local play=""
    if [ "$mode" = min ]; then
        # SRS's real-time recipe (conf/realtime.conf) with no merging window: flush as soon as a
        # message is queued (min_latency on makes mw_msgs 0), with TCP_NODELAY.
        play="min_latency on;
    tcp_nodelay on;
    play { mw_latency 0; }"
    fi
    cat >"$dir/srs.conf" <<EOF
listen $server_ip:$port;
max_connections $((conns + 64));
daemon off;
pid $dir/srs.pid;
srs_log_tank file;
srs_log_file $dir/srs.log;
srs_log_level warn;
srs_log_level_v2 warn;
http_api { enabled off; }
http_server {
    enabled on;
    listen $server_ip:$http_port;
    dir $dir/html;
}
vhost __defaultVhost__ {
    $play
    http_remux {
        enabled on;
        mount [vhost]/[app]/[stream].flv;
    }
}
EOF
    (cd "$dir" && exec taskset -c "$server_core" "$srs_bin" -c "$dir/srs.conf" >"$dir/stdout.log" 2>&1) &
    server_pid=$!
    wait_port "$port" || { tail -20 "$dir/srs.log" "$dir/stdout.log" >&2; die "SRS did not start"; }
    wait_port "$http_port" || { tail -20 "$dir/srs.log" >&2; die "SRS's HTTP server did not start"; }
    sampled_pids=$(echo "$server_pid" $(pgrep -P "$server_pid") | tr ' ' ,)
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
    start_corestream "$port" "$conns"
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

# === Profiles L and M: the figures every server gets =============================================
clk_tck=$(getconf CLK_TCK)
page_kib=$(($(getconf PAGESIZE) / 1024))

# proc_sample: "USER_S SYSTEM_S RSS_KIB" summed over sampled_pids (0 0 0 when all are gone).
# utime, stime and rss are fields 14, 15 and 24 of /proc/PID/stat; the command name (field 2)
# may hold spaces, so fields are counted after its closing parenthesis.
proc_sample() {
    local pid line ut=0 st=0 rss=0
    local -a f
    for pid in ${sampled_pids//,/ }; do
        line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -ra f <<<"${line##*) }"
        ut=$((ut + f[11])) st=$((st + f[12])) rss=$((rss + f[21] * page_kib))
    done
    awk -v u="$ut" -v s="$st" -v r="$rss" -v hz="$clk_tck" 'BEGIN { printf "%.3f %.3f %d\n", u / hz, s / hz, r }'
}

# cpu_sample: "SERVER_CPU_S ALL_CPUS_S", busy seconds (user, nice, system, irq, softirq) of
# --server-core and of the whole machine, from /proc/stat. The process's own figures leave out the
# softirq time its sends cause on its CPU (the loopback receive), which the kernel counts apart.
cpu_sample() {
    awk -v c="cpu$server_core" -v hz="$clk_tck" '
        $1 == c { mine = $2 + $3 + $4 + $7 + $8 }
        $1 == "cpu" { all = $2 + $3 + $4 + $7 + $8 }
        END { printf "%.3f %.3f\n", mine / hz, all / hz }' /proc/stat
}

# Writes per second: perf stat counting syscall tracepoints of the server's processes. sendto
# is counted too (send() is sendto); io_uring_submit_req counts the requests an io_uring server
# submits without a syscall each (its sends among them).
write_events="syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_io_uring_enter"
perf_events=""
perf_note=""
packet_counting=0
setup_perf() {
    if ! command -v perf >/dev/null 2>&1; then
        perf_note="writes per second: not measured (perf is not installed; Debian: linux-perf)"
        return
    fi
    local events=$write_events
    perf stat -x, -e io_uring:io_uring_submit_req -- true >/dev/null 2>&1 && events+=",io_uring:io_uring_submit_req"
    local err
    if err=$(perf stat -x, -e "$events" -- true 2>&1 >/dev/null) && ! grep -q "not supported\|<not counted>" <<<"$err"; then
        perf_events=$events
        perf_note="writes per second: perf stat -e $events, on every process of the server"
    else
        perf_note="writes per second: not measured (perf cannot count syscall tracepoints here: $(head -1 <<<"$err"); needs root or perf_event_paranoid <= -1 and tracefs)"
    fi
    # Data packets (net_dev_xmit over 200 bytes: not bare ACKs) per CPU, machine-wide: a server
    # whose socket holds data back (Nagle) has part of it sent from the players' CPU, when their
    # acknowledgements release it, and that kernel work is not in the server's CPU figures.
    if [ -n "$perf_events" ] && perf stat -a -A -x, -e net:net_dev_xmit --filter 'len > 200' -- true >/dev/null 2>&1; then
        packet_counting=1
        perf_note+="; data packets: perf stat -a -A -e net:net_dev_xmit --filter 'len > 200', per CPU"
    fi
}

# measure_start DIR / measure_stop DIR: the server's CPU, RSS and writes over a load window.
perf_pid=""
xmit_pid=""
rss_pid=""
measure_start() {
    local dir=$1
    proc_sample >"$dir/proc0"
    cpu_sample >"$dir/cpu0"
    date +%s.%N >"$dir/t0"
    if [ -n "$perf_events" ]; then
        taskset -c "$bench_core" perf stat -x, -e "$perf_events" -p "$sampled_pids" -o "$dir/perf.csv" 2>"$dir/perf.err" &
        perf_pid=$!
        helper_pids+=("$perf_pid")
    fi
    if ((packet_counting)); then
        taskset -c "$bench_core" perf stat -a -A -x, -e net:net_dev_xmit --filter 'len > 200' -o "$dir/xmit.csv" 2>"$dir/xmit.err" &
        xmit_pid=$!
        helper_pids+=("$xmit_pid")
    fi
    (
        taskset -cp "$bench_core" $BASHPID >/dev/null
        max=0
        for _ in $(seq $((2 * duration + 2 * 600))); do
            read -r _ _ rss < <(proc_sample)
            if ((rss > max)); then
                max=$rss
                echo "$max" >"$dir/rss_max"
            fi
            sleep 0.5
        done
    ) &
    rss_pid=$!
    helper_pids+=("$rss_pid")
}
measure_stop() {
    local dir=$1
    date +%s.%N >"$dir/t1"
    proc_sample >"$dir/proc1"
    cpu_sample >"$dir/cpu1"
    local p
    for p in "$perf_pid" "$xmit_pid"; do
        [ -n "$p" ] || continue
        kill -INT "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    perf_pid="" xmit_pid=""
    kill "$rss_pid" 2>/dev/null || true
    wait "$rss_pid" 2>/dev/null || true
    rss_pid=""
    helper_pids=()
}

# perf_rate FILE EVENT SECONDS: that event's count per second (null when not measured).
perf_rate() {
    [ -s "$1" ] || { echo null; return; }
    awk -F, -v e="$2" -v s="$3" '$3 == e && $1 ~ /^[0-9]+$/ { printf "%.1f\n", $1 / s; found = 1 } END { if (!found) print "null" }' "$1"
}

# figures DIR SERVER CLIENT PLAYERS BYTES LOST P50 P99: writes DIR/figures.json, the row of
# figures every table lists (null: not applicable or not measured).
figures() {
    local dir=$1 server=$2 client=$3 n=$4 bytes=$5 lost=$6 p50=$7 p99=$8
    local t0 t1 u0 s0 rss0 u1 s1 rss1 rss_max secs
    read -r t0 <"$dir/t0"
    read -r t1 <"$dir/t1"
    read -r u0 s0 rss0 <"$dir/proc0"
    read -r u1 s1 rss1 <"$dir/proc1"
    rss_max=$(cat "$dir/rss_max" 2>/dev/null || echo "$rss1")
    ((rss_max >= rss1)) || rss_max=$rss1
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    local ev rates=() total="null"
    for ev in sendmsg writev write sendto io_uring_enter; do
        rates+=("$(perf_rate "$dir/perf.csv" "syscalls:sys_enter_$ev" "$secs")")
    done
    rates+=("$(perf_rate "$dir/perf.csv" io_uring:io_uring_submit_req "$secs")")
    local c0_mine c0_all c1_mine c1_all
    read -r c0_mine c0_all <"$dir/cpu0"
    read -r c1_mine c1_all <"$dir/cpu1"
    # Data packets per second: sent from the server's CPU, and from the others (the players'
    # CPU: what their acknowledgements release; the publisher's own ~70 a second too).
    local packets="null null"
    [ ! -s "$dir/xmit.csv" ] || packets=$(awk -F, -v c="CPU$server_core" -v s="$secs" '
        $4 == "net:net_dev_xmit" && $2 ~ /^[0-9]+$/ { if ($1 == c) mine += $2; else other += $2; found = 1 }
        END { if (found) printf "%.1f %.1f\n", mine / s, other / s; else print "null null" }' "$dir/xmit.csv")
    local packets_mine packets_other
    read -r packets_mine packets_other <<<"$packets"
    if [ "${rates[0]}" != null ]; then
        total=$(awk -v a="${rates[0]}" -v b="${rates[1]}" -v c="${rates[2]}" -v d="${rates[3]}" 'BEGIN { printf "%.1f", a + b + c + d }')
    fi
    jq -n --arg server "$server" --arg client "$client" \
        --argjson n "$n" --argjson bytes "$bytes" --argjson lost "$lost" \
        --argjson p50 "$p50" --argjson p99 "$p99" --argjson secs "$secs" \
        --argjson u "$(awk -v a="$u0" -v b="$u1" 'BEGIN { printf "%.3f", b - a }')" \
        --argjson s "$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.3f", b - a }')" \
        --argjson rss_idle "$(cat "$dir/rss_idle")" --argjson rss_max "$rss_max" \
        --argjson sendmsg "${rates[0]}" --argjson writev "${rates[1]}" --argjson write "${rates[2]}" \
        --argjson sendto "${rates[3]}" --argjson enter "${rates[4]}" --argjson uring "${rates[5]}" \
        --argjson writes "$total" \
        --argjson cpu_mine "$(awk -v a="$c0_mine" -v b="$c1_mine" 'BEGIN { printf "%.3f", b - a }')" \
        --argjson cpu_all "$(awk -v a="$c0_all" -v b="$c1_all" 'BEGIN { printf "%.3f", b - a }')" \
        --argjson packets_mine "$packets_mine" --argjson packets_other "$packets_other" '
        ($bytes * 8 / 1e9) as $gbit |
        {server: $server, client: $client, figures: [
            {name: "players", value: $n},
            {name: "players lost", value: $lost},
            {name: "delivered (Gbit)", value: $gbit},
            {name: "window (s)", value: $secs},
            {name: "server user CPU (s)", value: $u},
            {name: "server system CPU (s)", value: $s},
            {name: "Gbit per CPU-second", value: (if ($u + $s) > 0 then $gbit / ($u + $s) else null end)},
            {name: "server'"'"'s CPU, softirq included (s)", value: $cpu_mine},
            {name: "Gbit per CPU-second, softirq included", value: (if $cpu_mine > 0 then $gbit / $cpu_mine else null end)},
            {name: "both CPUs, players included (s)", value: $cpu_all},
            {name: "Gbit per CPU-second of the machine", value: (if $cpu_all > 0 then $gbit / $cpu_all else null end)},
            {name: "data packets/s from the server'"'"'s CPU", value: $packets_mine},
            {name: "data packets/s from other CPUs", value: $packets_other},
            {name: "data packets per player per second", value: (if $packets_mine == null then null else ($packets_mine + $packets_other) / $n end)},
            {name: "RSS idle (MB)", value: ($rss_idle / 1024)},
            {name: "RSS max (MB)", value: ($rss_max / 1024)},
            {name: "KiB per player", value: (($rss_max - $rss_idle) / $n)},
            {name: "writes/s (sendmsg+writev+write+sendto)", value: $writes},
            {name: "sendmsg/s", value: $sendmsg},
            {name: "writev/s", value: $writev},
            {name: "write/s", value: $write},
            {name: "sendto/s", value: $sendto},
            {name: "io_uring_enter/s", value: $enter},
            {name: "io_uring requests/s", value: $uring},
            {name: "latency p50 (ms)", value: $p50},
            {name: "latency p99 (ms)", value: $p99}
        ]}' >"$dir/figures.json"
}

# load_bench DIR LABEL SCHEME: corestream-bench publishes and plays (RTMP or HTTP-FLV players).
load_bench() {
    local dir=$1 label=$2 scheme=$3 rc=0 play_url=()
    [ "$scheme" = rtmp ] || play_url=(--play-url "http://$server_ip:$http_port/live/bench.flv")
    measure_start "$dir"
    "${on_players_side[@]}" taskset -c "$bench_core" timeout -k 5 $((duration + 60)) "$bench_bin" run --quiet \
        --url "rtmp://$server_ip:$rtmp_port/live/bench" "${play_url[@]}" \
        --players "$players" --duration "$duration" --bitrate 2500k --gop 2s \
        --cores "$bench_core" --label "$label" --json "$dir/bench.json" \
        "${extra_bench_args[@]}" >"$dir/bench.txt" 2>&1 || rc=$?
    measure_stop "$dir"
    ((rc <= 1)) && [ -s "$dir/bench.json" ] || { tail -20 "$dir/bench.txt" >&2; die "corestream-bench failed against $label (exit $rc)"; }
    local p=.players
    figures "$dir" "$label" "bench-$scheme" "$players" \
        "$(jq "$p.bytes_received" "$dir/bench.json")" \
        "$(jq "$p.total - $p.started + $p.ended_early" "$dir/bench.json")" \
        "$(jq "$p.latency_ms | if .count > 0 then .p50 else null end" "$dir/bench.json")" \
        "$(jq "$p.latency_ms | if .count > 0 then .p99 else null end" "$dir/bench.json")"
}

# load_independent DIR LABEL CLIENT: corestream-bench publishes, rtmpdump (RTMP) or curl
# (HTTP-FLV) processes play for --duration seconds each and count the FLV bytes they get. A
# player is lost when it ended before its time was up or got nothing.
load_independent() {
    local dir=$1 label=$2 client=$3 n=$independent_players rc=0
    "${on_players_side[@]}" taskset -c "$bench_core" timeout -k 5 $((duration + 70)) "$bench_bin" publish --quiet \
        --url "rtmp://$server_ip:$rtmp_port/live/bench" --duration $((duration + 10 + n / 200)) \
        --bitrate 2500k --gop 2s --cores "$bench_core" >"$dir/publish.txt" 2>&1 &
    local publisher=$!
    helper_pids+=("$publisher")
    sleep 1
    measure_start "$dir"
    (
        # Every player process runs on the bench CPU, each bounded by --duration.
        taskset -cp "$bench_core" $BASHPID >/dev/null
        for i in $(seq "$n"); do
            case "$client" in
            rtmpdump)
                "${on_players_side[@]}" timeout -k 2 "$duration" rtmpdump -v -r "rtmp://$server_ip:$rtmp_port/live/bench" -o - \
                    2>"$dir/err.$i" | wc -c >"$dir/bytes.$i" &
                ;;
            curl)
                "${on_players_side[@]}" curl -sS --max-time "$duration" -o /dev/null -w '%{size_download} %{exitcode}\n' \
                    "http://$server_ip:$http_port/live/bench.flv" >"$dir/out.$i" 2>"$dir/err.$i" &
                ;;
            esac
        done
        wait
    )
    measure_stop "$dir"
    kill "$publisher" 2>/dev/null || true
    wait "$publisher" 2>/dev/null || rc=$?
    local bytes=0 lost=0 b i
    for i in $(seq "$n"); do
        case "$client" in
        rtmpdump)
            b=$(cat "$dir/bytes.$i" 2>/dev/null || echo 0)
            # rtmpdump says "Caught signal" when timeout stops it; anything else ended it early.
            grep -q "Caught signal" "$dir/err.$i" 2>/dev/null && ((b > 0)) || lost=$((lost + 1))
            ;;
        curl)
            local code
            read -r b code <"$dir/out.$i" || { b=0 code=-1; }
            # 28: --max-time was reached, the stream played to the end.
            [ "$code" = 28 ] && ((b > 0)) || lost=$((lost + 1))
            ;;
        esac
        bytes=$((bytes + ${b:-0}))
    done
    figures "$dir" "$label" "$client" "$n" "$bytes" "$lost" null null
}

# One server variant of profile L: VARIANT (cs-WINDOW such as cs-0ms or cs-default, cs,
# srs-min, srs-default, nginx) and every client that applies to it (nginx-rtmp has no HTTP-FLV).
run_variant() {
    local variant=$1 label=$2 round=$3 client dir port
    local conns=$((players > independent_players ? players : independent_players))
    IFS=, read -ra wanted_clients <<<"$clients"
    for client in "${wanted_clients[@]}"; do
        case "$client" in
        bench-rtmp | rtmpdump) ;;
        bench-flv | curl) [ "$variant" != nginx ] || continue ;;
        *) die "unknown client $client (bench-rtmp, bench-flv, rtmpdump, curl)" ;;
        esac
        dir="$work/L/$client/$variant/round-$round"
        mkdir -p "$dir"
        port=$(free_port)
        case "$variant" in
        cs-default | cs) start_corestream "$port" "$conns" ;;
        cs-*) start_corestream "$port" "$conns" "${variant#cs-}" ;;
        srs-min) start_srs "$port" "$conns" min ;;
        srs-default) start_srs "$port" "$conns" default ;;
        nginx) start_nginx "$port" "$conns" on ;;
        esac
        sleep 0.5
        read -r _ _ rss_idle < <(proc_sample)
        echo "$rss_idle" >"$dir/rss_idle"
        say "L: $label, $client, $([ "${client#bench}" = "$client" ] && echo "$independent_players" || echo "$players") player(s), ${duration}s$( ((rounds == 1)) || echo ", round $round of $rounds")"
        case "$client" in
        bench-rtmp) load_bench "$dir" "$label" rtmp ;;
        bench-flv) load_bench "$dir" "$label" flv ;;
        rtmpdump | curl) load_independent "$dir" "$label" "$client" ;;
        esac
        stop_server
        jq -r '.figures[] | select(.name == "players lost" or .name == "delivered (Gbit)" or .name == "Gbit per CPU-second") | "\(.name) \(.value)"' \
            "$dir/figures.json" | paste -sd ';' - | sed "s/^/compare.sh:   /" >&2
    done
}

# merge_rounds CLIENT VARIANT: the variant's figures.json from its rounds' figures: each figure's
# median over the rounds that have it (the players lost: their sum, so a loss in any round shows).
merge_rounds() {
    local base="$work/L/$1/$2" files=()
    files=("$base"/round-*/figures.json)
    [ -s "${files[0]}" ] || return 0
    jq -s "$jq_table_defs"'
        . as $rounds |
        {server: .[0].server, client: .[0].client, rounds: length, figures: [
            .[0].figures[].name as $n |
            [$rounds[].figures[] | select(.name == $n) | .value] as $v |
            {name: $n, value: (if $n == "players lost" then ($v | map(. // 0) | add) else ($v | median) end)}
        ]}' "${files[@]}" >"$base/figures.json"
}

# rounds_table VARIANTS...: each server's Gbit per CPU-second over nginx-rtmp's, round by round
# (the two ran minutes apart on the same machine), and the median of those ratios.
rounds_table() {
    local client variant f rows=()
    for client in rtmpdump bench-rtmp; do
        for variant in "$@"; do
            for f in "$work/L/$client/$variant"/round-*/figures.json; do
                [ -s "$f" ] || continue
                rows+=("$(jq -c --arg c "$client" --arg v "$variant" --arg r "$(basename "$(dirname "$f")")" \
                    '{client: $c, variant: $v, round: ($r | ltrimstr("round-") | tonumber),
                      process: (.figures[] | select(.name == "Gbit per CPU-second") | .value),
                      cpu: (.figures[] | select(.name == "Gbit per CPU-second, softirq included") | .value)}' "$f")")
            done
        done
    done
    ((${#rows[@]})) || return 0
    printf '%s\n' "${rows[@]}" | jq -rs --argjson order "$(printf '%s\n' "$@" | jq -R . | jq -sc .)" \
        --argjson labels "$label_map" --argjson n "$rounds" "$jq_table_defs"'
        (map({key: "\(.client) \(.variant) \(.round) process", value: .process}) +
         map({key: "\(.client) \(.variant) \(.round) cpu", value: .cpu}) | from_entries) as $g |
        def ratios($c; $v; $m): [range(1; $n + 1) as $r | over($g["\($c) \($v) \($r) \($m)"]; $g["\($c) nginx \($r) \($m)"])];
        "#### Ratio to nginx-rtmp, round by round",
        "",
        "Gbit per CPU-second over nginx-rtmp'"'"'s in the same round, of the server'"'"'s processes (/proc/PID/stat) and of its whole CPU (softirq included); the last column is the median of the rounds'"'"' ratios.",
        "",
        "| server | players | CPU | " + ([range(1; $n + 1) | "round \(.)"] | join(" | ")) + " | median |",
        "| --- | --- | --- | " + ([range(0; $n + 1) | "---:"] | join(" | ")) + " |",
        ($order[] as $v | select($v != "nginx") | ("rtmpdump", "bench-rtmp") as $c |
         (["process", "processes"], ["cpu", "softirq included"]) as [$m, $name] |
         ratios($c; $v; $m) as $x | select($x | any(. != null)) |
         "| \($labels[$v] // $v) | \($c) | \($name) | " + ($x | map(fmt) | join(" | ")) + " | \($x | median | fmt) |"),
        ""'
}

# jq definitions the tables and merge_rounds use: fmt (a figure as a table shows it, "—" for
# none), over (a ratio, null where either side is missing or the divisor is 0) and median (of the
# numbers in an array, nulls left out; null if there are none).
jq_table_defs='
        def fmt: if . == null then "—"
            elif . == 0 then "0"
            elif fabs >= 100 then (round | tostring)
            elif fabs >= 10 then ((. * 10 | round) / 10 | tostring)
            elif fabs >= 0.1 then ((. * 100 | round) / 100 | tostring)
            else ((. * 10000 | round) / 10000 | tostring) end;
        def over($x; $y): if $x == null or $y == null or $y == 0 then null else $x / $y end;
        def median: map(select(. != null)) | sort |
            if length == 0 then null
            elif length % 2 == 1 then .[length / 2 | floor]
            else (.[length / 2 - 1] + .[length / 2]) / 2 end;'

# md_table CLIENT COLUMNS...: a Markdown table of DIR/figures.json per variant; a column is a
# variant, or A/B for the ratio of two variants' figures.
md_table() {
    local client=$1
    shift
    local files=() col
    for col in "$@"; do
        [[ $col == */* ]] && continue
        [ -s "$work/L/$client/$col/figures.json" ] && files+=("$work/L/$client/$col/figures.json")
    done
    ((${#files[@]})) || return 0
    jq -rn --argjson cols "$(printf '%s\n' "$@" | jq -R . | jq -s .)" \
        --argjson names "$(jq -c '[.figures[].name]' "${files[0]}")" \
        --argjson labels "$label_map" "$jq_table_defs"'
        (reduce inputs as $r ({}; .[$r.variant] = ($r.figures | map({(.name): .value}) | add))) as $v |
        def cell($c; $n): if ($c | test("/")) then
                ($c | split("/")) as [$a, $b] |
                ($v[$a][$n]) as $x | ($v[$b][$n]) as $y |
                over($x; $y) | fmt
            else ($v[$c][$n] | fmt) end;
        def head($c): if ($c | test("/")) then ($c | split("/") | map($labels[.] // .) | join(" / ")) else ($labels[$c] // $c) end;
        "| figure | " + ($cols | map(head(.)) | join(" | ")) + " |",
        "| --- | " + ($cols | map("---:") | join(" | ")) + " |",
        ($names[] as $n | "| \($n) | " + ($cols | map(cell(.; $n)) | join(" | ")) + " |")
    ' < <(for f in "${files[@]}"; do jq -c --arg v "$(basename "$(dirname "$f")")" '{variant: $v, figures}' "$f"; done)
}

profile_latency() {
    local cs_variants=() variant w
    for w in "${merge_windows[@]}"; do
        cs_variants+=("cs-$w")
    done
    if [ "$merge_key" = off ]; then
        cs_variants=(cs)
    fi
    local variants=("${cs_variants[@]}")
    [ -z "$srs_bin" ] || variants+=(srs-min srs-default)
    variants+=(nginx)
    local round client
    for round in $(seq "$rounds"); do
        for variant in "${variants[@]}"; do
            run_variant "$variant" "$(jq -r --arg v "$variant" '.[$v] // $v' <<<"$label_map")" "$round"
        done
    done
    IFS=, read -ra wanted_clients <<<"$clients"
    for client in "${wanted_clients[@]}"; do
        for variant in "${variants[@]}"; do
            merge_rounds "$client" "$variant"
        done
    done
    # Columns: each Corestream budget beside the SRS mode of the same budget, with the ratio:
    # 0 with min_latency, 350 ms and the default with SRS's default (350 ms); other windows between.
    local cols=() low=() mid=() high=()
    for variant in "${cs_variants[@]}"; do
        case "$variant" in
        cs-0ms | cs-0s) low+=("$variant") ;;
        cs-350ms | cs-default) high+=("$variant") ;;
        *) mid+=("$variant") ;;
        esac
    done
    if [ -z "$srs_bin" ]; then
        cols=("${low[@]}" "${mid[@]}" "${high[@]}")
    elif [ "$merge_key" = off ]; then
        cols=(cs srs-min cs/srs-min srs-default cs/srs-default)
    else
        cols=("${low[@]}" srs-min)
        for variant in "${low[@]}"; do cols+=("$variant/srs-min"); done
        cols+=("${mid[@]}" "${high[@]}" srs-default)
        for variant in "${high[@]}"; do cols+=("$variant/srs-default"); done
    fi
    cols+=(nginx)
    {
        echo "### Profile L: equal latency budgets, one 2.5 Mbit/s stream"
        echo
        echo "1 stream (corestream-bench's synthetic H.264/AAC, 2500k, GOP 2 s), ${duration} s per run; $players corestream-bench player(s), $independent_players rtmpdump / curl player(s); server on CPU $server_core, players on CPU $bench_core; publisher and players $link_note."
        ((rounds == 1)) || echo "$rounds rounds, every server once in each: each figure below is its median over the rounds (players lost: their sum)."
        if [ -n "$srs_bin" ]; then
            echo "Corestream at writeMergeLatency ${windows//,/, }. Budgets paired: 0ms with SRS \`min_latency on; tcp_nodelay on; play { mw_latency 0; }\`;"
            echo "350ms and the default with SRS's default (mw_latency 350, mw_msgs 8). nginx-rtmp (no merge setting, multi_accept on) for reference."
        else
            echo "Corestream at writeMergeLatency ${windows//,/, }; nginx-rtmp (no merge setting, multi_accept on) for reference; no SRS (--srs)."
        fi
        [ "$merge_key" != off ] || echo "**writeMergeLatency was left out** ($merge_note): one Corestream column, the engine as it is${srs_bin:+, against both SRS modes}."
        echo "Bytes: corestream-bench counts socket bytes (RTMP chunks / HTTP body), rtmpdump the FLV it writes, curl the HTTP body."
        echo "KiB per player: (RSS max - RSS of the idle server) / players. $perf_note."
        [ -z "$srs_bin" ] || echo "SRS's HTTP-FLV loop sleeps mw_latency between polls of its queue (srs_app_http_stream.cpp, \`srs_usleep(mw_sleep)\`), so at mw_latency 0 it polls without sleeping: its CPU there is mostly that loop."
        echo
        local title
        for client in "${wanted_clients[@]}"; do
            case "$client" in
            bench-rtmp) title="corestream-bench, RTMP players" ;;
            bench-flv) title="corestream-bench, HTTP-FLV players" ;;
            rtmpdump) title="rtmpdump (independent RTMP players)" ;;
            curl) title="curl (independent HTTP-FLV players)" ;;
            esac
            echo "#### $title"
            echo
            md_table "$client" "${cols[@]}"
            echo
        done
        latency_summary "${variants[@]}"
        ((rounds == 1)) || rounds_table "${variants[@]}"
    } >>"$work/tables.md"
}

# latency_summary VARIANTS...: per server variant, its latency (corestream-bench RTMP players)
# beside its Gbit per CPU-second and the ratio to nginx-rtmp's (rtmpdump and bench RTMP players),
# then the Corestream window of the highest ratio among those no slower than nginx-rtmp at p50
# and p99: the comparison at an equal latency budget, which nginx-rtmp has no setting for.
latency_summary() {
    local client variant f rows=()
    for client in bench-rtmp rtmpdump; do
        for variant in "$@"; do
            f="$work/L/$client/$variant/figures.json"
            [ -s "$f" ] || continue
            rows+=("$(jq -c --arg c "$client" --arg v "$variant" \
                '{client: $c, variant: $v} + (.figures | map({(.name): .value}) | add)' "$f")")
        done
    done
    ((${#rows[@]})) || return 0
    printf '%s\n' "${rows[@]}" | jq -rs --argjson order "$(printf '%s\n' "$@" | jq -R . | jq -sc .)" \
        --argjson labels "$label_map" "$jq_table_defs"'
        (map({key: "\(.client) \(.variant)", value: .}) | from_entries) as $r |
        def fig($c; $v; $n): $r["\($c) \($v)"][$n];
        def gbit($c; $v): fig($c; $v; "Gbit per CPU-second");
        def ratio($c; $v): over(gbit($c; $v); gbit($c; "nginx"));
        def gbit_si($v): fig("rtmpdump"; $v; "Gbit per CPU-second, softirq included");
        def ratio_si($v): over(gbit_si($v); gbit_si("nginx"));
        def players_cpu($v): fig("rtmpdump"; $v; "both CPUs, players included (s)") as $a |
            fig("rtmpdump"; $v; "server'"'"'s CPU, softirq included (s)") as $m |
            if $a == null or $m == null then null
            else over($a - $m; fig("rtmpdump"; $v; "delivered (Gbit)")) end;
        def packets($v): fig("rtmpdump"; $v; "data packets per player per second") as $p |
            fig("rtmpdump"; $v; "data packets/s from other CPUs") as $o |
            if $p == null then "—" else "\($p | fmt) (\($o / fig("rtmpdump"; $v; "players") | fmt))" end;
        def us_per_packet($v): fig("rtmpdump"; $v; "data packets/s from the server'"'"'s CPU") as $p |
            fig("rtmpdump"; $v; "window (s)") as $w |
            fig("rtmpdump"; $v; "server user CPU (s)") as $u |
            fig("rtmpdump"; $v; "server system CPU (s)") as $s |
            if $p == null or $w == null or $u == null or $s == null then null
            else over(($u + $s) * 1000000; $p * $w) end;
        def lat($v): if fig("bench-rtmp"; $v; "latency p99 (ms)") == null then "—"
            else "\(fig("bench-rtmp"; $v; "latency p50 (ms)") | fmt) / \(fig("bench-rtmp"; $v; "latency p99 (ms)") | fmt)" end;
        "#### Against nginx-rtmp, by latency",
        "",
        "Latency from the corestream-bench RTMP run, Gbit per CPU-second from each RTMP client'"'"'s run, ratio to nginx-rtmp'"'"'s in the same run.",
        "The process'"'"'s CPU (/proc/PID/stat) leaves out the softirq time its sends cause on its CPU; \"softirq included\" is the whole busy time of the server'"'"'s CPU.",
        "Data packets per player per second, all CPUs (in brackets: sent from the players'"'"' CPU, where acknowledgements release held-back data; that kernel work is in neither server figure, but in the players'"'"' CPU-seconds per Gbit).",
        "µs per packet: the process'"'"'s CPU (rtmpdump run) over the data packets sent from its own CPU. Where servers pay the same for a packet, their ratio is that of the packets each sends from its own CPU.",
        "",
        "| server | latency p50 / p99 (ms) | Gbit per CPU-second, rtmpdump | ratio | softirq included | ratio | data packets per player per second | µs per packet from its CPU | players'"'"' CPU-seconds per Gbit | Gbit per CPU-second, bench RTMP | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ($order[] as $v | "| \($labels[$v] // $v) | \(lat($v)) | \(gbit("rtmpdump"; $v) | fmt) | \(ratio("rtmpdump"; $v) | fmt) | \(gbit_si($v) | fmt) | \(ratio_si($v) | fmt) | \(packets($v)) | \(us_per_packet($v) | fmt) | \(players_cpu($v) | fmt) | \(gbit("bench-rtmp"; $v) | fmt) | \(ratio("bench-rtmp"; $v) | fmt) |"),
        "",
        (fig("bench-rtmp"; "nginx"; "latency p99 (ms)") as $n99 | fig("bench-rtmp"; "nginx"; "latency p50 (ms)") as $n50 |
         [$order[] | select(startswith("cs")) |
          select(fig("bench-rtmp"; .; "latency p99 (ms)") != null and $n99 != null) |
          select(fig("bench-rtmp"; .; "latency p99 (ms)") <= $n99 and fig("bench-rtmp"; .; "latency p50 (ms)") <= $n50) |
          {v: ., x: (ratio("rtmpdump"; .) // ratio("bench-rtmp"; .))} | select(.x != null)] as $fit |
         if $n99 == null then "No corestream-bench RTMP run of nginx-rtmp: no latency to match."
         elif ($fit | length) == 0 then "No Corestream window here was as fast as nginx-rtmp (p50 / p99 \($n50 | fmt) / \($n99 | fmt) ms)."
         else ($fit | max_by(.x)) as $best |
            "At no more latency than nginx-rtmp (its p50 / p99 \($n50 | fmt) / \($n99 | fmt) ms): \($labels[$best.v] // $best.v), \(lat($best.v)) ms, \($best.x | fmt)x nginx-rtmp'"'"'s Gbit per CPU-second (\(if ratio("rtmpdump"; $best.v) != null then "rtmpdump" else "bench RTMP" end) players)."
         end),
        ""'
}

# Profile M: RSS growth per player over --memory-players players of one live 64 kbit/s stream.
memory_run() { # VARIANT LABEL SCHEME
    local variant=$1 label=$2 scheme=$3 n=$memory_players dir port rc=0
    dir="$work/M/$variant-$scheme"
    mkdir -p "$dir"
    port=$(free_port)
    case "$variant" in
    cs) start_corestream "$port" "$n" ;;
    nginx) start_nginx "$port" "$n" on ;;
    srs) start_srs "$port" "$n" default ;;
    esac
    sleep 0.5
    read -r _ _ idle < <(proc_sample)
    # Held 10 s after the last start, plus 10 s for connects that wait on SYN retransmits.
    local play_time=$((n / memory_ramp + 20)) url="rtmp://127.0.0.1:$port/live/mem"
    [ "$scheme" = rtmp ] || url="http://127.0.0.1:$http_port/live/mem.flv"
    taskset -c "$bench_core" timeout -k 5 $((play_time + 60)) "$bench_bin" publish --quiet \
        --url "rtmp://127.0.0.1:$port/live/mem" --duration $((play_time + 8)) --bitrate 64k --gop 2s \
        --cores "$bench_core" >"$dir/publish.txt" 2>&1 &
    local publisher=$!
    helper_pids+=("$publisher")
    sleep 3
    read -r _ _ live < <(proc_sample)
    echo "$live" >"$dir/rss_idle"
    say "M: $label, $n $scheme player(s) at $memory_ramp/s, ${play_time}s"
    measure_start "$dir"
    taskset -c "$bench_core" timeout -k 5 $((play_time + 60)) "$bench_bin" play --quiet \
        --url "$url" --players "$n" --ramp "$memory_ramp" --duration "$play_time" --connect-timeout 30s \
        --cores "$bench_core" --json "$dir/bench.json" >"$dir/bench.txt" 2>&1 || rc=$?
    measure_stop "$dir"
    kill "$publisher" 2>/dev/null || true
    wait "$publisher" 2>/dev/null || true
    stop_server
    ((rc <= 1)) && [ -s "$dir/bench.json" ] || { tail -20 "$dir/bench.txt" >&2; die "corestream-bench play failed against $label (exit $rc)"; }
    local max
    max=$(cat "$dir/rss_max" 2>/dev/null || echo "$live")
    jq -c --arg server "$label" --arg scheme "$scheme" --argjson idle "$idle" --argjson live "$live" --argjson max "$max" '
        .players as $p | ($p.started - $p.ended_early) as $held |
        {"server": $server, "scheme": $scheme, players: $p.total, held: $held,
         idle: ($idle / 1024), live: ($live / 1024), max: ($max / 1024),
         per: (if $held > 0 then ($max - $live) / $held else null end)}' "$dir/bench.json" >>"$work/M/rows.jsonl"
    jq -r '"compare.sh:   \(.held) of \(.players) players held, \(.per // "—") KiB per player"' <<<"$(tail -1 "$work/M/rows.jsonl")" >&2
}

profile_memory() {
    mkdir -p "$work/M"
    memory_run cs Corestream rtmp
    memory_run cs Corestream flv
    memory_run nginx nginx-rtmp rtmp
    if [ -n "$srs_bin" ]; then
        memory_run srs SRS rtmp
        memory_run srs SRS flv
    fi
    {
        echo "### Profile M: memory per player, one live 64 kbit/s stream"
        echo
        echo "$memory_players corestream-bench player(s) per run, started at $memory_ramp/s (connect timeout 30 s), held at least 10 s; server on CPU $server_core, bench on CPU $bench_core; nginx with multi_accept on."
        echo "KiB per player: (RSS max while the players play - RSS with the stream live and no player) / players held to the end."
        echo "Corestream at its default configuration; SRS at its default (mw_latency 350); nginx-rtmp has no HTTP-FLV."
        echo
        echo "| server | protocol | players held | RSS idle (MB) | RSS stream live (MB) | RSS max (MB) | KiB per player |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
        jq -r 'def f: if . == null then "—" else (. * 10 | round / 10 | tostring) end;
            "| \(.server) | \(if .scheme == "rtmp" then "RTMP" else "HTTP-FLV" end) | \(.held) / \(.players) | \(.idle | f) | \(.live | f) | \(.max | f) | \(.per | f) |"' \
            "$work/M/rows.jsonl"
        echo
    } >>"$work/tables.md"
}

# === main =========================================================================================
label_map='{"cs-default": "Corestream default", "cs": "Corestream", "srs-min": "SRS min_latency", "srs-default": "SRS default", "nginx": "nginx-rtmp"}'
srs_version=""
[ -z "$srs_bin" ] || srs_version=$("$srs_bin" -v 2>&1 | head -1)
for w in "${merge_windows[@]}"; do
    [ "$w" = default ] || label_map=$(jq -c --arg v "cs-$w" --arg l "Corestream $w" '.[$v] = $l' <<<"$label_map")
done
merge_note=""
if ((needs_clients)); then
    setup_perf
    say "$perf_note"
    if [ "$merge_key" = auto ]; then
        probe="$work/probe.yaml"
        corestream_config "$probe" "$(free_port)" "$(free_port)" 100 350ms
        if err=$("$engine_bin" --config "$probe" check-config 2>&1); then
            merge_key=on
        elif grep -q writeMergeLatency <<<"$err"; then
            merge_key=off
            merge_note="this engine refuses the key: $(grep -o 'unknown field `writeMergeLatency`' <<<"$err" | head -1)"
            say "writeMergeLatency: $merge_note; running one Corestream variant"
        else
            die "corestream check-config refused the generated configuration: $err"
        fi
    elif [ "$merge_key" = off ]; then
        merge_note="--no-merge-key"
    fi
fi

setup_link

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
{
    echo "## Corestream vs nginx-rtmp${srs_bin:+ and SRS}"
    echo
    echo "- machine: ${cpu_model:-unknown CPU}, $ncpu CPUs, $(free -g 2>/dev/null | awk '/^Mem:/{print $2 " GiB"}'), Linux $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
    echo "- Corestream $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') ($build build, cores: 1); $nginx_version with ngx_rtmp_module, 1 worker${srs_version:+; SRS $srs_version}"
    echo "- command: \`$command_line\`"
    echo "- $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
} >"$work/tables.md"

IFS=, read -ra wanted <<<"$profiles"
for p in "${wanted[@]}"; do
    case "$p" in
    A) profile A "many players of one 2.5 Mbit/s stream" 1 "$players" 2500k ;;
    B) profile B "many 250 kbit/s streams, few players each" "$streams" "$few_players" 250k ;;
    L) profile_latency ;;
    M) profile_memory ;;
    *) die "unknown profile $p (A, B, L or M)" ;;
    esac
done

cat "$work/tables.md"
out="${out:-$root/target/compare/compare.md}"
mkdir -p "$(dirname "$out")"
cp "$work/tables.md" "$out"
say "tables written to $out"
