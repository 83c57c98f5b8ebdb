#!/usr/bin/env bash
# CI-sized smoke run of compare.sh: a few players and streams for a few seconds against the debug
# builds that `cargo test --workspace` leaves in target/debug. Passes when both profiles print a
# table with a Corestream and an nginx-rtmp column and every player of both servers started.
# Installs nginx + libnginx-mod-rtmp (apt-get) when missing, like compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp /tmp/corestream-ci-smoke.XXXXXX.md)
trap 'rm -f "$out"' EXIT
perf-scripts/compare.sh --debug --players 3 --streams 3 --few-players 1 --duration 3 --out "$out"

fail() { echo "ci-smoke: $*" >&2; exit 1; }
headers=$(grep -c '^| figure | Corestream | nginx-rtmp | Corestream / nginx-rtmp |$' "$out" || true)
[ "$headers" -eq 2 ] || fail "expected 2 comparison tables, found $headers"
grep -q '^| players started | 3 | 3 | 1.00 |$' "$out" || fail "profile A: not every player started on both servers"
[ "$(grep -c '^| players with frames | 3 | 3 | 1.00 |$' "$out")" -eq 2 ] || fail "not every player got frames on both servers"
echo "ci-smoke: passed (both servers, both profiles)"
