#!/usr/bin/env bash
# Side-by-side wall time on the 4-way diamond lab: traceflow-fast --paths 16
# against scamper's MDA (tracelb -P udp-sport), in the same lab, alternating
# runs. Set BENCH_DUBLIN=1 to add dublin-traceroute -n 8 (about 2 minutes a
# run). RUNS sets the number of runs of each (default 5).
# Prints per-run wall times, medians, the ratio, and the branches each found.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
prefix="tfbench$(printf '%04x' $((RANDOM)))"
trap 'scripts/lab.sh down "$prefix"' EXIT
scripts/lab.sh up diamond4 "$prefix" >/dev/null
ns="$prefix-prober"
dst=10.99.0.1
tmp=$(mktemp -d)
trap 'scripts/lab.sh down "$prefix"; rm -rf "$tmp"' EXIT

wall() { # wall seconds of a command, its output to $tmp/out
	/usr/bin/time -f %e -o "$tmp/t" "$@" >"$tmp/out" 2>"$tmp/err" || true
	cat "$tmp/t"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$tmp/tf"; : >"$tmp/sc"; : >"$tmp/db"
for i in $(seq "$RUNS"); do
	wall ip netns exec "$ns" bin/traceflow-fast --paths 16 --format json "$dst" >>"$tmp/tf"
	tf_paths=$(grep -o '"summary":"[^"]*"' "$tmp/out")
	wall ip netns exec "$ns" scamper -c "tracelb -P udp-sport" -i "$dst" >>"$tmp/sc"
	sc_probes=$(grep -oE '[0-9]+ probes' "$tmp/out" | head -1 || true)
	# Branches scamper saw: addresses inside the first "( ... )" group.
	sc_branches=$(grep -oE '\([^)]*\)' "$tmp/out" | head -1 | tr -cd ',' | wc -c)
	sc_branches=$((sc_branches + 1))
	if [ "${BENCH_DUBLIN:-0}" = 1 ]; then
		(cd "$tmp" && wall ip netns exec "$ns" dublin-traceroute -n 8 "$dst") >>"$tmp/db"
	fi
	echo "run $i: traceflow-fast $(tail -1 "$tmp/tf") s ($tf_paths), scamper $(tail -1 "$tmp/sc") s ($sc_branches branches, $sc_probes)"
done
tf=$(median <"$tmp/tf"); sc=$(median <"$tmp/sc")
echo "median wall: traceflow-fast ${tf} s, scamper tracelb ${sc} s, ratio scamper/traceflow-fast $(awk -v a="$sc" -v b="$tf" 'BEGIN{printf "%.0f", (b>0)?a/b:0}')x"
if [ "${BENCH_DUBLIN:-0}" = 1 ]; then
	echo "median wall: dublin-traceroute -n 8 $(median <"$tmp/db") s"
fi
echo "last scamper output:"; ip netns exec "$ns" scamper -c "tracelb -P udp-sport" -i "$dst" | sed 's/^/  /'
