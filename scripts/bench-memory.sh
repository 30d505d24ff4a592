#!/usr/bin/env bash
# Memory of a scan of 1,048,574 destinations (the sink's /12, nothing
# answers: every probe times out and is sent again) with --paths 1 --ttl 4:
# peak RSS from /usr/bin/time -v.
#
#   scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cidr=10.96.0.0/12
prefix="tfmem$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
cleanup() { scripts/lab.sh down "$prefix" || true; rm -rf "$tmp"; }
trap cleanup EXIT
scripts/lab.sh sink "$prefix" "$cidr" 2>/dev/null
echo "$cidr" >"$tmp/targets"
/usr/bin/time -v -o "$tmp/time" ip netns exec "$prefix-prober" bin/traceflow-fast -f "$tmp/targets" \
	--max-prefix /12 --paths 1 --ttl 4 --rate 0 --progress=false --format json -o "$tmp/out.json" 2>"$tmp/err" || true
grep 'msg=done' "$tmp/err"
echo "results: $(wc -l <"$tmp/out.json") lines"
grep -E 'Maximum resident set size|Elapsed \(wall clock\)|User time|System time' "$tmp/time"
