#!/usr/bin/env bash
# Raises the 4-way diamond lab (its destination answering a /20 too), writes
# the browser view of a trace with 16 path IDs and of a scan of the /20
# (--format viz --output), tears the lab down, and screenshots the pages in
# headless Chromium, with their network off, to docs/viz-demo.png and
# docs/viz-bulk.png.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="tfshot$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
trap 'scripts/lab.sh down "$prefix"; rm -rf "$tmp"' EXIT
LAB_LOCAL_PREFIX=10.21.0.0/20 scripts/lab.sh up diamond4 "$prefix" >/dev/null
echo "# ip netns exec $prefix-prober bin/traceflow-fast --paths 16 --format viz --output diamond4.html 10.99.0.1"
ip netns exec "$prefix-prober" bin/traceflow-fast --paths 16 --format viz --output "$tmp/diamond4.html" 10.99.0.1
echo "# ip netns exec $prefix-prober bin/traceflow-fast --rate 50000 --format viz --output bulk.html 10.21.0.0/20"
ip netns exec "$prefix-prober" bin/traceflow-fast --rate 50000 --format viz --output "$tmp/bulk.html" 10.21.0.0/20 2>/dev/null
scripts/lab.sh down "$prefix"
mkdir -p docs
for page in diamond4:viz-demo bulk:viz-bulk; do
	VIZ_SCREENSHOT_HTML="$tmp/${page%%:*}.html" VIZ_SCREENSHOT_PNG="$PWD/docs/${page##*:}.png" \
		"${GO:-go}" test -tags visnetwork -count=1 -run '^TestScreenshot$' ./viz
	echo "# wrote docs/${page##*:}.png"
done
