#!/usr/bin/env bash
# Whole-system ingest benchmark: builds vigil and bench/loadgen, starts Vigil on
# 127.0.0.1 with a fresh data directory, sends N events over C connections,
# and prints the load generator's report plus Vigil's peak RSS.
#
#   bench/ingest.sh [N] [C] [BATCH] [extra loadgen flags…]
#   bench/ingest.sh 2000000 8 1000
#   bench/ingest.sh 1000000 8 1000 -rate 60000     # latency at a fixed rate
#
# METRICS=1 also prints Vigil's commit-latency histogram and queue figures.
# PROFILE=1 also writes a 20 s CPU profile of the server to bench/results/cpu.prof.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}; C=${2:-8}; BATCH=${3:-1000}; shift $(( $# < 3 ? $# : 3 )) || true
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/vigil" ./cmd/vigil
go build -o "$work/loadgen" ./bench/loadgen
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
token=vgl_bench-token-$(date +%s%N)
VIGIL_ADMIN_TOKEN=$token VIGIL_PPROF=${PROFILE:-} "$work/vigil" serve --listen 127.0.0.1:$port --data-dir "$work/data" >"$work/vigil.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
if [ -n "${PROFILE:-}" ]; then
  mkdir -p bench/results
  (sleep 8; curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/debug/pprof/profile?seconds=20" -o bench/results/cpu.prof) &
  prof=$!
fi
"$work/loadgen" -url "http://127.0.0.1:$port" -token "$token" -n "$N" -c "$C" -batch "$BATCH" -progress 0 "$@"
# Where detection and the ledger stand when the last event is acknowledged:
# they follow the log asynchronously, and work they have left is not in the
# CPU figure below.
m=$(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics")
cp=$(curl -fsS "http://127.0.0.1:$port/api/v1/ledger/checkpoint" | sed -n 2p)
echo "at the end: last seq $(echo "$m" | awk '/^vigil_store_last_seq /{printf "%d", $2}'), detection evaluated $(echo "$m" | awk '/^vigil_detect_events_total /{printf "%d", $2}'), ledger checkpoint size $cp"
echo "decisions: $(echo "$m" | awk '/^vigil_decisions_(added|extended)_total/ {split($1, n, "{"); s[n[1]] += $2} END {printf "%d added, %d extended", s["vigil_decisions_added_total"], s["vigil_decisions_extended_total"]}')"
echo "vigil peak RSS: $(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status)"
# CPU time of Vigil's process (user+system), from its start: less sensitive
# than events/s to whatever else shares the two cores.
echo "vigil CPU: $(awk -v n="$N" -v hz="$(getconf CLK_TCK)" '{c=($14+$15)/hz; printf "%.1f s, %.1f us/event", c, c*1e6/n}' /proc/$pid/stat)"
echo "events stored: $(curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/events/count")"
if [ -n "${METRICS:-}" ]; then
  curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -E '^vigil_(store_|ingest_queue)' || true
fi
if [ -n "${prof:-}" ]; then wait "$prof"; fi
