#!/usr/bin/env bash
# Runs bench/ingest.sh R times with the same arguments (a fresh Vigil each
# time) and prints each run's figures, then their median and range. Single
# runs on the 2-core VM vary by 10–20 %: report the median.
#
#   bench/repeat.sh R [N] [C] [BATCH] [extra loadgen flags…]
#   bench/repeat.sh 5 1000000 8 1000
#   bench/repeat.sh 5 1000000 8 100 -rate 52000
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:?usage: bench/repeat.sh R [N] [C] [BATCH] [loadgen flags…]}
shift
case $R in '' | *[!0-9]* | 0) echo "R must be a positive number of runs" >&2; exit 2 ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq "$R"); do
  if ! bench/ingest.sh "$@" >"$work/run" 2>&1; then
    cat "$work/run" >&2
    exit 1
  fi
  awk -v i="$i" '
    /^throughput:/ { tput = $2 }
    /^ack latency:/ { for (k = 1; k < NF; k++) if ($k == "p99") { p99 = $(k + 1); sub("ms", "", p99) } }
    /^vigil CPU:/ { cpu = $5 }
    /^vigil peak RSS:/ { rss = $4 }
    /^at the end:/ { last = $6; sub(",", "", last); det = $9; sub(",", "", det) }
    END {
      printf "run %d: %s events/s, ack p99 %s ms, %s us/event, peak RSS %s MiB, detection %s of %s at the end\n", i, tput, p99, cpu, rss, det, last
      print tput, p99, cpu, rss > "/dev/stderr"
    }' "$work/run" 2>>"$work/figures"
done
# Median (the middle run; the lower middle for an even count) and range.
for col in 1:events/s 2:ack-p99-ms 3:us/event 4:peak-RSS-MiB; do
  n=${col%%:*} name=${col#*:}
  sort -g -k"$n","$n" "$work/figures" | awk -v n="$n" -v name="$name" '
    { v[NR] = $n }
    END { printf "%-13s median %s (range %s to %s, %d runs)\n", name, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
done
