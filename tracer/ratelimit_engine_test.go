package tracer_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
	"github.com/traceflow-fast/traceflow-fast/tracer"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// perSourceDiamond is the 4-way diamond with Linux's default per-source
// limit on every router (a burst of 6, then one answer a second to each
// source); the destination answers without limit.
func perSourceDiamond() *tracertest.Topology {
	topo := tracertest.Diamond(4)
	for _, n := range topo.Nodes() {
		if n.Name != tracertest.Source && n.Name != "dst" {
			n.RateLimit = tracertest.RateLimit{Interval: time.Second}
		}
	}
	return topo
}

// Behind routers answering one probe a second, an adaptive run finds the 4
// paths there are, and no more: the silences the limits cause are paced
// out, not taken for paths of their own.
func TestRateLimitedRoutersGiveTheTruePaths(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := run(t, perSourceDiamond(), seed, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
		if r.err != nil || len(r.results) != 1 {
			t.Fatalf("seed %d: %v, %d results", seed, r.err, len(r.results))
		}
		tr := r.results[0]
		got := tracertest.DistinctPaths(tr)
		want := slices.Compact(r.truth(t, tracertest.DstAddr, len(tr.Flows)))
		t.Logf("seed %d: %d paths, %d probes, %d retries, %v virtual", seed, len(got), tr.ProbesSent, r.sum.Retries, r.sum.Duration.Round(time.Millisecond))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("seed %d: found\n%v\nwant\n%v", seed, got, want)
		}
		if tr.ProbesSent > 120 {
			t.Errorf("seed %d: %d probes for 4 paths of 4 hops", seed, tr.ProbesSent)
		}
		// The result says which hops were paced: some hop behind the
		// first router (its successors at TTL 2, or r3 at TTL 3), and
		// the run's summary lists them all.
		t.Logf("seed %d: rate limits %+v", seed, tr.RateLimits)
		paced := false
		for _, rl := range tr.RateLimits {
			if rl.TTL < 1 || rl.TTL > 3 || rl.Pace < 0 || rl.Silences < 0 {
				t.Errorf("seed %d: rate limit %+v: not a hop of the diamond's routers", seed, rl)
			}
			paced = paced || rl.Pace > 0 || rl.Silences > 0
		}
		if !paced || len(r.sum.RateLimits) < len(tr.RateLimits) {
			t.Errorf("seed %d: rate limits %+v, summary's %+v", seed, tr.RateLimits, r.sum.RateLimits)
		}
	}
	// Without the limits, nothing is paced and nothing is reported.
	r := run(t, tracertest.Diamond(4), 1, tracer.Config{}, tracer.Addrs(tracertest.DstAddr))
	if len(r.results) != 1 || r.results[0].RateLimits != nil || r.sum.RateLimits != nil || r.sum.Limited != 0 {
		t.Errorf("unlimited diamond: %d results, rate limits %+v, summary's %+v, %d silences explained",
			len(r.results), r.results[0].RateLimits, r.sum.RateLimits, r.sum.Limited)
	}
}

// Loss is not a limit: with r1's links losing 20% of the packets each way,
// a scan of 62 destinations through the pacing finds every destination's 4
// paths, as it does unpaced. How long it takes is left to the lab
// (TestFaultLossBulk) and to the budget's own tests
// (TestBudgetTellsLossFromALimit): the simulator's clock jumps to its next
// timer when the engine's goroutines are idle, so where an answer in flight
// between them meets a timeout depends on the machine's load, and so does
// the simulated time of a paced scan (2 to 60 s over the same seeds).
func TestLossIsNotPacedLikeALimit(t *testing.T) {
	var dsts []netip.Addr
	for i := 1; i <= 62; i++ {
		dsts = append(dsts, netip.AddrFrom4([4]byte{10, 99, 0, byte(i)}))
	}
	topo := tracertest.Diamond(4)
	for j := 1; j <= 4; j++ {
		topo.Edge("r1", fmt.Sprintf("a%d", j)).Loss = 0.2
	}
	r := run(t, topo, 1, tracer.Config{Paths: 16, Retries: 3, Wait: 200 * time.Millisecond}, tracer.Addrs(dsts...))
	if r.err != nil || len(r.results) != len(dsts) {
		t.Fatalf("%v, %d results", r.err, len(r.results))
	}
	t.Logf("%d probes, %d retries, %d silences explained, %v simulated", r.sum.Sent, r.sum.Retries, r.sum.Limited, r.sum.Duration.Round(time.Millisecond))
	// A probe and its 3 retries all lost, at 36% each, leave a hop silent
	// now and then (2% of the cells, fewer where the budget sent them
	// again). It is reported as the address the other flows answered
	// from when they agree; when they do not (two silent hops in a row
	// between routers that fan out), the flow is a distinct path of its
	// own. So a destination or three may show such a path; every one
	// must be reached and complete.
	exact := 0
	for _, tr := range r.results {
		want := slices.Compact(r.truth(t, tr.Destination, 16))
		got := tracertest.DistinctPaths(tr)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			exact++
		} else {
			t.Logf("%s: found %v, want %v", tr.Destination, got, want)
		}
		if tr.Partial || !slices.ContainsFunc(tr.UniquePaths(), func(up analysis.UniquePath) bool { return up.Reached }) {
			t.Errorf("%s: partial %v, or not reached", tr.Destination, tr.Partial)
		}
	}
	if exact < len(dsts)-3 {
		t.Errorf("%d of %d destinations with their exact paths", exact, len(dsts))
	}
}
