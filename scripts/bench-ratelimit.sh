#!/usr/bin/env bash
# Scans through routers that police their ICMP, as real routers do, against
# scamper's tracelb, side by side in one lab.
#
#   scripts/bench-ratelimit.sh bulk     4,094 destinations (a /20) through the
#                                       4-way diamond, every router and the
#                                       destination limited to 1000 ICMP
#                                       messages/s, burst 50: traceflow-fast at
#                                       its default rate, at --rate 0 and
#                                       with --no-stop-set, scamper -p 10000
#   scripts/bench-ratelimit.sh single   one destination through the diamond,
#                                       every router with Linux's per-source
#                                       limit (icmp_ratelimit=1000: a burst of
#                                       6, then one a second to each source)
#
# RUNS=N repeats (default 3 single, 1 bulk); BIN=path runs another build;
# PEER=none leaves scamper out; CIDR= and MSGS=, BURST= change the bulk
# lab; LIMIT="r3" limits those nodes only (default every router and the
# destination), PER=1000 adds Linux's per-source limit (icmp_ratelimit, ms)
# to them:
#   LIMIT=r3 MSGS=100 scripts/bench-ratelimit.sh bulk        one router at 100/s
#   LIMIT=r3 MSGS=1000000 BURST=1000000 PER=1000 scripts/bench-ratelimit.sh bulk
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-bulk}
bin=${BIN:-bin/traceflow-fast}
peer=${PEER:-scamper}
prefix="tfrl$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
cleanup() { scripts/lab.sh down "$prefix" || true; rm -rf "$tmp"; }
trap cleanup EXIT

# limit NODE...: apply the ICMP limits of $msgs, $burst and $per to nodes.
limit() {
	for n in "$@"; do
		ip netns exec "$prefix-$n" sh -c "echo $msgs >/proc/sys/net/ipv4/icmp_msgs_per_sec;
			echo $burst >/proc/sys/net/ipv4/icmp_msgs_burst; echo $per >/proc/sys/net/ipv4/icmp_ratelimit"
	done
}

routers="r1 a1 a2 a3 a4 r3"

# tf_json LABEL ARGS...: one traceflow-fast run, JSON to $tmp/tf.json.
tf_json() {
	local label=$1
	shift
	/usr/bin/time -f "%e" -o "$tmp/t" ip netns exec "$prefix-prober" "$bin" --progress=false --format json \
		-o "$tmp/tf.json" "$@" 2>"$tmp/tf.err" || true
	local probes full dsts paths
	probes=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$(grep 'msg=done' "$tmp/tf.err")")
	full=$(grep -c '"summary":"4 distinct paths' "$tmp/tf.json" || true)
	dsts=$(wc -l <"$tmp/tf.json")
	paths=$(grep -o '"summary":"[^"]*"' "$tmp/tf.json" | sort | uniq -c | sort -rn | head -3 | tr -s ' \n' ' ')
	printf '%s: %d/%d destinations with 4 distinct paths, %d probes, wall %ss | %s\n' \
		"$label" "$full" "$dsts" "$probes" "$(cat "$tmp/t")" "$paths"
}

# sc_text LABEL ARGS...: one scamper run; counts probes and full fans.
sc_text() {
	local label=$1
	shift
	/usr/bin/time -f "%e" -o "$tmp/t" ip netns exec "$prefix-prober" scamper "$@" >"$tmp/sc.txt" 2>/dev/null || true
	read -r probes full dsts < <(scripts/tracelb-count.py "$tmp/sc.txt")
	printf '%s: %d/%d destinations with 4 branches, %d probes, wall %ss\n' "$label" "$full" "$dsts" "$probes" "$(cat "$tmp/t")"
}

case $mode in
bulk)
	cidr=${CIDR:-10.21.0.0/20} msgs=${MSGS:-1000} burst=${BURST:-50} per=${PER:-0}
	LAB_LOCAL_PREFIX=$cidr scripts/lab.sh up diamond4 "$prefix" >/dev/null 2>&1
	# shellcheck disable=SC2086 # a list of nodes
	limit ${LIMIT:-$routers dst}
	echo "$cidr" >"$tmp/targets"
	python3 -c 'import ipaddress,sys; [print(a) for a in ipaddress.ip_network(sys.argv[1]).hosts()]' "$cidr" >"$tmp/list"
	for ((i = 1; i <= ${RUNS:-1}; i++)); do
		tf_json "run $i traceflow-fast" -f "$tmp/targets"
		tf_json "run $i traceflow-fast --rate 0" -f "$tmp/targets" --rate 0
		tf_json "run $i traceflow-fast --no-stop-set" -f "$tmp/targets" --no-stop-set
		[[ $peer == none ]] || sc_text "run $i scamper -p 10000" -p 10000 -c "tracelb -P udp-sport" -f "$tmp/list"
	done
	;;
single)
	msgs=1000000 burst=1000000 per=1000
	scripts/lab.sh up diamond4 "$prefix" >/dev/null 2>&1
	limit $routers
	for ((i = 1; i <= ${RUNS:-3}; i++)); do
		tf_json "run $i traceflow-fast" 10.99.0.1
		[[ $peer == none ]] || sc_text "run $i scamper" -c "tracelb -P udp-sport" -i 10.99.0.1
		sleep 6 # let the routers' per-source buckets fill again
	done
	;;
*)
	echo "usage: $0 bulk|single" >&2
	exit 2
	;;
esac
