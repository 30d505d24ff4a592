package main

import (
	"slices"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/lab"
)

// TestFaultRateLimitBulkStopSet scans a /24 behind the 4-way diamond with
// every router and the destination policing its ICMP to 1000 messages a
// second (burst 50), with the stop set (the default) and without it
// (--no-stop-set). With it, each destination's paths are the lab's, as
// many destinations get all four as without, hardly any gets a silence as
// a path of its own (a flow whose answers the limits held back at two
// TTLs inside the diamond still does), the results name the routers taken
// from other destinations of the scan, and the scan sends far fewer
// probes.
func TestFaultRateLimitBulkStopSet(t *testing.T) {
	lab.RequireRoot(t)
	t.Parallel()
	l := lab.Up(t, "diamond4", lab.WithLocalPrefix(bulkPrefix))
	for _, n := range append(routers(t, l), "dst") {
		inNS(t, l, n, "", "sysctl", "-q", "-w", "net.ipv4.icmp_ratelimit=0", "net.ipv4.icmp_msgs_per_sec=1000", "net.ipv4.icmp_msgs_burst=50")
	}
	targets := writeFile(t, "targets.txt", "10.21.3.0/24\n")
	type outcome struct{ full, over, reused, probes int }
	scan := func(args ...string) outcome {
		out := traceIn(t, l, append([]string{"-f", targets, "--format", "json"}, args...)...)
		if out.code != exitOK {
			t.Fatalf("%v: exit %d\n%s", args, out.code, out.stderr)
		}
		rs := parseFaultResults(t, out.stdout)
		if len(rs) != 254 {
			t.Fatalf("%v: %d results, want 254", args, len(rs))
		}
		var o outcome
		for _, r := range rs {
			checkFlows(t, l, r, false)
			switch n := len(r.UniquePaths); {
			case n == 4:
				o.full++
			case n > 4:
				o.over++ // a flow silent at two TTLs inside the diamond
			}
			if len(r.Reused) > 0 {
				o.reused++
			}
			for _, rv := range r.Reused {
				if rv.From == r.Destination || !slices.ContainsFunc(rs, func(o faultResult) bool { return o.Destination == rv.From }) {
					t.Errorf("%v: %s reused %+v: not from another destination of the scan", args, r.Destination, rv)
				}
			}
		}
		d := doneLog(t, out.stderr)
		o.probes = atoi(t, d["probes"])
		if n := atoi(t, d["reused"]); n != o.reused {
			t.Errorf("%v: the done line counts %d destinations that reused routers, the results %d", args, n, o.reused)
		}
		return o
	}
	with, without := scan(), scan("--no-stop-set")
	t.Logf("254 destinations: stop set %+v, without %+v", with, without)
	if with.full < 254*97/100 || with.full < without.full-3 {
		t.Errorf("%d destinations with all 4 paths with the stop set, %d without", with.full, without.full)
	}
	if with.over > 254/50 {
		t.Errorf("%d destinations with more paths than the diamond's 4 with the stop set (%d without)", with.over, without.over)
	}
	if with.reused < 254*8/10 || without.reused != 0 {
		t.Errorf("%d destinations reused routers with the stop set, %d without", with.reused, without.reused)
	}
	if with.probes*10 > without.probes*8 { // about 55% on a quiet machine
		t.Errorf("%d probes with the stop set, %d without: want at most 80%%", with.probes, without.probes)
	}
}
