#!/usr/bin/env bash
# Bulk scan end to end: 4,094 destinations (a /20 the destination answers
# on every address) through the 4-way diamond lab, traceflow-fast against
# `scamper -p 10000 -c "tracelb -P udp-sport" -f FILE`, side by side in one
# run: wall and CPU time (/usr/bin/time), probes, and how many destinations
# were reached with all 4 branches.
#
#   RUNS=3 PATHS=16 RATE=250000 scripts/bench-bulk.sh     (PATHS=auto for MDA)
#   PERF=1 adds a perf profile of one more run: how much CPU the lab's
#   routers take (they run on the same cores) against traceflow-fast's own.
#   BIN=path runs that build instead of bin/traceflow-fast; COMPARE=path
#   also runs another build in every run, right after BIN (a before/after
#   pair in one lab); PEER=none leaves scamper out.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
paths=${PATHS:-16}
bin=${BIN:-bin/traceflow-fast}
peer=${PEER:-scamper}
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
# tf_run BIN LABEL: one traceflow-fast run; prints its figures.
tf_run() {
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t1" ip netns exec "$ns" "$1" -f "$tmp/targets" \
		--paths "$paths" --rate "$rate" --progress=false --format json -o "$tmp/tf.json" 2>"$tmp/tf.err" || true
	read -r wall user sys rss < <(tail -1 "$tmp/t1")
	line=$(grep 'msg=done' "$tmp/tf.err")
	probes=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$line")
	full=$(grep -c '"summary":"4 distinct paths' "$tmp/tf.json" || true)
	dsts=$(wc -l <"$tmp/tf.json")
	printf '%s %d/%d destinations with 4 branches, %d probes, wall %ss, CPU %.2fs, %d MiB' \
		"$2" "$full" "$dsts" "$probes" "$wall" "$(awk -v a="$user" -v b="$sys" 'BEGIN{print a+b}')" $((rss / 1024))
}
for ((i = 1; i <= runs; i++)); do
	printf 'run %d: ' "$i"
	tf_run "$bin" "traceflow-fast"
	if [[ -n ${COMPARE:-} ]]; then
		printf ' | '
		tf_run "$COMPARE" "$COMPARE:"
	fi
	if [[ $peer == none ]]; then
		echo
		continue
	fi
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/t2" ip netns exec "$ns" scamper -p 10000 \
		-c "tracelb -P udp-sport" -f "$tmp/list" >"$tmp/sc.txt" 2>/dev/null || true
	read -r swall suser ssys srss < <(tail -1 "$tmp/t2")
	# Text output: a "tracelb from S to D, ..., N probes, 95%" line per
	# destination, then its paths, "10.0.0.1 -> (b1, b2, ...) -> ...".
	read -r sprobes sfull sdsts < <(scripts/tracelb-count.py "$tmp/sc.txt")
	printf ' | scamper %d/%d, %d probes, wall %ss, CPU %.2fs, %d MiB | wall ratio %.1fx\n' \
		"$sfull" "$sdsts" "$sprobes" "$swall" "$(awk -v a="$suser" -v b="$ssys" 'BEGIN{print a+b}')" $((srss / 1024)) \
		"$(awk -v a="$swall" -v b="$wall" 'BEGIN{print a/b}')"
done
# PERF=1: where the CPU of one more traceflow-fast run goes, sampled with
# perf over the whole machine. The lab's routers forward each probe and
# route its ICMP answer back in softirq, on the CPU that sent the probe
# (veth delivers in the sender's context): that is process_backlog, which
# also holds the prober's own receive path (packet_rcv and the filter).
if [[ ${PERF:-0} == 1 ]] && command -v perf >/dev/null; then
	perf record -q -a -g -o "$tmp/perf.data" -- ip netns exec "$ns" "$bin" -f "$tmp/targets" \
		--paths "$paths" --rate "$rate" --progress=false --format json -o "$tmp/tf.json" 2>"$tmp/tf.err" || true
	probes=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$(grep 'msg=done' "$tmp/tf.err")")
	perf report -i "$tmp/perf.data" --children --sort sym --stdio 2>/dev/null >"$tmp/perf.txt"
	perf report -i "$tmp/perf.data" --no-children --sort dso --stdio 2>/dev/null >"$tmp/perf-dso.txt"
	python3 - "$tmp/perf.txt" "$tmp/perf-dso.txt" "$probes" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
total = int(re.search(r"Event count \(approx\.\): (\d+)", text).group(1)) / 1e9
def share(sym):
    m = re.search(r"^\s+([\d.]+)%\s+[\d.]+%\s+\[k\] " + re.escape(sym) + r"\s*$", text, re.M)
    return float(m.group(1)) / 100 if m else 0.0
user = 0.0
for line in open(sys.argv[2]):
    m = re.match(r"\s+([\d.]+)%\s+traceflow-fast\s*$", line)
    if m:
        user = float(m.group(1)) / 100
probes = int(sys.argv[3])
fwd = share("process_backlog")
print(f"perf: {total:.2f} CPU-s sampled on all CPUs for {probes} probes")
print(f"  softirq forwarding and receive (process_backlog): {fwd*total:.2f} CPU-s, {fwd*total/probes*1e6:.1f} us per probe")
print(f"  of which the prober's packet socket (packet_rcv): {share('packet_rcv')*total:.2f} CPU-s")
print(f"  traceflow-fast's own code (user space): {user*total:.2f} CPU-s")
print(f"  idle: {share('pv_native_safe_halt')*total + share('default_idle')*total:.2f} CPU-s")
PY
fi
