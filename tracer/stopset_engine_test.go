package tracer_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// limitedDiamond is the 4-way diamond with every router and the
// destination policing its ICMP to 1000 messages a second, burst 50, as
// Linux's icmp_msgs_per_sec and icmp_msgs_burst do.
func limitedDiamond() *tracertest.Topology {
	topo := tracertest.Diamond(4)
	for _, n := range topo.Nodes() {
		if n.Name != tracertest.Source {
			n.RateLimit = tracertest.RateLimit{PerSec: 1000, Burst: 50, RandomCost: true}
		}
	}
	return topo
}

// prefixAddrs returns n addresses of 10.99.X.Y from first on.
func prefixAddrs(first, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for i := first; i < first+n; i++ {
		out = append(out, netip.AddrFrom4([4]byte{10, 99, byte(i >> 8), byte(i)}))
	}
	return out
}

// truePaths returns the distinct paths to dst over the first 256 path IDs.
func (r *simRun) truePaths(t *testing.T, dst netip.Addr) []string {
	all := r.truth(t, dst, 256)
	slices.Sort(all)
	return slices.Compact(all)
}

// A scan through rate-limited routers with the stop set: each destination
// gets its own true paths (never a silence turned into a path of its
// own), in far fewer probes than each destination proving its paths
// alone, and the results say which vertices came from which destination.
func TestStopSetThroughRateLimitedRouters(t *testing.T) {
	dsts := prefixAddrs(1, 120)
	with := run(t, limitedDiamond(), 5, tracer.Config{}, tracer.Addrs(dsts...))
	without := run(t, limitedDiamond(), 5, tracer.Config{NoStopSet: true}, tracer.Addrs(dsts...))
	for _, r := range []*simRun{with, without} {
		if r.err != nil || len(r.results) != len(dsts) {
			t.Fatalf("%v, %d results of %d", r.err, len(r.results), len(dsts))
		}
	}
	exact, reused := checkStopSetRun(t, with, dsts)
	exactWithout, reusedWithout := checkStopSetRun(t, without, dsts)
	t.Logf("stop set: %d of %d exact, %d reusing, %d probes, %v; without: %d exact, %d probes, %v",
		exact, len(dsts), reused, with.sum.Sent, with.sum.Duration, exactWithout, without.sum.Sent, without.sum.Duration)
	if exact < len(dsts)*97/100 || exact < exactWithout-2 {
		t.Errorf("%d of %d destinations with their true paths (%d without the stop set)", exact, len(dsts), exactWithout)
	}
	if reused < len(dsts)*8/10 || reusedWithout != 0 {
		t.Errorf("%d destinations reused vertices with the stop set, %d without", reused, reusedWithout)
	}
	// About 55% when the machine is quiet; the simulated clock follows
	// the engine's goroutines, so a loaded machine (the race detector)
	// shifts when answers meet timeouts, and the share with them.
	if with.sum.Sent*10 > without.sum.Sent*8 {
		t.Errorf("%d probes with the stop set, %d without: want at most 80%%", with.sum.Sent, without.sum.Sent)
	}
}

// checkStopSetRun checks every result of r: its paths a subset of the
// true ones, its reused vertices on them and taken from another
// destination of the run. It returns how many destinations got exactly
// their true paths, and how many reused a vertex.
func checkStopSetRun(t *testing.T, r *simRun, dsts []netip.Addr) (exact, reused int) {
	t.Helper()
	for _, tr := range r.results {
		want, got := r.truePaths(t, tr.Destination), tracertest.DistinctPaths(tr)
		for _, p := range got {
			if !slices.Contains(want, p) {
				t.Errorf("%v: path %s is not one of %v", tr.Destination, p, want)
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			exact++
		}
		if len(tr.Reused) > 0 {
			reused++
		}
		for _, rv := range tr.Reused {
			if rv.From == tr.Destination || !slices.Contains(dsts, rv.From) || !onPaths(tr, rv) {
				t.Errorf("%v: reused %+v: not a vertex of its paths from another destination", tr.Destination, rv)
			}
		}
	}
	return exact, reused
}

// onPaths says whether rv is a hop of tr's paths.
func onPaths(tr *analysis.Trace, rv analysis.ReusedVertex) bool {
	for _, up := range tr.UniquePaths() {
		if rv.TTL <= len(up.Hops) && up.Hops[rv.TTL-1] == rv.Addr {
			return true
		}
	}
	return false
}

// Destinations whose routes differ at a router the stop set holds are
// not given the other's successors: r1 balances half the prefix over
// all four branches and the other half over two, and each destination
// gets its own true paths, whichever half settled r1 first.
func TestStopSetKeepsDifferentRoutesApart(t *testing.T) {
	for _, order := range []string{"four first", "two first"} {
		topo := tracertest.Diamond(4).Route("r1", "10.99.0.64/26", "a1", "a2")
		four, two := prefixAddrs(1, 60), prefixAddrs(64, 60)
		dsts := append(slices.Clone(four), two...)
		if order == "two first" {
			dsts = append(slices.Clone(two), four...)
		}
		r := run(t, topo, 9, tracer.Config{Rate: tracer.Unlimited, Window: 8}, tracer.Addrs(dsts...))
		if r.err != nil || len(r.results) != len(dsts) {
			t.Fatalf("%s: %v, %d results", order, r.err, len(r.results))
		}
		exact, reused := checkStopSetRun(t, r, dsts)
		wrongWidth := 0
		for _, tr := range r.results {
			if want := len(r.truePaths(t, tr.Destination)); len(tr.UniquePaths()) != want {
				wrongWidth++
			}
		}
		t.Logf("%s: %d of %d exact, %d reusing, %d probes", order, exact, len(dsts), reused, r.sum.Sent)
		if exact < len(dsts)*95/100 || reused == 0 {
			t.Errorf("%s: %d of %d destinations with their true paths (%d with a wrong count), %d reusing", order, exact, len(dsts), wrongWidth, reused)
		}
	}
}
