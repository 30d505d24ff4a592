package mda

import (
	"fmt"
	"github.com/traceflow-fast/traceflow-fast/analysis"
	"net/netip"
	"testing"
)

// The n_k published with the MDA (Veitch et al., INFOCOM 2009) and tabled
// by scamper, k = 1..16.
var (
	publishedN95 = []int{6, 11, 16, 21, 27, 33, 38, 44, 51, 57, 63, 70, 76, 83, 90, 96}
	publishedN99 = []int{8, 15, 21, 28, 36, 43, 51, 58, 66, 74, 82, 90, 98, 106, 115, 123}
)

// failureBound returns the least n for which K*((K-1)/K)^n <= eps, K = k+1,
// eps = 1-confidence: the bound on missing a (k+1)-th successor after n
// flows, stepped n by n rather than solved for it.
func failureBound(k int, confidence float64) int {
	K := float64(k + 1)
	eps := 1 - confidence
	n := 0
	for p := K; p > eps; p *= (K - 1) / K {
		n++
	}
	return n
}

func TestFlowsTables(t *testing.T) {
	for k := 1; k <= 16; k++ {
		if got := Flows(k, 0.95); got != publishedN95[k-1] {
			t.Errorf("Flows(%d, 0.95) = %d, published %d", k, got, publishedN95[k-1])
		}
		if got := Flows(k, 0.99); got != publishedN99[k-1] {
			t.Errorf("Flows(%d, 0.99) = %d, published %d", k, got, publishedN99[k-1])
		}
	}
	// The bound agrees with the published values at 99%, and at 95% but
	// for four k where the published n_k is one flow less.
	for k := 1; k <= 16; k++ {
		if got := failureBound(k, 0.99); got != publishedN99[k-1] {
			t.Errorf("k=%d at 99%%: bound %d, published %d", k, got, publishedN99[k-1])
		}
		want := publishedN95[k-1]
		if k == 7 || k == 8 || k == 13 || k == 16 {
			want++
		}
		if got := failureBound(k, 0.95); got != want {
			t.Errorf("k=%d at 95%%: bound %d, want %d", k, got, want)
		}
	}
	// Beyond the tables, and at other levels, the closed form is the bound.
	for _, conf := range []float64{0.9, 0.95, 0.99, 0.999} {
		for k := 1; k <= 40; k++ {
			if conf == 0.95 && k <= 16 || conf == 0.99 && k <= 16 {
				continue
			}
			if got, want := Flows(k, conf), failureBound(k, conf); got != want {
				t.Errorf("Flows(%d, %v) = %d, bound %d", k, conf, got, want)
			}
		}
	}
	if got := Flows(0, 0.95); got != publishedN95[0] {
		t.Errorf("Flows(0, 0.95) = %d, want n_1 = %d", got, publishedN95[0])
	}
}

// diamondTrace builds flows through a diamond: hop 1 a, hop 2 one of the
// branches by path ID, hop 3 the destination.
func diamondTrace(flows, width int) *analysis.Trace {
	dst := netip.MustParseAddr("10.99.0.1")
	t := &analysis.Trace{Destination: dst}
	for p := 1; p <= flows; p++ {
		b := netip.MustParseAddr(fmt.Sprintf("10.1.%d.2", (p-1)%width+1))
		t.Flows = append(t.Flows, analysis.Flow{PathID: p, Reached: true, ReachedTTL: 3, ProbedTTL: 3, Hops: []analysis.Hop{
			{TTL: 1, Addr: netip.MustParseAddr("10.0.0.1")}, {TTL: 2, Addr: b}, {TTL: 3, Addr: dst},
		}})
	}
	return t
}

func TestFlowsNeeded(t *testing.T) {
	// 6 flows over 4 branches: r1 has 4 successors, so 21 flows must pass
	// it; every flow passes it, so 21 in all.
	if got := FlowsNeeded(diamondTrace(6, 4), 0.95); got < 21 {
		t.Errorf("6 flows, 4 branches: need %d, want at least 21", got)
	}
	// 24 flows over 4 branches: r1 is satisfied (21), each branch has 6
	// flows and 1 successor (6 needed): the rule holds.
	if got := FlowsNeeded(diamondTrace(24, 4), 0.95); got != 24 {
		t.Errorf("24 flows, 4 branches: need %d, want 24 (rule holds)", got)
	}
	// 21 flows over 4 branches: r1 is satisfied, but a branch with 5
	// flows needs 6 -> node control asks for one more flow through it,
	// which an even split over 4 branches gives with 4 more flows.
	if got := FlowsNeeded(diamondTrace(21, 4), 0.95); got != 25 {
		t.Errorf("21 flows, 4 branches: need %d, want 25", got)
	}
	// A single path: 6 flows are enough at 95%, 8 at 99%.
	if got := FlowsNeeded(diamondTrace(6, 1), 0.95); got != 6 {
		t.Errorf("single path, 6 flows: need %d, want 6", got)
	}
	if got := FlowsNeeded(diamondTrace(6, 1), 0.99); got != 8 {
		t.Errorf("single path at 99%%, 6 flows: need %d, want 8", got)
	}
	// Silent next hops give no evidence: a flow silent at TTL 2 does not
	// count toward r1.
	tr := diamondTrace(6, 1)
	tr.Flows[0].Hops[1].Addr = netip.Addr{}
	if got := FlowsNeeded(tr, 0.95); got <= 6 {
		t.Errorf("one silent next hop: need %d, want more than 6", got)
	}
	if got := FlowsNeeded(&analysis.Trace{}, 0.95); got != 0 {
		t.Errorf("empty trace: need %d", got)
	}
}
