#!/usr/bin/env bash
# Raises the 4-way diamond lab, traces its destination with 16 path IDs
# (the table, then each distinct path once), and tears the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="tfdemo$(printf '%04x' $((RANDOM)))"
trap 'scripts/lab.sh down "$prefix"' EXIT
scripts/lab.sh up diamond4 "$prefix" >/dev/null
echo "# lab $prefix: prober - r1 - 4 parallel routers (ECMP) - r3 - 10.99.0.1"
echo "# ip netns exec $prefix-prober bin/traceflow-fast --paths 16 10.99.0.1"
ip netns exec "$prefix-prober" bin/traceflow-fast --paths 16 10.99.0.1
echo
echo "# ip netns exec $prefix-prober bin/traceflow-fast --paths 16 --dedup 10.99.0.1"
ip netns exec "$prefix-prober" bin/traceflow-fast --paths 16 --dedup 10.99.0.1
echo
echo "# ip netns exec $prefix-prober bin/traceflow-fast --dedup 10.99.0.1   (--paths auto: MDA stopping rule at 95%)"
ip netns exec "$prefix-prober" bin/traceflow-fast --dedup 10.99.0.1
