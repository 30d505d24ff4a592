#!/usr/bin/env bash
# Raises the 4-way diamond lab, writes the browser view of a trace with 16
# path IDs (--format viz --output), tears the lab down, and screenshots the
# page in headless Chromium, with its network off, to docs/viz-demo.png.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="tfshot$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
trap 'scripts/lab.sh down "$prefix"; rm -rf "$tmp"' EXIT
scripts/lab.sh up diamond4 "$prefix" >/dev/null
echo "# ip netns exec $prefix-prober bin/traceflow-fast --paths 16 --format viz --output diamond4.html 10.99.0.1"
ip netns exec "$prefix-prober" bin/traceflow-fast --paths 16 --format viz --output "$tmp/diamond4.html" 10.99.0.1
scripts/lab.sh down "$prefix"
mkdir -p docs
VIZ_SCREENSHOT_HTML="$tmp/diamond4.html" VIZ_SCREENSHOT_PNG="$PWD/docs/viz-demo.png" \
	"${GO:-go}" test -tags visnetwork -count=1 -run '^TestScreenshot$' ./viz
echo "# wrote docs/viz-demo.png"
