package mda

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/analysis"
)

// coupon is the least n for which n flows spread evenly over k successors
// show them all with the given odds, checked against the chance worked
// out another way: the distribution of the successors seen after each
// flow (a Markov chain over how many were seen).
func TestCoupon(t *testing.T) {
	allSeen := func(k, n int) float64 {
		p := make([]float64, k+1) // p[j]: j successors seen
		p[0] = 1
		for range n {
			next := make([]float64, k+1)
			for j, pj := range p {
				if j < k {
					next[j+1] += pj * float64(k-j) / float64(k)
				}
				next[j] += pj * float64(j) / float64(k)
			}
			p = next
		}
		return p[k]
	}
	for _, conf := range []float64{0.95, 0.99, 0.9975} {
		for k := 2; k <= 16; k++ {
			n := coupon(k, conf)
			if allSeen(k, n) < conf || allSeen(k, n-1) >= conf {
				t.Errorf("coupon(%d, %v) = %d: all seen with odds %.5f, with one flow fewer %.5f", k, conf, n, allSeen(k, n), allSeen(k, n-1))
			}
		}
	}
	if coupon(1, 0.95) != 1 {
		t.Errorf("coupon(1) = %d, want 1", coupon(1, 0.95))
	}
}

// A vertex that one search tests makes the others that need it wait, and
// wakes them once it is settled or no longer tested; a settled vertex
// hands out its successors and who settled them.
func TestStopSetClaimsAndWakes(t *testing.T) {
	s := NewStopSet()
	v := node{ttl: 1, addr: netip.MustParseAddr("10.0.0.1")}
	w := node{ttl: 2, addr: netip.MustParseAddr("10.1.1.2")}
	s.setClaims(1, []node{v, w})
	if !s.claimedByOther(v, 2) || s.claimedByOther(v, 1) {
		t.Fatal("a claimed vertex is not left to its owner")
	}
	s.wait(v, 2)
	s.wait(w, 3)
	if woken := s.Woken(nil); len(woken) != 0 {
		t.Fatalf("woken %v before anything changed", woken)
	}
	// Owner 1 still tests w, no longer v: owner 2 may go on.
	s.setClaims(1, []node{w})
	if woken := s.Woken(nil); !slices.Equal(woken, []uint64{2}) || s.claimedByOther(v, 2) {
		t.Fatalf("woken %v after v was let go, want [2]", woken)
	}
	dst := netip.MustParseAddr("192.0.2.9")
	s.settle(w, []node{{3, netip.MustParseAddr("10.2.1.2")}}, dst)
	if woken := s.Woken(nil); !slices.Equal(woken, []uint64{3}) {
		t.Fatalf("woken %v after w was settled, want [3]", woken)
	}
	succ, from, ok := s.Successors(2, w.addr)
	if !ok || from != dst || len(succ) != 1 || succ[0] != netip.MustParseAddr("10.2.1.2") || s.Len() != 1 {
		t.Fatalf("settled w: %v from %v (%v), %d settled", succ, from, ok, s.Len())
	}
	if _, _, ok := s.Successors(1, v.addr); ok {
		t.Error("v is settled without a test")
	}
	// A settled vertex is nobody's to test, and gains what other
	// destinations' flows show beyond it.
	if s.claimedByOther(w, 2) {
		t.Error("a settled vertex makes searches wait")
	}
	s.extend(w, []node{{3, netip.MustParseAddr("10.2.9.2")}, {3, netip.Addr{}}})
	if succ, _, _ := s.Successors(2, w.addr); len(succ) != 2 {
		t.Errorf("after extend: %v", succ)
	}
	// Release ends every claim of an owner.
	s.setClaims(4, []node{v})
	s.wait(v, 5)
	s.Release(4)
	if woken := s.Woken(nil); !slices.Equal(woken, []uint64{5}) || s.claimedByOther(v, 5) {
		t.Errorf("woken %v after release, want [5]", woken)
	}
	var none *StopSet
	none.Release(1)
	if _, _, ok := none.Successors(1, v.addr); ok || len(none.Woken(nil)) != 0 {
		t.Error("a nil stop set holds something")
	}
}

// A probe to the destination's distance that went unanswered (its ICMP
// budget spent) and one a TTL higher that it answered, quoting a TTL that
// places it at that distance: the row ends at the destination, without a
// silent hop after it that would make a path of its own. A lost answer at
// TTL 1, where every probe leaves by one next hop, is that first hop.
func TestFillEndsAtTheDestinationsDistance(t *testing.T) {
	dst := netip.MustParseAddr("192.0.2.1")
	r1, a1, a2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.1.1.2"), netip.MustParseAddr("10.1.2.2")
	c := analysis.NewCollector(dst, "d", netip.MustParseAddr("10.0.0.2"), 4, 8, 33452, 33452)
	probe := func(path, ttl int, from netip.Addr, reached bool, quoted uint8) {
		c.Sent(path, ttl)
		if from.IsValid() {
			typ := uint8(11)
			if reached {
				typ = 3
			}
			c.Reply(path, ttl, from, time.Millisecond, typ, 3, reached)
			c.Details(path, ttl, 60, quoted, 56)
		}
	}
	probe(1, 1, r1, false, 1)
	probe(1, 2, a1, false, 1)
	probe(1, 3, dst, true, 1)
	probe(2, 1, netip.Addr{}, false, 0) // lost at TTL 1
	probe(2, 2, a2, false, 1)
	probe(2, 3, netip.Addr{}, false, 0) // the destination's answer lost
	probe(2, 4, dst, true, 2)           // ... and given a TTL later
	st := &State{MaxTTL: 8, GapLimit: 3, OneFirstHop: true, Rows: c.Rows(nil)}
	tr := c.Trace(time.Time{}, time.Time{}, false)
	FillInferred(tr, st, 0.95)
	f := tr.Flows[1]
	if !f.Reached || f.ReachedTTL != 3 || len(f.Hops) != 3 || f.Hops[0].Addr != r1 || !f.Hops[0].Inferred || f.Hops[2].Addr != dst {
		t.Fatalf("path 2: reached %v at %d, hops %+v", f.Reached, f.ReachedTTL, f.Hops)
	}
	if n := len(tr.UniquePaths()); n != 2 {
		t.Errorf("%d distinct paths, want 2: %+v", n, tr.UniquePaths())
	}
}
