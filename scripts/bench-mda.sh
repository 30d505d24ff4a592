#!/usr/bin/env bash
# --paths auto against scamper's MDA (tracelb -P udp-sport, 95%) on the
# diamond4, diamond8 and nested labs, side by side in one run: distinct
# paths / branches found, probes sent and wall time of each.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
prefixes=()
cleanup() { for p in "${prefixes[@]}"; do scripts/lab.sh down "$p"; done; rm -rf "$tmp"; }
trap cleanup EXIT
for topo in ${TOPOLOGIES:-diamond4 diamond8 nested}; do
	prefix="tfmda$(printf '%04x' $((RANDOM)))"
	prefixes+=("$prefix")
	scripts/lab.sh up "$topo" "$prefix" >/dev/null 2>&1
	ns="$prefix-prober"
	/usr/bin/time -f %e -o "$tmp/t1" ip netns exec "$ns" bin/traceflow-fast --format json 10.99.0.1 >"$tmp/tf.json" 2>"$tmp/tf.err"
	tf_probes=$(grep -o '"probes_sent":[0-9]*' "$tmp/tf.json" | cut -d: -f2)
	tf_paths=$(grep -o '"summary":"[^"]*"' "$tmp/tf.json" | cut -d'"' -f4)
	/usr/bin/time -f %e -o "$tmp/t2" ip netns exec "$ns" scamper -c "tracelb -P udp-sport" -i 10.99.0.1 >"$tmp/sc.txt" 2>&1
	sc_head=$(head -1 "$tmp/sc.txt")
	sc_probes=$(grep -oE '[0-9]+ probes' "$tmp/sc.txt" | head -1 | cut -d' ' -f1)
	echo "$topo: traceflow-fast ${tf_probes} probes, $(cat "$tmp/t1") s, $tf_paths | scamper ${sc_probes} probes, $(cat "$tmp/t2") s | probes ratio $(awk -v a="$tf_probes" -v b="$sc_probes" 'BEGIN{printf "%.2f", a/b}')x"
	echo "  scamper: $sc_head"
	sed -n '2,$p' "$tmp/sc.txt" | sed 's/^/  /'
	scripts/lab.sh down "$prefix"
done
