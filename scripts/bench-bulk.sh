#!/usr/bin/env bash
# Bulk scan end to end: 4,094 destinations (a /20 the destination answers
# on every address) through the 4-way diamond lab, traceflow-fast against
# `scamper -p 10000 -c "tracelb -P udp-sport" -f FILE`, side by side in one
# run: wall and CPU time (/usr/bin/time), probes, and how many destinations
# were reached with all 4 branches.
#
#   RUNS=3 PATHS=16 RATE=250000 scripts/bench-bulk.sh     (PATHS=auto for MDA)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
paths=${PATHS:-16}
rate=${RATE:-250000}
cidr=10.21.0.0/20
prefix="tfblk$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
cleanup() { scripts/lab.sh down "$prefix" || true; rm -rf "$tmp"; }
trap cleanup EXIT
LAB_LOCAL_PREFIX=$cidr scripts/lab.sh up diamond4 "$prefix" 2>/dev/null
ns="$prefix-prober"
echo "$cidr" >"$tmp/targets"
# scamper wants addresses: the /20 without network and broadcast.
python3 -c 'import ipaddress,sys; [print(a) for a in ipaddress.ip_network(sys.argv[1]).hosts()]' "$cidr" >"$tmp/list"
for ((i = 1; i <= runs; i++)); do
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t1" ip netns exec "$ns" bin/traceflow-fast -f "$tmp/targets" \
		--paths "$paths" --rate "$rate" --progress=false --format json -o "$tmp/tf.json" 2>"$tmp/tf.err" || true
	read -r wall user sys rss < <(tail -1 "$tmp/t1")
	line=$(grep 'msg=done' "$tmp/tf.err")
	probes=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$line")
	full=$(grep -c '"summary":"4 distinct paths' "$tmp/tf.json" || true)
	dsts=$(wc -l <"$tmp/tf.json")
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t2" ip netns exec "$ns" scamper -p 10000 \
		-c "tracelb -P udp-sport" -f "$tmp/list" >"$tmp/sc.txt" 2>/dev/null || true
	read -r swall suser ssys srss < <(tail -1 "$tmp/t2")
	# Text output: a "tracelb from S to D, ..., N probes, 95%" line per
	# destination, then its paths, "10.0.0.1 -> (b1, b2, ...) -> ...".
	read -r sprobes sfull sdsts < <(python3 - "$tmp/sc.txt" <<'PY'
import re, sys
probes = full = dsts = 0
for line in open(sys.argv[1]):
    m = re.match(r"tracelb from \S+ to \S+, .*?(\d+) probes", line)
    if m:
        dsts += 1
        probes += int(m.group(1))
        continue
    m = re.match(r"10\.0\.0\.1 -> \(([^)]*)\)", line)
    if m and len(m.group(1).split(",")) >= 4:
        full += 1
print(probes, full, dsts)
PY
)
	printf 'run %d: traceflow-fast %d/%d destinations with 4 branches, %d probes, wall %ss, CPU %.2fs, %d MiB | scamper %d/%d, %d probes, wall %ss, CPU %.2fs, %d MiB | wall ratio %.1fx\n' \
		"$i" "$full" "$dsts" "$probes" "$wall" "$(awk -v a="$user" -v b="$sys" 'BEGIN{print a+b}')" $((rss / 1024)) \
		"$sfull" "$sdsts" "$sprobes" "$swall" "$(awk -v a="$suser" -v b="$ssys" 'BEGIN{print a+b}')" $((srss / 1024)) \
		"$(awk -v a="$swall" -v b="$wall" 'BEGIN{print a/b}')"
done
