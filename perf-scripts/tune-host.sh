#!/usr/bin/env bash
# Host settings a bare-metal relay wants: kernel network and file limits (sysctl), descriptor and
# locked-memory limits (io_uring registers its rings and buffers as locked memory), and the CPU
# frequency governor. Prints every value it changes as "name: old -> new"; values already right
# are left alone.
#
# Usage: perf-scripts/tune-host.sh [--dry-run] [--persist]
#   --dry-run  only print what would change (needs no root)
#   --persist  also write /etc/sysctl.d/90-corestream.conf and
#              /etc/security/limits.d/90-corestream.conf so the settings survive a reboot
#
# The ulimits set here apply to this shell's children only; for a service, set LimitNOFILE= and
# LimitMEMLOCK= in its systemd unit (printed at the end).
set -euo pipefail

dry_run=0
persist=0
for arg in "$@"; do
    case "$arg" in
    --dry-run) dry_run=1 ;;
    --persist) persist=1 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tune-host.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

if ((!dry_run)) && [ "$(id -u)" -ne 0 ]; then
    echo "tune-host.sh: run as root (or with --dry-run to see what would change)" >&2
    exit 1
fi

changed=0
skipped=0
# What --persist writes: each setting's value once tuned.
persist_lines=()
# Normalise whitespace so "1024 65535" and "1024	65535" compare equal.
norm() { tr -s ' \t' ' ' <<<"$1" | sed 's/^ //; s/ $//'; }

set_sysctl() {
    local key=$1 want=$2 file cur
    file="/proc/sys/${key//.//}"
    if [ ! -e "$file" ]; then
        echo "sysctl $key: not available on this kernel, skipped"
        skipped=$((skipped + 1))
        return
    fi
    cur=$(norm "$(cat "$file" 2>/dev/null || echo '?')")
    want=$(norm "$want")
    persist_lines+=("$key = $want")
    if [ "$cur" = "$want" ]; then
        return
    fi
    echo "sysctl $key: $cur -> $want"
    changed=$((changed + 1))
    if ((!dry_run)); then
        if ! sysctl -q -w "$key=$want" >/dev/null 2>&1; then
            echo "  (could not set $key here: read-only in this container or namespace)"
        fi
    fi
}

# Only raise numeric limits: never lower what an operator already set higher.
raise_sysctl() {
    local key=$1 want=$2 file cur
    file="/proc/sys/${key//.//}"
    [ -e "$file" ] || { set_sysctl "$key" "$want"; return; }
    cur=$(cat "$file" 2>/dev/null || echo 0)
    if [[ "$cur" =~ ^[0-9]+$ ]] && ((cur >= want)); then
        persist_lines+=("$key = $cur")
        return
    fi
    set_sysctl "$key" "$want"
}

# Three-number settings (min default max): raise each number, lower none.
raise3_sysctl() {
    local key=$1 file cur out=() i
    shift
    file="/proc/sys/${key//.//}"
    [ -e "$file" ] || { set_sysctl "$key" "$*"; return; }
    read -ra cur <<<"$(cat "$file")"
    local want=("$@")
    for i in 0 1 2; do
        if [[ "${cur[$i]:-0}" =~ ^[0-9]+$ ]] && ((${cur[$i]:-0} > ${want[$i]})); then
            out+=("${cur[$i]}")
        else
            out+=("${want[$i]}")
        fi
    done
    set_sysctl "$key" "${out[*]}"
}

