#!/usr/bin/env bash
# The browser view of bulk scans in headless Chromium (BenchmarkBulkPage in
# viz/bench_test.go): page size, time from navigation to the first drawing,
# the longest task and the total blocking time while it loads (Long Tasks
# API), the JavaScript heap, and the time to open the largest group and to
# search a destination. Synthetic scans of 254, 4,094 and 65,534
# destinations through the diamond4 lab, the page that drew every
# destination up to 4,094 for comparison, and, as root with
# bin/traceflow-fast built, real scans of the lab's /24 and /20 (--paths
# auto, the default).
#
#   BENCHTIME=3x scripts/bench-viz.sh      (each load in a browser of its own)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
prefix="tfviz$(printf '%04x' $((RANDOM)))"
lab=0
cleanup() { if [ $lab = 1 ]; then scripts/lab.sh down "$prefix" || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
json=""
if [ "$(id -u)" = 0 ] && [ -x bin/traceflow-fast ]; then
	LAB_LOCAL_PREFIX=10.21.0.0/20 scripts/lab.sh up diamond4 "$prefix" 2>/dev/null
	lab=1
	for cidr in 10.21.0.0/24 10.21.0.0/20; do
		out="$tmp/lab-${cidr//\//-}.json"
		echo "# ip netns exec $prefix-prober bin/traceflow-fast --rate 50000 --format json -o $(basename "$out") $cidr"
		# Exit status 2: some destination not reached, which is measured too.
		ip netns exec "$prefix-prober" bin/traceflow-fast --rate 50000 --format json -o "$out" "$cidr" 2>/dev/null || [ $? = 2 ]
		json="$json $out"
	done
	scripts/lab.sh down "$prefix"
	lab=0
else
	echo "# synthetic scans only (the lab's need root and bin/traceflow-fast: make build)"
fi
VIZ_BENCH_JSON="$json" "${GO:-go}" test -tags visnetwork -count=1 -run '^$' -bench BulkPage \
	-benchtime "${BENCHTIME:-3x}" -timeout 30m ./viz | grep -v -e '^    ' -e $'^\t' -e '^--- BENCH'
