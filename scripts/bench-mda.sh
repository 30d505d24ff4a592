#!/usr/bin/env bash
# --paths auto against scamper's MDA (tracelb -P udp-sport, 95%) on the
# diamond4, diamond8 and nested labs, side by side in one run: distinct
# paths / branches found, probes sent and wall time of each.
#
# Which branch a flow takes is a draw of the routers' hash, and a draw can
# be unlucky for either tool (a branch that gets 1 flow in 45). DRAWS=N
# repeats each comparison with N source-port bases (the same base for both
# tools; draw 1 uses the defaults) and sums the probes over them.
#
#   DRAWS=5 TOPOLOGIES="diamond8" scripts/bench-mda.sh
#
# BIN=path runs that build instead of bin/traceflow-fast.
set -euo pipefail
cd "$(dirname "$0")/.."
draws=${DRAWS:-1}
bin=${BIN:-bin/traceflow-fast}
tmp=$(mktemp -d)
prefixes=()
cleanup() { for p in "${prefixes[@]}"; do scripts/lab.sh down "$p"; done; rm -rf "$tmp"; }
trap cleanup EXIT
for topo in ${TOPOLOGIES:-diamond4 diamond8 nested}; do
	prefix="tfmda$(printf '%04x' $((RANDOM)))"
	prefixes+=("$prefix")
	scripts/lab.sh up "$topo" "$prefix" >/dev/null 2>&1
	ns="$prefix-prober"
	tf_sum=0 sc_sum=0
	for ((d = 1; d <= draws; d++)); do
		tf_port=() sc_port=()
		if ((d > 1)); then
			base=$((33452 + 1009 * (d - 1)))
			tf_port=(--srcport "$base") sc_port=(-s "$base")
		fi
		/usr/bin/time -f %e -o "$tmp/t1" ip netns exec "$ns" "$bin" "${tf_port[@]}" --format json 10.99.0.1 >"$tmp/tf.json" 2>"$tmp/tf.err"
		tf_probes=$(grep -o '"probes_sent":[0-9]*' "$tmp/tf.json" | cut -d: -f2)
		tf_paths=$(grep -o '"summary":"[^"]*"' "$tmp/tf.json" | cut -d'"' -f4)
		/usr/bin/time -f %e -o "$tmp/t2" ip netns exec "$ns" scamper -c "tracelb -P udp-sport ${sc_port[*]}" -i 10.99.0.1 >"$tmp/sc.txt" 2>&1
		sc_head=$(head -1 "$tmp/sc.txt")
		sc_probes=$(grep -oE '[0-9]+ probes' "$tmp/sc.txt" | head -1 | cut -d' ' -f1)
		tf_sum=$((tf_sum + tf_probes)) sc_sum=$((sc_sum + sc_probes))
		echo "$topo draw $d: traceflow-fast ${tf_probes} probes, $(cat "$tmp/t1") s, $tf_paths | scamper ${sc_probes} probes, $(cat "$tmp/t2") s | probes ratio $(awk -v a="$tf_probes" -v b="$sc_probes" 'BEGIN{printf "%.2f", a/b}')x"
		echo "  scamper: $sc_head"
		sed -n '2,$p' "$tmp/sc.txt" | sed 's/^/  /'
	done
	if ((draws > 1)); then
		echo "$topo over $draws draws: traceflow-fast $tf_sum probes, scamper $sc_sum | probes ratio $(awk -v a="$tf_sum" -v b="$sc_sum" 'BEGIN{printf "%.2f", a/b}')x"
	fi
	scripts/lab.sh down "$prefix"
done