sysctls=(
    # Listen backlogs: connection bursts when thousands of players (re)connect at once.
    "raise net.core.somaxconn 65535"
    "raise net.ipv4.tcp_max_syn_backlog 65535"
    "raise net.core.netdev_max_backlog 250000"
    # Descriptors: one per connection, plus io_uring's.
    "raise fs.file-max 2097152"
    "raise fs.nr_open 2097152"
    # Socket buffers: a 2.5 Mbit/s stream to a distant player needs a large send window.
    "raise net.core.rmem_max 16777216"
    "raise net.core.wmem_max 16777216"
    "raise3 net.ipv4.tcp_rmem 4096 131072 16777216"
    "raise3 net.ipv4.tcp_wmem 4096 131072 16777216"
    # Live media is bursty per GOP: keep the congestion window across idle gaps.
    "set net.ipv4.tcp_slow_start_after_idle 0"
    # Many short-lived bench/client connections from one host.
    "set net.ipv4.ip_local_port_range 1024 65535"
    "set net.ipv4.tcp_tw_reuse 1"
    "set net.ipv4.tcp_fin_timeout 15"
    # io_uring must be allowed (0) where the kernel can switch it off.
    "set kernel.io_uring_disabled 0"
)

echo "== sysctl"
for entry in "${sysctls[@]}"; do
    read -r mode key value <<<"$entry"
    case "$mode" in
    raise) raise_sysctl "$key" "$value" ;;
    raise3) raise3_sysctl "$key" $value ;;
    *) set_sysctl "$key" "$value" ;;
    esac
done

echo "== ulimits (this shell and what it starts)"
nofile_want=1048576
cur_nofile=$(ulimit -n)
if [ "$cur_nofile" != unlimited ] && ((cur_nofile < nofile_want)); then
    echo "ulimit -n (open files): $cur_nofile -> $nofile_want"
    changed=$((changed + 1))
    if ((!dry_run)); then
        ulimit -Hn "$nofile_want" 2>/dev/null || true
        ulimit -n "$nofile_want" 2>/dev/null || echo "  (could not raise: hard limit is $(ulimit -Hn))"
    fi
fi
cur_memlock=$(ulimit -l)
if [ "$cur_memlock" != unlimited ]; then
    echo "ulimit -l (locked memory, KiB; io_uring rings and registered buffers): $cur_memlock -> unlimited"
    changed=$((changed + 1))
    if ((!dry_run)); then
        ulimit -Hl unlimited 2>/dev/null || true
        ulimit -l unlimited 2>/dev/null || echo "  (could not raise: hard limit is $(ulimit -Hl))"
    fi
fi

echo "== CPU frequency governor"
governors=(/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor)
if [ ! -e "${governors[0]}" ]; then
    echo "no cpufreq governor exposed (virtual machine or container): nothing to set"
else
    for g in "${governors[@]}"; do
        cur=$(cat "$g")
        [ "$cur" = performance ] && continue
        cpu=$(basename "$(dirname "$(dirname "$g")")")
        if ! grep -qw performance "$(dirname "$g")/scaling_available_governors" 2>/dev/null; then
            echo "$cpu governor: $cur (performance not offered, left alone)"
            continue
        fi
        echo "$cpu governor: $cur -> performance"
        changed=$((changed + 1))
        ((dry_run)) || echo performance >"$g" 2>/dev/null || echo "  (could not write $g)"
    done
fi

if ((persist)); then
    echo "== persistence"
    if ((dry_run)); then
        echo "would write /etc/sysctl.d/90-corestream.conf and /etc/security/limits.d/90-corestream.conf"
    else
        {
            echo "# Written by corestream perf-scripts/tune-host.sh"
            printf '%s\n' "${persist_lines[@]}"
        } >/etc/sysctl.d/90-corestream.conf
        cat >/etc/security/limits.d/90-corestream.conf <<EOF
# Written by corestream perf-scripts/tune-host.sh
*    soft nofile  $nofile_want
*    hard nofile  $nofile_want
*    soft memlock unlimited
*    hard memlock unlimited
EOF
        echo "wrote /etc/sysctl.d/90-corestream.conf and /etc/security/limits.d/90-corestream.conf"
    fi
fi

echo "== summary"
if ((dry_run)); then
    echo "$changed setting(s) would change (dry run: nothing was changed)"
else
    echo "$changed setting(s) changed"
fi
((skipped == 0)) || echo "$skipped setting(s) not available on this kernel"
echo "for a systemd service, add to its [Service] section: LimitNOFILE=$nofile_want and LimitMEMLOCK=infinity"
