#!/usr/bin/env bash
# Profiles a running Corestream engine with `perf` and writes an SVG flame graph.
#
# Usage: perf-scripts/flamegraph.sh --pid PID [--seconds 20] [--freq 99] [--call-graph dwarf|fp]
#                                   [--out flamegraph.svg]
#        perf-scripts/flamegraph.sh            (the pid of the one running `corestream`)
#
# Needs:
#   - perf (Debian: apt-get install linux-perf; Ubuntu: linux-tools-$(uname -r)), allowed to
#     profile the process: run as root, or set kernel.perf_event_paranoid to 1 or lower;
#   - a folder of the stacks into SVG, either of
#       inferno (cargo install inferno: inferno-collapse-perf, inferno-flamegraph), or
#       Brendan Gregg's FlameGraph scripts (stackcollapse-perf.pl, flamegraph.pl) on PATH or in
#       $FLAMEGRAPH_DIR.
# The release profile keeps line tables (debug = 1), so `--call-graph dwarf` (the default) gives
# full Rust stacks without frame pointers.
set -euo pipefail

pid=""
seconds=20
freq=99
call_graph=dwarf
out=flamegraph.svg

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
die() {
    echo "flamegraph.sh: $*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
    --pid) pid="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --freq) freq="$2"; shift 2 ;;
    --call-graph) call_graph="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "flamegraph.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0 && seconds <= 600)) || die "--seconds must be 1..600"
[[ "$freq" =~ ^[0-9]+$ ]] || die "--freq must be a number (samples per second)"
case "$call_graph" in
dwarf) cg_args=(--call-graph dwarf,16384) ;;
fp) cg_args=(-g) ;;
lbr) cg_args=(--call-graph lbr) ;;
*) die "--call-graph must be dwarf, fp or lbr" ;;
esac

# --- tools, checked before anything is recorded -------------------------------------------------
command -v perf >/dev/null 2>&1 ||
    die "perf is not installed (Debian: apt-get install linux-perf; Ubuntu: apt-get install linux-tools-\$(uname -r))"

collapse=()
render=()
if command -v inferno-collapse-perf >/dev/null 2>&1 && command -v inferno-flamegraph >/dev/null 2>&1; then
    collapse=(inferno-collapse-perf)
    render=(inferno-flamegraph)
else
    fg_dir="${FLAMEGRAPH_DIR:-}"
    sc=""
    fg=""
    if [ -n "$fg_dir" ] && [ -x "$fg_dir/stackcollapse-perf.pl" ] && [ -x "$fg_dir/flamegraph.pl" ]; then
        sc="$fg_dir/stackcollapse-perf.pl"
        fg="$fg_dir/flamegraph.pl"
    elif command -v stackcollapse-perf.pl >/dev/null 2>&1 && command -v flamegraph.pl >/dev/null 2>&1; then
        sc=$(command -v stackcollapse-perf.pl)
        fg=$(command -v flamegraph.pl)
    fi
    if [ -z "$sc" ]; then
        die "no flame graph renderer found: install inferno (cargo install inferno) or put Brendan Gregg's FlameGraph scripts (stackcollapse-perf.pl, flamegraph.pl) on PATH or in FLAMEGRAPH_DIR"
    fi
    command -v perl >/dev/null 2>&1 || die "the FlameGraph scripts need perl, which is not installed"
    collapse=("$sc")
    render=("$fg")
fi

# --- the process ------------------------------------------------------------------------------
if [ -z "$pid" ]; then
    mapfile -t pids < <(pgrep -x corestream || true)
    case "${#pids[@]}" in
    0) die "no running corestream process; pass --pid PID" ;;
    1) pid="${pids[0]}" ;;
    *) die "several corestream processes (${pids[*]}); pass --pid PID" ;;
    esac
fi
[[ "$pid" =~ ^[0-9]+$ ]] || die "--pid must be a process id"
kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || die "no process $pid"

paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo 2)
if [ "$(id -u)" -ne 0 ] && ((paranoid > 1)); then
    die "kernel.perf_event_paranoid is $paranoid: run as root or 'sysctl kernel.perf_event_paranoid=1'"
fi

work=$(mktemp -d /tmp/corestream-flame.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "flamegraph.sh: recording pid $pid for ${seconds}s at ${freq} Hz (${call_graph} call graphs)" >&2
if ! perf record -F "$freq" "${cg_args[@]}" -p "$pid" -o "$work/perf.data" -- sleep "$seconds" 2>"$work/record.log"; then
    cat "$work/record.log" >&2
    die "perf record failed (see above); in a container perf may need --privileged or CAP_PERFMON"
fi
perf script -i "$work/perf.data" 2>/dev/null >"$work/perf.txt" || die "perf script failed"
[ -s "$work/perf.txt" ] || die "perf recorded no samples (is the engine busy? try a longer --seconds)"
"${collapse[@]}" <"$work/perf.txt" >"$work/folded.txt" || die "collapsing the stacks failed"
"${render[@]}" --title "Corestream pid $pid" <"$work/folded.txt" >"$out" || die "rendering the SVG failed"
echo "flamegraph.sh: wrote $out ($(wc -l <"$work/folded.txt") distinct stacks)" >&2
