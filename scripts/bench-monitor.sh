#!/usr/bin/env bash
# The monitor over time: 1,000 destinations of a /20 that the 4-way diamond
# lab's destination answers on every address, traced every 5 s for 100
# cycles (about 8.5 minutes). Reads the monitor's own metrics at the end of
# each cycle and reports its RSS after cycle 10 and after the last (the
# growth in between), its CPU time and probes per cycle, the runs per
# cycle and the overruns, against one one-shot run of the same list.
#
#   scripts/bench-monitor.sh            (CYCLES=100 N=1000 INTERVAL=5 PATHS=auto RATE=10000)
#   CYCLES=20 scripts/bench-monitor.sh  (a shorter look)
#   BIN=path runs that build instead of bin/traceflow-fast.
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${CYCLES:-100}
n=${N:-1000}
interval=${INTERVAL:-5}
paths=${PATHS:-auto}
rate=${RATE:-10000}
bin=${BIN:-bin/traceflow-fast}
cidr=10.21.0.0/20
port=9108
prefix="tfmon$(printf '%04x' $((RANDOM)))"
tmp=$(mktemp -d)
pid=
cleanup() {
	[[ -z $pid ]] || kill "$pid" 2>/dev/null || true
	scripts/lab.sh down "$prefix" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
((cycles >= 10)) || { echo "CYCLES must be 10 or more" >&2; exit 2; }
LAB_LOCAL_PREFIX=$cidr scripts/lab.sh up diamond4 "$prefix" 2>/dev/null
ns="$prefix-prober"
# The first n addresses of the /20.
python3 -c 'import ipaddress,itertools,sys; [print(a) for a in itertools.islice(ipaddress.ip_network(sys.argv[1]).hosts(), int(sys.argv[2]))]' \
	"$cidr" "$n" >"$tmp/list"

# metric NAME: its value, from one scrape of the monitor.
metric() {
	ip netns exec "$ns" python3 - "$port" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in body.splitlines():
    name, _, value = line.rpartition(" ")
    if name == sys.argv[2]:
        print(value)
        break
else:
    print(0)
PY
}

ip netns exec "$ns" "$bin" monitor -f "$tmp/list" --interval "${interval}s" --paths "$paths" --rate "$rate" \
	--metrics "127.0.0.1:$port" -o "$tmp/events.jsonl" 2>"$tmp/monitor.err" &
pid=$!
# A cycle ends every interval from the start; the first runs are spread
# over the first one. RSS is read at the end of every cycle: a Go heap
# saws between its live size and twice that, so besides its value after
# cycles 10 and 100 the highest of each ten cycles is reported.
start=$(date +%s.%N)
declare -A rss cpu probes runs peak10
peak=0
for ((c = 1; c <= cycles; c++)); do
	sleep "$(python3 -c "import time; print(max(0, $start + $c * $interval - time.time()))")"
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/monitor.err" >&2; exit 1; }
	rss[$c]=$(metric process_resident_memory_bytes)
	peak=$(python3 -c "print(max($peak, ${rss[$c]}))")
	if ((c % 10 == 0 || c == cycles)); then
		cpu[$c]=$(metric process_cpu_seconds_total)
		probes[$c]=$(metric traceflow_probes_sent_total)
		runs[$c]=$(metric traceflow_run_duration_seconds_count)
		printf 'cycle %d: RSS %.1f MiB (highest of the last 10 cycles %.1f MiB)\n' "$c" \
			"$(python3 -c "print(${rss[$c]} / 2**20)")" "$(python3 -c "print($peak / 2**20)")"
		peak10[$c]=$peak
		peak=0
	fi
done
overruns=$(metric traceflow_run_overruns_total)
changes=$(grep -vc '"type":"baseline"' "$tmp/events.jsonl" || true)
kill -TERM "$pid"
wait "$pid" || true
pid=

/usr/bin/time -f "%U %S" -o "$tmp/once.time" ip netns exec "$ns" "$bin" -f "$tmp/list" --paths "$paths" --rate "$rate" \
	--progress=false --format json -o "$tmp/once.json" 2>"$tmp/once.err" || true
once=$(sed -E 's/.* probes=([0-9]+).*/\1/' <<<"$(grep 'msg=done' "$tmp/once.err")")
once_cpu=$(awk '{print $1 + $2}' <"$tmp/once.time")

python3 - "$n" "$interval" "$cycles" "${rss[10]}" "${rss[$cycles]}" "${cpu[10]}" "${cpu[$cycles]}" \
	"${probes[10]}" "${probes[$cycles]}" "${runs[10]}" "${runs[$cycles]}" "$overruns" "$changes" "$once" \
	"${peak10[10]}" "${peak10[$cycles]}" "$once_cpu" <<'PY'
import sys
n, interval, cycles = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rss10, rssN, cpu10, cpuN, p10, pN, r10, rN = map(float, sys.argv[4:12])
overruns, changes, once = int(float(sys.argv[12])), int(sys.argv[13]), int(sys.argv[14])
peak10, peakN, once_cpu = float(sys.argv[15]), float(sys.argv[16]), float(sys.argv[17])
k = cycles - 10
print(f"{n} destinations every {interval} s, {cycles} cycles")
print(f"RSS after cycle 10: {rss10/2**20:.1f} MiB, after cycle {cycles}: {rssN/2**20:.1f} MiB ({(rssN/rss10-1)*100:+.1f}%)")
print(f"highest RSS of cycles 1..10: {peak10/2**20:.1f} MiB, of the last 10: {peakN/2**20:.1f} MiB ({(peakN/peak10-1)*100:+.1f}%)")
print(f"one-shot run of the list: CPU {once_cpu:.3f} s")
print(f"CPU per cycle (cycles 11..{cycles}): {(cpuN-cpu10)/k:.3f} s")
print(f"probes per cycle: {(pN-p10)/k:.0f}; one-shot run of the list: {once} probes")
print(f"runs per cycle: {(rN-r10)/k:.1f}; overruns: {overruns}; changes reported: {changes}")
PY
