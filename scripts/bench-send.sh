#!/usr/bin/env bash
# Raw send rate: traceflow-fast and zmap sending into the same sink (a veth
# whose peer drops every packet, `lab.sh sink`), side by side in one run.
#
# traceflow-fast scans the sink's /12 (1,048,574 destinations) with real
# probes (permuted order, encoded, checksummed, the receive socket and its
# filter open) and --rate 0; its summary line gives the probes sent and the
# duration of the scan. zmap (UDP module, -r 0: unlimited) sends one probe to
# each of as many addresses; its rate is packets / wall time. Each command's
# wall, user and system time come from /usr/bin/time.
#
#   RUNS=3 TTL=4 scripts/bench-send.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
ttl=${TTL:-4}
cidr=10.96.0.0/12
prefix="tfsnk$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
cleanup() { scripts/lab.sh down "$prefix" || true; rm -rf "$tmp"; }
trap cleanup EXIT
scripts/lab.sh sink "$prefix" "$cidr" 2>/dev/null
ns="$prefix-prober"
mac=$(ip -n "$prefix-sink" -br link show to-prober | awk '{print $3}')
echo "$cidr" >"$tmp/targets"
n=$(( (1 << 20) - 2 ))
for ((i = 1; i <= runs; i++)); do
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t1" ip netns exec "$ns" bin/traceflow-fast -f "$tmp/targets" \
		--max-prefix /12 --paths 1 --ttl "$ttl" --gap-limit "$ttl" --wait 0.2 --retries 0 --rate 0 --progress=false \
		--format json -o /dev/null 2>"$tmp/tf.err" || true
	line=$(grep 'msg=done' "$tmp/tf.err")
	probes=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$line")
	pps=$(sed -E 's/.*probes_per_s=([0-9]+).*/\1/' <<<"$line")
	read -r wall user sys rss < <(tail -1 "$tmp/t1")
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t2" ip netns exec "$ns" zmap -M udp -p 33452 -i to-sink -G "$mac" \
		-S 10.0.0.2 -r 0 -P 1 -c 0 -q -b /dev/null -o /dev/null -n "$n" "$cidr" 2>/dev/null
	read -r zwall zuser zsys zrss < <(tail -1 "$tmp/t2")
	zpps=$(awk -v n="$n" -v t="$zwall" 'BEGIN{printf "%d", n/t}')
	printf 'run %d: traceflow-fast %d probes at %d/s (wall %ss, user %ss, sys %ss, %d MiB) | zmap %d packets at %d/s (wall %ss, user %ss, sys %ss) | ratio %.2fx\n' \
		"$i" "$probes" "$pps" "$wall" "$user" "$sys" $((rss / 1024)) "$n" "$zpps" "$zwall" "$zuser" "$zsys" \
		"$(awk -v a="$pps" -v b="$zpps" 'BEGIN{print a/b}')"
done
