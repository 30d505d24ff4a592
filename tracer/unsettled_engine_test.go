package tracer_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// convergingDiamond is the 4-way diamond converging at r3, which answers
// from one address: a silence at TTL 2 between r1 and r3 fits each of the
// 4 branches, so MarkRateLimited cannot place it.
func convergingDiamond() *tracertest.Topology {
	topo := tracertest.Diamond(4)
	topo.Node("r3").InboundAddr = false
	return topo
}

// Behind branch routers that answer a probe or three, then one a second
// or one in 5 s, some hops at TTL 2 stay silent after their retries. They
// are marked rate-limited, not settled (Hop.Unsettled, "unsettled" in
// JSON, "* (rate-limited)" in tables), and their flows are not paths of
// their own: the distinct paths are the network's 4.
func TestUnsettledHopsAreNotPaths(t *testing.T) {
	limits := []tracertest.RateLimit{{Interval: time.Second, PeerBurst: 1}, {Interval: 5 * time.Second, PeerBurst: 3}}
	unsettled := 0
	for _, limit := range limits {
		for seed := uint64(1); seed <= 3; seed++ {
			topo := convergingDiamond()
			for j := 1; j <= 4; j++ {
				topo.Node(fmt.Sprintf("a%d", j)).RateLimit = limit
			}
			r := run(t, topo, seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
			if r.err != nil || len(r.results) != 1 {
				t.Fatalf("%+v seed %d: %v, %d results", limit, seed, r.err, len(r.results))
			}
			tr := r.results[0]
			n := checkUnsettled(t, tr)
			unsettled += n
			got := tracertest.DistinctPaths(tr)
			want := slices.Compact(r.truth(t, tracertest.DstAddr, 64))
			t.Logf("%+v seed %d: %d probes, %v virtual, %d unsettled hops, %s", limit, seed, tr.ProbesSent, r.sum.Duration.Round(time.Millisecond), n, tr.Summary())
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%+v seed %d: distinct paths\n%v\nwant the network's\n%v", limit, seed, got, want)
			}
		}
	}
	if unsettled == 0 {
		t.Errorf("no hop left unsettled in %d runs: the test's limits no longer starve the search", 2*3)
	}
}

// checkUnsettled checks the marks of tr's unsettled hops, in the trace,
// its JSON and its table, that its graph has no silent node (every silent
// hop is unsettled) and no diamond wider than the network's, and returns
// how many there are.
func checkUnsettled(t *testing.T, tr *analysis.Trace) int {
	t.Helper()
	n := 0
	for _, f := range tr.Flows {
		for _, h := range f.Hops {
			if h.Unsettled {
				n++
			}
			if h.Unsettled && (!h.Silent() || h.TTL != 2) {
				t.Errorf("%s path ID %d TTL %d (%s) marked unsettled: only silent hops at TTL 2 may be", tr.Destination, f.PathID, h.TTL, h.Addr)
			}
		}
	}
	g := analysis.BuildGraph(tr)
	for _, nd := range g.Nodes {
		if nd.Silent {
			t.Errorf("%s: the graph has a silent node at TTL %d (path IDs %v)", tr.Destination, nd.TTL, nd.PathIDs)
		}
	}
	for _, d := range g.Diamonds {
		if d.MaxWidth != 4 {
			t.Errorf("%s: a diamond %d wide, want 4", tr.Destination, d.MaxWidth)
		}
	}
	var js, text strings.Builder
	if err := analysis.WriteJSON(&js, tr, analysis.Options{}); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(js.String(), `"unsettled":true`); c != n {
		t.Errorf("%d hops \"unsettled\" in JSON, want %d", c, n)
	}
	for back, err := range analysis.ReadJSON(strings.NewReader(js.String())) {
		if err != nil || back.Summary() != tr.Summary() {
			t.Errorf("read back from JSON: %v, %q, want %q", err, back.Summary(), tr.Summary())
		}
	}
	if err := analysis.WriteVert(&text, tr, analysis.Options{}); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(text.String(), "* (rate-limited)"); (c > 0) != (n > 0) {
		t.Errorf("%d unsettled hops, %d marked in the table:\n%s", n, c, text.String())
	}
	return n
}

// A branch router that never answers is an anonymous router of its own,
// even though the silences of a quarter of the flows look like a limit to
// the budget at first: none of them is answered when sent again, so its
// flows stay a distinct path.
func TestSilentBranchIsAPath(t *testing.T) {
	topo := convergingDiamond()
	topo.Node("a2").Silent = true
	r := run(t, topo, 1, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
	if r.err != nil || len(r.results) != 1 {
		t.Fatalf("%v, %d results", r.err, len(r.results))
	}
	tr := r.results[0]
	got := tracertest.DistinctPaths(tr)
	if len(got) != 4 || !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, " * ") }) {
		t.Errorf("distinct paths %v: want the 3 answering branches and one through a silent router", got)
	}
	for _, f := range tr.Flows {
		for _, h := range f.Hops {
			if h.Unsettled {
				t.Errorf("path ID %d TTL %d: unsettled where no router is limited", f.PathID, h.TTL)
			}
		}
	}
}
